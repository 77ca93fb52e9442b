// Proves, on three in-memory nodes, that broadcasts made on followers are forwarded and that
// every node delivers the same messages at the same dense positions, that concurrent
// broadcasts from all nodes keep each node's own order, that subscriptions follow the log,
// and that barrier() covers everything acknowledged before it, on the leader and followers.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decode, encode, TwinCluster } from './twin-cluster.ts';

let cluster: TwinCluster;

before(async () => {
  cluster = await TwinCluster.start();
  await cluster.waitForLeader();
});

after(async () => {
  await cluster.close();
});

test('a broadcast on a follower is forwarded and delivered everywhere at one position', async () => {
  const leader = await cluster.waitForLeader();
  const follower = cluster.followers(leader)[0] as string;
  const result = await cluster.node(follower).broadcast(encode('from-a-follower'));
  assert.equal(result.duplicate, false);
  assert.ok(result.position !== null && result.position >= 1);
  assert.ok(result.index !== null && result.term !== null);
  await cluster.waitDelivered(result.position);
  for (const id of cluster.ids) {
    const [message] = cluster.node(id).read(result.position, 1);
    assert.equal(decode(message?.payload ?? new Uint8Array()), 'from-a-follower', id);
    assert.equal(message?.index, result.index, `${id} names the same entry`);
  }
  cluster.assertConsistent();
});

test('concurrent broadcasts from every node: one dense order, each node’s own order kept', async () => {
  const start = cluster.recorder.lastPosition;
  const perNodeCount = 150;
  const sends = cluster.ids.flatMap((id) =>
    Array.from({ length: perNodeCount }, (_, offset) =>
      cluster
        .node(id)
        .broadcast(encode(`${id}/${offset}`), { topic: `t-${id}` })
        .then((result) => ({ id, offset, position: result.position as number })),
    ),
  );
  const results = await Promise.all(sends);
  const positions = results.map((result) => result.position).sort((a, b) => a - b);
  assert.deepEqual(
    positions,
    Array.from({ length: positions.length }, (_, offset) => start + offset + 1),
    'positions are dense and none is shared',
  );
  // A node's own broadcasts take positions in the order they were made (its session's FIFO).
  for (const id of cluster.ids) {
    const mine = results.filter((result) => result.id === id);
    for (let offset = 1; offset < mine.length; offset++) {
      assert.ok(
        (mine[offset]?.position as number) > (mine[offset - 1]?.position as number),
        `${id} keeps its order at ${offset}`,
      );
    }
  }
  const last = start + cluster.ids.length * perNodeCount;
  await cluster.waitDelivered(last);
  const reference = cluster.transcript('n1', start + 1);
  assert.equal(reference.length, cluster.ids.length * perNodeCount);
  for (const id of cluster.ids) assert.deepEqual(cluster.transcript(id, start + 1), reference, id);
  for (const id of cluster.ids) {
    const topics = cluster
      .node(id)
      .read(start + 1, 10_000)
      .map((message) => `${message.topic}=${decode(message.payload).split('/')[0]}`);
    assert.ok(
      topics.every(
        (pair) => pair.startsWith('t-') && pair.slice(2).split('=')[0] === pair.split('=')[1],
      ),
      'topics travel with their messages',
    );
  }
  cluster.assertConsistent();
});

test('a subscription yields every position once, in order, and follows new ones', async () => {
  const node = cluster.node('n2');
  const from = node.status().lastPosition + 1;
  const controller = new AbortController();
  const seen: string[] = [];
  const reader = (async () => {
    for await (const message of node.deliveries({ from, signal: controller.signal })) {
      seen.push(`${message.position}:${decode(message.payload)}`);
      if (seen.length === 20) controller.abort();
    }
  })();
  for (let count = 0; count < 20; count++) {
    await cluster.node(cluster.ids[count % 3] as string).broadcast(encode(`sub-${count}`));
  }
  await reader;
  assert.deepEqual(
    seen,
    Array.from({ length: 20 }, (_, offset) => `${from + offset}:sub-${offset}`),
  );
});

test('barrier() covers every broadcast acknowledged before it, on the leader and followers', async () => {
  const leader = await cluster.waitForLeader();
  for (let round = 0; round < 5; round++) {
    const writer = cluster.ids[round % 3] as string;
    const acknowledged = await cluster.node(writer).broadcast(encode(`barrier-${round}`));
    for (const id of [leader, ...cluster.followers(leader)]) {
      const position = await cluster.node(id).barrier();
      assert.ok(
        position >= (acknowledged.position as number),
        `${id}: barrier ${position} covers ${acknowledged.position}`,
      );
      // Everything up to the barrier's position is readable on that node right away.
      assert.ok(cluster.node(id).status().lastPosition >= position, `${id} delivered it`);
    }
  }
});
