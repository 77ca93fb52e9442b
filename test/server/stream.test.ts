// The read side of the HTTP API against three real nodes: GET /v1/messages pages and
// filters, GET /v1/stream follows deliveries as Server-Sent Events, resumes after
// Last-Event-ID with no gap and no duplicate, sends keep-alives, lets go of clients that
// leave, and holds a bounded number of bytes for a consumer that stops reading (measured on
// the server through /metrics while the client's socket is paused).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { get, type IncomingMessage } from 'node:http';
import { after, before, test } from 'node:test';
import { waitFor } from '../support/ports.ts';
import {
  broadcast,
  call,
  fillPausedStream,
  type HttpCluster,
  metric,
  openEvents,
  scrape,
  startHttpCluster,
} from './cluster.ts';

let cluster: HttpCluster;
const streamsMax = 4;
const messagesLimitMax = 20;

before(async () => {
  cluster = await startHttpCluster({ keepAliveIntervalMs: 200, streamsMax, messagesLimitMax });
});

after(async () => {
  await cluster.close();
});

/** Broadcasts `count` messages through HTTP, in order, and returns their indexes. */
async function send(count: number, topicOf: (n: number) => string | undefined = () => undefined) {
  const { url } = await cluster.leader();
  const indexes: number[] = [];
  for (let n = 0; n < count; n++) {
    const answer = await broadcast(url, { payload: { n }, topic: topicOf(n) });
    assert.equal(answer.status, 200);
    indexes.push(answer.body.index);
  }
  return indexes;
}

async function openStreamCount(url: string): Promise<number> {
  return metric(await scrape(url), 'abcast_http_streams_open');
}

test('GET /v1/messages pages in order with next, filters by topic and caps limit', {
  timeout: 30_000,
}, async () => {
  const indexes = await send(30, (n) => (n % 3 === 0 ? 'a' : 'b'));
  const start = indexes[0]!;
  const follower = await cluster.follower();
  await waitFor(
    () => follower.node.status().lastPosition >= indexes.at(-1)!,
    'the follower caught up',
  );
  const page = await call(`${follower.url}/v1/messages?from=${start}&limit=10`);
  assert.equal(page.status, 200);
  assert.deepEqual(
    page.body.messages.map((m: { index: number }) => m.index),
    indexes.slice(0, 10),
  );
  assert.equal(page.body.next, start + 10);
  const first = page.body.messages[0];
  assert.deepEqual(Object.keys(first).sort(), [
    'client',
    'index',
    'payload',
    'seq',
    'term',
    'time',
    'topic',
  ]);
  assert.deepEqual(first.payload, { n: 0 });
  assert.equal(first.topic, 'a');
  assert.equal(typeof first.client, 'string');
  assert.equal(typeof first.seq, 'number');
  const capped = await call(`${follower.url}/v1/messages?from=${start}&limit=5000`);
  assert.equal(capped.body.messages.length, messagesLimitMax);
  const filtered = await call(`${follower.url}/v1/messages?from=${start}&limit=5&topic=a`);
  assert.deepEqual(
    filtered.body.messages.map((m: { payload: { n: number } }) => m.payload.n),
    [0, 3, 6, 9, 12],
  );
  assert.equal(filtered.body.next, indexes[12]! + 1);
  const rest = await call(`${follower.url}/v1/messages?from=${filtered.body.next}&topic=a`);
  assert.deepEqual(
    rest.body.messages.map((m: { payload: { n: number } }) => m.payload.n),
    [15, 18, 21, 24, 27],
  );
  const end = indexes.at(-1)! + 1;
  const beyond = await call(`${follower.url}/v1/messages?from=${end + 100}`);
  assert.deepEqual(beyond.body, { messages: [], next: end + 100 });
});

test('GET /v1/messages refuses malformed queries with the parameter named', {
  timeout: 30_000,
}, async () => {
  const { url } = cluster.members[0]!;
  const cases: [string, string][] = [
    ['from=0', 'from'],
    ['from=abc', 'from'],
    ['from=-1', 'from'],
    ['from=1e3', 'from'],
    ['from=99999999999999999', 'from'],
    ['limit=0', 'limit'],
    ['limit=2.5', 'limit'],
    ['from=1&from=2', 'from'],
    ['topic=', 'topic'],
    [`topic=${'t'.repeat(256)}`, 'topic'],
    ['form=1', 'form'],
  ];
  for (const [query, field] of cases) {
    const answer = await call(`${url}/v1/messages?${query}`);
    assert.equal(answer.status, 400, query);
    assert.equal(answer.body.error, 'invalid_argument');
    assert.equal(answer.body.field, field, query);
    assert.match(answer.body.message, new RegExp(field));
  }
});

test('GET /v1/stream sends each message as an event and follows new ones', {
  timeout: 30_000,
}, async () => {
  const indexes = await send(3);
  const follower = await cluster.follower();
  const stream = await openEvents(`${follower.url}/v1/stream?from=${indexes[0]}`);
  assert.equal(stream.status, 200);
  assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
  const page = await call(`${follower.url}/v1/messages?from=${indexes[0]}&limit=3`);
  for (const expected of page.body.messages) {
    const event = await stream.nextMessage();
    assert.equal(event.id, String(expected.index));
    assert.deepEqual(JSON.parse(event.data!), expected);
  }
  // Other tests' late retries may take positions in between: the stream must carry ours,
  // in order, among whatever else the log holds.
  const later = await send(2);
  let lastId = page.body.messages.at(-1).index;
  for (const index of later) {
    for (;;) {
      const id = Number((await stream.nextMessage()).id);
      assert.ok(id > lastId && id <= index, `event ${id} after ${lastId}, waiting for ${index}`);
      lastId = id;
      if (id === index) break;
    }
  }
  stream.close();
  await waitFor(async () => (await openStreamCount(follower.url)) === 0, 'the stream closed');
});

test('a stream resumed with Last-Event-ID continues with no gap and no duplicate', {
  timeout: 30_000,
}, async () => {
  const indexes = await send(10);
  const { url } = cluster.members[2]!;
  const seen: number[] = [];
  const first = await openEvents(`${url}/v1/stream?from=${indexes[0]}`);
  for (let n = 0; n < 6; n++) seen.push(Number((await first.nextMessage()).id));
  first.close();
  // EventSource reconnects with its original URL plus the header: the header wins.
  const resumed = await openEvents(`${url}/v1/stream?from=${indexes[0]}`, {
    'Last-Event-ID': String(seen.at(-1)),
  });
  const more = await send(5);
  const last = more.at(-1)!;
  while (seen.at(-1)! < last) seen.push(Number((await resumed.nextMessage()).id));
  resumed.close();
  assert.deepEqual(
    seen,
    Array.from({ length: last - indexes[0]! + 1 }, (_, offset) => indexes[0]! + offset),
  );
});

test('a topic stream carries only that topic; idle streams get keep-alive comments', {
  timeout: 30_000,
}, async () => {
  const { url } = cluster.members[0]!;
  const start = (await cluster.leader()).node.status().lastPosition + 1;
  const stream = await openEvents(`${url}/v1/stream?from=${start}&topic=blue`);
  const retry = await stream.next();
  assert.equal(retry.retry, '1000');
  const keepAlive = await stream.next(2000);
  assert.equal(keepAlive.comment, 'keep-alive');
  const indexes = await send(6, (n) => (n % 2 === 0 ? 'blue' : 'red'));
  for (const index of [indexes[0], indexes[2], indexes[4]]) {
    const event = await stream.nextMessage();
    assert.equal(event.id, String(index));
    assert.equal(JSON.parse(event.data!).topic, 'blue');
  }
  stream.close();
});

test('GET /v1/stream refuses bad parameters and more than streamsMax streams', {
  timeout: 30_000,
}, async () => {
  const { url } = cluster.members[1]!;
  for (const [path, headers, field] of [
    ['/v1/stream?from=0', {}, 'from'],
    ['/v1/stream?limit=5', {}, 'limit'],
    ['/v1/stream', { 'Last-Event-ID': 'abc' }, 'Last-Event-ID'],
    // The next position, 2^53, has no exact double: the header is at fault, not `from`.
    ['/v1/stream', { 'Last-Event-ID': String(Number.MAX_SAFE_INTEGER) }, 'Last-Event-ID'],
    ['/v1/stream?topic=', {}, 'topic'],
  ] as const) {
    const answer = await call(`${url}${path}`, { headers });
    assert.equal(answer.status, 400, path);
    assert.equal(answer.body.field, field);
  }
  await waitFor(async () => (await openStreamCount(url)) === 0, 'no stream open');
  const streams = await Promise.all(
    Array.from({ length: streamsMax }, () => openEvents(`${url}/v1/stream`)),
  );
  const refused = await call(`${url}/v1/stream`);
  assert.equal(refused.status, 503);
  assert.equal(refused.body.error, 'overloaded');
  assert.equal(refused.headers.get('retry-after'), '1');
  for (const stream of streams) stream.close();
  // A client that goes away releases its stream on the server.
  await waitFor(async () => (await openStreamCount(url)) === 0, 'every stream released');
});

/** Counts `id:` lines of a raw event stream, checking they are consecutive. */
function consecutiveIds(res: IncomingMessage, first: number, last: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let expected = first;
    let tail = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      const lines = (tail + chunk).split('\n');
      tail = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('id: ')) continue;
        const id = Number(line.slice(4));
        if (id !== expected) return reject(new Error(`expected id ${expected}, got ${id}`));
        expected++;
        if (id === last) return resolve();
      }
    });
    res.on('error', reject);
    res.on('end', () => reject(new Error(`the stream ended before id ${last} (at ${expected})`)));
  });
}

test('a consumer that stops reading does not make the server buffer without bound', {
  timeout: 30_000,
}, async (t) => {
  const follower = await cluster.follower();
  const leader = await cluster.leader();
  const start = leader.node.status().lastPosition + 1;
  const request = get(`${follower.url}/v1/stream?from=${start}`);
  const [res] = (await once(request, 'response')) as [IncomingMessage];
  res.pause();
  assert.equal(res.statusCode, 200);
  const payload = new TextEncoder().encode(JSON.stringify('x'.repeat(16 << 10)));
  const eventBytesMax = payload.length + 512;
  const boundBytes = (16 << 10) + 2 * eventBytesMax;
  const drainWaits = async () =>
    metric(await scrape(follower.url), 'abcast_http_stream_drain_waits_total');
  const drainWaitsBefore = await drainWaits();
  const { sentCount, eventsWritten, bufferedBytesMax } = await fillPausedStream(
    leader,
    follower,
    start,
    payload,
  );
  assert.ok((await drainWaits()) > drainWaitsBefore, 'the stream waited for the socket to drain');
  assert.ok(bufferedBytesMax <= boundBytes, `buffered ${bufferedBytesMax} > ${boundBytes} bytes`);
  // The server stopped pulling from the log: the last two rounds were not written.
  assert.ok(eventsWritten <= sentCount - 190, `${eventsWritten} events written of ${sentCount}`);
  t.diagnostic(
    `paused consumer: ${sentCount} messages of ${payload.length} bytes delivered, ` +
      `${eventsWritten} events written, at most ${bufferedBytesMax} bytes buffered`,
  );
  // Reading again gets every message, in order, none lost while paused.
  const allRead = consecutiveIds(res, start, start + sentCount - 1);
  res.resume();
  await allRead;
  request.destroy();
  await waitFor(async () => (await openStreamCount(follower.url)) === 0, 'the stream closed');
});
