// What readers that replicate state need from the read side, against three real nodes: every
// wire message carries `time`, the log's clock — numeric, non-decreasing along positions and
// identical on every node for the same position, even across a leader change — and a
// topic-filtered stream says how far it has gone with one `progress` event per catch-up,
// whose id lets Last-Event-ID resume after the skipped positions.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../support/ports.ts';
import {
  broadcast,
  call,
  type HttpCluster,
  openEvents,
  type StreamEvent,
  startHttpCluster,
} from './cluster.ts';

let cluster: HttpCluster;

before(async () => {
  cluster = await startHttpCluster({ keepAliveIntervalMs: 100 });
});

after(async () => {
  await cluster.close();
});

/** Broadcasts one message per topic through the leader, in order; returns their indexes. */
async function send(topics: readonly (string | undefined)[]): Promise<number[]> {
  const { url } = await cluster.leader();
  const indexes: number[] = [];
  for (const [n, topic] of topics.entries()) {
    const answer = await broadcast(url, { payload: { n }, topic });
    assert.equal(answer.status, 200);
    indexes.push(answer.body.index);
  }
  return indexes;
}

async function allDelivered(last: number): Promise<void> {
  await waitFor(
    () => cluster.members.every((member) => member.node.lastPosition >= last),
    `every node delivered ${last}`,
  );
}

/** Every message from `from` to `last` as `url` serves them, page by page. */
async function readAll(
  url: string,
  from: number,
  last: number,
): Promise<{ index: number; time: number }[]> {
  const messages: { index: number; time: number }[] = [];
  for (let next = from; next <= last; ) {
    const page = await call(`${url}/v1/messages?from=${next}&limit=100`);
    assert.equal(page.status, 200);
    assert.ok(page.body.messages.length > 0, `messages from ${next}`);
    messages.push(...page.body.messages);
    next = page.body.next;
  }
  return messages.filter((message) => message.index <= last);
}

test('every message carries the log time: numeric, non-decreasing, the same on every node', {
  timeout: 30_000,
}, async () => {
  const beforeMs = Date.now();
  const first = await send(Array.from({ length: 20 }, () => undefined));
  // Concurrent broadcasts share batches, and so their time.
  const leader = await cluster.leader();
  await Promise.all(
    Array.from({ length: 30 }, (_, n) => broadcast(leader.url, { payload: { burst: n } })),
  );
  // Another leader stamps the rest.
  const to = (await cluster.follower()).id;
  const transfer = await call(`${leader.url}/v1/leader/transfer`, { method: 'POST', body: { to } });
  assert.equal(transfer.status, 202);
  await waitFor(async () => (await cluster.leader()).id === to, 'the new leader');
  const rest = await send(Array.from({ length: 20 }, () => 'after-transfer'));
  const last = rest.at(-1)!;
  await allDelivered(last);
  const afterMs = Date.now();
  const views = await Promise.all(
    cluster.members.map((member) => readAll(member.url, first[0]!, last)),
  );
  const [reference, ...others] = views as [(typeof views)[0], ...typeof views];
  assert.equal(reference.length, last - first[0]! + 1);
  for (const [at, message] of reference.entries()) {
    assert.equal(typeof message.time, 'number');
    assert.ok(Number.isFinite(message.time));
    assert.ok(message.time >= beforeMs - 1000 && message.time <= afterMs + 1000, 'a wall clock');
    if (at > 0) assert.ok(message.time >= reference[at - 1]!.time, `non-decreasing at ${at}`);
  }
  for (const view of others) {
    assert.deepEqual(
      view.map((message) => [message.index, message.time]),
      reference.map((message) => [message.index, message.time]),
    );
  }
  // The stream carries the same time as the page.
  const follower = await cluster.follower();
  const stream = await openEvents(`${follower.url}/v1/stream?from=${last}`);
  const event = await stream.nextMessage();
  stream.close();
  assert.equal(JSON.parse(event.data!).time, reference.at(-1)!.time);
});

/** Reads events until one with `id` (the last position expected) or a timeout. */
async function eventsUntil(
  stream: Awaited<ReturnType<typeof openEvents>>,
  id: number,
): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for (;;) {
    const event = await stream.next(5_000);
    if (event.data === null) continue; // comments and retry:
    events.push(event);
    if (event.id === String(id)) return events;
  }
}

test('a topic stream sends one progress event per catch-up; Last-Event-ID resumes after it', {
  timeout: 30_000,
}, async () => {
  const blue = await send(['blue']);
  const reds = await send(Array.from({ length: 40 }, () => 'red'));
  const lastRed = reds.at(-1)!;
  const follower = await cluster.follower();
  await allDelivered(lastRed);
  // Everything is delivered before the stream opens: it catches up in one go.
  const stream = await openEvents(`${follower.url}/v1/stream?from=${blue[0]}&topic=blue`);
  const events = await eventsUntil(stream, lastRed);
  assert.deepEqual(
    events.map((event) => [event.event, event.id]),
    [
      [null, String(blue[0])],
      ['progress', String(lastRed)],
    ],
  );
  assert.deepEqual(JSON.parse(events[1]!.data!), { index: lastRed });
  // Nothing more while idle: keep-alives only, no repeated progress.
  for (let n = 0; n < 3; n++) assert.equal((await stream.next(2_000)).comment, 'keep-alive');
  // Live: a skipped message after the catch-up brings a new progress event, once.
  const [liveRed] = await send(['red']);
  assert.deepEqual(
    (await eventsUntil(stream, liveRed!)).map((event) => [event.event, event.id]),
    [['progress', String(liveRed)]],
  );
  stream.close();

  // Resuming at the progress id starts after the skipped positions (the header beats from).
  const [nextBlue] = await send(['blue']);
  await allDelivered(nextBlue!);
  const resumed = await openEvents(`${follower.url}/v1/stream?from=1&topic=blue`, {
    'Last-Event-ID': String(liveRed),
  });
  const resumedEvents = await eventsUntil(resumed, nextBlue!);
  resumed.close();
  assert.deepEqual(
    resumedEvents.map((event) => [event.event, event.id]),
    [[null, String(nextBlue)]],
  );
  assert.equal(JSON.parse(resumedEvents[0]!.data!).topic, 'blue');
});

test('an unfiltered stream sends message events only', { timeout: 30_000 }, async () => {
  const indexes = await send(['red', 'blue', undefined, 'red']);
  await allDelivered(indexes.at(-1)!);
  const { url } = cluster.members[2]!;
  const stream = await openEvents(`${url}/v1/stream?from=${indexes[0]}`);
  const events = await eventsUntil(stream, indexes.at(-1)!);
  stream.close();
  assert.deepEqual(
    events.map((event) => [event.event, event.id]),
    indexes.map((index) => [null, String(index)]),
  );
});
