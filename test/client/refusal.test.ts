/**
 * Refusals that break a session, against a scripted fake node (node:http on 127.0.0.1) that
 * delivers each session's seqs in order: when a lower seq is refused after a higher one,
 * the seqs between the two move ahead of those the first refusal moved, so the client's
 * messages keep their order of issue, and each message is delivered under one (session, seq).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { logOrder, scriptedNode } from './scripted-node.ts';

test('a lower seq refused after a higher one: the seqs between keep their place', async () => {
  let refuseSecond: (() => void) | null = null;
  let firstRefused = false;
  const node = await scriptedNode((body, response) => {
    if (body.client !== 'c-low') return false;
    if (body.seq === 4) {
      node.reply(response, 413, { error: 'payload_too_large', message: 'too large' });
      firstRefused = true;
      refuseSecond?.();
      return true;
    }
    if (body.seq === 2) {
      // Refused too, but only after seq 4 was.
      refuseSecond = () =>
        node.reply(response, 400, { error: 'invalid_argument', message: 'bad', field: 'x' });
      if (firstRefused) refuseSecond();
      return true;
    }
    return false;
  });
  const client = connect({
    endpoints: [node.url],
    clientId: 'c-low',
    requestTimeoutMs: 200,
    batching: false,
  });
  try {
    const outcomes = await Promise.allSettled(
      ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'].map((payload) => client.broadcast(payload)),
    );
    assert.deepEqual(
      outcomes.map((outcome) => outcome.status),
      ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
    );
    await client.broadcast('p7');
    assert.deepEqual(logOrder(node.delivered, 'c-low'), ['p1', 'p3', 'p5', 'p6', 'p7']);
    const payloads = node.delivered.map((body) => body.payload);
    assert.equal(new Set(payloads).size, payloads.length, 'each under one (session, seq)');
  } finally {
    client.close();
    await node.close();
  }
});

test('a refusal inside the new session moves the seqs behind it on again, in order', async () => {
  const node = await scriptedNode((body, response) => {
    if (body.payload === 'p2' || body.payload === 'p3') {
      node.reply(response, 413, { error: 'payload_too_large', message: 'too large' });
      return true;
    }
    return false;
  });
  const client = connect({
    endpoints: [node.url],
    clientId: 'c-again',
    requestTimeoutMs: 200,
    batching: false,
  });
  try {
    const outcomes = await Promise.allSettled(
      ['p1', 'p2', 'p3', 'p4', 'p5'].map((payload) => client.broadcast(payload)),
    );
    assert.deepEqual(
      outcomes.map((outcome) => outcome.status),
      ['fulfilled', 'rejected', 'rejected', 'fulfilled', 'fulfilled'],
    );
    assert.deepEqual(logOrder(node.delivered, 'c-again'), ['p1', 'p4', 'p5']);
    assert.equal(client.clientId, 'c-again~3');
  } finally {
    client.close();
    await node.close();
  }
});
