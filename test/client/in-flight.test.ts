/**
 * What a broadcast in flight holds is let go when it ends, whichever way it ends. Over an
 * in-memory exchange that holds requests as long as the test says: closing the client
 * mid-flight rejects every broadcast once with `closed` (those sent, and those still
 * waiting for a slot); a message whose batched first attempt timed out is sent again alone
 * and answered, and afterwards every slot is free again and no listener is left on the
 * client's signal; a refusal that breaks the session ends the wait of the batched first
 * attempts behind it, which move to the next session and are answered there, in order.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { test } from 'node:test';
import { connect, type HttpExchange, type HttpExchangeRequest } from '../../src/client/index.ts';

interface Held {
  readonly request: HttpExchangeRequest;
  answer(status: number, body: unknown): void;
}

/** An exchange that answers /v1/status itself and hands every other request to `route`. */
function heldExchange(route: (held: Held) => void): HttpExchange {
  return (request) =>
    new Promise((resolve, reject) => {
      if (request.url.endsWith('/v1/status')) {
        resolve({ status: 200, headers: {}, body: '{"role":"leader"}' });
        return;
      }
      const timer = setTimeout(() => reject(new Error('timed out')), request.timeoutMs);
      const onAbort = () => {
        clearTimeout(timer);
        reject(request.signal.reason);
      };
      request.signal.addEventListener('abort', onAbort, { once: true });
      route({
        request,
        answer: (status, body) => {
          clearTimeout(timer);
          request.signal.removeEventListener('abort', onAbort);
          resolve({ status, headers: {}, body: JSON.stringify(body) });
        },
      });
    });
}

/** Resolves once `condition` holds, checking on every turn of the event loop. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

/** The messages of a request: a batch's, or the one of a single POST. */
function messagesOf(request: HttpExchangeRequest): { client: string; seqs: number[] } {
  const body = JSON.parse(request.body ?? '{}') as {
    client: string;
    seq: number;
    messages?: unknown[];
  };
  const count = body.messages?.length ?? 1;
  return { client: body.client, seqs: Array.from({ length: count }, (_, at) => body.seq + at) };
}

test('closing the client mid-flight rejects every broadcast once, sent or waiting for a slot', async () => {
  const held: Held[] = [];
  const client = connect({
    endpoints: ['http://a.invalid'],
    inFlightMax: 8,
    exchange: heldExchange((request) => held.push(request)),
  });
  const outcomes = new Map<number, string[]>();
  const calls = Array.from({ length: 20 }, (_, at) => {
    outcomes.set(at, []);
    return client.broadcast({ at }).then(
      () => outcomes.get(at)?.push('answered'),
      (error: { code?: string }) => outcomes.get(at)?.push(`rejected ${error.code}`),
    );
  });
  await until(() => held.length > 0);
  assert.equal(
    held.reduce((count, request) => count + messagesOf(request.request).seqs.length, 0),
    8,
    'the in-flight bound holds the rest back',
  );
  client.close();
  await Promise.all(calls);
  for (const [at, heard] of outcomes) {
    assert.deepEqual(heard, ['rejected closed'], `broadcast ${at} is rejected once`);
  }
  assert.equal(getEventListeners(client.signal, 'abort').length, 0);
});

test('a timed-out batched attempt is sent again alone, answered, and leaves no slot or listener taken', async () => {
  let position = 0;
  let timeOutFirst = true;
  const sent: string[] = [];
  const client = connect({
    endpoints: ['http://a.invalid'],
    inFlightMax: 4,
    requestTimeoutMs: 50,
    backoffBaseMs: 1,
    backoffMaxMs: 2,
    exchange: heldExchange((held) => {
      const { seqs } = messagesOf(held.request);
      const path = new URL(held.request.url).pathname;
      sent.push(`${path} ${seqs.join(',')}`);
      if (timeOutFirst) {
        timeOutFirst = false;
        return; // never answered: the exchange times it out
      }
      const answer = () => ({ index: ++position, term: 1, duplicate: false });
      if (path === '/v1/broadcast/batch') held.answer(200, { results: seqs.map(answer) });
      else held.answer(200, answer());
    }),
  });
  const first = await Promise.all([client.broadcast('a'), client.broadcast('b')]);
  assert.deepEqual(
    first.map((answer) => answer.duplicate),
    [false, false],
  );
  assert.equal(sent[0], '/v1/broadcast/batch 1,2');
  assert.deepEqual(
    sent.slice(1, 3).sort(),
    ['/v1/broadcast 1', '/v1/broadcast 2'],
    'retries go alone',
  );
  // All four slots are free again: four broadcasts go out together, in one batch.
  const answers = await Promise.all([1, 2, 3, 4].map((at) => client.broadcast(at)));
  assert.deepEqual(
    answers.map((answer) => answer.position),
    [3, 4, 5, 6],
  );
  assert.deepEqual(sent.slice(3), ['/v1/broadcast/batch 3,4,5,6']);
  assert.equal(getEventListeners(client.signal, 'abort').length, 0);
  client.close();
});

// The batch is never answered in time and never times out: without the cut ending its wait,
// the test would hang (the timeout only turns that hang into a failure).
test('a refusal that breaks the session ends the wait of the batched attempts behind it', {
  timeout: 120_000,
}, async () => {
  const held: Held[] = [];
  const client = connect({
    endpoints: ['http://a.invalid'],
    inFlightMax: 16,
    requestTimeoutMs: 3_600_000,
    exchange: heldExchange((request) => held.push(request)),
  });
  // seq 1 goes alone; seqs 2..4 go in a batch issued on a later turn.
  const one = client.broadcast('one');
  await until(() => held.length === 1);
  const later = ['two', 'three', 'four'].map((payload) => client.broadcast(payload));
  await until(() => held.length === 2);
  const [alone, batch] = held.splice(0);
  assert.deepEqual(messagesOf(batch!.request).seqs, [2, 3, 4]);
  // seq 1 is refused for good: seqs 2..4 can never be delivered in this session, so their
  // batched attempt stops waiting (it is never answered) and they move on.
  alone!.answer(409, { error: 'sequence_gap_fatal', message: 'refused' });
  await assert.rejects(one, { code: 'sequence_gap_fatal' });
  await until(() => held.length > 0);
  const moved = held.splice(0);
  const session = messagesOf(moved[0]!.request).client;
  assert.match(session, /~2$/, 'the moved messages go in the next session');
  let position = 10;
  for (const request of moved) {
    const { seqs } = messagesOf(request.request);
    const answer = () => ({ index: ++position, term: 1, duplicate: false });
    if (seqs.length === 1 && !request.request.url.endsWith('/batch')) request.answer(200, answer());
    else request.answer(200, { results: seqs.map(answer) });
  }
  const positions = (await Promise.all(later)).map((answer) => answer.position);
  assert.deepEqual(positions, [11, 12, 13], 'in their order of issue');
  // A late answer to the cut batch is nobody's any more: nothing is sent or settled again.
  const sentBefore = held.length;
  batch!.answer(200, {
    results: [1, 2, 3].map((index) => ({ index, term: 1, duplicate: false })),
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(held.length, sentBefore);
  assert.equal(getEventListeners(client.signal, 'abort').length, 0);
  client.close();
});
