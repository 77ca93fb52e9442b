/**
 * Retries against a scripted fake node (node:http on 127.0.0.1): a 503 with Retry-After is
 * waited out, a request that hangs past requestTimeoutMs is abandoned, a 409 sequence_gap
 * is retried, and every retry carries the same (client, seq) — the key of exactly-once.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { connect } from '../../src/client/index.ts';

type Step = (response: ServerResponse) => void;

function answer(status: number, body: unknown, headers: Record<string, string> = {}): Step {
  return (response) => {
    response.writeHead(status, { 'content-type': 'application/json', ...headers });
    response.end(JSON.stringify(body));
  };
}

test('retries keep (client, seq), honour Retry-After and abandon a hung request', async () => {
  const steps: Step[] = [
    answer(503, { error: 'no_leader', message: 'no leader' }, { 'retry-after': '1' }),
    () => {}, // hangs: the client's timeout abandons it
    answer(409, { error: 'sequence_gap', message: 'gap', expectedSeq: 1 }),
    answer(200, { index: 7, term: 2, duplicate: true }),
  ];
  const bodies: { client: string; seq: number; payload: unknown }[] = [];
  const hung: ServerResponse[] = [];
  const server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk) => {
      text += chunk;
    });
    request.on('end', () => {
      // The client also asks who leads (GET /v1/status); this fake node does not say.
      if (request.method !== 'POST' || request.url !== '/v1/broadcast') {
        response.writeHead(404).end();
        return;
      }
      bodies.push(JSON.parse(text));
      const step = steps.shift() ?? answer(500, { error: 'internal', message: 'script over' });
      hung.push(response);
      step(response);
    });
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = connect({ endpoints: [url], clientId: 'c-retry', requestTimeoutMs: 300 });
  try {
    const startedMs = Date.now();
    const result = await client.broadcast({ once: true });
    assert.deepEqual(result, { position: 7, term: 2, duplicate: true });
    assert.ok(Date.now() - startedMs >= 1000 + 300, 'waited out Retry-After and the timeout');
    assert.equal(bodies.length, 4);
    // A client id the caller picked goes with the client's nonce, the same on every retry.
    const nonce = (bodies[0] as { nonce?: unknown }).nonce;
    assert.match(String(nonce), /^[0-9a-f]{32}$/);
    for (const body of bodies)
      assert.deepEqual(body, { payload: { once: true }, client: 'c-retry', seq: 1, nonce });
    const next = client.broadcast('second');
    client.close();
    await assert.rejects(next, { code: 'closed' });
  } finally {
    client.close();
    for (const response of hung) response.destroy();
    server.closeAllConnections();
    await new Promise((closed) => server.close(closed));
  }
});

test('a seq below a refused one retries in its own session: moving it could deliver it twice', async () => {
  const bodies: { client: string; seq: number }[] = [];
  const hung: ServerResponse[] = [];
  const server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk) => {
      text += chunk;
    });
    request.on('end', () => {
      if (request.method !== 'POST' || request.url !== '/v1/broadcast') {
        response.writeHead(404).end();
        return;
      }
      const body = JSON.parse(text) as { client: string; seq: number };
      bodies.push(body);
      const seen = bodies.filter((b) => b.client === body.client && b.seq === body.seq).length;
      if (body.seq === 1 && seen === 1) {
        hung.push(response); // delivered, but the answer is lost: the client times out
      } else if (body.seq === 2 && body.client === 'c-hole') {
        answer(413, { error: 'payload_too_large', message: 'too large' })(response);
      } else {
        answer(200, { index: body.seq === 1 ? 1 : 2, term: 1, duplicate: body.seq === 1 })(
          response,
        );
      }
    });
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = connect({
    endpoints: [url],
    clientId: 'c-hole',
    requestTimeoutMs: 300,
    batching: false,
  });
  try {
    const first = client.broadcast('delivered, answer lost');
    const second = client.broadcast('refused');
    await assert.rejects(second, { code: 'payload_too_large' });
    assert.deepEqual(await first, { position: 1, term: 1, duplicate: true });
    const firstSends = bodies.filter((body) => body.seq === 1);
    assert.ok(firstSends.length >= 2);
    for (const body of firstSends) assert.equal(body.client, 'c-hole');
    // The next broadcast goes in the new session, from seq 1.
    await client.broadcast('next');
    const { nonce, ...rest } = bodies.at(-1) as Record<string, unknown>;
    assert.deepEqual(rest, { payload: 'next', client: 'c-hole~2', seq: 1 });
    assert.equal(nonce, (firstSends[0] as Record<string, unknown>).nonce, 'one nonce per client');
  } finally {
    client.close();
    for (const response of hung) response.destroy();
    await new Promise((done) => server.close(done));
  }
});
