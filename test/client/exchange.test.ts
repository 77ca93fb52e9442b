/**
 * The SDK takes its clock, timers, randomness and HTTP from what connect() is given: a
 * client over an in-memory exchange and a counting environment broadcasts, finds the
 * leader, answers a barrier and honours a 503's Retry-After with no socket and no clock of
 * its own; its session id comes from the environment's randomHex.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect, type HttpExchange, type HttpExchangeRequest } from '../../src/client/index.ts';
import type { Environment } from '../../src/util/environment.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';

/** The real timers (to keep the test short), a clock at a fixed epoch, counted draws. */
function countingEnvironment() {
  const counts = { timers: 0, random: 0, clock: 0 };
  const startedMs = systemEnvironment.monotonicMs();
  const environment: Environment = {
    nowMs: () => {
      counts.clock += 1;
      return 1_000_000 + (systemEnvironment.monotonicMs() - startedMs);
    },
    monotonicMs: () => systemEnvironment.monotonicMs() - startedMs,
    setTimer: (delayMs, fire, options) => {
      counts.timers += 1;
      return systemEnvironment.setTimer(delayMs, fire, options);
    },
    random: () => {
      counts.random += 1;
      return 0.5;
    },
    randomHex: (byteCount) => 'ab'.repeat(byteCount),
  };
  return { environment, counts };
}

test('every request goes through the exchange, every timer and draw through the environment', async () => {
  const seen: HttpExchangeRequest[] = [];
  let position = 0;
  let unavailableOnce = true;
  const exchange: HttpExchange = async (request) => {
    seen.push(request);
    const path = new URL(request.url).pathname;
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => ({
      status,
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    if (path === '/v1/status')
      return json(200, { role: request.url.includes('b.') ? 'leader' : 'follower' });
    if (path === '/v1/barrier') return json(200, { index: position });
    if (path === '/v1/broadcast') {
      if (unavailableOnce) {
        unavailableOnce = false;
        return json(503, { error: 'no_leader', message: 'electing' }, { 'retry-after': '0.2' });
      }
      return json(200, { index: ++position, term: 1, duplicate: false });
    }
    throw new Error(`no route ${path}`);
  };
  const { environment, counts } = countingEnvironment();
  const client = connect({
    endpoints: ['http://a.test:1', 'http://b.test:1'],
    exchange,
    environment,
    batching: false,
  });
  try {
    assert.equal(client.clientId, `sdk.${'ab'.repeat(8)}`);
    const startedMs = environment.monotonicMs();
    const answer = await client.broadcast({ hello: 1 });
    // The 503's Retry-After (200 ms) was waited out on the environment's timers.
    assert.ok(environment.monotonicMs() - startedMs >= 190, 'Retry-After honoured');
    assert.deepEqual(answer, { position: 1, term: 1, duplicate: false });
    assert.equal(await client.barrier(), 1);
    const broadcasts = seen.filter((request) => request.url.endsWith('/v1/broadcast'));
    assert.equal(broadcasts.length, 2);
    const sent = JSON.parse(broadcasts[1]!.body ?? '') as { client: string; seq: number };
    assert.deepEqual(
      [sent.client, sent.seq],
      [`sdk.${'ab'.repeat(8)}`, 1],
      'a retry keeps (client, seq)',
    );
    assert.ok(
      seen.some((request) => request.url.endsWith('/v1/status')),
      'leader search',
    );
    assert.ok(
      seen.every((request) => request.timeoutMs > 0 && request.signal instanceof AbortSignal),
    );
    assert.ok(counts.timers > 0 && counts.clock > 0, `${JSON.stringify(counts)}`);
  } finally {
    client.close();
  }
});

test('an exchange that rejects is a failure retried on the next endpoint', async () => {
  const seen: string[] = [];
  const exchange: HttpExchange = async (request) => {
    seen.push(request.url);
    if (request.url.startsWith('http://down.test'))
      throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
    return {
      status: 200,
      headers: {},
      body: JSON.stringify({ index: 7, term: 2, duplicate: false }),
    };
  };
  const client = connect({
    endpoints: ['http://down.test:1', 'http://up.test:1'],
    exchange,
    batching: false,
  });
  try {
    const answer = await client.broadcast('x');
    assert.equal(answer.position, 7);
    assert.ok(seen.some((url) => url === 'http://down.test:1/v1/broadcast'));
  } finally {
    client.close();
  }
});
