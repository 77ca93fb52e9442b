/**
 * A broadcast unanswered past unavailableAfterMs retires its session: later broadcasts go to
 * a new one, which sends nothing while the old session still runs broadcasts whose callers
 * were told nothing, so none of those answered as delivered is overtaken. Against a scripted
 * fake node on 127.0.0.1 that holds each session's seqs in order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { waitFor } from '../support/ports.ts';
import { scriptedNode } from './scripted-node.ts';

test('a broadcast issued after a retirement waits for the old session’s live ones', async () => {
  const state = { cut: true };
  const node = await scriptedNode(() => state.cut);
  const client = connect({
    endpoints: [node.url],
    clientId: 'c-gate',
    requestTimeoutMs: 100,
    unavailableAfterMs: 600,
    abandonAfterMs: 5_000,
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    batching: false,
  });
  try {
    const a = client.broadcast('a').then(
      () => 'fulfilled',
      (error: { code?: string }) => error.code,
    );
    await new Promise((wake) => setTimeout(wake, 300));
    const b = client.broadcast('b'); // seq 2 of the same session, behind a
    assert.equal(await a, 'unavailable');
    assert.equal(client.clientId, 'c-gate~2', 'later broadcasts go to a new session');
    const d = client.broadcast('d');
    state.cut = false;
    // a is sent on and arrives; b follows it; only then may d go.
    assert.ok((await b).position !== null);
    assert.ok((await d).position !== null);
    const order = node.delivered.map((body) => body.payload);
    assert.deepEqual(order, ['a', 'b', 'd']);
  } finally {
    client.close();
    await node.close();
  }
});

test('after a retirement, later broadcasts do not wait for the unanswered one itself', async () => {
  const state = { cut: true };
  const node = await scriptedNode((body) => state.cut || body.payload === 'a');
  const client = connect({
    endpoints: [node.url],
    clientId: 'c-free',
    requestTimeoutMs: 100,
    unavailableAfterMs: 300,
    abandonAfterMs: 60_000,
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    batching: false,
  });
  try {
    await assert.rejects(client.broadcast('a'), { code: 'unavailable' });
    state.cut = false;
    const startedMs = Date.now();
    const answer = await client.broadcast('b'); // a is still sent, and never answered
    assert.equal(answer.position, 1);
    assert.ok(Date.now() - startedMs < 2_000, 'not held behind a');
    await waitFor(() => node.delivered.length === 1, 'b delivered');
    assert.deepEqual(
      node.delivered.map((body) => [body.client, body.seq, body.payload]),
      [['c-free~2', 1, 'b']],
    );
  } finally {
    client.close();
    await node.close();
  }
});
