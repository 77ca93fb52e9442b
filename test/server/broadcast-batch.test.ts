// POST /v1/broadcast/batch on three real nodes: a run of one session's seqs lands at dense
// positions in seq order with one result per message, a resent batch is answered with the
// original positions as duplicates, a message the session refuses gets its own error
// result, and malformed batches are refused with the field named.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { call, type HttpCluster, startHttpCluster } from './cluster.ts';

let cluster: HttpCluster;

before(async () => {
  cluster = await startHttpCluster({ payloadBytesMax: 1024 });
});

after(async () => {
  await cluster.close();
});

const batch = (url: string, body: unknown) => call(`${url}/v1/broadcast/batch`, { body });

test('a batch lands in seq order at dense positions; a resend is answered as duplicates', async () => {
  const follower = await cluster.follower();
  const messages = Array.from({ length: 50 }, (_, n) => ({ payload: { n }, topic: 'b' }));
  const first = await batch(follower.url, { client: 'batcher', seq: 1, messages });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const indexes = first.body.results.map((result: { index: number }) => result.index);
  assert.equal(indexes.length, 50);
  for (const [at, index] of indexes.entries()) assert.equal(index, indexes[0] + at);
  assert.ok(first.body.results.every((result: { duplicate: boolean }) => !result.duplicate));
  const page = await call(`${follower.url}/v1/messages?from=${indexes[0]}&limit=50`);
  assert.deepEqual(
    page.body.messages.map((m: { seq: number; payload: unknown }) => [m.seq, m.payload]),
    messages.map((message, at) => [at + 1, message.payload]),
  );
  // Resent from seq 41 with five new ones: ten duplicates at their first positions.
  const resend = await batch(follower.url, {
    client: 'batcher',
    seq: 41,
    messages: Array.from({ length: 15 }, (_, n) => ({ payload: { n: 40 + n }, topic: 'b' })),
  });
  assert.equal(resend.status, 200);
  const results = resend.body.results as { index: number; duplicate: boolean }[];
  assert.deepEqual(
    results.slice(0, 10).map((result) => [result.index, result.duplicate]),
    indexes.slice(40).map((index: number) => [index, true]),
  );
  assert.ok(results.slice(10).every((result) => !result.duplicate));
  assert.equal(results[10]!.index, indexes[49] + 1);
});

test('a message the session refuses gets its own error result', async () => {
  const leader = await cluster.leader();
  const answer = await batch(leader.url, {
    client: 'starts-late',
    seq: 7,
    messages: [{ payload: 1 }, { payload: 2 }],
  });
  assert.equal(answer.status, 200);
  for (const result of answer.body.results) {
    assert.equal(result.error, 'session_unknown');
    assert.equal(result.status, 409);
    assert.match(result.message, /session/);
  }
});

test('malformed batches are refused whole, with the field named', async () => {
  const leader = await cluster.leader();
  const cases: [unknown, number, string][] = [
    [{ seq: 1, messages: [{ payload: 1 }] }, 400, 'client'],
    [{ client: 'c', messages: [{ payload: 1 }] }, 400, 'seq'],
    [{ client: 'c', seq: 1, messages: [] }, 400, 'messages'],
    [{ client: 'c', seq: 1, messages: 'x' }, 400, 'messages'],
    [{ client: 'c', seq: 1, messages: [{}] }, 400, 'messages[0].payload'],
    [{ client: 'c', seq: 1, messages: [{ payload: 1, seq: 2 }] }, 400, 'messages[0].seq'],
    [
      { client: 'c', seq: 1, messages: [{ payload: 1 }, { payload: 2, topic: 3 }] },
      400,
      'messages[1].topic',
    ],
    [
      { client: 'c', seq: 1, messages: [{ payload: 1 }, { payload: 2, key: '' }] },
      400,
      'messages[1].key',
    ],
    [
      { client: 'c', seq: 2 ** 53 - 2, messages: [{ payload: 1 }, { payload: 2 }, { payload: 3 }] },
      400,
      'seq',
    ],
    [{ client: 'c', seq: 1, messages: [1] }, 400, 'messages[0]'],
    [{ client: 'c', seq: 1, extra: 1, messages: [{ payload: 1 }] }, 400, 'extra'],
    [
      { client: 'c', seq: 1, messages: Array.from({ length: 1001 }, () => ({ payload: 1 })) },
      400,
      'messages',
    ],
  ];
  for (const [body, status, field] of cases) {
    const answer = await batch(leader.url, body);
    assert.equal(answer.status, status, JSON.stringify(body).slice(0, 80));
    assert.equal(answer.body.field, field, JSON.stringify(answer.body));
  }
  const tooLarge = await batch(leader.url, {
    client: 'c',
    seq: 1,
    messages: [{ payload: 'x'.repeat(2000) }],
  });
  assert.equal(tooLarge.status, 413);
  assert.equal(tooLarge.body.error, 'payload_too_large');
});
