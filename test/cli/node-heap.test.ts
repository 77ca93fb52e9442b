// The V8 heap setting of a node process (node-heap.ts): applied unless the operator chose one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nodeHeapGrowingPercent, tuneNodeHeap } from '../../src/cli/node-heap.ts';

test('a node process grows its old-generation limit from the live size', () => {
  const set: string[] = [];
  tuneNodeHeap(['--import', 'tsx'], '--enable-source-maps', (flags) => set.push(flags));
  assert.deepEqual(set, [`--heap-growing-percent=${nodeHeapGrowingPercent}`]);
});

test("an operator's own --heap-growing-percent is left as given", () => {
  const set: string[] = [];
  tuneNodeHeap(['--heap-growing-percent=50', '--import', 'tsx'], '', (flags) => set.push(flags));
  assert.deepEqual(set, []);
});

test("an operator's --heap_growing_percent in NODE_OPTIONS is left as given", () => {
  const set: string[] = [];
  tuneNodeHeap(['--import', 'tsx'], '--max-old-space-size=512 --heap_growing_percent=100', (f) =>
    set.push(f),
  );
  assert.deepEqual(set, []);
});
