// Behind node:http too, the server's time is its Environment's: on a manual clock an idle
// event stream gets its keep-alive comment only when the clock passes the interval, and a
// request whose node never answers gets its 503 only when the clock passes the deadline.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeliveredMessage } from '../../src/broadcast/deliveries.ts';
import type { ServedNode } from '../../src/server/context.ts';
import { deadlineGraceMs } from '../../src/server/dispatcher.ts';
import { createHttpServer } from '../../src/server/http.ts';
import { waitFor } from '../support/ports.ts';
import { logger, openEvents, withTimeout } from './cluster.ts';
import { ManualEnvironment } from './manual-environment.ts';

/** A node that has delivered nothing and never answers a barrier. */
const quietNode = {
  id: 'n1',
  lastPosition: 0,
  read: () => [],
  barrier: () => new Promise<number>(() => undefined),
  async *deliveries(options: { readonly signal?: AbortSignal }) {
    await new Promise((resolve) => options.signal?.addEventListener('abort', resolve));
    yield* [] as DeliveredMessage[];
  },
  async *deliveryRecords(options: { readonly signal?: AbortSignal }) {
    await new Promise((resolve) => options.signal?.addEventListener('abort', resolve));
    yield* [] as number[];
  },
} as unknown as ServedNode;

test('keep-alives and deadlines follow the environment clock', { timeout: 20_000 }, async () => {
  const environment = new ManualEnvironment();
  const server = createHttpServer({
    node: quietNode,
    logger,
    environment,
    keepAliveIntervalMs: 5_000,
    requestTimeoutMs: 1_000,
  });
  const url = await server.listen('127.0.0.1:0');
  const events = await openEvents(`${url}/v1/stream`);
  try {
    assert.equal(events.status, 200);
    assert.equal((await events.next()).retry, '1000');
    // The stream's deadline was cancelled; its keep-alive is the one timer armed.
    await waitFor(() => environment.pendingTimerCount === 1, 'the keep-alive armed');
    const comment = events.next(5_000);
    await environment.advance(5_000);
    assert.equal((await comment).comment, 'keep-alive');
    let answered = false;
    const barrier = fetch(`${url}/v1/barrier`).then(async (response) => {
      answered = true;
      return { status: response.status, body: await response.json() };
    });
    await waitFor(() => environment.pendingTimerCount === 2, 'the barrier deadline armed');
    // Armed on the environment, not on Node's timers: nothing answers until the clock moves.
    assert.equal(answered, false);
    await environment.advance(1_000 + deadlineGraceMs);
    const timedOut = await withTimeout(barrier, 5_000, 'the barrier answer');
    assert.equal(timedOut.status, 503);
    assert.equal(timedOut.body.error, 'timeout');
  } finally {
    events.close();
    await server.close();
  }
});
