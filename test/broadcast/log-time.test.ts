// Proves that a delivered message's logTimeMs is the session table's clock — a function of
// the log alone — through snapshots: the leader's clock is pushed ten minutes ahead for a
// while and then set back, so the log time must stay at the forward stamp; a node that
// catches up by installing a snapshot taken after the jump, and every node restarting from
// its own snapshot, must still stamp later messages with that forward time, the same on
// every node at every position.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BroadcastNode } from '../../src/broadcast/node.ts';
import { encode, TwinCluster } from './twin-cluster.ts';

const tuning = { snapshotIntervalBytes: 4096, retryIntervalMs: 100, requestTimeoutMs: 5_000 };
const skewMs = 10 * 60_000;

async function broadcastMany(node: BroadcastNode, clientId: string, count: number) {
  const positions: number[] = [];
  for (let start = 0; start < count; start += 100) {
    const burst = Array.from({ length: Math.min(100, count - start) }, (_, offset) =>
      node.broadcast(encode(`${clientId}-${start + offset + 1}`), {
        clientId,
        seq: start + offset + 1,
      }),
    );
    for (const result of await Promise.all(burst)) positions.push(result.position as number);
  }
  return positions;
}

/** position → logTimeMs of every message the node keeps from `from` on. */
function logTimes(node: BroadcastNode, from: number): Map<number, number> {
  const times = new Map<number, number>();
  for (let cursor = from; ; ) {
    const page = node.read(cursor, 4096);
    if (page.length === 0) return times;
    for (const message of page) times.set(message.position, message.logTimeMs);
    cursor += page.length;
  }
}

function assertNonDecreasing(times: Map<number, number>): void {
  let previous = -Infinity;
  for (const [position, time] of [...times].sort((a, b) => a[0] - b[0])) {
    assert.ok(time >= previous, `log time moved back at position ${position}`);
    previous = time;
  }
}

test('log time survives a snapshot install and a restart from snapshots', async () => {
  const realNow = Date.now;
  let offsetMs = 0;
  Date.now = () => realNow() + offsetMs;
  const cluster = await TwinCluster.start({ tuning });
  try {
    const leader = await cluster.waitForLeader();
    const down = cluster.followers(leader)[0] as string;
    await broadcastMany(cluster.node(leader), 'before', 50);
    await cluster.crash(down);
    offsetMs = skewMs;
    const forward = await broadcastMany(cluster.node(leader), 'forward', 100);
    const forwardTimeMs = cluster.node(leader).read(forward.at(-1) as number, 1)[0]!.logTimeMs;
    assert.ok(forwardTimeMs >= realNow() + skewMs / 2, 'stamped by the forward clock');
    offsetMs = 0;
    await broadcastMany(cluster.node(leader), 'back', 1500);
    assert.ok(cluster.disk(leader).snapshot !== null, 'the leader compacted');

    await cluster.startNode(down);
    await cluster.waitConverged();
    const restored = cluster.node(down);
    const from = restored.status().firstRetainedPosition;
    assert.ok(from > forward.at(-1)!, 'the node caught up by snapshot past the forward stamps');
    const reference = logTimes(cluster.node(leader), from);
    assert.ok(reference.size > 0);
    for (const time of reference.values()) assert.ok(time >= forwardTimeMs, 'never moves back');
    assert.deepEqual(logTimes(restored, from), reference);

    for (const id of cluster.ids) await cluster.crash(id);
    for (const id of cluster.ids) await cluster.startNode(id);
    const next = await cluster.waitForLeader();
    const after = await broadcastMany(cluster.node(next), 'after-restart', 20);
    await cluster.waitDelivered(after.at(-1) as number);
    const views = cluster.ids.map((id) => logTimes(cluster.node(id), after[0] as number));
    for (const view of views) {
      assert.equal(view.size, after.length);
      assert.deepEqual(view, views[0]);
      assertNonDecreasing(view);
      for (const time of view.values()) assert.ok(time >= forwardTimeMs, 'kept across restarts');
    }
    cluster.assertConsistent({ dense: false });
  } finally {
    Date.now = realNow;
    await cluster.close();
  }
});
