// Proves what retries cost while commits stall: both followers' disks are held for half a second
// (the leader keeps its lease: elections are slow here), and the leader's own log is then
// read back to count how many copies of one burst of messages it holds. Every copy is
// deduplicated at apply, so delivery stays exactly-once either way; the copies are load.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBatch } from '../../src/broadcast/batch.ts';
import { decode, encode, TwinCluster } from './twin-cluster.ts';

test('a stalled commit does not make the leader propose the same messages again and again', async () => {
  const cluster = await TwinCluster.start({
    tuning: { retryIntervalMs: 100, electionTimeoutTicks: 120, requestTimeoutMs: 10_000 },
  });
  try {
    const leader = await cluster.waitForLeader();
    const followers = cluster.followers(leader);
    for (const id of followers) cluster.storage(id).hold();
    const burst = Array.from({ length: 100 }, (_, offset) =>
      cluster.node(leader).broadcast(encode(`burst-${offset}`)),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const id of followers) cluster.storage(id).release();
    await Promise.all(burst);
    await cluster.waitConverged();
    cluster.assertConsistent();
    assert.deepEqual(cluster.recorder.positionsOfText('burst-0').length, 1, 'delivered once');
    let copies = 0;
    for (const entry of cluster.disk(leader).entries) {
      if (entry.kind !== 'normal') continue;
      const batch = decodeBatch(entry.data);
      copies += batch.messages.filter((message) => decode(message.payload) === 'burst-0').length;
    }
    // One proposal, plus at most one resend after a leader change (there was none).
    assert.ok(copies <= 2, `the leader's log holds ${copies} copies of one message`);
  } finally {
    await cluster.close();
  }
});
