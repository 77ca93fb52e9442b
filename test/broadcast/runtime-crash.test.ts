// Proves that crashes lose nothing acknowledged: with retrying clients and own-session load
// running, leaders and followers are killed (their storage drops what was not yet written,
// including writes held back as "not yet fsynced") and restarted from their disks, and in the
// end every acknowledged message is delivered exactly once at its acknowledged position, and
// every node, across all its incarnations, saw the same message at every position.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode, Load, Outcome, TwinCluster, waitFor } from './twin-cluster.ts';

const tuning = { requestTimeoutMs: 3_000, retryIntervalMs: 100 };

async function progressBy(cluster: TwinCluster, count: number, what: string): Promise<void> {
  const target = cluster.recorder.lastPosition + count;
  await waitFor(() => cluster.recorder.lastPosition >= target, what);
}

async function finish(cluster: TwinCluster, load: Load): Promise<void> {
  await load.stop();
  await waitFor(() => load.own.every(({ outcome }) => outcome.settled), 'own broadcasts settle');
  await cluster.waitConverged();
  load.assertDelivered();
  cluster.assertConsistent();
  assert.ok(load.acknowledgedCount > 0);
}

test('leaders and followers crash and restart under load: nothing acknowledged is lost', async () => {
  const cluster = await TwinCluster.start({ tuning });
  try {
    await cluster.waitForLeader();
    const load = new Load(cluster, { clientCount: 3, ownIntervalMs: 10, ownPerNodeMax: 200 });
    await progressBy(cluster, 30, 'load before the first crash');
    for (let round = 0; round < 6; round++) {
      const leader = await cluster.waitForLeader();
      const victim = round % 2 === 0 ? leader : (cluster.followers(leader)[0] as string);
      await cluster.crash(victim);
      await cluster.waitForLeader();
      await progressBy(cluster, 20, `progress without ${victim} (round ${round})`);
      await cluster.startNode(victim);
      const target = cluster.recorder.lastPosition;
      await waitFor(
        () => cluster.node(victim).status().lastPosition >= target,
        `${victim} catches up (round ${round})`,
      );
    }
    await finish(cluster, load);
  } finally {
    await cluster.close();
  }
});

test('a leader killed with its own writes not yet durable: the followers’ copies decide', async () => {
  const cluster = await TwinCluster.start({ tuning });
  try {
    await cluster.waitForLeader();
    const load = new Load(cluster, { clientCount: 2, ownIntervalMs: 20, ownPerNodeMax: 50 });
    await progressBy(cluster, 20, 'load before the hold');
    const leader = await cluster.waitForLeader();
    // The leader's Appends leave before its own write (thesis §10.2.1); its write never lands.
    cluster.storage(leader).hold();
    const lost = Array.from(
      { length: 10 },
      (_, offset) =>
        new Outcome(
          cluster.node(leader).broadcast(encode(`unsynced-${offset}`), {
            clientId: 'unsynced',
            seq: offset + 1,
          }),
        ),
    );
    await waitFor(() => cluster.storage(leader).heldCount > 0, 'the leader holds a write');
    assert.ok(
      lost.every((outcome) => !outcome.settled),
      'the leader acknowledged nothing it has not written',
    );
    const diskBefore = cluster.disk(leader).entries.length;
    await cluster.crash(leader);
    assert.equal(cluster.disk(leader).entries.length, diskBefore, 'the held write was lost');
    await waitFor(() => lost.every((outcome) => outcome.settled), 'callers on the dead leader');
    assert.ok(lost.every((outcome) => outcome.code === 'node_stopped'));
    // Outcome unknown: the same (clientId, seq) retried elsewhere is delivered exactly once.
    const survivor = cluster.followers(leader)[0] as string;
    await cluster.waitForLeader(cluster.followers(leader));
    const retried = await Promise.all(
      Array.from({ length: 10 }, (_, offset) =>
        cluster.node(survivor).broadcast(encode(`unsynced-${offset}`), {
          clientId: 'unsynced',
          seq: offset + 1,
        }),
      ),
    );
    const positions = retried.map((result) => result.position as number);
    assert.deepEqual(
      positions,
      positions.map((_, offset) => (positions[0] as number) + offset),
      'one dense run, in seq order',
    );
    await cluster.startNode(leader);
    await finish(cluster, load);
    for (let offset = 0; offset < 10; offset++) {
      assert.deepEqual(cluster.recorder.positionsOfText(`unsynced-${offset}`), [positions[offset]]);
    }
  } finally {
    await cluster.close();
  }
});

test('a follower killed with a write not yet durable loses it and catches up', async () => {
  const cluster = await TwinCluster.start({ tuning });
  try {
    await cluster.waitForLeader();
    const load = new Load(cluster, { clientCount: 2, ownIntervalMs: 20, ownPerNodeMax: 50 });
    await progressBy(cluster, 20, 'load before the hold');
    const follower = cluster.followers(await cluster.waitForLeader())[0] as string;
    cluster.storage(follower).hold();
    await waitFor(() => cluster.storage(follower).heldCount > 0, 'the follower holds a write');
    // The other follower's acknowledgements still commit; this one acknowledged nothing held.
    await progressBy(cluster, 20, 'progress while one disk stalls');
    await cluster.crash(follower);
    await progressBy(cluster, 10, 'progress without it');
    await cluster.startNode(follower);
    await finish(cluster, load);
  } finally {
    await cluster.close();
  }
});

test('every node killed at once: the log on the disks gives back every position', async () => {
  const cluster = await TwinCluster.start({ tuning });
  try {
    await cluster.waitForLeader();
    const load = new Load(cluster, { clientCount: 3, ownIntervalMs: 10, ownPerNodeMax: 40 });
    await progressBy(cluster, 60, 'load before the crash');
    const acknowledged = load.acknowledgedCount;
    for (const id of cluster.ids) await cluster.crash(id);
    for (const id of cluster.ids) await cluster.startNode(id);
    await cluster.waitForLeader();
    await finish(cluster, load);
    assert.ok(load.acknowledgedCount >= acknowledged);
    // Restarted nodes replayed the log from position 1: the recorder compared every
    // position of the new incarnations with what the old ones delivered.
    for (const id of cluster.ids) {
      assert.equal(cluster.node(id).status().firstRetainedPosition, 1, `${id} replayed`);
    }
  } finally {
    await cluster.close();
  }
});
