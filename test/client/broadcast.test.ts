/**
 * The SDK's broadcast on three real nodes over HTTP: any endpoint works, a dead first
 * endpoint fails over, 200 concurrent broadcasts are each delivered exactly once in client
 * seq order, bad input is refused with typed errors, and close() ends calls in flight.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientError, connect } from '../../src/client/index.ts';
import { startHttpCluster } from '../server/cluster.ts';
import { freePorts } from '../support/ports.ts';
import { allMessages, checkExactlyOnce } from './support.ts';

test('broadcast through each endpoint, a dead first endpoint, and 200 at once', async () => {
  const cluster = await startHttpCluster();
  const [deadPort] = await freePorts(1);
  const client = connect({ endpoints: cluster.members.map((m) => m.url), clientId: 'c-many' });
  try {
    await cluster.leader();
    for (const member of cluster.members) {
      const single = connect({ endpoints: [member.url] });
      const answer = await single.broadcast({ via: member.id }, { topic: 't' });
      assert.equal(answer.duplicate, false);
      assert.equal(typeof answer.position, 'number');
      single.close();
    }
    const failover = connect({
      endpoints: [`http://127.0.0.1:${deadPort}`, cluster.members[1]!.url],
      clientId: 'c-failover',
    });
    assert.equal((await failover.broadcast('after a dead endpoint')).duplicate, false);
    failover.close();

    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, at) => client.broadcast({ n: at + 1 })),
    );
    const positions = answers.map((answer) => answer.position);
    assert.equal(new Set(positions).size, 200);
    const messages = await allMessages(cluster.members[0]!.url);
    assert.equal(messages.length, 204);
    assert.equal(checkExactlyOnce(messages, 'c-many', 200), null);
    // Issue order is seq order, and seq order is delivery order within a session.
    const mine = messages.filter((message) => message.client === 'c-many');
    assert.deepEqual(
      mine.map((m) => m.seq),
      mine.map((_, at) => at + 1),
    );
    assert.deepEqual(
      mine.map((m) => m.payload),
      mine.map((_, at) => ({ n: at + 1 })),
    );
  } finally {
    client.close();
    await cluster.close();
  }
});

test('typed errors: bad options and payloads, an oversized payload, a closed client', async () => {
  assert.throws(() => connect({ endpoints: [] }), {
    name: 'ClientError',
    code: 'invalid_argument',
  });
  assert.throws(() => connect({ endpoints: ['ftp://x'] }), { code: 'invalid_argument' });
  assert.throws(() => connect({ endpoints: ['http://a'], requestTimeoutMs: -1 }), {
    code: 'invalid_argument',
  });
  const cluster = await startHttpCluster({ payloadBytesMax: 1024 });
  const client = connect({ endpoints: cluster.members.map((m) => m.url), clientId: 'c-err' });
  try {
    await assert.rejects(client.broadcast(undefined), { code: 'invalid_argument' });
    await assert.rejects(client.broadcast(1, { topic: '$system' }), { code: 'invalid_argument' });
    const tooLarge = await client.broadcast('x'.repeat(4096)).catch((error: unknown) => error);
    assert.ok(tooLarge instanceof ClientError);
    assert.equal(tooLarge.code, 'payload_too_large');
    assert.equal(tooLarge.details.status, 413);
    // The refused seq left a hole; the SDK goes on in a fresh session.
    const after = await client.broadcast('fits');
    assert.equal(after.duplicate, false);
    assert.equal(client.clientId, 'c-err~2');
    client.close();
    await assert.rejects(client.broadcast(2), { code: 'closed' });
  } finally {
    client.close();
    await cluster.close();
  }
});

test('every endpoint dead: broadcast and subscribe are unavailable after the bound', async () => {
  const ports = await freePorts(2);
  const client = connect({
    endpoints: ports.map((port) => `http://127.0.0.1:${port}`),
    unavailableAfterMs: 300,
    backoffMaxMs: 50,
  });
  try {
    const error = await client.broadcast('nobody').catch((failure: unknown) => failure);
    assert.ok(error instanceof ClientError);
    assert.equal(error.code, 'unavailable');
    assert.equal(error.details.seq, 1);
    const reading = await client
      .subscribe({ from: 1 })
      .next()
      .catch((failure: unknown) => failure);
    assert.ok(reading instanceof ClientError);
    assert.equal(reading.code, 'unavailable');
  } finally {
    client.close();
  }
});
