// One client's pending messages are kept in a window indexed by seq, with seqs far from it
// kept aside (pending.ts). Proved against a plain Map over random histories: additions in
// and out of order, far ahead and far behind, removals anywhere, the window sliding up as
// its lowest seqs go, and reuse after it empties; every lookup, the size, the lowest seq,
// the set of keys and the removal count must match at every step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ClientPending, type PendingMessage, PendingTable } from '../../src/broadcast/pending.ts';

function entryOf(seq: number): PendingMessage {
  return {
    message: { clientId: 'a', seq, topic: '', payload: new Uint8Array(0) },
    ownSession: false,
    waiter: null,
    otherWaiters: null,
    lastSentMs: 0,
    proposedIndex: null,
    queued: false,
    held: false,
    copiesSent: 0,
  };
}

const far = 1 << 17;

const seqArbitrary = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 3000 }) },
  { weight: 1, arbitrary: fc.integer({ min: far, max: far + 50 }) },
  { weight: 1, arbitrary: fc.integer({ min: 3 * far, max: 3 * far + 5 }) },
);

const operation = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), seq: seqArbitrary }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('run' as const),
      seq: seqArbitrary,
      count: fc.integer({ min: 1, max: 1500 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('deleteLowest' as const),
      count: fc.integer({ min: 1, max: 2000 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('get' as const), seq: seqArbitrary }) },
);

function check(window: ClientPending, naive: Map<number, PendingMessage>, removals: number) {
  assert.equal(window.size, naive.size);
  assert.equal(window.removals, removals);
  const lowest = naive.size === 0 ? Number.POSITIVE_INFINITY : Math.min(...naive.keys());
  assert.equal(window.lowestSeq(), lowest);
  assert.deepEqual(
    [...window.keys()].sort((a, b) => a - b),
    [...naive.keys()].sort((a, b) => a - b),
  );
  for (const [seq, entry] of naive) assert.equal(window.get(seq), entry);
  assert.deepEqual([...window.values()].length, naive.size);
}

test('ClientPending answers as a Map of seqs does, whatever order seqs come and go in', () => {
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 40 }), (operations) => {
      const window = new ClientPending();
      const naive = new Map<number, PendingMessage>();
      let removals = 0;
      const remove = (seq: number) => {
        const expected = naive.delete(seq);
        assert.equal(window.delete(seq), expected, `delete(${seq})`);
        if (expected) removals++;
      };
      for (const next of operations) {
        if (next.kind === 'set' || next.kind === 'run') {
          const count = next.kind === 'run' ? next.count : 1;
          for (let seq = next.seq; seq < next.seq + count; seq++) {
            const entry = entryOf(seq);
            window.set(seq, entry);
            naive.set(seq, entry);
          }
        } else if (next.kind === 'delete') {
          const seqs = [...naive.keys()];
          remove(seqs.length === 0 ? next.pick : (seqs[next.pick % seqs.length] as number));
        } else if (next.kind === 'deleteLowest') {
          const seqs = [...naive.keys()].sort((a, b) => a - b).slice(0, next.count);
          for (const seq of seqs) remove(seq);
        } else {
          assert.equal(window.get(next.seq), naive.get(next.seq));
          assert.equal(window.has(next.seq), naive.has(next.seq));
        }
        check(window, naive, removals);
      }
    }),
    { numRuns: 300 },
  );
});

test('ClientPending slides: 100,000 seqs through a window of 1,000 keep the array small', () => {
  const window = new ClientPending();
  for (let seq = 1; seq <= 100_000; seq++) {
    window.set(seq, entryOf(seq));
    if (seq > 1000) assert.equal(window.delete(seq - 1000), true);
  }
  assert.equal(window.size, 1000);
  assert.equal(window.lowestSeq(), 99_001);
  const slots = (window as unknown as { slots: unknown[] }).slots;
  assert.ok(slots.length <= 4096, `the window holds ${slots.length} slots for 1,000 seqs`);
});

test('ClientPending finds seqs past 2^32 (the ring slot is the seq modulo its size)', () => {
  const window = new ClientPending();
  const naive = new Map<number, PendingMessage>();
  const start = 2 ** 40 - 700;
  for (let seq = start; seq < start + 3000; seq++) {
    const entry = entryOf(seq);
    window.set(seq, entry);
    naive.set(seq, entry);
    if (seq - start >= 1000) {
      assert.equal(window.delete(seq - 1000), true);
      naive.delete(seq - 1000);
    }
  }
  for (const [seq, entry] of naive) assert.equal(window.get(seq), entry);
  assert.equal(window.get(start + 3000), undefined);
  assert.equal(window.lowestSeq(), start + 2000);
  assert.deepEqual([...window.keys()], [...naive.keys()]);
});

test('A ring a client left empty serves the next client with none of the old seqs in it', () => {
  const table = new PendingTable();
  const entryFor = (client: string, seq: number): PendingMessage => ({
    ...entryOf(seq),
    message: { clientId: client, seq, topic: '', payload: new Uint8Array(0) },
  });
  const first = Array.from({ length: 3000 }, (_, at) => entryFor('a', at + 1));
  for (const entry of first) table.add(entry);
  for (const entry of first) table.delete(entry);
  assert.equal(table.forClient('a'), undefined);
  const second = Array.from({ length: 50 }, (_, at) => entryFor('b', 2990 + at));
  for (const entry of second) table.add(entry);
  const window = table.forClient('b') as ClientPending;
  assert.equal(window.size, 50);
  assert.equal(window.lowestSeq(), 2990);
  for (let seq = 1; seq <= 3100; seq++) {
    assert.equal(window.get(seq), seq >= 2990 && seq < 3040 ? second[seq - 2990] : undefined);
  }
  assert.deepEqual([...window.values()], second);
});
