// The session table against a model of clients that retry, duplicate and reorder their
// sends: each (client, seq) is delivered at most once, in seq order per client, at dense
// positions; duplicates answer with the original position; the table survives a snapshot.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { batchOf, type ClientMessage } from '../../src/broadcast/batch.ts';
import { SessionTable } from '../../src/broadcast/sessions.ts';

const options = { sessionTtlMs: 60_000, recentPositionsMax: 1000 };
const message = (clientId: string, seq: number): ClientMessage => ({
  clientId,
  seq,
  topic: '',
  payload: new Uint8Array(),
});

test('retried, duplicated and reordered sends are delivered exactly once and in order', () => {
  const send = fc.record({
    client: fc.constantFrom('a', 'b', 'c'),
    back: fc.nat(3),
    skip: fc.nat(2),
  });
  fc.assert(
    fc.property(fc.array(send, { maxLength: 200 }), fc.nat(199), (sends, snapshotAt) => {
      let table = new SessionTable(options);
      const highestSent = new Map<string, number>();
      const deliveredSeqs = new Map<string, number[]>();
      const positionOf = new Map<string, number>();
      let lastPosition = 0;
      sends.forEach(({ client, back, skip }, step) => {
        if (step === snapshotAt) table = SessionTable.fromSnapshot(table.toSnapshot(), options);
        // A client resends an older message, the next one, or one past a gap.
        const highest = highestSent.get(client) ?? 0;
        const seq = Math.max(1, highest + 1 - back + (back === 0 ? skip : 0));
        highestSent.set(client, Math.max(highest, seq));
        const [outcome] = table.apply(batchOf([message(client, seq)], step));
        const seqs = deliveredSeqs.get(client) ?? [];
        if (outcome!.kind === 'delivered') {
          assert.equal(outcome!.position, lastPosition + 1, 'positions are dense');
          lastPosition = outcome!.position;
          assert.equal(seq, seqs.length + 1, 'a client is delivered in seq order, gap-free');
          seqs.push(seq);
          deliveredSeqs.set(client, seqs);
          positionOf.set(`${client}/${seq}`, outcome!.position);
        } else if (outcome!.kind === 'duplicate') {
          assert.ok(seq <= seqs.length, 'only delivered seqs are duplicates');
          assert.equal(outcome!.position, positionOf.get(`${client}/${seq}`));
        } else {
          assert.ok(seq > seqs.length + 1 || (seqs.length === 0 && seq !== 1));
        }
      });
      assert.equal(table.lastPosition, lastPosition);
    }),
  );
});

test('anonymous messages always take a position', () => {
  const table = new SessionTable(options);
  const outcomes = table.apply(batchOf([message('', 0), message('', 0)], 0));
  assert.deepEqual(outcomes, [
    { kind: 'delivered', position: 1 },
    { kind: 'delivered', position: 2 },
  ]);
});

test('idle sessions expire by log time, then a stale seq is refused', () => {
  const table = new SessionTable({ sessionTtlMs: 1000, recentPositionsMax: 4 });
  table.apply(batchOf([message('old', 1)], 0));
  assert.equal(table.expectedSeq('old'), 2);
  table.apply(batchOf([message('other', 1)], 5000));
  assert.equal(table.sessionCount, 1);
  const [outcome] = table.apply(batchOf([message('old', 2)], 5001));
  assert.deepEqual(outcome, { kind: 'refused', code: 'session_unknown', expectedSeq: 1 });
});

test('sessions are counted by owner, through expiry and a snapshot', () => {
  const table = new SessionTable({ sessionTtlMs: 1000, recentPositionsMax: 4 });
  const owned = (clientId: string, owner: string): ClientMessage => ({
    ...message(clientId, 1),
    owner,
  });
  table.apply(batchOf([owned('a1', 'alice'), owned('a2', 'alice'), owned('b1', 'bob')], 0));
  assert.equal(table.sessionCountOf('alice'), 2);
  assert.equal(table.sessionCountOf('bob'), 1);
  assert.equal(table.sessionCountOf('carol'), 0);
  const restored = SessionTable.fromSnapshot(table.toSnapshot(), options);
  assert.equal(restored.sessionCountOf('alice'), 2);
  table.apply(batchOf([owned('b2', 'bob')], 900));
  // Past the TTL of the first three (a sweep runs every TTL / 8 of log time).
  table.apply(batchOf([{ ...message('b2', 2), owner: 'bob' }], 1500));
  assert.equal(table.sessionCountOf('alice'), 0);
  assert.equal(table.sessionCountOf('bob'), 1);
});

test('duplicates older than the remembered window answer without a position', () => {
  const table = new SessionTable({ sessionTtlMs: 1000, recentPositionsMax: 2 });
  for (let seq = 1; seq <= 5; seq++) table.apply(batchOf([message('c', seq)], 0));
  assert.deepEqual(table.apply(batchOf([message('c', 4)], 0))[0], {
    kind: 'duplicate',
    position: 4,
  });
  assert.deepEqual(table.apply(batchOf([message('c', 1)], 0))[0], {
    kind: 'duplicate',
    position: null,
  });
});

test('a run is decided as a whole: duplicates first, then new positions, or refused', () => {
  const table = new SessionTable(options);
  table.applyRuns(batchOf([message('c', 1), message('c', 2)], 0));
  // seqs 2..4 in one run: 2 is a duplicate, 3 and 4 take positions 3 and 4.
  const [outcome] = table.applyRuns(
    batchOf([message('c', 2), message('c', 3), message('c', 4)], 0),
  );
  assert.deepEqual(outcome, { kind: 'accepted', duplicateCount: 1, firstPosition: 3 });
  const [gap] = table.applyRuns(batchOf([message('c', 6), message('c', 7)], 0));
  assert.deepEqual(gap, { kind: 'refused', code: 'sequence_gap', expectedSeq: 5 });
  assert.deepEqual(table.deliveredPosition('c', 3), { position: 3 });
  assert.equal(table.deliveredPosition('c', 5), undefined);
});
