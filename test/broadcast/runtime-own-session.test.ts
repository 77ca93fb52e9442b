// Proves that broadcasts made without a clientId (the node's own session) are delivered
// exactly once even when a forward to the leader is lost: frame rules drop chosen Forward
// frames deterministically, and the recorder checks that each payload appears once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { encode, Outcome, TwinCluster, waitFor } from './twin-cluster.ts';

let cluster: TwinCluster;

before(async () => {
  // Quick retries, slow elections: a follower may miss the leader for a few retry intervals
  // without starting a campaign.
  cluster = await TwinCluster.start({
    tuning: { retryIntervalMs: 60, electionTimeoutTicks: 100 },
  });
  await cluster.waitForLeader();
});

after(async () => {
  await cluster.close();
});

test('a lost forward is retried and delivered once, and later broadcasts wait for it', async () => {
  const leader = await cluster.waitForLeader();
  const follower = cluster.followers(leader)[0] as string;
  const node = cluster.node(follower);
  // Warm the session up so the loss is of a seq > 1 (a gap, not a missing session start).
  await node.broadcast(encode('warm'));
  const rule = cluster.dropFrames(
    (frame) => frame.type === 'Forward' && frame.from === follower,
    1,
  );
  const lost = new Outcome(node.broadcast(encode('lost-then-retried')));
  await waitFor(() => rule.droppedCount === 1, 'the forward dropped');
  const next = new Outcome(node.broadcast(encode('after-the-loss')));
  await waitFor(() => lost.settled && next.settled, 'both delivered');
  assert.equal(lost.error, undefined);
  assert.equal(next.error, undefined);
  assert.ok((next.result?.position as number) > (lost.result?.position as number), 'FIFO');
  await cluster.waitConverged();
  assert.equal(cluster.recorder.positionsOfText('lost-then-retried').length, 1);
  assert.equal(cluster.recorder.positionsOfText('after-the-loss').length, 1);
  cluster.assertConsistent();
});

test('when the first forward of a node session is lost, the next broadcast still succeeds', async () => {
  // A fresh node process has a fresh own session: restart a follower to get one.
  const leader = await cluster.waitForLeader();
  const follower = cluster.followers(leader)[1] as string;
  await cluster.restart(follower);
  await cluster.waitForLeader();
  const rule = cluster.dropFrames(
    (frame) => frame.type === 'Forward' && frame.from === follower,
    1,
  );
  const first = new Outcome(cluster.node(follower).broadcast(encode('first-lost')));
  await waitFor(() => rule.droppedCount === 1, 'the first forward dropped');
  const second = new Outcome(cluster.node(follower).broadcast(encode('second')));
  await waitFor(() => first.settled && second.settled, 'both settled');
  assert.equal(first.error, undefined, 'the first is retried and delivered');
  assert.equal(second.code, undefined, 'the second is delivered, not refused');
  assert.ok((second.result?.position as number) > (first.result?.position as number));
});

test('seq 2 committing before a retried seq 1 delivers each payload once and tells the truth', async () => {
  const leader = await cluster.waitForLeader();
  const follower = cluster.followers(leader)[0] as string;
  await cluster.restart(follower);
  await cluster.waitForLeader();
  const fromFollower = (frame: { type: string; from: string }) =>
    frame.type === 'Forward' && frame.from === follower;
  const rule = cluster.dropFrames(fromFollower, 1);
  const forwards = cluster.watchFrames(fromFollower);
  const first = new Outcome(cluster.node(follower).broadcast(encode('A-once')));
  await waitFor(() => rule.droppedCount === 1, 'the first forward (seq 1) dropped');
  // The follower hears nothing while seq 2 commits alone (refused: no session yet) and
  // its retry of seq 1 (with seq 2) commits after it.
  cluster.network.pause(follower);
  const before = cluster.node(leader).status().lastPosition;
  const second = new Outcome(cluster.node(follower).broadcast(encode('B-once')));
  await waitFor(() => forwards.count >= 3, 'seq 2 forwarded, then seq 1 retried');
  await waitFor(
    () => cluster.node(leader).status().lastPosition >= before + 2,
    'the retry delivered on the leader',
  );
  cluster.network.resume(follower);
  await waitFor(() => first.settled && second.settled, 'both settled');
  await cluster.waitConverged();
  cluster.assertConsistent();
  assert.equal(cluster.recorder.positionsOfText('A-once').length, 1, 'A delivered once');
  assert.equal(cluster.recorder.positionsOfText('B-once').length, 1, 'B delivered once');
  assert.equal(second.code, undefined, 'B was delivered, so its caller is told so');
});
