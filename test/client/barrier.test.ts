/**
 * `client.barrier()` against three real nodes: the index covers every broadcast the client
 * saw acknowledged before the call, also when the first endpoints are down (one refuses
 * connections, one is a stopped node answering 503); with every endpoint down it fails with
 * `unavailable` within the bound, and on a closed client with `closed`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientError, connect } from '../../src/client/index.ts';
import { startHttpCluster } from '../server/cluster.ts';
import { freePorts } from '../support/ports.ts';

test('barrier covers what was acknowledged and fails over past dead endpoints', async () => {
  const cluster = await startHttpCluster();
  const [refusedPort] = await freePorts(1);
  const refused = `http://127.0.0.1:${refusedPort}`;
  const writer = connect({ endpoints: cluster.members.map((m) => m.url) });
  try {
    const leader = await cluster.leader();
    const [stopped, live] = cluster.members.filter((member) => member.id !== leader.id) as [
      (typeof cluster.members)[0],
      (typeof cluster.members)[0],
    ];
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, n) => writer.broadcast({ n }, { topic: 't' })),
    );
    const acknowledgedMax = Math.max(...answers.map((answer) => answer.position!));
    assert.ok((await writer.barrier()) >= acknowledgedMax);

    await cluster.stopNode(stopped.id); // its HTTP server stays up and answers 503
    const reader = connect({
      endpoints: [refused, stopped.url, live.url],
      backoffBaseMs: 1,
      unavailableAfterMs: 10_000,
    });
    try {
      const index = await reader.barrier();
      assert.ok(index >= acknowledgedMax, `${index} < ${acknowledgedMax}`);
      assert.ok(live.node.lastPosition >= index);
    } finally {
      reader.close();
    }

    const nowhere = connect({
      endpoints: [refused, stopped.url],
      backoffBaseMs: 1,
      backoffMaxMs: 20,
      unavailableAfterMs: 300,
    });
    const startedMs = Date.now();
    const failure = await nowhere.barrier().catch((error: unknown) => error);
    assert.ok(failure instanceof ClientError, String(failure));
    assert.equal(failure.code, 'unavailable');
    assert.match(String(failure.details.lastReason), /ECONNREFUSED|node_stopped/);
    assert.ok(Date.now() - startedMs < 3_000, 'bounded by unavailableAfterMs');
    nowhere.close();
    await assert.rejects(nowhere.barrier(), { code: 'closed' });
  } finally {
    writer.close();
    await cluster.close();
  }
});
