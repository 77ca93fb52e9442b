/**
 * A long-lived client does not grow per call: after thousands of broadcasts (batched and
 * one by one, with retries) and hundreds of subscriptions ended by their reader against a fake node on 127.0.0.1, the client's close signal and
 * its session's signal hold no listeners and no dependent signals left by finished calls.
 * (Node 20's AbortSignal.any keeps one entry per call in every source signal, forever.)
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { connect } from '../../src/client/index.ts';

/** How many signals `AbortSignal.any` registered on `signal` (a Node internal; 0 if none). */
function dependentCount(signal: AbortSignal): number {
  const key = Object.getOwnPropertySymbols(signal).find(
    (symbol) => symbol.description === 'kDependantSignals',
  );
  const set = key === undefined ? undefined : (signal as unknown as Record<symbol, unknown>)[key];
  const size = (set as { size?: unknown } | undefined)?.size;
  return typeof size === 'number' ? size : 0;
}

test('thousands of broadcasts and hundreds of subscriptions leave no listeners or dependent signals behind', async () => {
  let count = 0;
  const server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk) => {
      text += chunk;
    });
    request.on('end', () => {
      if (request.url?.startsWith('/v1/stream')) {
        // One message, then the stream stays open, as a node's does.
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        const message = { index: 1, term: 1, payload: 1, client: '', seq: 0, topic: '' };
        response.write(`id: 1\ndata: ${JSON.stringify(message)}\n\n`);
        return;
      }
      count += 1;
      response.writeHead(count % 10 === 0 ? 503 : 200, { 'content-type': 'application/json' });
      if (count % 10 === 0) {
        response.end(JSON.stringify({ error: 'no_leader', message: 'try again' }));
      } else if (request.url === '/v1/broadcast/batch') {
        const { messages } = JSON.parse(text) as { messages: unknown[] };
        response.end(
          JSON.stringify({
            results: messages.map(() => ({ index: 1, term: 1, duplicate: false })),
          }),
        );
      } else {
        response.end(JSON.stringify({ index: 1, term: 1, duplicate: false }));
      }
    });
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clients = [true, false].map((batching) =>
    connect({ endpoints: [url], batching, backoffBaseMs: 1, backoffMaxMs: 2 }),
  );
  try {
    for (const client of clients) {
      for (let round = 0; round < 20; round++) {
        await Promise.all(Array.from({ length: 50 }, (_, n) => client.broadcast(n)));
      }
      for (let round = 0; round < 200; round++) {
        const own = new AbortController();
        for await (const message of client.subscribe({ signal: own.signal })) {
          assert.equal(message.position, 1);
          break;
        }
      }
      assert.equal(dependentCount(client.signal), 0);
      // The leader search may still run: one listener, not one per broadcast.
      assert.ok(getEventListeners(client.signal, 'abort').length <= 1);
    }
  } finally {
    for (const client of clients) client.close();
    server.closeAllConnections();
    await new Promise((done) => server.close(done));
  }
});
