/**
 * Broadcasts no node answered within `unavailableAfterMs`, against a scripted fake node that
 * holds each session's later seqs until the earlier ones arrive, as a real node does. A
 * message that was sent is reported `unavailable` to its caller but sent on until delivered
 * or `abandonAfterMs`, while the client's later broadcasts go to a new session instead of
 * queueing behind it; the in-flight slots those messages hold bound how long a new
 * broadcast waits; closing the client stops them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClientError, connect } from '../../src/client/index.ts';
import { waitFor } from '../support/ports.ts';
import { logOrder, scriptedNode } from './scripted-node.ts';

/** A node that swallows every request while `cut` is set, as across a partition. */
async function partitionedNode() {
  const state = { cut: true, requestCount: 0 };
  const node = await scriptedNode(() => {
    state.requestCount += 1;
    return state.cut;
  });
  return { node, state };
}

function clientFor(url: string, clientId: string, inFlightMax = 256) {
  return connect({
    endpoints: [url],
    clientId,
    requestTimeoutMs: 100,
    unavailableAfterMs: 400,
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    inFlightMax,
    batching: false,
  });
}

async function rejection(promise: Promise<unknown>): Promise<ClientError> {
  const outcome = await promise.then(
    () => null,
    (error: unknown) => error,
  );
  assert.ok(outcome instanceof ClientError, `expected a ClientError, got ${String(outcome)}`);
  return outcome;
}

test('a sent broadcast nobody answered is reported unavailable and sent on until delivered', async () => {
  const { node, state } = await partitionedNode();
  const client = clientFor(node.url, 'c-late');
  try {
    const failure = await rejection(client.broadcast('a'));
    assert.equal(failure.code, 'unavailable');
    assert.equal(failure.details.sent, true);
    assert.match(failure.message, /sends it on/);
    // Later broadcasts are not queued behind it at the nodes: they go to a new session.
    assert.equal(client.clientId, 'c-late~2');
    state.cut = false;
    const answer = await client.broadcast('b');
    assert.equal(answer.position !== null, true);
    await waitFor(() => node.delivered.length === 2, 'a delivered too, by the resends');
    assert.deepEqual(
      node.delivered.map((body) => body.payload).sort(),
      ['a', 'b'],
      'each exactly once',
    );
  } finally {
    client.close();
    await node.close();
  }
});

test('slots held by unanswered broadcasts bound the wait of a new one, which fails unsent', async () => {
  const { node, state } = await partitionedNode();
  const client = clientFor(node.url, 'c-slot', 1);
  try {
    assert.equal((await rejection(client.broadcast('a'))).details.sent, true);
    const startedMs = Date.now();
    const waited = await rejection(client.broadcast('b'));
    assert.equal(waited.code, 'unavailable');
    assert.equal(waited.details.sent, false);
    assert.ok(Date.now() - startedMs < 5_000, 'bounded by unavailableAfterMs');
    state.cut = false;
    await client.broadcast('c');
    // b took no seq, so nothing of the session is missing and a stays ahead of c.
    assert.deepEqual(logOrder(node.delivered, 'c-slot'), ['a', 'c']);
  } finally {
    client.close();
    await node.close();
  }
});

test('closing the client stops sending the unanswered broadcasts', async () => {
  const { node, state } = await partitionedNode();
  const client = clientFor(node.url, 'c-close');
  try {
    await rejection(client.broadcast('a'));
    await waitFor(() => state.requestCount > 4, 'sent on after it was reported');
    client.close();
    await sleep(50);
    const countAtClose = state.requestCount;
    await sleep(300);
    assert.equal(state.requestCount, countAtClose);
  } finally {
    client.close();
    await node.close();
  }
});

test('past abandonAfterMs the client stops sending it and later broadcasts use a new session', async () => {
  const { node, state } = await partitionedNode();
  const client = connect({
    endpoints: [node.url],
    clientId: 'c-gone',
    requestTimeoutMs: 100,
    unavailableAfterMs: 300,
    abandonAfterMs: 700,
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    batching: false,
  });
  try {
    await rejection(client.broadcast('a'));
    await sleep(800);
    const countAfterAbandon = state.requestCount;
    await sleep(300);
    assert.equal(state.requestCount, countAfterAbandon, 'no longer sent');
    assert.equal(client.clientId, 'c-gone~2');
    state.cut = false;
    assert.equal((await client.broadcast('b')).position, 1);
    assert.deepEqual(
      node.delivered.map((body) => [body.client, body.seq, body.payload]),
      [['c-gone~2', 1, 'b']],
    );
  } finally {
    client.close();
    await node.close();
  }
  assert.throws(
    () => connect({ endpoints: [node.url], unavailableAfterMs: 1_000, abandonAfterMs: 500 }),
    (error: unknown) => error instanceof ClientError && error.details.field === 'abandonAfterMs',
  );
});
