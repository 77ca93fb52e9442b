/**
 * A node's Retry-After longer than what is left of unavailableAfterMs does not stretch the
 * call past its bound: the broadcast (and the barrier) fail `unavailable` about when the
 * bound passes, not after the node's wait (found by a seeded fault run with 503s carrying
 * Retry-After: 1 and unavailableAfterMs of 300 ms). Against fake nodes on 127.0.0.1 that
 * answer every request 503 with Retry-After: 2.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ClientError, connect } from '../../src/client/index.ts';
import { scriptedNode } from './scripted-node.ts';

const unavailableAfterMs = 200;
/** The bound, one attempt's deadline and room for a loaded machine; well below 2 s. */
const lateMs = unavailableAfterMs + 100 + 1_000;

test('a broadcast answered 503 Retry-After: 2 fails unavailable at its bound', async () => {
  const node = await scriptedNode((_body, response) => {
    response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '2' });
    response.end(JSON.stringify({ error: 'no_leader', message: 'no leader' }));
    return true;
  });
  const client = connect({
    endpoints: [node.url],
    clientId: 'c-retry-after',
    requestTimeoutMs: 100,
    unavailableAfterMs,
    batching: false,
  });
  try {
    const startedMs = Date.now();
    const failure = await client.broadcast('a').then(
      () => null,
      (error: unknown) => error,
    );
    const tookMs = Date.now() - startedMs;
    assert.ok(failure instanceof ClientError);
    assert.equal(failure.code, 'unavailable');
    assert.ok(tookMs < lateMs, `failed after ${tookMs} ms`);
  } finally {
    client.close();
    await node.close();
  }
});

test('a barrier answered 503 Retry-After: 2 fails unavailable at its bound', async () => {
  const server = createServer((_request, response) => {
    response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '2' });
    response.end(JSON.stringify({ error: 'no_leader', message: 'no leader' }));
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = connect({ endpoints: [url], requestTimeoutMs: 100, unavailableAfterMs });
  try {
    const startedMs = Date.now();
    await assert.rejects(client.barrier(), { code: 'unavailable' });
    const tookMs = Date.now() - startedMs;
    assert.ok(tookMs < lateMs, `failed after ${tookMs} ms`);
  } finally {
    client.close();
    server.closeAllConnections();
    await new Promise((done) => server.close(done));
  }
});
