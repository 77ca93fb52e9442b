// Real node processes on 127.0.0.1 under continuous load from retrying clients: leaders and
// followers are killed with SIGKILL and restarted; afterwards every node has delivered the
// same sequence, and every acknowledged message exactly once, at its acknowledged position.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ProcessCluster } from '../../src/cli/process-cluster.ts';
import { waitFor } from '../support/ports.ts';
import { allReached, checkDeliveries, leaderOf, RetryingClient, readAll } from './helpers.ts';

// Small WAL segments: every node preallocates one, and the suite starts many nodes.
const nodeOptions = { requestTimeoutMs: 1500, retryIntervalMs: 300, segmentBytesMax: 1 << 20 };

async function killRestartUnderLoad(nodeCount: number, rounds: number): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'abcast-crash-'));
  const ids = Array.from({ length: nodeCount }, (_, offset) => `n${offset + 1}`);
  const cluster = await ProcessCluster.start({ ids, root, nodeOptions });
  try {
    let stopping = false;
    const clients = Array.from(
      { length: 6 },
      (_, offset) => new RetryingClient(`c${offset}`, cluster, offset),
    );
    const load = Promise.all(clients.map((client) => client.run(() => stopping)));
    const acknowledgedCount = () =>
      clients.reduce((sum, client) => sum + client.acknowledged.size, 0);
    for (let round = 0; round < rounds; round++) {
      const before = acknowledgedCount();
      await waitFor(() => acknowledgedCount() >= before + 20, 'progress before a kill', 20_000);
      const leader = await leaderOf(cluster).catch(() => ids[0] as string);
      // Alternate: the leader on even rounds, a follower on odd ones.
      const victim = round % 2 === 0 ? leader : (ids.find((id) => id !== leader) as string);
      await cluster.kill(victim, 'SIGKILL');
      const during = acknowledgedCount();
      await waitFor(() => acknowledgedCount() >= during + 10, 'progress with a node down', 20_000);
      await cluster.launch(victim);
    }
    stopping = true;
    await load;
    const target = Math.max(...clients.flatMap((client) => [...client.acknowledged.values()]));
    await allReached(cluster, ids, target);
    // Let in-flight retries settle, then compare.
    const leader = cluster.node(await leaderOf(cluster));
    await leader.request({ op: 'barrier' });
    const finalPosition = (await leader.request<{ lastPosition: number }>({ op: 'status' }))
      .lastPosition;
    await allReached(cluster, ids, finalPosition);
    const sequences = await Promise.all(ids.map((id) => readAll(cluster.node(id))));
    checkDeliveries(
      sequences.map((sequence) => sequence.slice(0, finalPosition)),
      clients,
    );
    const acknowledged = acknowledgedCount();
    assert.ok(acknowledged >= rounds * 30, `load made progress (${acknowledged} acknowledged)`);
    console.log(
      `# ${nodeCount} nodes, ${rounds} kills: ${acknowledged} acked, ${finalPosition} delivered`,
    );
  } finally {
    await cluster.stop();
    await rm(root, { recursive: true, force: true });
  }
}

test('3 nodes: SIGKILL of leaders and followers under load loses and duplicates nothing', {
  timeout: 180_000,
}, async () => {
  await killRestartUnderLoad(3, 4);
});

test('5 nodes: SIGKILL of leaders and followers under load loses and duplicates nothing', {
  timeout: 180_000,
}, async () => {
  await killRestartUnderLoad(5, 2);
});

test('SIGTERM stops a node gracefully: exit code 0, lock released, restart recovers', {
  timeout: 60_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-term-'));
  const ids = ['n1', 'n2', 'n3'];
  const cluster = await ProcessCluster.start({ ids, root, nodeOptions });
  try {
    const client = new RetryingClient('graceful', cluster, 0);
    let sent = 0;
    await client.run(() => ++sent > 20);
    const leader = await leaderOf(cluster);
    const node = cluster.node(leader);
    node.kill('SIGTERM');
    assert.equal(await node.exited, 0, 'a graceful stop exits with 0');
    await cluster.launch(leader); // the data directory lock was released
    await client.run(() => ++sent > 40);
    const target = Math.max(...client.acknowledged.values());
    await allReached(cluster, ids, target);
    const sequences = await Promise.all(ids.map((id) => readAll(cluster.node(id))));
    checkDeliveries(sequences, [client]);
  } finally {
    await cluster.stop();
    await rm(root, { recursive: true, force: true });
  }
});
