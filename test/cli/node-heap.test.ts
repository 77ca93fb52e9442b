// The V8 heap setting of a node process (node-heap.ts): applied unless the operator chose one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nodeHeapGrowingPercent, tuneNodeHeap } from '../../src/cli/node-heap.ts';

test('a node process grows its old-generation limit from the live size', () => {
  const set: string[] = [];
  tuneNodeHeap(['--import', 'tsx'], (flags) => set.push(flags));
  assert.deepEqual(set, [`--heap-growing-percent=${nodeHeapGrowingPercent}`]);
});

test("an operator's own --heap-growing-percent is left as given", () => {
  const set: string[] = [];
  tuneNodeHeap(['--heap-growing-percent=50', '--import', 'tsx'], (flags) => set.push(flags));
  assert.deepEqual(set, []);
});
