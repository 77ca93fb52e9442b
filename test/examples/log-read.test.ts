// Proves that the examples' log reads (GET /v1/messages, GET /v1/barrier) outlast a slow node
// and still fail on a dead one, against a fake node on 127.0.0.1: a GET answered only after its
// attempt's bound is sent again and the second answer is used; a node that never answers
// fails the read once the total bound has passed, naming the read and the URL; an error
// status fails at once.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { barrierOf, type LogReadBounds, readTopic } from '../../examples/support/log.ts';

type Answer = (request: IncomingMessage, response: ServerResponse, requestNumber: number) => void;

/** A fake node answering each request with `answer`; counts the requests it was sent. */
async function fakeNode(answer: Answer) {
  const timers: NodeJS.Timeout[] = [];
  let requestCount = 0;
  const server = createServer((request, response) => {
    requestCount += 1;
    answer(request, response, requestCount);
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requestCount: () => requestCount,
    later: (delayMs: number, fire: () => void) => timers.push(setTimeout(fire, delayMs)),
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise((closed) => server.close(closed));
    },
  };
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  if (response.destroyed) return;
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

const page = {
  messages: [1, 2].map((index) => ({
    index,
    term: 1,
    payload: { n: index },
    client: 'c',
    seq: index,
    topic: 'orders',
    time: 0,
  })),
  next: 3,
};

/** Well under the default first bound (5 s), so that the test is quick. */
const bounds: LogReadBounds = { firstAttemptTimeoutMs: 200, totalTimeoutMs: 5_000 };
/** Far past every bound of the test: the late answer never comes before the test ends. */
const lateAnswerMs = 60_000;

test('a read answered only after its bound is sent again, and the second answer is used', async () => {
  // The first GET of each path is answered late, and with other content than every later one,
  // so the content says which answer the read used (not the clock, which a loaded machine
  // stretches).
  const asked = new Set<string>();
  const node = await fakeNode((request, response) => {
    const barrier = request.url?.startsWith('/v1/barrier') === true;
    const path = barrier ? 'barrier' : 'messages';
    if (!asked.has(path)) {
      asked.add(path);
      const late = barrier ? { index: 99 } : { messages: [], next: 1 };
      node.later(lateAnswerMs, () => sendJson(response, 200, late));
      return;
    }
    sendJson(response, 200, barrier ? { index: 7 } : page);
  });
  try {
    const messages = await readTopic(node.endpoint, 'orders', {
      fromIndex: 1,
      throughIndex: 2,
      bounds,
    });
    assert.deepEqual(
      messages.map((message) => message.index),
      [1, 2],
      'the second answer, not the late one',
    );
    const pageRequests = node.requestCount();
    assert.ok(pageRequests >= 2, 'the late page was asked for again');
    assert.equal(await barrierOf(node.endpoint, bounds), 7);
    assert.ok(node.requestCount() >= pageRequests + 2, 'the late barrier was asked for again');
  } finally {
    await node.close();
  }
});

test('a read a node never answers fails after the total bound, naming the read and URL', async () => {
  const node = await fakeNode(() => undefined);
  const neverBounds: LogReadBounds = { firstAttemptTimeoutMs: 100, totalTimeoutMs: 1_500 };
  try {
    const startedMs = Date.now();
    await assert.rejects(
      readTopic(node.endpoint, 'orders', { fromIndex: 1, throughIndex: 2, bounds: neverBounds }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'timeout');
        assert.match(error.message, /timed out reading the page of orders from 1 from http:/);
        assert.match(error.message, /\/v1\/messages\?from=1&limit=1000&topic=orders/);
        assert.match(error.message, /no answer within 1500 ms over \d+ attempts/);
        assert.match(error.message, /no answer within 200 ms/);
        return true;
      },
    );
    const elapsedMs = Date.now() - startedMs;
    assert.ok(elapsedMs >= 1_450, `gave up after ${elapsedMs} ms, before the total bound`);
    // A hang, not the speed: a loaded machine fires the last attempt's timer late.
    assert.ok(elapsedMs < 10_000, `gave up only after ${elapsedMs} ms`);
    // 100, 200, 400 and the 800 ms left: the bound doubles rather than repeating (fifteen
    // attempts of 100 ms). Late timers on a loaded machine make fewer, never more.
    assert.ok(node.requestCount() >= 2 && node.requestCount() <= 5, `${node.requestCount()}`);
  } finally {
    await node.close();
  }
});

test('an error status is the node’s answer: the read fails at once, not retried', async () => {
  const node = await fakeNode((_, response) => sendJson(response, 503, { error: 'busy' }));
  try {
    await assert.rejects(barrierOf(node.endpoint, bounds), /answered 503 to the barrier/);
    assert.equal(node.requestCount(), 1);
  } finally {
    await node.close();
  }
});
