// Proves that a node holding one sender's copy of a (client, seq) does not refuse another
// sender's copy of it for good: that copy may reach the log through another node first and
// own the session, and then it is delivered. The node answers `timeout` (ask again); once
// the log has decided, the winner's retry is answered with its position and the loser's
// copy is refused session_forbidden. Three in-memory nodes; the follower's forwards are held
// back so that its copy waits while the other one is committed through the leader.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { encode, rejection, TwinCluster, waitFor } from './twin-cluster.ts';

let cluster: TwinCluster;

before(async () => {
  cluster = await TwinCluster.start({ tuning: { retryIntervalMs: 100 } });
  await cluster.waitForLeader();
});

after(async () => {
  await cluster.close();
});

test("another sender's copy waiting on a node is no refusal: the log decides", async () => {
  const leader = await cluster.waitForLeader();
  const [follower] = cluster.followers(leader) as [string];
  const held = cluster.dropFrames((frame) => frame.from === follower && frame.type === 'Forward');
  const alice = cluster
    .node(follower)
    .broadcast(encode('alice-1'), { clientId: 'shared', seq: 1, owner: 'alice' });
  const aliceOutcome = alice.then(
    () => 'delivered',
    (error: { code?: string }) => error.code,
  );
  await waitFor(() => held.droppedCount > 0, 'the follower holds alice’s copy back');
  // Bob's copy at the follower, which holds alice's: not known yet, so not refused.
  const early = await rejection(
    cluster.node(follower).broadcast(encode('bob-1'), { clientId: 'shared', seq: 1, owner: 'bob' }),
  );
  assert.equal(early.code, 'timeout', early.message);
  // Bob's copy through the leader reaches the log first: the session is bob's.
  const bob = await cluster
    .node(leader)
    .broadcast(encode('bob-1'), { clientId: 'shared', seq: 1, owner: 'bob' });
  assert.equal(bob.duplicate, false);
  await cluster.waitDelivered(bob.position as number);
  held.remove();
  // Alice's copy is refused for good once it reaches the log; bob's retry at the follower
  // is answered with the position his message holds.
  assert.equal(await aliceOutcome, 'session_forbidden');
  await waitFor(() => cluster.node(follower).lastPosition >= (bob.position as number), 'caught up');
  const retry = await cluster
    .node(follower)
    .broadcast(encode('bob-1'), { clientId: 'shared', seq: 1, owner: 'bob' });
  assert.deepEqual([retry.duplicate, retry.position], [true, bob.position]);
  assert.deepEqual(cluster.recorder.positionsOfText('bob-1'), [bob.position]);
  assert.deepEqual(cluster.recorder.positionsOfText('alice-1'), []);
});
