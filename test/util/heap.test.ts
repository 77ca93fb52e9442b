// Proves the array heap and the progress waiters built on it against naive twins: random
// pushes, pops and removals give the same order as sorting, and waiters wake exactly when
// the counter reaches their target, lowest first and in arrival order on ties.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { heapPop, heapPush, heapTidy } from '../../src/util/heap.ts';
import { ProgressWaiters } from '../../src/util/progress-waiters.ts';

const compare = (a: readonly [number, string], b: readonly [number, string]) =>
  a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);

test('pops come out in the order a sort gives, tuples compared field by field', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.string())), (items) => {
      const heap: [number, string][] = [];
      for (const item of items) heapPush(heap, item);
      const popped: [number, string][] = [];
      for (let item = heapPop(heap); item !== undefined; item = heapPop(heap)) popped.push(item);
      assert.deepEqual(popped, [...items].sort(compare));
    }),
  );
});

test('tidy leaves a live top and only live items once stale ones outnumber them', () => {
  const heap: [number, number][] = [];
  for (let at = 0; at < 500; at++) heapPush(heap, [at, at]);
  const isLive = ([value]: readonly [number, number]) => value % 10 === 0;
  heapTidy(heap, isLive, 50);
  assert.equal(heap.length, 50);
  assert.deepEqual(heap[0], [0, 0]);
  assert.ok(heap.every(isLive));
});

test('progress waiters wake when reached, lowest target first, ties in arrival order', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.boolean())),
      fc.array(fc.integer({ min: 0, max: 40 })),
      (adds, steps) => {
        const waiters = new ProgressWaiters<number>();
        const naive: { target: number; name: number }[] = [];
        adds.forEach(([target, removedEarly], name) => {
          const id = waiters.add(target, name);
          if (removedEarly) assert.equal(waiters.remove(id), true);
          else naive.push({ target, name });
        });
        let reached = 0;
        for (const step of steps) {
          reached = Math.max(reached, step);
          const expected = naive
            .filter((waiter) => waiter.target <= reached)
            .sort((a, b) => a.target - b.target || a.name - b.name)
            .map((waiter) => waiter.name);
          assert.deepEqual(waiters.reach(reached), expected);
          naive.splice(0, naive.length, ...naive.filter((waiter) => waiter.target > reached));
          assert.equal(waiters.size, naive.length);
        }
        assert.deepEqual(
          waiters.takeAll().sort((a, b) => a - b),
          naive.map((waiter) => waiter.name),
        );
        assert.equal(waiters.size, 0);
      },
    ),
  );
});
