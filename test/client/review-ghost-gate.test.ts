/**
 * After a refusal breaks a session, the new session waits for the old one's lower seqs, so
 * one client's order holds across the break; against a scripted fake node, this proves that
 * a lower seq whose caller was already told `unavailable` (outcome unknown, sent on in the
 * background for up to `abandonAfterMs`) does not hold the later broadcasts past their own
 * `unavailableAfterMs`, and that when such a seq is refused after the new session has sent,
 * the client neither trips an assertion nor sends the seqs above it under a second seq.
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

function clientFor(url: string, clientId: string) {
  return connect({
    endpoints: [url],
    clientId,
    requestTimeoutMs: 100,
    unavailableAfterMs: 300,
    abandonAfterMs: 4_000,
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    batching: false,
  });
}

test('a lower seq already reported unavailable does not hold the next session past its bound', async () => {
  const node = await scriptedNode((body, response) => {
    if (body.payload === 'p1') return true; // never answered
    if (body.payload === 'p2') {
      node.reply(response, 413, { error: 'payload_too_large', message: 'too large' });
      return true;
    }
    return false;
  });
  const client = clientFor(node.url, 'c-ghost');
  try {
    const p1 = client.broadcast('p1').catch((error: unknown) => error);
    await assert.rejects(client.broadcast('p2'), { code: 'payload_too_large' });
    assert.equal(client.clientId, 'c-ghost~2');
    // Issued while p1 is still owed an answer: it waits for p1, but not past its own bound.
    const issuedMs = Date.now();
    const early = client.broadcast('early').then(
      () => Date.now() - issuedMs,
      () => Date.now() - issuedMs,
    );
    assert.equal(((await p1) as { code?: string }).code, 'unavailable');
    // p1 runs on in the background until abandonAfterMs (4 s); p3 does not wait for it.
    const startedMs = Date.now();
    const p3 = await client.broadcast('p3');
    assert.ok(Date.now() - startedMs < 2_500, `p3 waited ${Date.now() - startedMs} ms`);
    assert.equal(p3.duplicate, false);
    const earlyMs = await early;
    assert.ok(earlyMs < 3_000, `the early broadcast settled after ${earlyMs} ms`);
    const payloads = node.delivered.map((body) => body.payload);
    assert.ok(payloads.at(-1) === 'p3' && !payloads.includes('p1'), payloads.join());
  } finally {
    client.close();
    await node.close();
  }
});

test('a lower seq refused after the next session has sent fails the seqs above it', async () => {
  const state = { refuseP1: false, p1Refused: false, p2RequestsAfterRefusal: 0 };
  const node = await scriptedNode((body, response) => {
    if (body.payload === 'p1') {
      if (!state.refuseP1) return true;
      state.p1Refused = true;
      node.reply(response, 413, { error: 'payload_too_large', message: 'too large' });
      return true;
    }
    if (body.payload === 'p2') {
      if (state.p1Refused) state.p2RequestsAfterRefusal += 1;
      return true; // held behind p1, as a node does
    }
    if (body.payload === 'p3') {
      node.reply(response, 413, { error: 'payload_too_large', message: 'too large' });
      return true;
    }
    return false;
  });
  const client = clientFor(node.url, 'c-ghost2');
  try {
    const p1 = client.broadcast('p1').catch((error: unknown) => error);
    const p2 = client.broadcast('p2').catch((error: unknown) => error);
    await assert.rejects(client.broadcast('p3'), { code: 'payload_too_large' });
    assert.equal(((await p1) as { code?: string }).code, 'unavailable');
    assert.equal(((await p2) as { code?: string }).code, 'unavailable');
    await client.broadcast('p4');
    state.refuseP1 = true;
    await until(() => state.p1Refused, 'p1 to be refused on its next retry');
    // p2, above p1, can never be delivered in c-ghost2 and was told its outcome is unknown:
    // it stops, it does not go to a new seq (an attempt already on its way may still land).
    await new Promise((wake) => setTimeout(wake, 200));
    const requestsThen = state.p2RequestsAfterRefusal;
    await new Promise((wake) => setTimeout(wake, 300));
    assert.equal(state.p2RequestsAfterRefusal, requestsThen, 'p2 is no longer sent');
    await client.broadcast('p5');
    assert.deepEqual(
      node.delivered.map((body) => [body.client, body.seq, body.payload]),
      [
        ['c-ghost2~2', 1, 'p4'],
        ['c-ghost2~2', 2, 'p5'],
      ],
    );
  } finally {
    client.close();
    await node.close();
  }
});
