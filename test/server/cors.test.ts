// CORS over real HTTP (the browser's side is in test/dashboard): with --cors-origins a listed
// origin's preflight is answered 204 with the methods and headers the API takes (Last-Event-ID
// among them), its requests (a broadcast, a page of messages, the event stream, an error)
// carry Access-Control-Allow-Origin; another origin's preflight is a 403 and its requests
// carry no CORS header; without the flag nothing changes. The origin list is checked.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseCorsOrigins } from '../../src/server/cors.ts';
import { broadcast, call, type HttpCluster, startHttpCluster } from './cluster.ts';

const app = 'http://app.example:5173';
let cluster: HttpCluster;

before(async () => {
  cluster = await startHttpCluster({ cors: parseCorsOrigins(`${app},https://other.example`) });
  await cluster.leader();
});

after(async () => {
  await cluster.close();
});

function preflight(url: string, origin: string, method: string, headers: string) {
  return fetch(url, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': method,
      'access-control-request-headers': headers,
    },
  });
}

test('a listed origin is let in on broadcast, messages, stream and errors', async () => {
  const url = cluster.members[1]!.url;
  const answer = await preflight(`${url}/v1/broadcast`, app, 'POST', 'content-type,authorization');
  assert.equal(answer.status, 204);
  assert.equal(answer.headers.get('access-control-allow-origin'), app);
  assert.match(answer.headers.get('access-control-allow-methods') ?? '', /POST/);
  assert.match(answer.headers.get('access-control-allow-headers') ?? '', /last-event-id/);
  assert.equal(answer.headers.get('vary'), 'Origin');
  const sent = await call(`${url}/v1/broadcast`, {
    body: { payload: 'x' },
    headers: { origin: app },
  });
  assert.equal(sent.status, 200);
  assert.equal(sent.headers.get('access-control-allow-origin'), app);
  const page = await call(`${url}/v1/messages?from=1`, { headers: { origin: app } });
  assert.equal(page.headers.get('access-control-allow-origin'), app);
  const refused = await call(`${url}/v1/messages?from=0`, { headers: { origin: app } });
  assert.equal(refused.status, 400);
  assert.equal(refused.headers.get('access-control-allow-origin'), app);
  const controller = new AbortController();
  const stream = await fetch(`${url}/v1/stream`, {
    headers: { origin: app, 'last-event-id': '0' },
    signal: controller.signal,
  });
  assert.equal(stream.status, 200);
  assert.equal(stream.headers.get('access-control-allow-origin'), app);
  controller.abort();
  await stream.body?.cancel().catch(() => undefined);
});

test('another origin gets a 403 preflight and no CORS headers', async () => {
  const url = cluster.members[0]!.url;
  const answer = await preflight(
    `${url}/v1/broadcast`,
    'http://evil.example',
    'POST',
    'content-type',
  );
  assert.equal(answer.status, 403);
  assert.equal(answer.headers.get('access-control-allow-origin'), null);
  const sent = await broadcast(url, { payload: 'y' });
  assert.equal(sent.headers.get('access-control-allow-origin'), null, 'no Origin, no CORS');
  const status = await call(`${url}/v1/status`, { headers: { origin: 'http://evil.example' } });
  assert.equal(status.status, 200);
  assert.equal(status.headers.get('access-control-allow-origin'), null);
});

test('the origin list is checked; * stands alone and answers *', () => {
  assert.throws(() => parseCorsOrigins('https://a.example/'), /not an origin/);
  assert.throws(() => parseCorsOrigins('a.example'), /not an origin/);
  assert.throws(() => parseCorsOrigins('*,https://a.example'), /stands alone/);
  assert.throws(() => parseCorsOrigins(' , '), /takes/);
  const any = parseCorsOrigins('*');
  assert.equal(any.anyOrigin, true);
});

test('a state change from a page runs only for a listed origin or the node itself', async () => {
  const url = cluster.members[0]!.url;
  const stranger = await call(`${url}/v1/broadcast`, {
    rawBody: JSON.stringify({ payload: 'z' }),
    headers: { origin: 'http://evil.example', 'content-type': 'text/plain' },
  });
  assert.equal(stranger.status, 403);
  const listed = await call(`${url}/v1/broadcast`, {
    body: { payload: 'z' },
    headers: { origin: 'HTTPS://OTHER.EXAMPLE' },
  });
  assert.equal(listed.status, 200, 'origins compare without case');
  const own = await call(`${url}/v1/broadcast`, {
    body: { payload: 'z' },
    headers: { origin: url },
  });
  assert.equal(own.status, 200);
});
