// The gap hold judges a message against the earlier seqs of its client. It remembers ranges
// it found complete, so that 10,000 messages in flight from one client cost O(1) each, not
// a scan of every earlier seq. These properties hold it to the plain scan (written out
// below, as the hold judged before) over random histories of additions, removals, holds,
// releases and session-table advances: every decision must be the same.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { GapHold } from '../../src/broadcast/gap-hold.ts';
import { type PendingMessage, PendingTable, stageOf } from '../../src/broadcast/pending.ts';
import type { SessionTable } from '../../src/broadcast/sessions.ts';

interface Table {
  readonly expected: Map<string, number>;
}

/** The earlier seq that is missing, by a scan of every earlier seq. */
function missingSeqByScan(
  pending: PendingTable,
  table: Table,
  entry: PendingMessage,
): number | null {
  const { clientId, seq } = entry.message;
  const mine = pending.forClient(clientId);
  let fromSeq: number;
  const expected = table.expected.get(clientId);
  if (expected !== undefined) fromSeq = expected;
  else {
    let earliestHere = seq;
    for (const other of mine?.keys() ?? []) earliestHere = Math.min(earliestHere, other);
    fromSeq = earliestHere;
  }
  if (seq <= fromSeq) return null;
  if (mine === undefined || seq - fromSeq > mine.size) return fromSeq;
  const strict = entry.gapExpectedSeq !== undefined;
  for (let earlier = fromSeq; earlier < seq; earlier++) {
    const other = mine.get(earlier);
    if (other === undefined || other.held) return earlier;
    if (strict && stageOf(other) === 'waiting') return earlier;
  }
  return null;
}

type Step =
  | { readonly kind: 'add'; readonly client: number; readonly seq: number; readonly stage: number }
  | { readonly kind: 'remove'; readonly pick: number }
  | { readonly kind: 'hold'; readonly pick: number }
  | { readonly kind: 'release'; readonly pick: number }
  | { readonly kind: 'advance'; readonly client: number; readonly seq: number | null }
  | { readonly kind: 'strict'; readonly pick: number }
  | { readonly kind: 'decide'; readonly pick: number };

const clients = ['a', 'b'];

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      client: fc.nat(1),
      seq: fc.integer({ min: 1, max: 40 }),
      stage: fc.nat(2),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('hold' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      client: fc.nat(1),
      seq: fc.option(fc.integer({ min: 1, max: 40 })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('strict' as const), pick: fc.nat() }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('decide' as const), pick: fc.nat() }) },
);

function entryOf(client: string, seq: number, stage: number): PendingMessage {
  return {
    message: { clientId: client, seq, topic: '', payload: new Uint8Array(1) },
    ownSession: false,
    waiter: null,
    otherWaiters: null,
    lastSentMs: 0,
    proposedIndex: stage === 1 ? 7 : null,
    queued: stage === 0,
    held: false,
    copiesSent: 0,
  };
}

test('the gap hold decides every message as a scan of its earlier seqs would', () => {
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 300, size: 'max' }), (steps) => {
      const pending = new PendingTable();
      const table: Table = { expected: new Map() };
      const sessions = {
        knows: (clientId: string) => table.expected.has(clientId),
        expectedSeq: (clientId: string) => table.expected.get(clientId) as number,
      } as unknown as SessionTable;
      const hold = new GapHold({
        pending,
        sessions: () => sessions,
        limits: { heldPerSessionMax: 1000, heldBytesPerSessionMax: 1 << 20, heldBytesMax: 1 << 20 },
      });
      const all = () =>
        clients.flatMap((client) => [...(pending.forClient(client)?.values() ?? [])]);
      let decisions = 0;
      for (const next of steps) {
        const entries = all();
        const picked =
          entries.length === 0
            ? undefined
            : entries[('pick' in next ? next.pick : 0) % entries.length];
        if (next.kind === 'add') {
          const client = clients[next.client] as string;
          if (pending.get(client, next.seq) === undefined)
            pending.add(entryOf(client, next.seq, next.stage));
        } else if (next.kind === 'remove') {
          if (picked !== undefined) {
            if (picked.held) hold.take(picked);
            pending.delete(picked);
          }
        } else if (next.kind === 'hold') {
          if (picked !== undefined && !picked.held) {
            picked.queued = false;
            hold.hold(picked);
          }
        } else if (next.kind === 'release') {
          if (picked?.held) hold.take(picked);
        } else if (next.kind === 'advance') {
          const client = clients[next.client] as string;
          if (next.seq === null) table.expected.delete(client);
          else table.expected.set(client, Math.max(next.seq, table.expected.get(client) ?? 1));
        } else if (next.kind === 'strict') {
          if (picked !== undefined) picked.gapExpectedSeq = 1;
        } else if (picked !== undefined && !picked.held) {
          const expected = missingSeqByScan(pending, table, picked);
          const decision = hold.decide(picked);
          const got = decision.kind === 'send' ? null : decision.expectedSeq;
          assert.equal(
            got,
            expected,
            `decision for ${picked.message.clientId}/${picked.message.seq}`,
          );
          decisions++;
        }
      }
      return decisions >= 0;
    }),
    { numRuns: 400 },
  );
});

/** A hold over a fresh table where every client's session expects seq 1. */
function holdFromSeqOne(heldPerSessionMax: number, heldBytesMax: number) {
  const pending = new PendingTable();
  const sessions = { knows: () => true, expectedSeq: () => 1 } as unknown as SessionTable;
  const hold = new GapHold({
    pending,
    sessions: () => sessions,
    limits: { heldPerSessionMax, heldBytesPerSessionMax: heldBytesMax, heldBytesMax },
  });
  return { pending, hold };
}

test('10,000 messages of one client in flight are judged without a scan each', () => {
  const { pending, hold } = holdFromSeqOne(256, 1 << 20);
  let looks = 0;
  const first = entryOf('a', 1, 0);
  pending.add(first);
  assert.equal(hold.decide(first).kind, 'send');
  const mine = pending.forClient('a');
  assert.ok(mine !== undefined);
  const get = mine.get.bind(mine);
  // Counts the seqs looked up: a scan per message would look 50 million times.
  mine.get = (seq: number) => {
    looks++;
    return get(seq);
  };
  for (let seq = 2; seq <= 10_000; seq++) {
    const entry = entryOf('a', seq, 0);
    pending.add(entry);
    assert.equal(hold.decide(entry).kind, 'send');
  }
  assert.ok(looks < 30_000, `looked up ${looks} seqs for 10,000 messages`);
});

test('behind a missing seq, 10,000 messages judged again in seq order are held without a scan each', () => {
  // What a leader change does: every pending message of the client is judged again, in seq
  // order, and all behind the missing one are held. A hold of a seq past the range found
  // complete must not make the next judgement look at every earlier seq again.
  const { pending, hold } = holdFromSeqOne(20_000, 1 << 30);
  const missing = 5_000;
  const entries: PendingMessage[] = [];
  for (let seq = 1; seq <= 10_000; seq++) {
    if (seq === missing) continue;
    const entry = entryOf('a', seq, 0);
    pending.add(entry);
    entries.push(entry);
  }
  const mine = pending.forClient('a');
  assert.ok(mine !== undefined);
  let looks = 0;
  const get = mine.get.bind(mine);
  mine.get = (seq: number) => {
    looks++;
    return get(seq);
  };
  let held = 0;
  for (const entry of entries) {
    entry.queued = false;
    const decision = hold.decide(entry);
    if (decision.kind === 'send') {
      entry.queued = true;
      continue;
    }
    assert.equal(decision.kind, 'hold');
    assert.equal(decision.expectedSeq, missing);
    hold.hold(entry);
    held++;
  }
  assert.equal(held, 10_000 - missing);
  assert.ok(looks < 40_000, `looked up ${looks} seqs for 10,000 messages`);
});
