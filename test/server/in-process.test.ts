// The same requests, sent to one real node through node:http (Node's fetch) and through an
// InProcessServer built on that node, get the same status, the same JSON body and the same
// headers that matter (content type, Retry-After, Allow): both fronts run one dispatcher and
// one routing table, and this proves nothing socket-specific leaked into the answers.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BroadcastError } from '../../src/broadcast/errors.ts';
import {
  type InProcessRequest,
  type InProcessResponse,
  InProcessServer,
} from '../../src/server/in-process.ts';
import { createServerContext } from '../../src/server/settings.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';
import { waitFor } from '../support/ports.ts';
import { type ClusterMember, type HttpCluster, logger, startHttpCluster } from './cluster.ts';

let cluster: HttpCluster;
let leader: ClusterMember;
let inProcess: InProcessServer;

before(async () => {
  cluster = await startHttpCluster();
  leader = await cluster.leader();
  inProcess = new InProcessServer(
    createServerContext({
      node: leader.node,
      logger,
      peers: cluster.peers,
      environment: systemEnvironment,
    }),
  );
});

after(async () => {
  await inProcess.close();
  await cluster.close();
});

interface Sent {
  readonly method: string;
  readonly url: string;
  readonly body?: string;
  readonly headers?: Record<string, string>;
}

async function overHttp(sent: Sent): Promise<InProcessResponse> {
  const response = await fetch(`${leader.url}${sent.url}`, {
    method: sent.method,
    headers: sent.headers ?? {},
    body: sent.body,
  });
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  return { status: response.status, headers, body: await response.text() };
}

function inProcessRequest(sent: Sent): InProcessRequest {
  return {
    method: sent.method,
    url: sent.url,
    headers: sent.headers ?? {},
    body: sent.body ?? null,
  };
}

/** Sends `sent` both ways and checks the answers agree; returns the in-process answer. */
async function bothAgree(sent: Sent): Promise<{ status: number; body: unknown }> {
  const http = await overHttp(sent);
  const local = await inProcess.handle(inProcessRequest(sent), new AbortController().signal);
  const what = `${sent.method} ${sent.url} ${sent.body?.slice(0, 60) ?? ''}`;
  assert.equal(local.status, http.status, what);
  for (const name of ['content-type', 'retry-after', 'allow', 'cache-control']) {
    assert.equal(local.headers[name], http.headers[name], `${what}: ${name}`);
  }
  assert.equal(Number(local.headers['content-length']), Buffer.byteLength(local.body), what);
  const body = local.body === '' ? null : JSON.parse(local.body);
  assert.deepEqual(body, http.body === '' ? null : JSON.parse(http.body), what);
  return { status: local.status, body };
}

const post = (url: string, body: unknown): Sent => ({
  method: 'POST',
  url,
  body: typeof body === 'string' ? body : JSON.stringify(body),
  headers: { 'content-type': 'application/json' },
});

test('refusals agree: 400, 404, 405, 409, 413 and their fields', { timeout: 30_000 }, async () => {
  const cases: [Sent, number][] = [
    [post('/v1/broadcast', '{bad'), 400],
    [post('/v1/broadcast', ''), 400],
    [post('/v1/broadcast', { payload: 1, client: 'c' }), 400],
    [post('/v1/broadcast', { payload: 1, sequence: 3 }), 400],
    [post('/v1/broadcast', { payload: 'x'.repeat(1 << 20) }), 413],
    [post('/v1/broadcast', { client: 'gap', seq: 1, payload: 'x'.repeat(2 << 20) }), 413],
    [post('/v1/broadcast/batch', { client: 'b', messages: [] }), 400],
    [post('/v1/broadcast/batch', { client: 'b', seq: 1, messages: [] }), 400],
    [{ method: 'GET', url: '/v1/messages?from=0' }, 400],
    [{ method: 'GET', url: '/v1/messages?from=1&from=2' }, 400],
    [{ method: 'GET', url: '/v1/messages?limit=x' }, 400],
    [{ method: 'GET', url: '/v1/status?verbose=1' }, 400],
    [{ method: 'GET', url: '/v1/nowhere' }, 404],
    [{ method: 'GET', url: '/v1/broadcast' }, 405],
    [{ method: 'PUT', url: '/v1/status' }, 405],
    [post('/v1/members', { id: '', address: 'x' }), 400],
    [post('/v1/leader/transfer', { to: 'nobody' }), 400],
    // Nested past jsonNestingDepthMax: a 400 that says so, not a 500 from a deep recursion.
    [post('/v1/broadcast', `{"payload":${'['.repeat(200_000)}${']'.repeat(200_000)}}`), 400],
    // One level past the bound (the object itself is the first).
    [post('/v1/broadcast', `{"payload":${'['.repeat(512)}${']'.repeat(512)}}`), 400],
    // Control characters in a client id or a topic (NUL, ESC, DEL, C1).
    [post('/v1/broadcast', { payload: 1, client: 'a\u0000b', seq: 1 }), 400],
    [post('/v1/broadcast', { payload: 1, topic: 'orders\u001b[2J' }), 400],
    [post('/v1/broadcast', { payload: 1, topic: 'del\u007f' }), 400],
    [post('/v1/broadcast', { payload: 1, client: 'c1\u0085', seq: 1 }), 400],
  ];
  for (const [sent, status] of cases) {
    const answer = await bothAgree(sent);
    assert.equal(answer.status, status, `${sent.method} ${sent.url}`);
  }
});

test('broadcasts, retries, batches, barrier, reads and status agree', {
  timeout: 30_000,
}, async () => {
  // The first send of a (client, seq) goes one way only; every retry must then agree.
  const first = await overHttp(post('/v1/broadcast', { payload: { n: 1 }, client: 'c', seq: 1 }));
  assert.equal(first.status, 200);
  const second = await inProcess.handle(
    inProcessRequest(post('/v1/broadcast', { payload: { n: 2 }, client: 'c', seq: 2 })),
    new AbortController().signal,
  );
  assert.equal(second.status, 200);
  const firstIndex = JSON.parse(first.body).index as number;
  assert.deepEqual(JSON.parse(second.body), {
    index: firstIndex + 1,
    term: JSON.parse(first.body).term,
    duplicate: false,
  });
  for (const seq of [1, 2]) {
    const retry = await bothAgree(post('/v1/broadcast', { payload: { n: seq }, client: 'c', seq }));
    assert.deepEqual(retry.body, {
      index: firstIndex + seq - 1,
      term: JSON.parse(first.body).term,
      duplicate: true,
    });
  }
  const gap = await bothAgree(post('/v1/broadcast', { payload: 1, client: 'fresh', seq: 5 }));
  assert.equal(gap.status, 409);
  const batch = await bothAgree(
    post('/v1/broadcast/batch', {
      client: 'c',
      seq: 1,
      messages: [{ payload: 1 }, { payload: 2 }],
    }),
  );
  assert.equal((batch.body as { results: unknown[] }).results.length, 2);
  await waitFor(() => leader.node.lastPosition >= firstIndex + 1, 'the leader delivered both');
  const barrier = await bothAgree({ method: 'GET', url: '/v1/barrier' });
  assert.ok((barrier.body as { index: number }).index >= firstIndex + 1);
  const page = await bothAgree({ method: 'GET', url: `/v1/messages?from=${firstIndex}&limit=2` });
  assert.deepEqual(
    (page.body as { messages: { payload: unknown }[] }).messages.map((m) => m.payload),
    [{ n: 1 }, { n: 2 }],
  );
  await bothAgree({ method: 'GET', url: `/v1/messages?from=1&topic=none` });
  const status = await bothAgree({ method: 'GET', url: '/v1/status' });
  assert.equal((status.body as { role: string }).role, 'leader');
});

test('an event stream is refused in process with 501 once its request is valid', async () => {
  const stream = await inProcess.handle(
    { method: 'GET', url: '/v1/stream?from=1', headers: {}, body: null },
    new AbortController().signal,
  );
  assert.equal(stream.status, 501);
  assert.equal(JSON.parse(stream.body).error, 'not_implemented');
  // Validation still runs first: a bad Last-Event-ID is the same 400 both ways.
  await bothAgree({ method: 'GET', url: '/v1/stream', headers: { 'Last-Event-ID': 'x' } });
});

test('handleStream answers a stream with its head, then its events as they are written', async () => {
  const sent = await leader.node.broadcast(new TextEncoder().encode('{"n":1}'));
  const chunks: string[] = [];
  const ends: boolean[] = [];
  const consumer = new AbortController();
  const head = await inProcess.handleStream(
    { method: 'GET', url: `/v1/stream?from=${sent.position}`, headers: {}, body: null },
    consumer.signal,
    {
      data: (bytes) => chunks.push(Buffer.from(bytes).toString('utf8')),
      end: (clean) => ends.push(clean),
    },
  );
  assert.equal(head.kind, 'stream');
  assert.match(
    (head.kind === 'stream' && head.headers['content-type']) || '',
    /^text\/event-stream/,
  );
  await waitFor(() => chunks.join('').includes(`id: ${sent.position}\n`), 'the event arrives');
  assert.match(chunks.join(''), /"payload":\{"n":1\}/);
  consumer.abort(new Error('the consumer went away'));
  assert.deepEqual(ends, [], 'a consumer that left is told nothing');
  // A refused stream answers whole.
  const refused = await inProcess.handleStream(
    { method: 'GET', url: '/v1/stream?from=0', headers: {}, body: null },
    new AbortController().signal,
    { data: () => assert.fail('no body'), end: () => assert.fail('no end') },
  );
  assert.equal(refused.kind === 'whole' && refused.response.status, 400);
});

test('a payload limit above what a message stream carries is refused when the server is made', () => {
  const make = (payloadBytesMax: number) =>
    createServerContext({
      node: leader.node,
      logger,
      peers: cluster.peers,
      environment: systemEnvironment,
      payloadBytesMax,
    });
  assert.equal(make(16 << 20).settings.payloadBytesMax, 16 << 20);
  assert.throws(
    () => make((16 << 20) + 1),
    (error: unknown) =>
      error instanceof BroadcastError &&
      error.code === 'invalid_argument' &&
      /at most 16777216/.test(error.message),
  );
});
