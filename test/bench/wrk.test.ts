// The race's POST row through wrk: every request carries the body as JSON, only a 2xx counts as
// acknowledged, and every failure is counted and named. Against a bare node:http server on
// 127.0.0.1; wrk is Debian's package, which .ci/run installs.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { before, test } from 'node:test';
import { ensureServers } from '../../bench/compare/install.ts';
import { runWrkLoad, wrkAvailable } from '../../bench/compare/wrk.ts';

let skip: string | false = false;
before(async () => {
  if (await wrkAvailable()) return;
  const reason = 'wrk is not installed (apt-get install -y wrk): its tests are skipped';
  if (process.env.CI === 'true')
    throw new Error(`${reason}; CI must have it (.ci/run installs it)`);
  skip = reason;
});

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A server that answers `statusOf(n)` to its n-th request (from 1), recording what came. */
async function server(statusOf: (requestNumber: number) => number) {
  const seen = {
    requests: 0,
    okAnswers: 0,
    methods: new Set<string>(),
    bodies: new Set<string>(),
    types: new Set<string>(),
    urls: new Set<string>(),
  };
  const http = createServer(async (request, response) => {
    const body = await readBody(request);
    seen.requests++;
    seen.methods.add(request.method ?? '');
    seen.urls.add(request.url ?? '');
    seen.types.add(request.headers['content-type'] ?? '');
    seen.bodies.add(body);
    const status = statusOf(seen.requests);
    if (status === 200) seen.okAnswers++;
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(status === 200 ? '{"index":1}' : '{"error":"unavailable"}');
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}

const load = { connections: 4, seconds: 1, warmupSeconds: 0, serverPids: [] };

test('every request is a POST of the body to /v1/broadcast, and each 200 counts', async (t) => {
  if (skip) return t.skip(skip);
  // Quotes, a backslash and the brackets that end a Lua long string must arrive as sent.
  const body = JSON.stringify({ payload: 'a "quoted" \\ ]] ]=] x'.repeat(4) });
  const http = await server(() => 200);
  try {
    const result = await runWrkLoad({ ...load, origin: http.origin, body });
    assert.equal(result.errors, 0);
    assert.equal(result.firstError, null);
    assert.ok(result.acknowledged > 0, 'some requests were answered');
    // wrk counts the requests it saw answered; the server may have answered a few more as
    // wrk stopped.
    assert.ok(http.seen.requests >= result.acknowledged);
    assert.deepEqual([...http.seen.methods], ['POST']);
    assert.deepEqual([...http.seen.urls], ['/v1/broadcast']);
    assert.deepEqual([...http.seen.types], ['application/json']);
    assert.deepEqual([...http.seen.bodies], [body]);
    assert.equal(result.inFlight, 4);
    assert.ok(result.messagesPerSecond > 0);
    assert.ok(result.p50Ms > 0 && result.p50Ms <= result.p99Ms && result.p99Ms <= result.maxMs);
  } finally {
    await http.close();
  }
});

test('an answer other than 2xx is an error, not an acknowledgement, and is named', async (t) => {
  if (skip) return t.skip(skip);
  const http = await server((requestNumber) => (requestNumber % 2 === 0 ? 503 : 200));
  try {
    const result = await runWrkLoad({ ...load, origin: http.origin, body: '{"payload":1}' });
    assert.ok(result.errors > 0, 'the 503s are counted');
    assert.match(result.firstError ?? '', /^\d+ non-2xx answers$/);
    // Half were refused: only the 200s count, and wrk saw no more of them than were sent.
    assert.ok(result.acknowledged > 0);
    assert.ok(result.acknowledged <= http.seen.okAnswers);
    assert.ok(result.acknowledged + result.errors <= http.seen.requests);
  } finally {
    await http.close();
  }
});

test('a node that refuses connections, or a missing wrk, fails the load naming why', async (t) => {
  if (skip) return t.skip(skip);
  const http = await server(() => 200);
  const { origin } = http;
  await http.close();
  // wrk checks its first connection before it starts: a node that is down is no load at all.
  await assert.rejects(
    runWrkLoad({ ...load, origin, body: '{"payload":1}' }),
    /wrk exited with 1 and no summary: .*Connection refused/,
  );
  assert.equal(await wrkAvailable('abcast-no-such-wrk'), false);
  await assert.rejects(
    runWrkLoad({ ...load, origin, body: '{}', command: 'abcast-no-such-wrk' }),
    /ENOENT/,
  );
});

test('without --install a missing wrk is no error (undici stands in), a missing server is', () => {
  const path = process.env.PATH;
  // An empty PATH: no command is found, as on a machine without the packages.
  process.env.PATH = '/nonexistent';
  try {
    assert.doesNotThrow(() => ensureServers(['abcast'], false));
    assert.throws(() => ensureServers(['abcast', 'nats'], false), /nats-server$/);
  } finally {
    process.env.PATH = path;
  }
});
