// KeyWindow (src/client/key-window.ts), the session chain's map of seqs and flight ids,
// answers as a Map does after any sequence of sets and deletes: keys arriving in order and
// leaving out of order, keys set below the window, and a key left far behind while
// thousands pass (which moves the window's front out, and must lose nothing).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { KeyWindow } from '../../src/client/key-window.ts';

type Op =
  | { readonly kind: 'setNext' }
  | { readonly kind: 'set'; readonly back: number }
  | { readonly kind: 'delete'; readonly back: number }
  | { readonly kind: 'deleteOldest'; readonly spare: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'setNext' } as const) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('set' as const), back: fc.nat(3000) }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('delete' as const), back: fc.nat(3000) }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('deleteOldest' as const), spare: fc.nat(3) }),
  },
);

/** Both answer alike: every key's value, the size, and the entries (as a set). */
function assertSame(window: KeyWindow<number>, model: Map<number, number>, next: number): void {
  assert.equal(window.size, model.size);
  const sorted = (entries: Iterable<[number, number]>) => [...entries].sort((a, b) => a[0] - b[0]);
  assert.deepEqual(sorted(window.entries()), sorted(model.entries()));
  assert.deepEqual(
    [...window.keys()].sort((a, b) => a - b),
    [...model.keys()].sort((a, b) => a - b),
  );
  for (let key = Math.max(0, next - 4000); key <= next + 1; key++) {
    assert.equal(window.get(key), model.get(key));
    assert.equal(window.has(key), model.has(key));
  }
}

test('a KeyWindow answers as a Map after any sets and deletes', () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 4000 }), fc.nat(50), (ops, firstKey) => {
      const window = new KeyWindow<number>();
      const model = new Map<number, number>();
      let next = firstKey;
      let stamp = 0;
      for (const each of ops) {
        stamp += 1;
        if (each.kind === 'setNext') {
          window.set(next, stamp);
          model.set(next, stamp);
          next += 1;
        } else if (each.kind === 'set') {
          const key = Math.max(0, next - each.back);
          window.set(key, stamp);
          model.set(key, stamp);
        } else if (each.kind === 'delete') {
          const key = Math.max(0, next - each.back);
          assert.equal(window.delete(key), model.delete(key));
        } else {
          // The oldest but `spare` of them: a few keys stay behind while others pass.
          const oldest = [...model.keys()].sort((a, b) => a - b)[each.spare];
          if (oldest !== undefined) assert.equal(window.delete(oldest), model.delete(oldest));
        }
      }
      assertSame(window, model, next);
    }),
    { numRuns: 200 },
  );
});

test('a key left behind while 20,000 pass stays, and so does every other', () => {
  const window = new KeyWindow<string>();
  const model = new Map<number, string>();
  const put = (key: number) => {
    window.set(key, `v${key}`);
    model.set(key, `v${key}`);
  };
  for (let key = 1; key <= 100; key++) put(key);
  // Key 1 never leaves; the others leave in order, 100 in flight.
  for (let key = 101; key <= 20_100; key++) {
    put(key);
    assert.equal(window.delete(key - 99), model.delete(key - 99));
  }
  assert.equal(window.get(1), 'v1');
  // Set again where it now is (moved out of the window), and one never there below it all.
  window.set(1, 'again');
  model.set(1, 'again');
  window.set(0, 'v0');
  model.set(0, 'v0');
  assert.equal(window.get(1), 'again');
  assert.equal(window.size, model.size);
  assert.equal(window.delete(0), model.delete(0));
  assert.deepEqual(
    [...window.entries()].sort((a, b) => a[0] - b[0]),
    [...model.entries()].sort((a, b) => a[0] - b[0]),
  );
  assert.equal(window.delete(1), true);
  assert.equal(window.get(1), undefined);
  assert.equal(window.size, 99);
});

test('a key moved out stays listed once when a new window starts below it', () => {
  // Key 1 went out (below the window at 2); the window emptied and began again at 0, so it
  // covers 1 too: listed from the moved-out ones and again from the window.
  const window = new KeyWindow<string>();
  window.set(2, 'two');
  window.set(1, 'one');
  window.delete(2);
  window.set(0, 'zero');
  window.set(3, 'three');
  assert.deepEqual(
    [...window.keys()].sort((a, b) => a - b),
    [0, 1, 3],
  );
  assert.equal([...window.values()].length, window.size);
});
