// Proves publish/subscribe across topics on the in-memory log, then on a real 3-node cluster
// through the SDK and plain HTTP: subscribers to the same topics see the same interleaving
// of concurrent publishers, a subscriber sees only its topics, `from` resumes exactly where
// a subscription stopped, the default starts at the call, and bad names are refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryLog } from '../../src/agents/memory-log.ts';
import { type TopicMessage, Topics } from '../../src/agents/topics.ts';
import { type Client, connect } from '../../src/client/index.ts';
import { broadcast, startHttpCluster } from '../server/cluster.ts';

/** The next `count` messages of a subscription, or a failure after `timeoutMs`. */
async function take(
  messages: AsyncIterable<TopicMessage>,
  count: number,
  timeoutMs = 5_000,
): Promise<TopicMessage[]> {
  const iterator = messages[Symbol.asyncIterator]();
  const taken: TopicMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (taken.length < count) {
    let timer: NodeJS.Timeout | undefined;
    const step = await Promise.race([
      iterator.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`only ${taken.length}/${count} messages`)),
          deadline - Date.now(),
        );
      }),
    ]).finally(() => clearTimeout(timer));
    if (step.done) throw new Error(`the subscription ended after ${taken.length}/${count}`);
    taken.push(step.value);
  }
  return taken;
}

async function publishConcurrently(publishers: Topics[], perTopic: number): Promise<void> {
  await Promise.all(
    publishers.flatMap((publisher, p) =>
      Array.from({ length: perTopic }, (_, n) =>
        publisher.publish(n % 2 === 0 ? 'orders' : 'prices', { p, n }),
      ),
    ),
  );
}

test('subscribers to [orders, prices] see one interleaving; [orders] sees only orders', async () => {
  const log = new MemoryLog();
  const publishers = [new Topics({ log: log.session() }), new Topics({ log: log.session() })];
  const reader = new Topics({ log: log.session() });
  const controller = new AbortController();
  const signal = controller.signal;
  const both = [
    reader.subscribe(['orders', 'prices'], { signal }),
    new Topics({ log: log.session() }).subscribe(['prices', 'orders', 'prices'], { signal }),
  ];
  const ordersOnly = reader.subscribe(['orders'], { signal });
  await Promise.all([...both, ordersOnly].map((subscription) => subscription.ready));
  const collected = Promise.all([...both.map((s) => take(s, 80)), take(ordersOnly, 40)]);
  await publishers[0]!.publish('noise', 'not for these subscribers');
  await publishConcurrently(publishers, 40);
  const [first, second, orders] = await collected;
  assert.deepEqual(first, second);
  for (let at = 1; at < first!.length; at++)
    assert.ok(first![at]!.position > first![at - 1]!.position);
  assert.deepEqual(
    orders,
    first!.filter((message) => message.topic === 'orders'),
  );
  assert.ok(first!.every((message) => message.topic !== 'noise' && message.client !== null));
  controller.abort();
});

test('from resumes where a subscription stopped; the default starts at the call', async () => {
  const log = new MemoryLog();
  const topics = new Topics({ log: log.session() });
  for (let n = 0; n < 10; n++) await topics.publish(n % 3 === 0 ? 'a' : 'b', n);
  const fromNow = topics.subscribe(['a', 'b']);
  assert.equal(await fromNow.ready, 11);
  const all = await take(topics.subscribe(['a', 'b'], { from: 1 }), 10);
  assert.deepEqual(
    all.map((message) => message.payload),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  const firstPart: TopicMessage[] = [];
  for await (const message of topics.subscribe(['a'], { from: 1 })) {
    firstPart.push(message);
    if (firstPart.length === 2) break;
  }
  const rest = await take(topics.subscribe(['a'], { from: firstPart[1]!.position + 1 }), 2);
  assert.deepEqual(
    [...firstPart, ...rest].map((message) => message.payload),
    [0, 3, 6, 9],
  );
  await topics.publish('b', 'later');
  const [next] = await take(fromNow, 1);
  assert.equal(next!.payload, 'later');
  assert.equal(next!.position, 11);
});

test('abort ends a subscription quietly; bad topics, positions and payloads are refused', async () => {
  const log = new MemoryLog();
  const topics = new Topics({ log: log.session() });
  const controller = new AbortController();
  const subscription = topics.subscribe(['t'], { signal: controller.signal });
  const iterator = subscription[Symbol.asyncIterator]();
  const pending = iterator.next();
  controller.abort();
  assert.equal((await pending).done, true);
  for (const bad of [[], ['$system'], [''], ['a\u0001'], 'orders', Array(65).fill('t')]) {
    assert.throws(() => topics.subscribe(bad as string[]), { code: 'invalid_argument' });
  }
  assert.throws(() => topics.subscribe(['t'], { from: 0 }), { code: 'invalid_argument' });
  await assert.rejects(topics.publish('$x', 1), { code: 'invalid_argument' });
  await assert.rejects(topics.publish('t', undefined), { code: 'invalid_argument' });
  await assert.rejects(topics.publish('t', 10n), { code: 'invalid_argument' });
  assert.throws(() => new Topics({ log: 7 as never }), { code: 'invalid_argument' });
  assert.equal(log.lastPosition, 0);
});

test('topics through the SDK on a 3-node cluster, including a message POSTed over HTTP', async () => {
  const cluster = await startHttpCluster();
  const urls = cluster.members.map((member) => member.url);
  const clients: Client[] = urls.map((_, at) =>
    connect({ endpoints: [...urls.slice(at), ...urls.slice(0, at)], requestTimeoutMs: 2_000 }),
  );
  const controller = new AbortController();
  try {
    const [a, b, c] = clients.map((client) => new Topics({ log: client })) as [
      Topics,
      Topics,
      Topics,
    ];
    const signal = controller.signal;
    const subscriptions = [
      a.subscribe(['orders', 'prices'], { signal }),
      c.subscribe(['orders', 'prices'], { signal }),
    ];
    const ordersOnly = b.subscribe(['orders'], { signal });
    await Promise.all([...subscriptions, ordersOnly].map((subscription) => subscription.ready));
    const collected = Promise.all([
      ...subscriptions.map((s) => take(s, 41, 15_000)),
      take(ordersOnly, 21, 15_000),
    ]);
    await a.publish('elsewhere', 'noise');
    await Promise.all([
      publishConcurrently([a, b], 20),
      broadcast(urls[1]!, { payload: { via: 'http' }, topic: 'orders' }).then((answer) =>
        assert.equal(answer.status, 200, JSON.stringify(answer.body)),
      ),
    ]);
    const [first, second, orders] = await collected;
    assert.deepEqual(first, second);
    assert.deepEqual(
      orders,
      first!.filter((message) => message.topic === 'orders'),
    );
    const viaHttp = first!.filter((message) => JSON.stringify(message.payload).includes('http'));
    assert.equal(viaHttp.length, 1);
    assert.equal(viaHttp[0]!.topic, 'orders');
  } finally {
    controller.abort();
    for (const client of clients) client.close();
    await cluster.close();
  }
});
