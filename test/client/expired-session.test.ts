/**
 * A session the nodes forgot (`session_unknown`: idle past their sessionTtlMs, or a log time
 * that jumped) while some of its messages were delivered with their answers lost: none of
 * what was sent in it may move to a new session, or it would be delivered twice. Against a
 * scripted fake node on 127.0.0.1 that delivers seqs 2 and 3 but loses their answers, then
 * forgets the session: every payload is delivered at most once, the messages in doubt fail
 * with their outcome unknown, and the client goes on in a new session.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientError, connect } from '../../src/client/index.ts';
import { waitFor } from '../support/ports.ts';
import { scriptedNode } from './scripted-node.ts';

test('after session_unknown nothing that was sent moves, so nothing is delivered twice', async () => {
  const state = { forgotten: false };
  const node = await scriptedNode((body, response) => {
    if (body.client !== 'c-exp') return false;
    if (state.forgotten) {
      node.reply(response, 409, { error: 'session_unknown', message: 'unknown session' });
      return true;
    }
    if (body.seq === 2 || body.seq === 3) {
      // Delivered, but the answer is lost.
      if (!node.delivered.some((d) => d.client === body.client && d.seq === body.seq)) {
        node.delivered.push(body);
      }
      return true;
    }
    return body.seq === 4; // lost on the way
  });
  const client = connect({
    endpoints: [node.url],
    clientId: 'c-exp',
    requestTimeoutMs: 200,
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    batching: false,
  });
  try {
    const pending = ['p1', 'p2', 'p3', 'p4'].map((payload) => client.broadcast(payload));
    await waitFor(() => node.delivered.length === 3, 'seqs 1–3 delivered');
    state.forgotten = true;
    const outcomes = await Promise.allSettled(pending);
    assert.equal(outcomes[0]!.status, 'fulfilled');
    const codes = outcomes
      .slice(1)
      .map((outcome) =>
        outcome.status === 'rejected' && outcome.reason instanceof ClientError
          ? outcome.reason.code
          : outcome.status,
      );
    // Whichever retry hears session_unknown first fails with it; the others are in doubt.
    assert.equal(codes.filter((code) => code === 'session_unknown').length, 1, String(codes));
    assert.equal(codes.filter((code) => code === 'unavailable').length, 2, String(codes));
    state.forgotten = false;
    const answer = await client.broadcast('p5');
    assert.equal(answer.position, 4);
    assert.equal(client.clientId, 'c-exp~2');
    const payloads = node.delivered.map((body) => body.payload);
    assert.deepEqual(payloads, ['p1', 'p2', 'p3', 'p5']);
  } finally {
    client.close();
    await node.close();
  }
});

test('session_unknown before any answer while seq 1 is on its way: a gap to wait out', async () => {
  let firstLost = true;
  const node = await scriptedNode((body, response) => {
    if (body.client !== 'c-new') return false;
    if (body.seq === 1 && firstLost) return true; // lost on the way, the first time
    if (body.seq > 1 && !node.delivered.some((d) => d.client === 'c-new' && d.seq === 1)) {
      node.reply(response, 409, { error: 'session_unknown', message: 'unknown session' });
      firstLost = false;
      return true;
    }
    return false;
  });
  const client = connect({
    endpoints: [node.url],
    clientId: 'c-new',
    requestTimeoutMs: 200,
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    batching: false,
  });
  try {
    const outcomes = await Promise.allSettled(
      ['p1', 'p2', 'p3'].map((payload) => client.broadcast(payload)),
    );
    assert.deepEqual(
      outcomes.map((outcome) => outcome.status),
      ['fulfilled', 'fulfilled', 'fulfilled'],
    );
    // Nothing was refused: the session goes on, in order.
    assert.deepEqual(
      node.delivered.map((body) => [body.client, body.seq, body.payload]),
      [
        ['c-new', 1, 'p1'],
        ['c-new', 2, 'p2'],
        ['c-new', 3, 'p3'],
      ],
    );
    assert.equal(client.clientId, 'c-new');
  } finally {
    client.close();
    await node.close();
  }
});
