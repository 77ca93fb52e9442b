/**
 * The SDK's subscribe when a node ends its stream because it lost its leader (`no_leader`:
 * cut off, or removed and no longer sent the log). Against scripted fake nodes (node:http on
 * 127.0.0.1): the subscription resumes on another endpoint right after the last position it
 * yielded, with no gap and no repeat, and tries the node that ended the stream only after
 * the others, since it would take the stream back and hold it without going on (its second
 * stream here does just that: an SDK that went back to it first stalls, and the test times
 * out). When that node is the only one alive, the subscription comes back to it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect, type Message } from '../../src/client/index.ts';
import { fakeStreamNode, type StreamScript } from './fake-stream-node.ts';

const message = (index: number) =>
  `id: ${index}\ndata: ${JSON.stringify({ index, term: 1, payload: index, client: 'c', seq: index, topic: null, time: 1000 + index })}\n\n`;

/** A node that takes a stream and then holds it open with nothing: a stalled reader. */
const holds: StreamScript = { events: [], end: false };

/** Reads `count` positions, failing after `timeoutMs`. */
async function positions(
  subscription: AsyncIterator<Message>,
  count: number,
  timeoutMs = 10_000,
): Promise<number[]> {
  const taken: number[] = [];
  const deadline = new Promise<never>((_, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`only ${taken.join(', ') || 'nothing'} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    timer.unref();
  });
  while (taken.length < count) {
    const next = await Promise.race([subscription.next(), deadline]);
    assert.equal(next.done, false, 'the subscription ended early');
    taken.push((next.value as Message).position);
  }
  return taken;
}

test('after a no_leader end it resumes on another endpoint first, after what it yielded', async () => {
  const pinned = await fakeStreamNode([]);
  const leaderless = await fakeStreamNode(
    [{ events: [message(1), message(2), message(3)], end: 'no_leader' }],
    holds,
  );
  const follower = await fakeStreamNode([{ events: [message(4), message(5)], end: false }]);
  const nodes = [pinned, leaderless, follower];
  const client = connect({ endpoints: nodes.map((node) => node.url), backoffBaseMs: 1 });
  const controller = new AbortController();
  try {
    // Pinned to a node that is down, so the stream is on the next one when it ends: the SDK
    // must not count on from the pinned node, which would send it back there.
    const subscription = client.subscribe({
      from: 1,
      endpoint: pinned.url,
      signal: controller.signal,
    });
    assert.deepEqual(await positions(subscription, 5), [1, 2, 3, 4, 5]);
    assert.deepEqual(leaderless.lastEventIds, [null], 'the node that ended it was not asked again');
    assert.deepEqual(follower.lastEventIds, ['3'], 'resumed right after the last position');
    controller.abort();
    assert.equal((await subscription.next()).done, true);
  } finally {
    controller.abort();
    client.close();
    for (const node of nodes) await node.close();
  }
});

/**
 * A node sends positions 1–3 and its no_leader end in one write (`ending`); another then serves
 * from 4 (`next`): all five come once, and the other is asked to resume after 3.
 */
async function readsThroughTheEnd(ending: StreamScript, next: StreamScript): Promise<void> {
  const leaderless = await fakeStreamNode([ending], holds);
  const follower = await fakeStreamNode([next]);
  const nodes = [leaderless, follower];
  const client = connect({ endpoints: nodes.map((node) => node.url), backoffBaseMs: 1 });
  const controller = new AbortController();
  try {
    const subscription = client.subscribe({ from: 1, signal: controller.signal });
    assert.deepEqual(await positions(subscription, 5), [1, 2, 3, 4, 5]);
    assert.deepEqual(follower.lastEventIds, ['3'], 'resumed after the messages of the last read');
  } finally {
    controller.abort();
    client.close();
    for (const node of nodes) await node.close();
  }
}

test('messages read together with the no_leader end are yielded, not asked for again', () =>
  readsThroughTheEnd(
    { events: [message(1), message(2), message(3)], end: 'no_leader_with_events' },
    { events: [message(4), message(5)], end: false },
  ));

test('messages read in one chunk of records with the no_leader end are yielded, not asked for again', () =>
  readsThroughTheEnd(
    { recordPositions: [1, 2, 3], end: 'no_leader_with_records' },
    { recordPositions: [4, 5], end: false },
  ));

test('it comes back to the node that ended its stream when no other serves', async () => {
  const leaderless = await fakeStreamNode([
    { events: [message(1), message(2)], end: 'no_leader' },
    { refuse: 'no_leader' },
    { events: [message(3)], end: false },
  ]);
  const other = await fakeStreamNode([]);
  const nodes = [leaderless, other];
  const client = connect({ endpoints: nodes.map((node) => node.url), backoffBaseMs: 1 });
  const controller = new AbortController();
  try {
    const subscription = client.subscribe({ from: 1, signal: controller.signal });
    assert.deepEqual(await positions(subscription, 3), [1, 2, 3]);
    assert.deepEqual(leaderless.lastEventIds, [null, '2', '2']);
    assert.ok(other.lastEventIds.length >= 1, 'the other endpoint was tried in between');
    controller.abort();
  } finally {
    controller.abort();
    client.close();
    for (const node of nodes) await node.close();
  }
});
