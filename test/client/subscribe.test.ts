/**
 * The SDK's subscribe on three real nodes: from 1 it yields everything in order, a topic
 * filter and `from` hold, 410 becomes a typed `compacted` error, and when the node it reads
 * from is killed mid-stream (HTTP server and node closed) it fails over and yields every
 * index exactly once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientError, connect, type Message } from '../../src/client/index.ts';
import { startHttpCluster } from '../server/cluster.ts';
import { waitFor } from '../support/ports.ts';

/** Reads `count` messages from an iterator, failing after `timeoutMs`. */
async function take(
  iterator: AsyncIterator<Message>,
  count: number,
  timeoutMs = 20_000,
): Promise<Message[]> {
  const deadline = Date.now() + timeoutMs;
  const taken: Message[] = [];
  while (taken.length < count) {
    assert.ok(Date.now() < deadline, `only ${taken.length} of ${count} messages in time`);
    const next = await iterator.next();
    assert.equal(next.done, false, 'the subscription ended early');
    taken.push(next.value as Message);
  }
  return taken;
}

test('subscribe from 1 sees everything in order; from and topic filter', async () => {
  const cluster = await startHttpCluster();
  const client = connect({ endpoints: cluster.members.map((m) => m.url) });
  const controller = new AbortController();
  try {
    await cluster.leader();
    for (let n = 1; n <= 20; n++)
      await client.broadcast(n, { topic: n % 2 === 0 ? 'even' : 'odd' });
    const all = client.subscribe({ from: 1, signal: controller.signal });
    const seen = await take(all, 20);
    assert.deepEqual(
      seen.map((m) => m.position),
      seen.map((_, at) => at + 1),
    );
    assert.deepEqual(
      seen.map((m) => m.payload),
      seen.map((_, at) => at + 1),
    );
    const live = client.broadcast('live');
    assert.equal((await take(all, 1))[0]!.payload, 'live');
    await live;
    const even = await take(
      client.subscribe({ from: 5, topic: 'even', signal: controller.signal }),
      8,
    );
    assert.deepEqual(
      even.map((m) => m.payload),
      [6, 8, 10, 12, 14, 16, 18, 20],
    );
    controller.abort();
    assert.equal((await all.next()).done, true, 'an aborted subscription ends quietly');
    await assert.rejects(client.subscribe({ from: 0 }).next(), { code: 'invalid_argument' });
  } finally {
    controller.abort();
    client.close();
    await cluster.close();
  }
});

test('a position no longer retained is a compacted error with firstPosition', async () => {
  const cluster = await startHttpCluster(
    {},
    { retention: { ageMs: null, bytesMax: 2048 }, storeSegmentBytesMax: 1024 },
  );
  const client = connect({ endpoints: cluster.members.map((m) => m.url) });
  try {
    await cluster.leader();
    for (let n = 1; n <= 40; n++) await client.broadcast('x'.repeat(200));
    await waitFor(
      () => cluster.members.every((m) => m.node.status().firstRetainedPosition > 1),
      'retention applied on every node',
    );
    const error = await client
      .subscribe({ from: 1 })
      .next()
      .catch((failure: unknown) => failure);
    assert.ok(error instanceof ClientError, String(error));
    assert.equal(error.code, 'compacted');
    assert.equal(typeof error.details.firstPosition, 'number');
  } finally {
    client.close();
    await cluster.close();
  }
});

test('killing the node the iterator reads from: every index exactly once', async () => {
  const cluster = await startHttpCluster({ keepAliveIntervalMs: 200 });
  const writer = connect({ endpoints: cluster.members.map((m) => m.url), requestTimeoutMs: 3_000 });
  const reader = connect({ endpoints: cluster.members.map((m) => m.url), requestTimeoutMs: 3_000 });
  const controller = new AbortController();
  try {
    await cluster.leader();
    await Promise.all(Array.from({ length: 100 }, (_, at) => writer.broadcast(at + 1)));
    const iterator = reader.subscribe({ from: 1, signal: controller.signal });
    const first = await take(iterator, 50);
    // The reader's first endpoint is n1, the one it reads from: kill it.
    const victim = cluster.members[0]!;
    const sending = Promise.all(Array.from({ length: 100 }, (_, at) => writer.broadcast(101 + at)));
    await victim.http.close();
    await cluster.stopNode(victim.id);
    const rest = await take(iterator, 150);
    await sending;
    const indexes = [...first, ...rest].map((message) => message.position);
    assert.deepEqual(
      indexes,
      indexes.map((_, at) => at + 1),
      'indexes 1..200, once each, in order',
    );
    assert.deepEqual(
      [...first, ...rest].map((m) => m.payload).sort((a, b) => (a as number) - (b as number)),
      indexes,
    );
  } finally {
    controller.abort();
    writer.close();
    reader.close();
    await cluster.close();
  }
});
