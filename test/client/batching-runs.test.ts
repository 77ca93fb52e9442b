/**
 * The SDK's runs in broadcastRun frames, against an exchange that records what it is asked
 * (in process): broadcasts issued together leave as one run with their payloads' JSON text,
 * session, seqs, topics, keys and nonce; a result per message becomes that broadcast's
 * answer, and a retryable error in it is retried alone; where the frame cannot go (the
 * exchange answers null) the run leaves as a batch request; a run refused whole goes one
 * by one.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type {
  HttpExchange,
  HttpExchangeRequest,
  HttpExchangeResponse,
  RunExchangeAnswer,
  RunExchangeRequest,
} from '../../src/client/exchange.ts';
import { connect } from '../../src/client/index.ts';
import type { RunResult } from '../../src/transport/client-frames.ts';

const json = (status: number, body: unknown): HttpExchangeResponse => ({
  status,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

/** A node as an exchange: numbers what it takes; `runs` decides how runs are answered. */
function recordingExchange(
  answerRun: (request: RunExchangeRequest, next: () => number) => RunExchangeAnswer | null,
) {
  let position = 0;
  const next = () => ++position;
  const runs: RunExchangeRequest[] = [];
  const posts: string[] = [];
  const exchange = async (request: HttpExchangeRequest): Promise<HttpExchangeResponse> => {
    const path = new URL(request.url).pathname;
    if (request.method === 'GET') return json(200, { role: 'leader' });
    posts.push(path);
    if (path === '/v1/broadcast') return json(200, { index: next(), term: 1, duplicate: false });
    const { messages } = JSON.parse(request.body ?? '{}') as { messages: unknown[] };
    return json(200, {
      results: messages.map(() => ({ index: next(), term: 1, duplicate: false })),
    });
  };
  const broadcastRun = async (request: RunExchangeRequest) => {
    runs.push(request);
    return answerRun(request, next);
  };
  return { exchange: Object.assign(exchange, { broadcastRun }) as HttpExchange, runs, posts };
}

/** What a run's message carries to the frame. */
function fieldsOf(message: RunExchangeRequest['messages'][number] | undefined) {
  return [message?.payload, message?.payloadQuoted === true, message?.topic, message?.key];
}

const taken = (request: RunExchangeRequest, next: () => number): RunExchangeAnswer => ({
  kind: 'results',
  results: request.messages.map(
    (): RunResult => ({ kind: 'ok', position: next(), term: 2, duplicate: false }),
  ),
});

test('broadcasts issued together leave as one run, and each takes its result', async () => {
  const node = recordingExchange(taken);
  const client = connect({ endpoints: ['http://node:1'], exchange: node.exchange, clientId: 'r' });
  try {
    const answers = await Promise.all(
      Array.from({ length: 5 }, (_, n) =>
        client.broadcast({ n }, n === 2 ? { topic: 'orders', key: 'k' } : {}),
      ),
    );
    assert.deepEqual(
      answers.map((answer) => [answer.position, answer.term, answer.duplicate]),
      Array.from({ length: 5 }, (_, n) => [n + 1, 2, false]),
    );
    assert.equal(node.runs.length, 1);
    const [run] = node.runs;
    assert.equal(run?.url, 'http://node:1/v1/broadcast/batch');
    assert.deepEqual([run?.clientId, run?.firstSeq], ['r', 1]);
    assert.match(run?.nonce ?? '', /^[0-9a-f]{32}$/);
    assert.deepEqual(fieldsOf(run?.messages[2]), ['{"n":2}', false, 'orders', 'k']);
    assert.deepEqual(fieldsOf(run?.messages[0]), ['{"n":0}', false, undefined, undefined]);
    assert.deepEqual(node.posts, []);
    // A broadcast on its own is a run of one; a string with nothing to escape is quoted
    // where it is written.
    await client.broadcast('alone');
    assert.equal(node.runs.at(-1)?.messages.length, 1);
    assert.deepEqual(fieldsOf(node.runs.at(-1)?.messages[0]), [
      'alone',
      true,
      undefined,
      undefined,
    ]);
  } finally {
    client.close();
  }
});

test('a retryable error in a result is retried alone; the others keep their results', async () => {
  const node = recordingExchange((request, next) => ({
    kind: 'results',
    results: request.messages.map((_, at): RunResult => {
      if (at !== 1) return { kind: 'ok', position: next(), term: 1, duplicate: false };
      return {
        kind: 'error',
        status: 503,
        code: 'no_leader',
        message: 'no leader now',
        details: '{"leaderId":null}',
      };
    }),
  }));
  const client = connect({
    endpoints: ['http://node:1'],
    exchange: node.exchange,
    backoffBaseMs: 1,
  });
  try {
    const answers = await Promise.all(Array.from({ length: 3 }, (_, n) => client.broadcast(n)));
    assert.deepEqual(
      answers.map((answer) => answer.position),
      [1, 3, 2],
    );
    assert.deepEqual(node.posts, ['/v1/broadcast'], 'the retry goes alone');
  } finally {
    client.close();
  }
});

test('a fatal error in a result refuses that broadcast with its code and details', async () => {
  const node = recordingExchange(() => ({
    kind: 'results',
    results: [
      { kind: 'error', status: 403, code: 'forbidden', message: 'no', details: '{"topic":"t"}' },
    ],
  }));
  const client = connect({ endpoints: ['http://node:1'], exchange: node.exchange });
  try {
    await assert.rejects(client.broadcast(1, { topic: 't' }), (error: Error) => {
      const { code, details } = error as Error & { code: string; details: Record<string, unknown> };
      assert.equal(code, 'forbidden');
      assert.equal(details.topic, 't');
      assert.equal(details.status, 403);
      return true;
    });
  } finally {
    client.close();
  }
});

test('where the frame cannot go, the run leaves as a batch request', async () => {
  const node = recordingExchange(() => null);
  const client = connect({ endpoints: ['http://node:1'], exchange: node.exchange });
  try {
    const answers = await Promise.all(Array.from({ length: 4 }, (_, n) => client.broadcast(n)));
    assert.deepEqual(
      answers.map((answer) => answer.position),
      [1, 2, 3, 4],
    );
    assert.equal(node.runs.length, 1);
    assert.deepEqual(node.posts, ['/v1/broadcast/batch']);
  } finally {
    client.close();
  }
});

test('a run refused whole goes one by one, each message with its own answer', async () => {
  const node = recordingExchange(() => ({
    kind: 'refused',
    response: json(413, { error: 'payload_too_large', message: 'too large' }),
  }));
  const client = connect({ endpoints: ['http://node:1'], exchange: node.exchange });
  try {
    const answers = await Promise.all(Array.from({ length: 3 }, (_, n) => client.broadcast(n)));
    assert.deepEqual(
      answers.map((answer) => answer.position),
      [1, 2, 3],
    );
    assert.deepEqual(node.posts, ['/v1/broadcast', '/v1/broadcast', '/v1/broadcast']);
  } finally {
    client.close();
  }
});

test('a string payload sent again, and one after it that differs, each leave as their own JSON text', async () => {
  const node = recordingExchange(taken);
  const client = connect({ endpoints: ['http://node:1'], exchange: node.exchange });
  const plain = 'x'.repeat(40);
  // The same string twice, an equal one built anew, then strings that each need another
  // way (a quote to escape, a character past ASCII, a control), then the first again.
  const payloads = [plain, plain, 'x'.repeat(39) + 'x', 'say "hi"', 'café', 'a\nb', plain, ''];
  try {
    await Promise.all(payloads.map((payload) => client.broadcast(payload)));
    const messages = node.runs.flatMap((run) => [...run.messages]);
    assert.equal(messages.length, payloads.length);
    const texts = messages.map((message) =>
      message.payloadQuoted === true ? `"${message.payload}"` : message.payload,
    );
    assert.deepEqual(
      texts,
      payloads.map((payload) => JSON.stringify(payload)),
    );
    assert.deepEqual(
      messages.map((message) => message.payloadAscii === true),
      [true, true, true, false, false, false, true, true],
    );
  } finally {
    client.close();
  }
});
