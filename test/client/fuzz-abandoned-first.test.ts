/**
 * A session whose first message was sent and then abandoned (no answer by abandonAfterMs)
 * may still get it later: a slow commit lands after the client stopped sending. So a
 * later seq answered `session_unknown` is not refused for good — it could be delivered
 * once the first lands, after a copy of it still on its way — and its caller must hear
 * `unavailable` (outcome unknown), not the definite `session_unknown`. Found by a seeded
 * fault run (abandonAfterMs equal to unavailableAfterMs, slow commits): the nodes delivered
 * a broadcast whose caller had been told `session_unknown`. Against a scripted fake node on
 * 127.0.0.1 that never answers seq 1 and answers seq 2 `session_unknown` while seq 1 is
 * missing, as a node does that holds no lower seq of the session.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClientError, connect } from '../../src/client/index.ts';
import { scriptedNode } from './scripted-node.ts';

test('session_unknown after the first message was abandoned leaves the outcome unknown', async () => {
  const node = await scriptedNode((body, response) => {
    if (body.seq === 1) return true; // a slow commit: never answered while the client asks
    node.reply(response, 409, { error: 'session_unknown', message: 'unknown session' });
    return true;
  });
  const client = connect({
    endpoints: [node.url],
    clientId: 'c-abandoned',
    requestTimeoutMs: 50,
    unavailableAfterMs: 200,
    abandonAfterMs: 200,
    backoffBaseMs: 5,
    backoffMaxMs: 20,
    batching: false,
  });
  try {
    const a = client.broadcast('a').then(
      () => null,
      (error: unknown) => error,
    );
    await sleep(150);
    const b = client.broadcast('b').then(
      () => null,
      (error: unknown) => error,
    ); // seq 2, sent while seq 1 is still being sent, then after it was abandoned
    const [aFailure, bFailure] = await Promise.all([a, b]);
    assert.ok(aFailure instanceof ClientError && bFailure instanceof ClientError);
    assert.equal(aFailure.code, 'unavailable');
    assert.equal(aFailure.details.sent, true);
    // b's copies may land once a does: its outcome is unknown, not refused.
    assert.equal(bFailure.code, 'unavailable', bFailure.message);
    assert.equal(bFailure.details.sent, true);
  } finally {
    client.close();
    await node.close();
  }
});
