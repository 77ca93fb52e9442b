// What waits for the log is bounded in bytes and in sessions: with the followers' disks held
// nothing commits, so accepted messages pile up until the bound answers overloaded, the
// bound named; a known session is never refused for the session bound.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BroadcastError } from '../../src/broadcast/errors.ts';
import { encode, TwinCluster } from './twin-cluster.ts';

test('payload bytes waiting for the log and new sessions are bounded', async () => {
  const cluster = await TwinCluster.start({
    tuning: { electionTimeoutTicks: 120, pendingBytesMax: 10_000, sessionsMax: 2 },
  });
  try {
    const leader = await cluster.waitForLeader();
    const node = cluster.node(leader);
    await node.broadcast(encode('s1'), { clientId: 'first', seq: 1 });
    await node.broadcast(encode('s2'), { clientId: 'second', seq: 1 });
    // The node's own session may hold a place too; either way a third client is one too many.
    await assert.rejects(
      node.broadcast(encode('s3'), { clientId: 'third', seq: 1 }),
      (error: unknown) =>
        error instanceof BroadcastError &&
        error.code === 'overloaded' &&
        error.details.sessionsMax === 2,
    );
    assert.ok((await node.broadcast(encode('s1b'), { clientId: 'first', seq: 2 })).position);

    for (const id of cluster.followers(leader)) cluster.storage(id).hold();
    const waiting: Promise<unknown>[] = [];
    let refused: unknown = null;
    for (let count = 0; count < 20 && refused === null; count++) {
      const pending = node.broadcast(new Uint8Array(3_000));
      pending.catch((error: unknown) => {
        refused = error;
      });
      // A refusal at the door rejects at once; an accepted message waits for the log.
      await new Promise((resolve) => setImmediate(resolve));
      if (refused === null) waiting.push(pending);
    }
    assert.ok(
      refused instanceof BroadcastError &&
        refused.code === 'overloaded' &&
        refused.details.pendingBytesMax === 10_000,
      String(refused),
    );
    assert.ok(waiting.length >= 3 && waiting.length <= 4, `${waiting.length} accepted`);
    for (const id of cluster.followers(leader)) cluster.storage(id).release();
    await Promise.all(waiting);
  } finally {
    await cluster.close();
  }
});
