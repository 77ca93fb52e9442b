/**
 * Abandoning an unanswered broadcast moves later broadcasts to a new session at once, so a
 * broadcast issued before the abandon but still running in the old session (held behind the
 * abandoned one) could be delivered after them; against a scripted fake node that holds each
 * session's seqs in order, where the abandoned message reaches the log late, this proves its
 * caller is told its outcome is unknown before any later broadcast is issued, never answered
 * as delivered behind them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { scriptedNode } from './scripted-node.ts';

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadlineMs = Date.now() + 5_000;
  while (!condition()) {
    assert.ok(Date.now() < deadlineMs, `timed out waiting for ${what}`);
    await new Promise((wake) => setTimeout(wake, 5));
  }
}

test('a broadcast held behind an abandoned one is reported unknown before later ones go', async () => {
  const state = { cut: true };
  const node = await scriptedNode(() => state.cut);
  const client = connect({
    endpoints: [node.url],
    clientId: 'c-inv',
    requestTimeoutMs: 100,
    unavailableAfterMs: 1_000,
    abandonAfterMs: 1_300,
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    batching: false,
  });
  try {
    const a = await client.broadcast('a').then(
      () => null,
      (error: unknown) => error,
    );
    assert.ok(a !== null, 'a is unanswered');
    // b takes seq 2 of the same session, behind a: a is abandoned about 300 ms from now, long
    // before b's own deadline (1 s away).
    assert.equal(client.clientId, 'c-inv', 'a is not abandoned yet');
    let bOutcome: 'pending' | 'fulfilled' | 'rejected' = 'pending';
    const b = client.broadcast('b');
    b.then(
      () => {
        bOutcome = 'fulfilled';
      },
      () => {
        bOutcome = 'rejected';
      },
    );
    await until(() => client.clientId === 'c-inv~2', 'a to be abandoned');
    await new Promise((wake) => setImmediate(wake));
    assert.equal(
      bOutcome,
      'rejected',
      "b's caller knows its outcome is unknown before d is issued",
    );
    state.cut = false;
    const d = await client.broadcast('d');
    assert.equal(d.index, 1);
    // The abandoned a reaches the log late (an entry a node had taken commits after all):
    // b, still sent on, follows it there, after d.
    node.delivered.push({ client: 'c-inv', seq: 1, payload: 'a' });
    await until(() => node.delivered.some((body) => body.payload === 'b'), 'b delivered');
    await Promise.allSettled([b]);
    assert.equal(bOutcome, 'rejected', 'b was never answered as delivered in order');
  } finally {
    client.close();
    await node.close();
  }
});
