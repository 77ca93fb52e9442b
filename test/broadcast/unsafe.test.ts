// Proves that each unsafe variant (the simulator's planted bugs) really misbehaves, next to
// the safe behaviour on the same input: a gapped seq is delivered, a restored session table
// delivers a retry twice, and a leader answers a broadcast its followers never stored.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { batchOf, type ClientMessage } from '../../src/broadcast/batch.ts';
import { MembershipTable } from '../../src/broadcast/membership.ts';
import { SessionTable, type SessionTableOptions } from '../../src/broadcast/sessions.ts';
import { decodeAppState, encodeAppState } from '../../src/broadcast/snapshots.ts';
import { StreamState } from '../../src/broadcast/stream-state.ts';
import { encode, Outcome, TwinCluster, waitFor } from './twin-cluster.ts';

const safe: SessionTableOptions = { sessionTtlMs: 60_000, recentPositionsMax: 16 };
const message = (seq: number): ClientMessage => ({
  clientId: 'c',
  seq,
  topic: '',
  payload: encode(`m${seq}`),
});

test('deliverSeqGapAtOnce delivers a seq that skips ahead instead of refusing it', () => {
  const gapped = [batchOf([message(1)], 1), batchOf([message(3)], 2)];
  const table = new SessionTable(safe);
  const outcomes = gapped.map((batch) => table.apply(batch)[0]);
  assert.deepEqual(outcomes[1], { kind: 'refused', code: 'sequence_gap', expectedSeq: 2 });

  const unsafe = new SessionTable({ ...safe, unsafeDeliverSeqGapAtOnce: true });
  const unsafeOutcomes = gapped.map((batch) => unsafe.apply(batch)[0]);
  assert.deepEqual(unsafeOutcomes[1], { kind: 'delivered', position: 2 });
  // Seq 2 arrives late and is now a "duplicate": lost for good, per-client FIFO broken.
  assert.equal(unsafe.apply(batchOf([message(2)], 3))[0]?.kind, 'duplicate');
});

test('dropSessionsOnRestore forgets sessions in a snapshot, so a retry is delivered twice', () => {
  const table = new SessionTable(safe);
  table.apply(batchOf([message(1)], 1));
  const data = encodeAppState({
    sessions: table,
    membership: new MembershipTable(),
    streams: new StreamState(),
  });
  const retry = batchOf([message(1)], 2);

  const restored = decodeAppState(data, safe).sessions;
  assert.deepEqual(restored.apply(retry)[0], { kind: 'duplicate', position: 1 });

  const forgetful = decodeAppState(data, { ...safe, unsafeDropSessionsOnRestore: true }).sessions;
  assert.equal(forgetful.lastPosition, 1, 'positions go on');
  assert.equal(forgetful.deliveredPosition('c', 1), undefined, 'the session is gone');
  assert.deepEqual(forgetful.apply(retry)[0], { kind: 'delivered', position: 2 });
});

/** Holds both followers' disks, so nothing commits, and broadcasts on the leader. */
async function broadcastWhileNothingCommits(answerBeforeCommit: boolean) {
  const cluster = await TwinCluster.start({
    tuning: { electionTimeoutTicks: 120, unsafe: { answerBeforeCommit } },
  });
  try {
    const leader = await cluster.waitForLeader();
    await cluster.node(leader).broadcast(encode('settled first'));
    for (const id of cluster.followers(leader)) cluster.storage(id).hold();
    const commitIndex = cluster.node(leader).status().commitIndex;
    const outcome = new Outcome(cluster.node(leader).broadcast(encode('unstored')));
    await waitFor(() => cluster.node(leader).status().lastIndex > commitIndex, 'appended');
    // An entry the node proposed itself may have been on its way to a follower's disk when
    // it was held and commit since; the broadcast's own entry, appended last, cannot.
    const appendedIndex = cluster.node(leader).status().lastIndex;
    await new Promise((resolve) => setTimeout(resolve, 200));
    const committedSince = cluster.node(leader).status().commitIndex >= appendedIndex;
    for (const id of cluster.followers(leader)) cluster.storage(id).release();
    return { settled: outcome.settled, result: outcome.result, committedSince };
  } finally {
    await cluster.close();
  }
}

test('answerBeforeCommit acknowledges a broadcast that is not committed', async () => {
  const unsafe = await broadcastWhileNothingCommits(true);
  assert.equal(unsafe.committedSince, false, 'nothing could commit');
  assert.equal(unsafe.settled, true, 'answered anyway');
  assert.equal(unsafe.result?.position, null, 'without a position: none is decided yet');
  assert.ok((unsafe.result?.index ?? 0) > 0, 'with the index it was appended at');

  const safeRun = await broadcastWhileNothingCommits(false);
  assert.equal(safeRun.committedSince, false);
  // Under load a leader change may fail the call; what the safe node never does is succeed.
  assert.equal(safeRun.result, undefined, 'the safe node waits for the commit');
});
