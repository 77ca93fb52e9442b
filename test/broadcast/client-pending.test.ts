// One client's pending messages are kept in a window indexed by seq, with seqs far from it
// kept aside (pending.ts). Proved against a plain Map over random histories: additions in
// and out of order, far ahead and far behind, removals anywhere, the window sliding up as
// its lowest seqs go, and reuse after it empties; every lookup, the size, the lowest seq,
// the set of keys and the removal count must match at every step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ClientPending, type PendingMessage, PendingTable } from '../../src/broadcast/pending.ts';
import { pendingEntryOf } from './pending-entries.ts';

const entryOf = (seq: number, clientId = 'a') => pendingEntryOf(seq, clientId);

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
  const first = Array.from({ length: 3000 }, (_, at) => entryOf(at + 1, 'a'));
  for (const entry of first) table.add(entry);
  for (const entry of first) table.delete(entry);
  assert.equal(table.forClient('a'), undefined);
  const second = Array.from({ length: 50 }, (_, at) => entryOf(2990 + at, 'b'));
  for (const entry of second) table.add(entry);
  const window = table.forClient('b') as ClientPending;
  assert.equal(window.size, 50);
  assert.equal(window.lowestSeq(), 2990);
  for (let seq = 1; seq <= 3100; seq++) {
    assert.equal(window.get(seq), seq >= 2990 && seq < 3040 ? second[seq - 2990] : undefined);
  }
  assert.deepEqual([...window.values()], second);
});

// A window stretched over far-apart seqs (each within the span a window may grow by) must
// not hold a ring of millions of slots, nor hand one to the next client once it leaves.
function ringLength(window: ClientPending): number {
  return (window as unknown as { slots: unknown[] }).slots.length;
}

test('far-apart seqs do not stretch the ring, nor hand a large one to the next client', () => {
  const table = new PendingTable();
  // 40 seqs, each within the span a window may grow by from its top, but one apart from
  // the next by 65,535: kept aside, not in a ring of 65,536 slots or more.
  const spread = Array.from({ length: 40 }, (_, at) => entryOf(1 + at * 65_535, 'a'));
  for (const entry of spread) table.add(entry);
  const window = table.forClient('a') as ClientPending;
  assert.equal(window.size, 40);
  for (const entry of spread) assert.equal(window.get(entry.message.seq), entry);
  const stretched = ringLength(window);
  assert.ok(stretched <= 1024, `40 far-apart seqs hold a ring of ${stretched} slots`);
  for (const entry of spread) table.delete(entry);
  // The next client sends a few consecutive seqs.
  const next = Array.from({ length: 8 }, (_, at) => entryOf(1 + at, 'b'));
  for (const entry of next) table.add(entry);
  const kept = ringLength(table.forClient('b') as ClientPending);
  assert.ok(kept <= 1024, `a client with 8 pending seqs holds a ring of ${kept} slots`);
});

test('many client ids with two far-apart seqs each hold small rings', () => {
  // Each client id costs what its pending messages need, not the span its seqs cover: the
  // span bound alone let each hold 65,536 slots (512 KiB), 5 GB for 10,000 of them.
  const table = new PendingTable();
  const clientIds = Array.from({ length: 200 }, (_, at) => `c${at}`);
  for (const clientId of clientIds) {
    table.add(entryOf(1, clientId));
    table.add(entryOf(65_536, clientId));
  }
  let slots = 0;
  for (const clientId of clientIds) {
    const window = table.forClient(clientId) as ClientPending;
    assert.equal(window.size, 2);
    assert.ok(window.has(1) && window.has(65_536));
    assert.deepEqual(
      [...window.keys()].sort((a, b) => a - b),
      [1, 65_536],
    );
    assert.equal(window.lowestSeq(), 1);
    slots += ringLength(window);
  }
  assert.ok(slots <= clientIds.length * 1024, `200 clients hold ${slots} ring slots`);
});

test('a dense window still grows as far as the span bound', () => {
  const window = new ClientPending();
  for (let seq = 1; seq <= 65_536; seq++) window.set(seq, entryOf(seq));
  assert.equal(window.size, 65_536);
  assert.equal(ringLength(window), 65_536);
  // One more seq past the bound goes aside and is still found.
  window.set(65_537, entryOf(65_537));
  assert.equal(ringLength(window), 65_536);
  assert.equal(window.get(65_537)?.message.seq, 65_537);
});

test("a client's window does not stretch with every far seq it sends while one seq waits", () => {
  // One seq waits (held behind a gap, say) while the client sends seqs ever further ahead,
  // each gone again at once (refused for the gap): only two are ever pending, yet each
  // stretched the window from its top by up to the span it may grow by, for good.
  const table = new PendingTable();
  table.add(entryOf(1, 'a'));
  for (let request = 1; request <= 40; request++) {
    const far = entryOf(1 + request * 65_535, 'a');
    table.add(far);
    table.delete(far);
  }
  const window = table.forClient('a') as ClientPending;
  assert.equal(window.size, 1);
  const slots = ringLength(window);
  assert.ok(slots <= 1 << 17, `one pending seq holds a ring of ${slots} slots`);
});

// The table hands the ring of a window that empties to the next client that comes
// (PendingTable.spareRing): three clients' windows fill, slide and empty in turn.
const clients = ['a', 'b', 'c'] as const;

const tableOperation = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('run' as const),
      client: fc.constantFrom(...clients),
      seq: fc.oneof(
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 2 ** 32 - 40, max: 2 ** 32 + 40 }),
      ),
      count: fc.integer({ min: 1, max: 40 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('deleteLowest' as const),
      client: fc.constantFrom(...clients),
      count: fc.integer({ min: 1, max: 60 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('empty' as const),
      client: fc.constantFrom(...clients),
    }),
  },
);

test("a reused ring never shows one client's seqs to another", () => {
  fc.assert(
    fc.property(fc.array(tableOperation, { maxLength: 60 }), (operations) => {
      const table = new PendingTable();
      const naive = new Map<string, Map<number, PendingMessage>>(
        clients.map((c) => [c, new Map()]),
      );
      const probes = new Set<number>();
      for (const next of operations) {
        const mine = naive.get(next.client) as Map<number, PendingMessage>;
        if (next.kind === 'run') {
          for (let seq = next.seq; seq < next.seq + next.count; seq++) {
            probes.add(seq);
            if (mine.has(seq)) continue;
            const entry = entryOf(seq, next.client);
            table.add(entry);
            mine.set(seq, entry);
          }
        } else {
          const seqs = [...mine.keys()].sort((x, y) => x - y);
          const gone = next.kind === 'empty' ? seqs : seqs.slice(0, next.count);
          for (const seq of gone) {
            table.delete(mine.get(seq) as PendingMessage);
            mine.delete(seq);
          }
        }
        for (const client of clients) {
          const want = naive.get(client) as Map<number, PendingMessage>;
          const window = table.forClient(client);
          assert.equal(window === undefined, want.size === 0, `client ${client} has a window`);
          for (const seq of probes) assert.equal(table.get(client, seq), want.get(seq));
          if (window === undefined) continue;
          assert.equal(window.size, want.size);
          assert.equal(window.lowestSeq(), Math.min(...want.keys()));
          assert.deepEqual(new Set(window.values()), new Set(want.values()));
        }
      }
    }),
    { numRuns: 200 },
  );
});
