// InProcessServer on a manual clock, with a node whose answers the test holds back: the
// request deadline, the 408 for a body still being read, the caller giving up, and closing
// all happen when the test moves the environment's clock or aborts, and at no other time.
// This is what lets the simulator drive the server on its virtual time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BroadcastError } from '../../src/broadcast/errors.ts';
import type { BroadcastResult } from '../../src/broadcast/pending.ts';
import type { ServedNode } from '../../src/server/context.ts';
import { deadlineGraceMs } from '../../src/server/dispatcher.ts';
import { Exposition } from '../../src/server/exposition.ts';
import { InProcessServer } from '../../src/server/in-process.ts';
import { createServerContext } from '../../src/server/settings.ts';
import type { BroadcastRunFrame } from '../../src/transport/client-frames.ts';
import { logger } from './cluster.ts';
import { ManualEnvironment, settle } from './manual-environment.ts';

interface Held<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
}

function held<T>(): Held<T> {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** A node whose broadcasts and barriers wait until the test releases them. */
function heldNode() {
  const broadcasts: Held<BroadcastResult>[] = [];
  const barriers: Held<number>[] = [];
  const node = {
    id: 'n1',
    lastPosition: 0,
    broadcast: () => {
      const answer = held<BroadcastResult>();
      broadcasts.push(answer);
      return answer.promise;
    },
    barrier: () => {
      const answer = held<number>();
      barriers.push(answer);
      return answer.promise;
    },
    read: () => [],
  } as unknown as ServedNode;
  return { node, broadcasts, barriers };
}

function serverOn(environment: ManualEnvironment, node: ServedNode, requestTimeoutMs = 1000) {
  const context = createServerContext({ node, logger, environment, requestTimeoutMs });
  return { server: new InProcessServer(context), context };
}

const broadcastRequest = {
  method: 'POST',
  url: '/v1/broadcast',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ payload: 'x', client: 'c', seq: 1 }),
};

test('the request deadline fires on the environment clock, not before', async () => {
  const environment = new ManualEnvironment();
  const { node, broadcasts } = heldNode();
  const { server } = serverOn(environment, node, 1000);
  let answered = false;
  const answer = server.handle(broadcastRequest, new AbortController().signal).then((value) => {
    answered = true;
    return value;
  });
  await settle();
  assert.equal(broadcasts.length, 1, 'the handler reached the node');
  assert.equal(environment.pendingTimerCount, 1, 'the deadline is armed on the environment');
  await environment.advance(1000 + deadlineGraceMs - 1);
  assert.equal(answered, false, 'no answer before the deadline');
  await environment.advance(1);
  const timedOut = await answer;
  assert.equal(timedOut.status, 503);
  assert.equal(timedOut.headers['retry-after'], '1');
  assert.equal(JSON.parse(timedOut.body).error, 'timeout');
  assert.equal(JSON.parse(timedOut.body).timeoutMs, 1000);
  // The node answering late changes nothing, and nothing is left open.
  broadcasts[0]!.resolve({ position: 1, index: 1, term: 1, duplicate: false });
  await settle();
  assert.equal(server.openRequestCount, 0);
  assert.equal(environment.pendingTimerCount, 0);
});

test('requests begun at different times each time out at their own deadline', async () => {
  const environment = new ManualEnvironment();
  const { node, broadcasts } = heldNode();
  const { server } = serverOn(environment, node, 1000);
  const answeredAt: (number | null)[] = [null, null, null];
  const statuses: number[] = [0, 0, 0];
  const send = (slot: number) => {
    void server.handle(broadcastRequest, new AbortController().signal).then((answer) => {
      answeredAt[slot] = environment.monotonicMs();
      statuses[slot] = answer.status;
    });
  };
  const startMs = environment.monotonicMs();
  send(0);
  await environment.advance(100);
  send(1);
  await environment.advance(100);
  send(2);
  await settle();
  assert.equal(broadcasts.length, 3);
  // The first is answered by the node in time; the other two wait past their deadlines.
  broadcasts[0]!.resolve({ position: 1, index: 1, term: 1, duplicate: false });
  await settle();
  assert.equal(statuses[0], 200);
  const deadlineMs = 1000 + deadlineGraceMs;
  await environment.advance(deadlineMs - 200 - 1 + 100);
  assert.equal(answeredAt[1], null, 'no answer before its deadline');
  await environment.advance(1);
  assert.equal(answeredAt[1], startMs + 100 + deadlineMs);
  assert.equal(statuses[1], 503);
  assert.equal(answeredAt[2], null, 'the third still has 100 ms');
  await environment.advance(99);
  assert.equal(answeredAt[2], null);
  await environment.advance(1);
  assert.equal(answeredAt[2], startMs + 200 + deadlineMs);
  assert.equal(statuses[2], 503);
  await settle();
  assert.equal(server.openRequestCount, 0);
  assert.equal(environment.pendingTimerCount, 0, 'no timer is left armed');
});

test('an answer in time cancels its deadline and records its latency on the manual clock', async () => {
  const environment = new ManualEnvironment();
  const { node, barriers } = heldNode();
  const { server, context } = serverOn(environment, node, 1000);
  const answer = server.handle(
    { method: 'GET', url: '/v1/barrier', headers: {}, body: null },
    new AbortController().signal,
  );
  await environment.advance(300);
  barriers[0]!.resolve(7);
  const done = await answer;
  assert.equal(done.status, 200);
  assert.deepEqual(JSON.parse(done.body), { index: 7 });
  assert.equal(done.headers['content-type'], 'application/json; charset=utf-8');
  await settle();
  assert.equal(environment.pendingTimerCount, 0, 'the deadline was cancelled');
  const exposition = new Exposition();
  context.metrics.write(exposition);
  // Exactly 0.3 s of virtual time passed: the latency histogram saw it, and nothing else.
  assert.match(
    exposition.text(),
    /abcast_http_request_duration_seconds_sum\{route="\/v1\/barrier"\} 0\.3\n/,
  );
});

test('a caller that gives up abandons the request as a closed socket does', async () => {
  const environment = new ManualEnvironment();
  const { node, broadcasts } = heldNode();
  const { server } = serverOn(environment, node);
  const caller = new AbortController();
  const answer = server.handle(broadcastRequest, caller.signal);
  await settle();
  assert.equal(server.openRequestCount, 1);
  const reason = new Error('the client went away');
  caller.abort(reason);
  await assert.rejects(answer, (error) => error === reason);
  await settle();
  assert.equal(server.openRequestCount, 0);
  assert.equal(environment.pendingTimerCount, 0, 'its deadline was cancelled');
  broadcasts[0]!.resolve({ position: 1, index: 1, term: 1, duplicate: false });
  await settle();
  // An already aborted signal never reaches a handler.
  await assert.rejects(server.handle(broadcastRequest, caller.signal), (e) => e === reason);
  assert.equal(broadcasts.length, 1);
});

test('a body over the limit is a 413 in process too', async () => {
  const environment = new ManualEnvironment();
  const { node } = heldNode();
  const context = createServerContext({ node, logger, environment, payloadBytesMax: 16 });
  const server = new InProcessServer(context);
  const body = JSON.stringify({ payload: 'x'.repeat(context.settings.bodyBytesMax) });
  const answer = await server.handle({ ...broadcastRequest, body }, new AbortController().signal);
  assert.equal(answer.status, 413);
  assert.equal(JSON.parse(answer.body).bodyBytesMax, context.settings.bodyBytesMax);
});

test('closing waits for answers in progress, refuses new requests with 503', async () => {
  const environment = new ManualEnvironment();
  const { node, barriers } = heldNode();
  const { server } = serverOn(environment, node, 1000);
  const pending = server.handle(
    { method: 'GET', url: '/v1/barrier', headers: {}, body: null },
    new AbortController().signal,
  );
  await settle();
  let closed = false;
  const closing = server.close().then(() => {
    closed = true;
  });
  const refused = await server.handle(
    { method: 'GET', url: '/v1/status', headers: {}, body: null },
    new AbortController().signal,
  );
  assert.equal(refused.status, 503);
  assert.equal(JSON.parse(refused.body).error, 'node_stopped');
  assert.equal(refused.headers['retry-after'], '1');
  await settle();
  assert.equal(closed, false, 'the barrier is still being answered');
  barriers[0]!.resolve(3);
  assert.equal((await pending).status, 200);
  await closing;
  assert.equal(closed, true);
});

/** A node whose runs wait until the test releases them. */
function heldRunNode() {
  const runs: Held<PromiseSettledResult<BroadcastResult>[]>[] = [];
  const node = {
    id: 'n1',
    lastPosition: 0,
    broadcastRun: () => {
      const answer = held<PromiseSettledResult<BroadcastResult>[]>();
      runs.push(answer);
      return answer.promise;
    },
    read: () => [],
  } as unknown as ServedNode;
  return { node, runs };
}

function runFrame(payloads: readonly string[], topic = ''): BroadcastRunFrame {
  return {
    type: 'broadcastRun',
    requestId: 1,
    headers: {},
    clientId: 'c',
    firstSeq: 1,
    nonce: '',
    messages: payloads.map((payload) => ({ payload: Buffer.from(payload), topic, key: '' })),
  };
}

test('a broadcastRun frame served in process: results per message, a whole refusal, the deadline', async () => {
  const environment = new ManualEnvironment();
  const { node, runs } = heldRunNode();
  const { server } = serverOn(environment, node, 1000);

  const taken = server.handleRun(runFrame(['"a"', '{"b": 1}']), new AbortController().signal);
  await settle();
  assert.equal(runs.length, 1, 'the run reached the node');
  runs[0]?.resolve([
    { status: 'fulfilled', value: { position: 1, index: 3, term: 2, duplicate: false } },
    { status: 'rejected', reason: new BroadcastError('overloaded', 'too many waiting', {}) },
  ]);
  const answer = await taken;
  assert.equal(answer.kind, 'results');
  assert.deepEqual(answer.kind === 'results' ? answer.results[0] : null, {
    kind: 'ok',
    position: 1,
    term: 2,
    duplicate: false,
  });
  const second = answer.kind === 'results' ? answer.results[1] : null;
  assert.equal(second?.kind === 'error' ? second.code : null, 'overloaded');

  const refused = await server.handleRun(runFrame(['not json']), new AbortController().signal);
  assert.equal(refused.kind, 'refused');
  assert.equal(refused.kind === 'refused' ? refused.response.status : 0, 400);
  assert.match(refused.kind === 'refused' ? refused.response.body : '', /messages\[0\]\.payload/);
  assert.equal(runs.length, 1, 'a refused run never reaches the node');

  const late = server.handleRun(runFrame(['1']), new AbortController().signal);
  await settle();
  await environment.advance(1000 + deadlineGraceMs);
  const timedOut = await late;
  assert.equal(timedOut.kind === 'refused' ? timedOut.response.status : 0, 503);
});
