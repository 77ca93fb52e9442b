/**
 * The SDK's `onProgress` on topic subscriptions. Against scripted fake nodes (node:http on
 * 127.0.0.1): progress moves the cursor, so the reconnection's Last-Event-ID names it, and a
 * lower progress or message index from another node neither moves it back nor is reported.
 * Against three real nodes: progress is reported after skipped positions, and when the node
 * read from is killed the subscription resumes after the progress it reported (seen by a
 * spy endpoint that the failover visits first), then goes on with the topic on a survivor.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect, type Message } from '../../src/client/index.ts';
import { broadcast, startHttpCluster } from '../server/cluster.ts';
import { waitFor } from '../support/ports.ts';
import { fakeStreamNode as fakeNode } from './fake-stream-node.ts';

const message = (index: number) =>
  `id: ${index}\ndata: ${JSON.stringify({ index, term: 1, payload: index, client: 'c', seq: index, topic: 'blue', time: 1000 + index })}\n\n`;
const progress = (index: number) => `event: progress\nid: ${index}\ndata: {"index":${index}}\n\n`;

test('progress moves the cursor, never back: reconnections resume after it', async () => {
  const first = await fakeNode([
    { events: [message(5), progress(9)], end: true },
    { events: [], end: false },
  ]);
  const second = await fakeNode([
    { events: [progress(7), message(8), progress(12), message(13)], end: true },
  ]);
  const client = connect({ endpoints: [first.url, second.url], backoffBaseMs: 1 });
  const controller = new AbortController();
  const reported: number[] = [];
  try {
    const subscription = client.subscribe({
      from: 3,
      topic: 'blue',
      signal: controller.signal,
      onProgress: (index) => reported.push(index),
    });
    const yielded: Message[] = [];
    for (let n = 0; n < 2; n++) yielded.push((await subscription.next()).value as Message);
    assert.deepEqual(
      yielded.map((m) => [m.position, m.time]),
      [
        [5, 1005],
        [13, 1013],
      ],
    );
    assert.deepEqual(reported, [9, 12]);
    // The second stream ended after 13: the next connection (back to the first) says so.
    const pending = subscription.next();
    await waitFor(() => first.lastEventIds.length === 2, 'the third connection');
    assert.deepEqual(first.lastEventIds, [null, '13']);
    assert.deepEqual(second.lastEventIds, ['9']);
    controller.abort();
    assert.equal((await pending).done, true);
  } finally {
    controller.abort();
    client.close();
    await first.close();
    await second.close();
  }
});

test('an error thrown by onProgress ends the subscription with that error', async () => {
  const node = await fakeNode([{ events: [message(1), progress(4)], end: false }]);
  const client = connect({ endpoints: [node.url] });
  try {
    const subscription = client.subscribe({
      topic: 'blue',
      onProgress: () => {
        throw new Error('caller bug');
      },
    });
    assert.equal(((await subscription.next()).value as Message).position, 1);
    await assert.rejects(subscription.next(), /caller bug/);
    assert.equal(node.lastEventIds.length, 1, 'not mistaken for a broken stream');
  } finally {
    client.close();
    await node.close();
  }
});

test('on real nodes: progress after skipped positions; failover resumes after it', async () => {
  const cluster = await startHttpCluster({ keepAliveIntervalMs: 200 });
  const spy = await fakeNode([]);
  const writer = connect({ endpoints: cluster.members.map((m) => m.url) });
  const controller = new AbortController();
  try {
    const leader = await cluster.leader();
    const survivor = cluster.members.find((member) => member.id !== leader.id)!;
    // The reader starts on the leader (first endpoint, and the one that says it leads); the
    // failover tries the spy next, then the survivor.
    const reader = connect({
      endpoints: [leader.url, spy.url, survivor.url],
      backoffBaseMs: 1,
      requestTimeoutMs: 3_000,
    });
    const reported: number[] = [];
    const subscription = reader.subscribe({
      topic: 'blue',
      signal: controller.signal,
      onProgress: (index) => reported.push(index),
    });
    const blue = await writer.broadcast('blue-1', { topic: 'blue' });
    const first = (await subscription.next()).value as Message;
    assert.equal(first.position, blue.position);
    assert.equal(typeof first.time, 'number');
    const reds = await Promise.all(
      Array.from({ length: 30 }, (_, n) => writer.broadcast(`red-${n}`, { topic: 'red' })),
    );
    const lastRed = Math.max(...reds.map((answer) => answer.position!));
    // The subscription reports progress while the caller waits for its next message.
    const next = subscription.next();
    await waitFor(() => reported.at(-1) === lastRed, `progress up to ${lastRed}`);
    assert.ok(reported.length <= reds.length, 'at most one progress per catch-up');
    for (const [at, index] of reported.entries()) {
      assert.ok(index > (reported[at - 1] ?? first.position!), 'increasing, past the last message');
    }
    await leader.http.close();
    await cluster.stopNode(leader.id);
    await waitFor(() => spy.lastEventIds.length > 0, 'the failover reached the spy');
    assert.equal(spy.lastEventIds[0], String(lastRed), 'resumes after the progress');
    const later = await broadcast(survivor.url, { payload: 'blue-2', topic: 'blue' });
    assert.equal(later.status, 200);
    const second = (await next).value as Message;
    assert.equal(second.position, later.body.index);
    assert.equal(second.payload, 'blue-2');
    reader.close();
  } finally {
    controller.abort();
    writer.close();
    await spy.close();
    await cluster.close();
  }
});
