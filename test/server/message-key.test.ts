// A message's optional key end to end: the batch format carries it (a property over random
// runs with and without keys, owners and nonces: decode(encode(m)) = m, and batches without
// keys keep their older formats byte for byte), the store's record keeps it (and a record
// written before keys existed reads as before), and three real nodes take it over HTTP
// (single and batch), store it, and show it on GET /v1/messages, the SSE stream and the SDK;
// bad keys are refused with 400 naming the field, by the nodes and before sending by the SDK.
// (Keys over the binary protocol: test/server/binary-stream.test.ts.)
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import {
  batchFormatVersion,
  batchFormatVersionKeyed,
  batchFormatVersionOwned,
  type ClientMessage,
  decodeBatch,
  encodeBatch,
} from '../../src/broadcast/batch.ts';
import { connect } from '../../src/client/index.ts';
import { decodeRecordAt, encodeRecord, type StoredMessage } from '../../src/store/index.ts';
import { waitFor } from '../support/ports.ts';
import { broadcast, call, type HttpCluster, startHttpCluster } from './cluster.ts';

const messageArbitrary: fc.Arbitrary<ClientMessage> = fc
  .record({
    anonymous: fc.boolean(),
    seq: fc.integer({ min: 1, max: 1000 }),
    topic: fc.constantFrom('', 'orders', 'élan'),
    key: fc.option(fc.constantFrom('a', 'b', 'clé-ü', 'x'.repeat(255)), { nil: undefined }),
    owner: fc.option(fc.constantFrom('alice', 'bob'), { nil: undefined }),
    payload: fc.uint8Array({ maxLength: 16 }),
  })
  .map(({ anonymous, seq, topic, key, owner, payload }) => ({
    clientId: anonymous ? '' : 'c1',
    seq: anonymous ? 0 : seq,
    topic,
    payload,
    ...(key === undefined ? {} : { key }),
    ...(owner === undefined ? {} : { owner }),
  }));

test('a batch carries every message key; without keys its format is as before', () => {
  fc.assert(
    fc.property(fc.array(messageArbitrary, { minLength: 1, maxLength: 12 }), (messages) => {
      const data = encodeBatch(messages, 1000);
      const decoded = decodeBatch(data).messages.map((message) => ({
        ...message,
        payload: new Uint8Array(message.payload),
      }));
      assert.deepEqual(decoded, messages);
      const keyed = messages.some((message) => message.key !== undefined);
      const owned = messages.some((message) => message.owner !== undefined);
      const expected = keyed
        ? batchFormatVersionKeyed
        : owned
          ? batchFormatVersionOwned
          : batchFormatVersion;
      assert.equal(data[0], expected);
    }),
  );
});

test('a stored record keeps its key and compaction mark; older records read as before', () => {
  const base: StoredMessage = {
    position: 7,
    index: 3,
    term: 2,
    clientId: 'c',
    seq: 4,
    topic: 'accounts',
    payload: new Uint8Array([1, 2, 3]),
    logTimeMs: 5,
  };
  for (const message of [
    base,
    { ...base, key: 'acct-9' },
    { ...base, key: 'acct-9', payload: new Uint8Array(), compacted: true },
  ]) {
    const found = decodeRecordAt(encodeRecord(message), 0);
    assert.equal(found.kind, 'record');
    assert.deepEqual(found.kind === 'record' ? found.message : null, message);
  }
  // The layout without a key is the one written before keys existed: topic length, topic,
  // payload, with no flag bits set.
  const record = encodeRecord(base);
  const topicFieldAt = 8 + 40 + 2 + 1;
  assert.equal(record.readUInt16LE(topicFieldAt), Buffer.byteLength('accounts'));
});

let cluster: HttpCluster;

before(async () => {
  cluster = await startHttpCluster();
});

after(async () => {
  await cluster.close();
});

test('a key goes in over HTTP and the SDK and comes out on every read path', {
  timeout: 30_000,
}, async () => {
  const leader = await cluster.leader();
  const follower = await cluster.follower();
  const single = await broadcast(follower.url, { payload: 1, topic: 'acct', key: 'acct-1' });
  assert.equal(single.status, 200);
  const batch = await call(`${leader.url}/v1/broadcast/batch`, {
    method: 'POST',
    body: {
      client: 'keyed',
      seq: 1,
      messages: [
        { payload: 2, key: 'acct-2' },
        { payload: 3, key: 'acct-2' },
        { payload: 4 },
        { payload: 5, key: 'acct-1' },
      ],
    },
  });
  assert.equal(batch.status, 200);
  const client = connect({ endpoints: cluster.members.map((m) => m.url) });
  const sdk = await client.broadcast({ n: 6 }, { topic: 'acct', key: 'acct-3' });
  assert.notEqual(sdk.position, null);
  const first = single.body.index as number;
  const last = sdk.position as number;
  await waitFor(
    () => cluster.members.every((m) => m.node.status().lastPosition >= last),
    'every node applied the keyed messages',
  );
  const expected = ['acct-1', 'acct-2', 'acct-2', undefined, 'acct-1', 'acct-3'];
  for (const member of cluster.members) {
    const page = await call(`${member.url}/v1/messages?from=${first}&limit=6`);
    assert.deepEqual(
      page.body.messages.map((m: { key?: string }) => m.key),
      expected,
      `node ${member.id} shows the keys`,
    );
  }
  const keys: (string | undefined)[] = [];
  const stop = new AbortController();
  for await (const message of client.subscribe({ from: first, signal: stop.signal })) {
    keys.push(message.key);
    if (message.position === last) stop.abort();
  }
  assert.deepEqual(keys, expected);
  client.close();
});

test('a bad key is refused with 400 naming the field, before anything is sent', {
  timeout: 30_000,
}, async () => {
  const leader = await cluster.leader();
  for (const key of ['', 'k'.repeat(256), 'a\u0007b', 42, null]) {
    const answer = await broadcast(leader.url, { payload: 1, key });
    assert.equal(answer.status, 400, `key ${JSON.stringify(key)}`);
    assert.equal(answer.body.error, 'invalid_argument');
    assert.equal(answer.body.field, 'key');
  }
  const batch = await call(`${leader.url}/v1/broadcast/batch`, {
    method: 'POST',
    body: { client: 'bad-key', seq: 1, messages: [{ payload: 1, key: '' }] },
  });
  assert.equal(batch.status, 400);
  assert.equal(batch.body.field, 'messages[0].key');
  const client = connect({ endpoints: [leader.url] });
  await assert.rejects(client.broadcast(1, { key: 'é'.repeat(128) }), {
    code: 'invalid_argument',
    details: { field: 'key' },
  });
  client.close();
});
