// Proves that what a node is given while its Ready is being written becomes one batch:
// requests that each arrive in a callback of their own (one POST a message on many
// connections) were each proposed at once, and every one became a log entry of its own that
// every replica encoded, sent, decoded and applied apart (at a follower, a forward each). The
// node's own write is held, so its loop is busy for the whole burst.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { decodeBatch } from '../../src/broadcast/batch.ts';
import { decode, encode, TwinCluster, waitFor } from './twin-cluster.ts';

/**
 * Broadcasts 20 messages at `at`, each in a turn of the event loop of its own, while `at`'s
 * write is held; then releases it and checks that the leader's log took them as one entry.
 */
async function burstDuringWrite(cluster: TwinCluster, at: string, leader: string): Promise<void> {
  const burst: Promise<unknown>[] = [];
  for (let offset = 0; offset < 20; offset++) {
    burst.push(cluster.node(at).broadcast(encode(`burst-${offset}`)));
    await nextTurn();
  }
  cluster.storage(at).release();
  await Promise.all(burst);
  await cluster.waitConverged();
  cluster.assertConsistent();
  const taken = cluster
    .disk(leader)
    .entries.filter((entry) => entry.kind === 'normal')
    .map((entry) => decodeBatch(entry.data).messages.map((message) => decode(message.payload)))
    .filter((texts) => texts.some((text) => text.startsWith('burst-')));
  assert.equal(taken.length, 1, `the burst took ${taken.length} entries`);
  assert.equal(taken[0]?.length, 20);
}

test('messages given to a leader during its write leave in one batch', async () => {
  const cluster = await TwinCluster.start({
    tuning: { electionTimeoutTicks: 120, requestTimeoutMs: 10_000 },
  });
  try {
    const leader = await cluster.waitForLeader();
    await cluster.node(leader).broadcast(encode('warm'));
    cluster.storage(leader).hold();
    const first = cluster.node(leader).broadcast(encode('first'));
    await waitFor(() => cluster.storage(leader).heldCount > 0, "the leader's write is held");
    await burstDuringWrite(cluster, leader, leader);
    await first;
  } finally {
    await cluster.close();
  }
});

test('messages given to a follower during its write are forwarded in one batch', async () => {
  const cluster = await TwinCluster.start({
    tuning: { electionTimeoutTicks: 120, requestTimeoutMs: 10_000 },
  });
  try {
    const leader = await cluster.waitForLeader();
    const follower = cluster.followers(leader)[0] as string;
    await cluster.node(follower).broadcast(encode('warm'));
    cluster.storage(follower).hold();
    await cluster.node(leader).broadcast(encode('first'));
    await waitFor(() => cluster.storage(follower).heldCount > 0, "the follower's write is held");
    await burstDuringWrite(cluster, follower, leader);
  } finally {
    await cluster.close();
  }
});
