// The SDK moves a node's calls to its binary port once the node's status offers one that
// answers, and back to HTTP when that port fails; TLS is never traded for plain TCP. Driven
// with recording exchanges and a manual clock, in process.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BinaryConnectionError, type BinaryExchange } from '../../src/client/binary-exchange.ts';
import type {
  HttpExchangeRequest,
  HttpExchangeResponse,
  RunExchangeAnswer,
  RunExchangeRequest,
} from '../../src/client/exchange.ts';
import type { StreamAnswer } from '../../src/client/node-exchange.ts';
import { offeredBinaryBase, upgradedTransport } from '../../src/client/protocol-upgrade.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';

function request(url: string, method: HttpExchangeRequest['method'] = 'GET'): HttpExchangeRequest {
  return {
    method,
    url,
    headers: { authorization: 'Bearer t' },
    body: null,
    timeoutMs: 1000,
    signal: new AbortController().signal,
  };
}

const ok = (body: unknown): HttpExchangeResponse => ({
  status: 200,
  headers: {},
  body: JSON.stringify(body),
});

function world(options: { binaryFails?: boolean } = {}) {
  let nowMs = 0;
  const environment = { ...systemEnvironment, monotonicMs: () => nowMs };
  const overHttpCalls: string[] = [];
  const overBinaryCalls: { url: string; authorization: string | undefined }[] = [];
  const state = { binaryFails: options.binaryFails ?? false };
  const overHttp = async (call: HttpExchangeRequest) => {
    overHttpCalls.push(call.url);
    return call.url.endsWith('/v1/status') ? ok({ binary: 'abcast://0.0.0.0:9001' }) : ok({});
  };
  const binary = async (call: HttpExchangeRequest) => {
    overBinaryCalls.push({ url: call.url, authorization: call.headers.authorization });
    if (state.binaryFails) throw new BinaryConnectionError('ECONNREFUSED', 'refused');
    return ok({});
  };
  const streams: string[] = [];
  const runs: string[] = [];
  const overBinary = Object.assign(binary, {
    openStream: async (url: string): Promise<StreamAnswer> => {
      streams.push(url);
      if (state.binaryFails) throw new BinaryConnectionError('ECONNREFUSED', 'refused');
      return { status: 200, headers: {}, body: new ReadableStream() };
    },
    broadcastRun: async (request: RunExchangeRequest): Promise<RunExchangeAnswer | null> => {
      runs.push(request.url);
      if (state.binaryFails) throw new BinaryConnectionError('ECONNRESET', 'reset');
      return { kind: 'results', results: [] };
    },
  }) as BinaryExchange;
  const transport = upgradedTransport(environment, overHttp, overBinary);
  return {
    transport,
    overHttpCalls,
    overBinaryCalls,
    streams,
    runs,
    state,
    advance: (ms: number) => {
      nowMs += ms;
    },
  };
}

/** Lets the probe's promise settle. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

test('a status that offers a binary port moves the node to it, at the host the client knows', async () => {
  const w = world();
  await w.transport.exchange(request('http://node-a:8001/v1/broadcast', 'POST'));
  assert.equal(w.overBinaryCalls.length, 0);
  await w.transport.exchange(request('http://node-a:8001/v1/status'));
  await settle();
  // The probe, with the caller's headers, at node-a (not the 0.0.0.0 the node listens on).
  assert.deepEqual(w.overBinaryCalls, [
    { url: 'abcast://node-a:9001/v1/status', authorization: 'Bearer t' },
  ]);
  await w.transport.exchange(request('http://node-a:8001/v1/broadcast/batch?x=1', 'POST'));
  assert.equal(w.overBinaryCalls.at(-1)?.url, 'abcast://node-a:9001/v1/broadcast/batch?x=1');
  assert.equal(w.overHttpCalls.length, 2);
  // Another node is judged on its own.
  await w.transport.exchange(request('http://node-b:8001/v1/broadcast', 'POST'));
  assert.equal(w.overHttpCalls.at(-1), 'http://node-b:8001/v1/broadcast');
  const stream = await w.transport.openStream(
    'http://node-a:8001/v1/stream?from=1',
    {},
    new AbortController().signal,
    1000,
    () => Promise.reject(new Error('not over HTTP')),
  );
  assert.equal(stream.status, 200);
  assert.deepEqual(w.streams, ['abcast://node-a:9001/v1/stream?from=1']);
});

test('a binary port that fails sends the call over HTTP at once and keeps HTTP until relearned', async () => {
  const w = world();
  await w.transport.exchange(request('http://node-a:8001/v1/status'));
  await settle();
  w.state.binaryFails = true;
  const answer = await w.transport.exchange(request('http://node-a:8001/v1/broadcast', 'POST'));
  assert.equal(answer.status, 200);
  assert.equal(w.overHttpCalls.at(-1), 'http://node-a:8001/v1/broadcast');
  const binaryCount = w.overBinaryCalls.length;
  await w.transport.exchange(request('http://node-a:8001/v1/status'));
  await w.transport.exchange(request('http://node-a:8001/v1/broadcast', 'POST'));
  assert.equal(w.overBinaryCalls.length, binaryCount, 'no probe and no call before relearning');
  w.advance(61_000);
  await w.transport.exchange(request('http://node-a:8001/v1/status'));
  await settle();
  assert.equal(w.overBinaryCalls.length, binaryCount + 1, 'probed again after a minute');
  const stream = await w.transport.openStream(
    'http://node-a:8001/v1/stream',
    {},
    new AbortController().signal,
    1000,
    async () => ({ status: 200, headers: { via: 'http' }, body: new ReadableStream() }),
  );
  assert.equal(stream.headers.via, 'http');
});

test('a run goes in its own frame only to a node on its binary port; a failed port sends it back as a batch', async () => {
  const w = world();
  const run = (url: string): RunExchangeRequest => ({
    url,
    headers: {},
    clientId: 'c',
    firstSeq: 1,
    nonce: '',
    messages: [{ payload: '1', topic: '', key: '' }],
    timeoutMs: 1000,
    signal: new AbortController().signal,
    onResults: () => undefined,
  });
  const broadcastRun = w.transport.exchange.broadcastRun!;
  assert.equal(await broadcastRun(run('http://node-a:8001/v1/broadcast/batch')), null);
  await w.transport.exchange(request('http://node-a:8001/v1/status'));
  await settle();
  const answer = await broadcastRun(run('http://node-a:8001/v1/broadcast/batch'));
  assert.deepEqual(answer, { kind: 'results', results: [] });
  assert.deepEqual(w.runs, ['abcast://node-a:9001/v1/broadcast/batch']);
  w.state.binaryFails = true;
  assert.equal(await broadcastRun(run('http://node-a:8001/v1/broadcast/batch')), null);
  // Back on HTTP: no more runs in the frame until relearned.
  w.state.binaryFails = false;
  assert.equal(await broadcastRun(run('http://node-a:8001/v1/broadcast/batch')), null);
  assert.equal(w.runs.length, 2);
});

test('a probe that fails keeps the node on HTTP', async () => {
  const w = world({ binaryFails: true });
  await w.transport.exchange(request('http://node-a:8001/v1/status'));
  await settle();
  await w.transport.exchange(request('http://node-a:8001/v1/broadcast', 'POST'));
  assert.equal(w.overBinaryCalls.length, 1);
  assert.equal(w.overHttpCalls.at(-1), 'http://node-a:8001/v1/broadcast');
});

test('the offer is taken only in the same security: https with abcasts, http with abcast', () => {
  const status = (binary: unknown) => JSON.stringify({ binary });
  const http = new URL('http://10.0.0.5:8001');
  const https = new URL('https://node.example:8443');
  assert.equal(offeredBinaryBase(http, status('abcast://0.0.0.0:9001')), 'abcast://10.0.0.5:9001');
  assert.equal(
    offeredBinaryBase(https, status('abcasts://[::]:9443')),
    'abcasts://node.example:9443',
  );
  assert.equal(offeredBinaryBase(https, status('abcast://0.0.0.0:9001')), null);
  assert.equal(offeredBinaryBase(http, status('abcasts://0.0.0.0:9001')), null);
  assert.equal(offeredBinaryBase(http, status(null)), null);
  assert.equal(offeredBinaryBase(http, status('not a url')), null);
  assert.equal(offeredBinaryBase(http, 'not json'), null);
  assert.equal(
    offeredBinaryBase(new URL('http://[::1]:8001'), status('abcast://[::1]:9001')),
    'abcast://[::1]:9001',
  );
});
