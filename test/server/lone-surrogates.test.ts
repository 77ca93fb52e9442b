// Strings that have no UTF-8 form are refused where they enter, never stored changed. A JSON
// string may hold a lone surrogate ("\ud800"); stored as UTF-8 it would become U+FFFD, so a
// message would be delivered under another client id, topic or key than its sender's (while
// the sender heard nothing until its deadline), and a member id would join the configuration
// yet be refused by every peer frame. Proved by a property over the shared message rules (any
// string they accept comes back the same from UTF-8), and against three real nodes: a
// property over POST /v1/broadcast's `client` (200 and read back unchanged, or 400 naming
// the field), each field of single and batch broadcasts, and POST /v1/members (which also
// refuses control characters in an id, as client ids and topics do).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { requestedMemberProblem } from '../../src/broadcast/membership.ts';
import { clientIdProblem, keyProblem, topicProblem } from '../../src/broadcast/message-rules.ts';
import { broadcast, call, type HttpCluster, startHttpCluster } from './cluster.ts';

/** Any UTF-16 text, lone surrogates included, with surrogates drawn often. */
const anyText = fc.string({
  unit: fc.oneof(
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code)),
    fc.constantFrom('a', 'é', '😀'),
  ),
  maxLength: 12,
});

function utf8RoundTrip(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8');
}

test('whatever the message rules accept comes back the same from UTF-8', () => {
  fc.assert(
    fc.property(anyText, (text) => {
      const accepted = [
        clientIdProblem(text, 'client'),
        topicProblem(text, { field: 'topic', reservedAllowed: false }),
        keyProblem(text, 'key'),
        requestedMemberProblem({ id: text, address: '127.0.0.1:7001', voter: true }),
      ].some((problem) => problem === null);
      if (accepted) assert.equal(utf8RoundTrip(text), text);
    }),
    { numRuns: 2000 },
  );
});

let cluster: HttpCluster;

before(async () => {
  // A short deadline: a request the node never answers fails the test in seconds.
  cluster = await startHttpCluster({ requestTimeoutMs: 3000 }, { requestTimeoutMs: 2500 });
});

after(async () => {
  await cluster.close();
});

const loneSurrogates = ['\ud800', '\udc00', 'a\udbff', '\udfffb', '\udc00\ud800'];

test('a client, topic or key with a lone surrogate is a 400 naming the field', {
  timeout: 60_000,
}, async () => {
  const { url } = await cluster.follower();
  for (const text of loneSurrogates) {
    const bodies: [Record<string, unknown>, string][] = [
      [{ payload: 1, client: text, seq: 1 }, 'client'],
      [{ payload: 1, topic: text }, 'topic'],
      [{ payload: 1, key: text }, 'key'],
    ];
    for (const [body, field] of bodies) {
      const answer = await broadcast(url, body);
      assert.equal(answer.status, 400, `${field} ${JSON.stringify(text)}`);
      assert.equal(answer.body.error, 'invalid_argument');
      assert.equal(answer.body.field, field);
      assert.match(answer.body.message, /lone surrogate/);
    }
    const batch = await call(`${url}/v1/broadcast/batch`, {
      method: 'POST',
      body: { client: text, seq: 1, messages: [{ payload: 1 }] },
    });
    assert.equal(batch.status, 400);
    assert.equal(batch.body.field, 'client');
    const batchTopic = await call(`${url}/v1/broadcast/batch`, {
      method: 'POST',
      body: { client: 'batcher', seq: 1, messages: [{ payload: 1 }, { payload: 2, topic: text }] },
    });
    assert.equal(batchTopic.status, 400);
    assert.equal(batchTopic.body.field, 'messages[1].topic');
    assert.match(batchTopic.body.message, /lone surrogate/);
  }
  const status = await call(`${url}/v1/status`);
  assert.equal(status.body.deliveredIndex, 0, 'nothing refused was delivered');
  // A surrogate pair is one character, stored and read back as sent.
  const sent = { payload: 1, client: 'c😀', seq: 1, topic: 't😀', key: 'k😀' };
  const answer = await broadcast(url, sent);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  const page = await call(`${url}/v1/messages?from=${answer.body.index}&limit=1`);
  const [message] = page.body.messages;
  assert.deepEqual(
    [message.client, message.topic, message.key],
    [sent.client, sent.topic, sent.key],
  );
});

test('any client id is refused with a 400 or delivered exactly as sent', {
  timeout: 120_000,
}, async () => {
  const { url } = await cluster.leader();
  await fc.assert(
    fc.asyncProperty(anyText, async (text) => {
      // A fresh session each run: seq 1 of a client id never used before.
      const client = `p${text}`;
      const answer = await broadcast(url, { payload: 1, client, seq: 1 });
      if (answer.status === 400) {
        assert.equal(answer.body.field, 'client', JSON.stringify(answer.body));
        return;
      }
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      if (answer.body.duplicate) return; // fast-check drew this id before
      const page = await call(`${url}/v1/messages?from=${answer.body.index}&limit=1`);
      assert.equal(page.body.messages[0].client, client);
    }),
    { numRuns: 40 },
  );
});

test('a member id with a lone surrogate or a control character is a 400; the configuration stays', {
  timeout: 30_000,
}, async () => {
  const { url, node } = await cluster.leader();
  const before = node.status().config;
  // A control character is refused too: a log line or a metrics label would carry it as it is.
  for (const [id, reason] of [
    ['n\ud800', /lone surrogate/],
    ['n\u001b[2J', /control characters/],
  ] as const) {
    const answer = await call(`${url}/v1/members`, {
      method: 'POST',
      body: { id, address: '127.0.0.1:1', voter: false },
    });
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.equal(answer.body.field, 'id');
    assert.match(answer.body.message, reason);
  }
  assert.deepEqual(node.status().config, before);
});
