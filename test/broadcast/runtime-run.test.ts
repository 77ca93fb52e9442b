// broadcastRun on three in-memory nodes: a run joins what is pending of its session (a
// pending single, and a later single retry of one of its seqs, share one entry and one
// position), answers its delivered seqs as duplicates and the rest at new positions, is
// refused whole for an invalid message or someone else's session, is taken up to the first
// message that does not fit the pending bounds, and expires with the errors a single
// broadcast gets (timeout when a copy may still commit, sequence_gap when it was held).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BroadcastError } from '../../src/broadcast/errors.ts';
import type { RunMessage } from '../../src/broadcast/node.ts';
import type { BroadcastResult } from '../../src/broadcast/pending.ts';
import { encode, Outcome, TwinCluster, waitFor } from './twin-cluster.ts';

const requestTimeoutMs = 600;
let cluster: TwinCluster;

before(async () => {
  cluster = await TwinCluster.start({ tuning: { requestTimeoutMs, retryIntervalMs: 100 } });
  await cluster.waitForLeader();
});

after(async () => {
  await cluster.close();
});

const messages = (...texts: string[]): RunMessage[] =>
  texts.map((text) => ({ payload: encode(text), topic: 'runs' }));

function fulfilled(outcome: PromiseSettledResult<BroadcastResult> | undefined): BroadcastResult {
  assert.equal(outcome?.status, 'fulfilled', JSON.stringify(outcome));
  return (outcome as PromiseFulfilledResult<BroadcastResult>).value;
}

function codeOf(outcome: PromiseSettledResult<BroadcastResult> | undefined): string {
  assert.equal(outcome?.status, 'rejected', JSON.stringify(outcome));
  const { reason } = outcome as PromiseRejectedResult;
  assert.ok(reason instanceof BroadcastError, String(reason));
  return reason.code;
}

/** A follower cut off from the others: what it takes in stays pending until the heal. */
async function isolatedFollower(): Promise<string> {
  const leader = await cluster.waitForLeader();
  const id = cluster.followers(leader)[0] as string;
  cluster.isolate(id);
  return id;
}

async function healed(): Promise<void> {
  cluster.heal();
  await cluster.waitForLeader();
  await cluster.waitConverged();
}

test('a run overlapping a pending single joins its entry: one copy, one position', async () => {
  const id = await isolatedFollower();
  const node = cluster.node(id);
  const pendingBefore = node.status().pendingMessageCount;
  const single = new Outcome(node.broadcast(encode('ov-1'), { clientId: 'ov', seq: 1 }));
  const run = new Outcome(
    node.broadcastRun({ clientId: 'ov', firstSeq: 1, messages: messages('ov-1', 'ov-2', 'ov-3') }),
  );
  assert.equal(node.status().pendingMessageCount, pendingBefore + 3, 'seq 1 is pending once');
  await healed();
  await waitFor(() => single.settled && run.settled, 'both answered');
  const outcomes = run.result as PromiseSettledResult<BroadcastResult>[];
  assert.equal(outcomes.length, 3);
  const results = outcomes.map(fulfilled);
  assert.deepEqual(results[0], single.result, 'the joined seq has the single answer');
  assert.deepEqual(
    results.map((result) => [result.position, result.duplicate]),
    [1, 2, 3].map((seq) => [cluster.recorder.positionOf('ov', seq), false]),
  );
  assert.deepEqual(cluster.recorder.positionsOfText('ov-1').length, 1);
  cluster.assertConsistent();
});

test('a single retry of one seq of a pending run joins the run’s entry', async () => {
  const id = await isolatedFollower();
  const node = cluster.node(id);
  const run = new Outcome(
    node.broadcastRun({
      clientId: 'retry',
      firstSeq: 1,
      messages: messages('retry-1', 'retry-2', 'retry-3', 'retry-4'),
    }),
  );
  const pending = node.status().pendingMessageCount;
  const retry = new Outcome(node.broadcast(encode('retry-3'), { clientId: 'retry', seq: 3 }));
  assert.equal(node.status().pendingMessageCount, pending, 'the retry made no second entry');
  await healed();
  await waitFor(() => run.settled && retry.settled, 'both answered');
  const results = (run.result as PromiseSettledResult<BroadcastResult>[]).map(fulfilled);
  assert.deepEqual(results[2], retry.result);
  assert.equal(retry.result?.duplicate, false);
  assert.equal(cluster.recorder.positionsOfText('retry-3').length, 1);
  cluster.assertConsistent();
});

test('a run partly delivered before: duplicates at their first positions, the rest new', async () => {
  const leader = await cluster.waitForLeader();
  const node = cluster.node(leader);
  const first = await node.broadcastRun({
    clientId: 'dup',
    firstSeq: 1,
    messages: messages('dup-1', 'dup-2', 'dup-3'),
  });
  const original = first.map(fulfilled);
  // Applied everywhere: the other node answers from its session table, not from the log.
  await cluster.waitConverged();
  const again = await cluster.node(cluster.followers(leader)[1] as string).broadcastRun({
    clientId: 'dup',
    firstSeq: 2,
    messages: messages('dup-2', 'dup-3', 'dup-4', 'dup-5'),
  });
  const results = again.map(fulfilled);
  assert.deepEqual(
    results.slice(0, 2).map((result) => [result.position, result.duplicate, result.index]),
    original.slice(1).map((result) => [result.position, true, null]),
  );
  assert.deepEqual(
    results.slice(2).map((result) => [result.position, result.duplicate]),
    [
      [(original[2]?.position as number) + 1, false],
      [(original[2]?.position as number) + 2, false],
    ],
  );
  assert.equal(cluster.recorder.positionsOfText('dup-2').length, 1);
  cluster.assertConsistent();
});

test('a run with one invalid message, or in someone else’s session, is refused whole', async () => {
  const leader = await cluster.waitForLeader();
  const node = cluster.node(leader);
  const pendingBefore = node.status().pendingMessageCount;
  const invalid = await node.broadcastRun({
    clientId: 'whole',
    firstSeq: 1,
    messages: [...messages('whole-1'), { payload: encode('whole-2'), topic: '$reserved' }],
  });
  assert.deepEqual(invalid.map(codeOf), ['invalid_argument', 'invalid_argument']);
  assert.equal(node.status().pendingMessageCount, pendingBefore, 'nothing of it was taken');
  const badSeq = await node.broadcastRun({
    clientId: 'whole',
    firstSeq: Number.MAX_SAFE_INTEGER,
    messages: messages('x', 'y'),
  });
  assert.deepEqual(badSeq.map(codeOf), ['invalid_argument', 'invalid_argument']);
  // The same seqs, valid, start the session: the refusal left no trace.
  const taken = await node.broadcastRun({
    clientId: 'whole',
    firstSeq: 1,
    owner: 'alice',
    messages: messages('whole-1', 'whole-2'),
  });
  assert.deepEqual(
    taken.map((outcome) => fulfilled(outcome).duplicate),
    [false, false],
  );
  const foreign = await node.broadcastRun({
    clientId: 'whole',
    firstSeq: 2,
    owner: 'mallory',
    messages: messages('m-2', 'm-3'),
  });
  assert.deepEqual(foreign.map(codeOf), ['session_forbidden', 'session_forbidden']);
  assert.equal(cluster.recorder.positionOf('whole', 3), undefined);
  cluster.assertConsistent();
});

test("handed-over messages are the log's own only when they are of the run's session and sender", async () => {
  const leader = await cluster.waitForLeader();
  const node = cluster.node(leader);
  // Shaped for another client and seqs: copied under the run's own.
  const lying = [1, 2].map((offset) => ({
    clientId: 'someone-else',
    seq: 40 + offset,
    topic: 'runs',
    payload: encode(`kept-${offset}`),
  }));
  const taken = await node.broadcastRun({
    clientId: 'kept',
    firstSeq: 1,
    messages: lying,
    messagesKept: true,
  });
  await cluster.waitConverged();
  assert.deepEqual(
    taken.map((outcome) => fulfilled(outcome).position),
    [1, 2].map((seq) => cluster.recorder.positionOf('kept', seq)),
  );
  assert.equal(cluster.recorder.positionOf('someone-else', 41), undefined);
  // Shaped right, from an authenticated sender: copied with its owner, who then holds the
  // session (had the owner been dropped, mallory's run would be taken).
  const ownedMessages = [
    { clientId: 'kept-owned', seq: 1, topic: 'runs', payload: encode('ko-1') },
  ];
  const owned = await node.broadcastRun({
    clientId: 'kept-owned',
    firstSeq: 1,
    owner: 'alice',
    messages: ownedMessages,
    messagesKept: true,
  });
  assert.equal(fulfilled(owned[0]).duplicate, false);
  const foreign = await node.broadcastRun({
    clientId: 'kept-owned',
    firstSeq: 2,
    owner: 'mallory',
    messages: messages('ko-2'),
  });
  assert.deepEqual(foreign.map(codeOf), ['session_forbidden']);
  cluster.assertConsistent();
});

test('a run beyond the pending bound is taken up to the first message that does not fit', async () => {
  const leader = await cluster.waitForLeader();
  const id = cluster.followers(leader)[0] as string;
  await cluster.restart(id, { pendingMessagesMax: 4 });
  await cluster.waitForLeader();
  try {
    cluster.isolate(id);
    const node = cluster.node(id);
    const run = new Outcome(
      node.broadcastRun({
        clientId: 'full',
        firstSeq: 1,
        messages: messages('full-1', 'full-2', 'full-3', 'full-4', 'full-5', 'full-6'),
      }),
    );
    assert.equal(node.status().pendingMessageCount, 4);
    await healed();
    await waitFor(() => run.settled, 'the run answered');
    const outcomes = run.result as PromiseSettledResult<BroadcastResult>[];
    assert.deepEqual(
      outcomes.map((outcome) => (outcome.status === 'fulfilled' ? 'ok' : codeOf(outcome))),
      ['ok', 'ok', 'ok', 'ok', 'overloaded', 'overloaded'],
    );
    assert.equal(cluster.recorder.positionOf('full', 5), undefined);
  } finally {
    await cluster.restart(id);
    await cluster.waitForLeader();
  }
  cluster.assertConsistent();
});

test('a run expires whole at its deadline: timeout for copies out, sequence_gap for held ones', async () => {
  const leader = await cluster.waitForLeader();
  await cluster.node(leader).broadcast(encode('late-1'), { clientId: 'late', seq: 1 });
  // Seqs 3 and 4 wait for seq 2, which never comes: held, never sent.
  const gapped = new Outcome(
    cluster
      .node(leader)
      .broadcastRun({ clientId: 'late', firstSeq: 3, messages: messages('late-3', 'late-4') }),
  );
  const id = await isolatedFollower();
  const lost = new Outcome(
    cluster.node(id).broadcastRun({
      clientId: 'lost',
      firstSeq: 1,
      messages: messages('lost-1', 'lost-2', 'lost-3'),
    }),
  );
  // A bound on a hang, not on speed: the expiry itself runs on the deadlines above.
  await waitFor(() => gapped.settled && lost.settled, 'both runs expired', 30_000);
  const gapOutcomes = gapped.result as PromiseSettledResult<BroadcastResult>[];
  assert.deepEqual(gapOutcomes.map(codeOf), ['sequence_gap', 'sequence_gap']);
  for (const outcome of gapOutcomes) {
    assert.equal(
      ((outcome as PromiseRejectedResult).reason as BroadcastError).details.expectedSeq,
      2,
    );
  }
  const lostOutcomes = lost.result as PromiseSettledResult<BroadcastResult>[];
  assert.deepEqual(lostOutcomes.map(codeOf), ['timeout', 'timeout', 'timeout']);
  assert.equal(cluster.node(id).status().pendingMessageCount, 0, 'expired entries are dropped');
  assert.equal(cluster.node(leader).status().pendingMessageCount, 0);
  await healed();
  // A timeout is "unknown": sent again by the client, the run is delivered once.
  const again = await cluster.node(id).broadcastRun({
    clientId: 'lost',
    firstSeq: 1,
    messages: messages('lost-1', 'lost-2', 'lost-3'),
  });
  assert.equal(again.map(fulfilled).length, 3);
  assert.equal(cluster.recorder.positionsOfText('lost-2').length, 1);
  cluster.assertConsistent();
});

test('a stopped node answers every message of a run node_stopped', async () => {
  const leader = await cluster.waitForLeader();
  const id = cluster.followers(leader)[1] as string;
  const node = cluster.node(id);
  await cluster.stop(id);
  const outcomes = await node.broadcastRun({
    clientId: 'stopped',
    firstSeq: 1,
    messages: messages('s-1', 's-2'),
  });
  assert.deepEqual(outcomes.map(codeOf), ['node_stopped', 'node_stopped']);
  await cluster.startNode(id);
  await cluster.waitForLeader();
});

test('a run without messages is refused as a call, not answered with no outcomes', async () => {
  const node = cluster.node(await cluster.waitForLeader());
  for (const run of [
    { clientId: 'empty', firstSeq: 1, messages: [] },
    { clientId: 'empty', firstSeq: 1, messages: 'not a list' as unknown as RunMessage[] },
  ]) {
    await assert.rejects(node.broadcastRun(run), (error: unknown) => {
      assert.ok(error instanceof BroadcastError);
      assert.equal(error.code, 'invalid_argument');
      return true;
    });
  }
});
