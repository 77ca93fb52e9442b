// Proves log compaction in the runtime with a small snapshotIntervalBytes: the log on disk
// stays bounded, a node that was down while the others compacted catches up by installing a
// snapshot, positions and sessions survive the install (a retry after it is still a
// duplicate at its original position), subscribers behind what a node keeps get compacted,
// nodes restart from their own snapshots, and a leader's snapshot arriving while a follower
// saves its own does not stop the follower.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BroadcastNode } from '../../src/broadcast/node.ts';
import type { Snapshot } from '../../src/raft/types.ts';
import { encode, Outcome, rejection, TwinCluster, waitFor } from './twin-cluster.ts';

const snapshotIntervalBytes = 4096;
const tuning = { snapshotIntervalBytes, retryIntervalMs: 100, requestTimeoutMs: 5_000 };

/** `count` caller-session messages from `clientId`, sent in bursts of 100 and awaited. */
async function broadcastMany(
  node: BroadcastNode,
  clientId: string,
  firstSeq: number,
  count: number,
): Promise<number[]> {
  const positions: number[] = [];
  for (let start = 0; start < count; start += 100) {
    const burst = Array.from({ length: Math.min(100, count - start) }, (_, offset) => {
      const seq = firstSeq + start + offset;
      return node.broadcast(encode(`${clientId}-${seq}`), { clientId, seq });
    });
    for (const result of await Promise.all(burst)) positions.push(result.position as number);
  }
  return positions;
}

/** For broadcasts fired without waiting: their outcome is checked through the recorder. */
const ignore = (): void => undefined;

function diskLastIndex(cluster: TwinCluster, id: string): number {
  const disk = cluster.disk(id);
  return (disk.snapshot?.meta.index ?? 0) + disk.entries.length;
}

test('the log is compacted; a node that was down catches up by snapshot, sessions intact', async () => {
  const cluster = await TwinCluster.start({ tuning });
  try {
    const leader = await cluster.waitForLeader();
    const down = cluster.followers(leader)[0] as string;
    const early = await broadcastMany(cluster.node(leader), 'early', 1, 50);
    await cluster.waitDelivered(early.at(-1) as number);
    await cluster.crash(down);
    const lastIndexWhenDown = diskLastIndex(cluster, down);
    await broadcastMany(cluster.node(leader), 'while-down', 1, 1500);
    const leaderDisk = cluster.disk(leader);
    assert.ok(leaderDisk.snapshot !== null, 'the leader compacted its log');
    assert.ok(leaderDisk.snapshot.meta.index > lastIndexWhenDown, 'past what the node holds');
    assert.ok(cluster.node(leader).status().storage.snapshotWrittenBytes > 0);
    // One to two intervals of entries stay: bounded, whatever was broadcast.
    const keptBytes = leaderDisk.entries.reduce((sum, entry) => sum + entry.data.length, 0);
    assert.ok(keptBytes <= 3 * snapshotIntervalBytes, `kept ${keptBytes} bytes of entries`);

    await cluster.startNode(down);
    await cluster.waitConverged();
    const installed = cluster.disk(down).snapshot;
    assert.ok(installed !== null && installed.meta.index > lastIndexWhenDown, 'by snapshot');
    const node = cluster.node(down);
    assert.equal(node.status().lastPosition, cluster.node(leader).status().lastPosition);
    assert.ok(node.status().firstRetainedPosition > 1, 'older positions came as a snapshot');
    // A subscriber from position 1 is told where the node's memory starts.
    const error = await rejection(node.deliveries({ from: 1 }).next());
    assert.equal(error.code, 'compacted');
    assert.equal(error.details.firstPosition, node.status().firstRetainedPosition);
    assert.throws(() => node.read(1, 10), { code: 'compacted' });

    // Sessions came with the snapshot: retries are duplicates at their original positions.
    const retryEarly = await node.broadcast(encode('early-7'), { clientId: 'early', seq: 7 });
    assert.deepEqual([retryEarly.duplicate, retryEarly.position], [true, early[6]]);
    const retryLate = await node.broadcast(encode('while-down-1500'), {
      clientId: 'while-down',
      seq: 1500,
    });
    assert.equal(retryLate.duplicate, true);
    assert.equal(retryLate.position, cluster.recorder.positionOf('while-down', 1500));
    // And the session goes on where it was: the next seq takes the next position.
    const next = await node.broadcast(encode('while-down-1501'), {
      clientId: 'while-down',
      seq: 1501,
    });
    assert.equal(next.duplicate, false);
    assert.equal(next.position, cluster.recorder.lastPosition);
    cluster.assertConsistent({ dense: true });
  } finally {
    await cluster.close();
  }
});

test('every node restarts from its own snapshot and the positions go on', async () => {
  const cluster = await TwinCluster.start({ tuning });
  try {
    const leader = await cluster.waitForLeader();
    const positions = await broadcastMany(cluster.node(leader), 'restart', 1, 800);
    await cluster.waitConverged();
    for (const id of cluster.ids) assert.ok(cluster.disk(id).snapshot !== null, `${id} compacted`);
    for (const id of cluster.ids) await cluster.crash(id);
    for (const id of cluster.ids) await cluster.startNode(id);
    const next = await cluster.waitForLeader();
    // Converged alone can be every node at its snapshot, before the new leader's first commit
    // tells them the entries after it are committed: wait for the last position itself.
    await cluster.waitDelivered(positions.at(-1) as number);
    await cluster.waitConverged();
    for (const id of cluster.ids) {
      assert.equal(cluster.node(id).status().lastPosition, positions.at(-1), `${id} recovered`);
    }
    const retry = await cluster
      .node(next)
      .broadcast(encode('restart-800'), { clientId: 'restart', seq: 800 });
    assert.deepEqual([retry.duplicate, retry.position], [true, positions.at(-1)]);
    const more = await cluster
      .node(next)
      .broadcast(encode('restart-801'), { clientId: 'restart', seq: 801 });
    assert.equal(more.position, (positions.at(-1) as number) + 1);
    cluster.assertConsistent({ dense: false });
  } finally {
    await cluster.close();
  }
});

test('a broadcast pending on a node that catches up by snapshot resolves at its position', async () => {
  const cluster = await TwinCluster.start({ tuning });
  try {
    const leader = await cluster.waitForLeader();
    const behind = cluster.followers(leader)[0] as string;
    // The node can still send (its forward reaches the leader) but hears nothing back.
    cluster.network.cutOneWay(leader, behind);
    const pending = new Outcome(
      cluster.node(behind).broadcast(encode('covered-by-a-snapshot'), { clientId: 'cov', seq: 1 }),
    );
    await waitFor(
      () => cluster.recorder.positionOf('cov', 1) !== undefined,
      'committed by the others',
    );
    await broadcastMany(cluster.node(leader), 'filler', 1, 1000);
    assert.ok(
      (cluster.disk(leader).snapshot?.meta.index ?? 0) > diskLastIndex(cluster, behind),
      'the leader compacted past the node',
    );
    assert.equal(pending.settled, false);
    cluster.heal();
    await waitFor(() => pending.settled, 'the pending broadcast settles');
    assert.equal(pending.error, undefined);
    assert.equal(pending.result?.position, cluster.recorder.positionOf('cov', 1));
    await cluster.waitConverged();
    cluster.assertConsistent({ dense: false });
  } finally {
    await cluster.close();
  }
});

test('a leader snapshot arriving while a follower saves its own does not stop the follower', async () => {
  const cluster = await TwinCluster.start({ tuning: { ...tuning, snapshotIntervalBytes: 2048 } });
  try {
    const leader = await cluster.waitForLeader();
    const follower = cluster.followers(leader)[0] as string;
    // The follower's next snapshot save stalls (a slow fsync), with its Ready loop behind it.
    cluster.storage(follower).hold('snapshots');
    let seq = 1;
    await waitFor(() => {
      if (cluster.storage(follower).heldCount === 0) {
        cluster
          .node(leader)
          .broadcast(encode(`fill-${seq}`), { clientId: 'fill', seq })
          .catch(ignore);
        seq++;
      }
      return cluster.storage(follower).heldCount > 0;
    }, 'the follower saves a snapshot');
    // It hears nothing more of the log, and falls behind the leader's compaction.
    const rule = cluster.dropFrames(
      (frame) => frame.to === follower && (frame.type === 'Append' || frame.type === 'Heartbeat'),
    );
    const lastIndexThen = diskLastIndex(cluster, leader) + 10;
    await waitFor(() => {
      cluster
        .node(leader)
        .broadcast(encode(`fill-${seq}`), { clientId: 'fill', seq })
        .catch(ignore);
      seq++;
      return (cluster.disk(leader).snapshot?.meta.index ?? 0) > lastIndexThen;
    }, 'the leader compacts past the follower');
    // The leader's snapshot reaches the follower while its own save is still in flight.
    const snapshot = cluster.disk(leader).snapshot as Snapshot;
    cluster.injectFrame({
      type: 'Snapshot',
      from: leader,
      to: follower,
      term: cluster.node(leader).status().term,
      snapshot,
    });
    await waitFor(
      () => cluster.node(follower).status().commitIndex >= snapshot.meta.index,
      'the follower took the leader snapshot',
    );
    cluster.storage(follower).release();
    rule.remove();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const probe = await cluster
      .node(follower)
      .broadcast(encode('still-running'), { clientId: 'probe', seq: 1 });
    assert.equal(probe.duplicate, false);
    await cluster.waitConverged();
    cluster.assertConsistent({ dense: false });
  } finally {
    await cluster.close();
  }
});
