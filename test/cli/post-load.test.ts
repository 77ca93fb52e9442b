// The POST load of `abcast bench --protocol http` and bench:compare: a message counts only
// when the node answered 200, each request carries the body as JSON, and the connections
// are kept alive and bounded.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { openPostLoad } from '../../src/cli/commands/post-load.ts';

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

test('a 200 fulfils, any other status rejects naming it, on at most N kept-alive connections', async () => {
  const seen: { method?: string; url?: string; type?: string; body: string }[] = [];
  const sockets = new Set<unknown>();
  let answerStatus = 200;
  const server = createServer(async (request, response) => {
    sockets.add(request.socket);
    const body = await readBody(request);
    seen.push({
      method: request.method,
      url: request.url,
      type: request.headers['content-type'],
      body,
    });
    response.writeHead(answerStatus, { 'content-type': 'application/json' });
    response.end(answerStatus === 200 ? '{"index":1}' : '{"error":"unavailable"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const body = JSON.stringify({ payload: 'x'.repeat(100) });
  const load = openPostLoad({ origin: `http://127.0.0.1:${port}`, connectionCount: 2, body });
  try {
    for (let round = 0; round < 5; round++) await Promise.all([load.send(), load.send()]);
    assert.equal(seen.length, 10);
    for (const request of seen) {
      assert.deepEqual(request, {
        method: 'POST',
        url: '/v1/broadcast',
        type: 'application/json',
        body,
      });
    }
    assert.ok(sockets.size <= 2, `${sockets.size} connections for a pool of 2`);
    answerStatus = 503;
    await assert.rejects(load.send(), /POST \/v1\/broadcast answered 503/);
    answerStatus = 200;
    await load.send(); // the refused request did not spoil its connection
  } finally {
    await load.close();
    server.close();
  }
});

test('a node that is not listening rejects the message', async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const load = openPostLoad({
    origin: `http://127.0.0.1:${port}`,
    connectionCount: 1,
    body: '{"payload":1}',
  });
  try {
    await assert.rejects(load.send(), /ECONNREFUSED/);
  } finally {
    await load.close();
  }
});
