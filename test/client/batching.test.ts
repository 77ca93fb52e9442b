/**
 * The SDK's batching: broadcasts issued together leave as one POST /v1/broadcast/batch per
 * run of seqs, a node without the batch route gets them one by one (and is not asked
 * again), a message refused inside a batch fails alone while the others are delivered, and
 * batching can be turned off.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { startHttpCluster } from '../server/cluster.ts';
import { waitFor } from '../support/ports.ts';
import { allMessages, checkExactlyOnce } from './support.ts';

/** A fake node that numbers what it is sent; with `batchRoute` false it 404s batches. */
async function fakeNode(batchRoute: boolean) {
  const requests: string[] = [];
  let position = 0;
  const server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk) => {
      text += chunk;
    });
    request.on('end', () => {
      requests.push(`${request.method} ${request.url}`);
      const reply = (status: number, body: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      };
      if (request.url === '/v1/broadcast') {
        reply(200, { index: ++position, term: 1, duplicate: false });
      } else if (request.url === '/v1/broadcast/batch' && batchRoute) {
        const { messages } = JSON.parse(text) as { messages: unknown[] };
        reply(200, {
          results: messages.map(() => ({ index: ++position, term: 1, duplicate: false })),
        });
      } else {
        reply(404, { error: 'not_found', message: 'no such route' });
      }
    });
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, requests, close: () => new Promise((done) => server.close(done)) };
}

const posts = (requests: readonly string[], path: string) =>
  requests.filter((request) => request === `POST ${path}`).length;

test('broadcasts issued together leave as one batch request', async () => {
  const node = await fakeNode(true);
  const client = connect({ endpoints: [node.url] });
  try {
    const answers = await Promise.all(Array.from({ length: 100 }, (_, n) => client.broadcast(n)));
    assert.deepEqual(
      answers.map((answer) => answer.position),
      Array.from({ length: 100 }, (_, n) => n + 1),
    );
    assert.ok(posts(node.requests, '/v1/broadcast/batch') <= 2, node.requests.join('\n'));
    assert.equal(posts(node.requests, '/v1/broadcast'), 0);
    // A broadcast on its own goes as a plain POST.
    await client.broadcast('alone');
    assert.equal(posts(node.requests, '/v1/broadcast'), 1);
  } finally {
    client.close();
    await node.close();
  }
});

test('a node without the batch route gets the messages one by one, and no more batches', async () => {
  const node = await fakeNode(false);
  const client = connect({ endpoints: [node.url] });
  try {
    for (let round = 0; round < 2; round++) {
      const answers = await Promise.all(Array.from({ length: 20 }, () => client.broadcast('m')));
      assert.equal(new Set(answers.map((answer) => answer.position)).size, 20);
    }
    assert.equal(posts(node.requests, '/v1/broadcast/batch'), 1);
    assert.equal(posts(node.requests, '/v1/broadcast'), 40);
  } finally {
    client.close();
    await node.close();
  }
});

test('batching off: one request per broadcast', async () => {
  const node = await fakeNode(true);
  const client = connect({ endpoints: [node.url], batching: false });
  try {
    await Promise.all(Array.from({ length: 10 }, () => client.broadcast('m')));
    assert.equal(posts(node.requests, '/v1/broadcast'), 10);
    assert.equal(posts(node.requests, '/v1/broadcast/batch'), 0);
    assert.throws(() => connect({ endpoints: [node.url], batching: 1 as never }), {
      code: 'invalid_argument',
    });
  } finally {
    client.close();
    await node.close();
  }
});

test('on real nodes: an oversized message fails alone, the rest are delivered exactly once', async () => {
  const cluster = await startHttpCluster({ payloadBytesMax: 1024 });
  const client = connect({
    endpoints: cluster.members.map((m) => m.url),
    clientId: 'c-batch',
    requestTimeoutMs: 1_000,
  });
  try {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 60 }, (_, n) => client.broadcast(n === 30 ? 'x'.repeat(4000) : n)),
    );
    const refused = outcomes.filter((outcome) => outcome.status === 'rejected');
    assert.equal(refused.length, 1);
    assert.equal((refused[0] as PromiseRejectedResult).reason.code, 'payload_too_large');
    const member = cluster.members[0]!;
    const lastIndex = Math.max(
      ...outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value.position! : 0)),
    );
    await waitFor(() => member.node.status().lastPosition >= lastIndex, 'all delivered here');
    const messages = await allMessages(member.url);
    const delivered = messages.filter((message) => message.client.startsWith('c-batch'));
    assert.equal(delivered.length, 59);
    // Seqs 1..30 in the first session; the 29 in flight behind the refused one move to
    // `~2` in their order of issue: one order, each exactly once.
    assert.equal(
      checkExactlyOnce(
        messages.filter((m) => m.client === 'c-batch'),
        'c-batch',
        30,
      ),
      null,
    );
    assert.deepEqual(
      delivered.map((message) => message.payload),
      Array.from({ length: 60 }, (_, n) => n).filter((n) => n !== 30),
    );
    assert.deepEqual(
      delivered.slice(30).map((message) => [message.client, message.seq]),
      Array.from({ length: 29 }, (_, n) => ['c-batch~2', n + 1]),
    );
    // The client goes on in its new session, after the moved ones.
    const next = await client.broadcast('after');
    assert.equal(next.duplicate, false);
    await waitFor(() => member.node.status().lastPosition >= next.position!, 'the last delivered');
    const last = (await allMessages(member.url)).at(-1)!;
    assert.deepEqual([last.client, last.seq, last.payload], ['c-batch~2', 30, 'after']);
  } finally {
    client.close();
    await cluster.close();
  }
});

test('a batch answered with something that is not an object: the messages go one by one', async () => {
  let singles = 0;
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      response.writeHead(request.method === 'POST' ? 200 : 404, {
        'content-type': 'application/json',
      });
      if (request.method !== 'POST') response.end('{}');
      else if (request.url === '/v1/broadcast/batch') response.end('null');
      else response.end(JSON.stringify({ index: ++singles, term: 1, duplicate: false }));
    });
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = connect({ endpoints: [url] });
  try {
    const answers = await Promise.all(Array.from({ length: 5 }, (_, n) => client.broadcast(n)));
    assert.equal(new Set(answers.map((answer) => answer.position)).size, 5);
    assert.equal(singles, 5);
  } finally {
    client.close();
    server.closeAllConnections();
    await new Promise((done) => server.close(done));
  }
});
