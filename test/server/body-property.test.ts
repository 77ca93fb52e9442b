// Bad input gets a clear error, never a crash: a fast-check property sends the routes that
// take a JSON body (single and batch broadcasts, consumer acks and settings, leadership
// transfer) arbitrary bodies, against three real, healthy nodes in this process: a valid
// body with fields dropped, added or given odd values (lone surrogates, -0, 2^53 + 2,
// nested values, `__proto__`), a truncated one, or text that is not JSON or not UTF-8.
// Every answer is a 2xx or a 4xx with a JSON error body ({"error", "message"}, and `field`
// on a 400), never a 5xx: an idle cluster has no reason to time out, so a 503 there is a
// bug too.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { type HttpCluster, startHttpCluster } from './cluster.ts';

let cluster: HttpCluster;

before(async () => {
  cluster = await startHttpCluster({ requestTimeoutMs: 4000 }, { requestTimeoutMs: 3500 });
});

after(async () => {
  await cluster.close();
});

/** A client id used nowhere else, so that seq 1 starts its session. */
const freshClient = fc
  .string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 16, maxLength: 16 })
  .map((hex) => `prop-${hex}`);

interface RouteCase {
  readonly path: string;
  /** The fields its body takes. */
  readonly fields: readonly string[];
  /** Bodies the route accepts. */
  readonly valid: fc.Arbitrary<Record<string, unknown>>;
}

const routes: readonly RouteCase[] = [
  {
    path: '/v1/broadcast',
    fields: ['payload', 'client', 'seq', 'topic', 'nonce', 'key'],
    valid: fc.record({
      payload: fc.jsonValue({ maxDepth: 2 }),
      client: freshClient,
      seq: fc.constant(1),
      topic: fc.constantFrom('orders', 'é😀'),
      nonce: fc.constant('n0nce'),
      key: fc.constantFrom('k', 'clé'),
    }),
  },
  {
    path: '/v1/broadcast/batch',
    fields: ['client', 'seq', 'messages', 'nonce'],
    valid: fc.record({
      client: freshClient,
      seq: fc.constant(1),
      messages: fc.constant([
        { payload: 1, topic: 'orders' },
        { payload: [2], key: 'k' },
      ]),
    }),
  },
  {
    path: '/v1/consumers/prop/ack',
    fields: ['index', 'member', 'slots'],
    valid: fc.oneof(
      fc.record({ index: fc.nat(3) }),
      fc.record({ member: fc.constant('m1'), slots: fc.constant({ '0': 0 }) }),
    ),
  },
  {
    path: '/v1/consumers/prop/settings',
    fields: ['ackDeadlineMs'],
    valid: fc.record({ ackDeadlineMs: fc.constantFrom(null, 100, 60_000) }),
  },
  {
    path: '/v1/leader/transfer',
    fields: ['to'],
    valid: fc.record({ to: fc.constantFrom('n1', 'n2', 'n3') }),
  },
];

const oddString = fc.oneof(
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '',
      '\ud800',
      'a\udc00',
      '\udfff\ud800',
      '$x',
      'x'.repeat(300),
      'm1',
    ),
  },
);

const oddNumber = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(-0, 0.5, 1e308, 2 ** 53 - 1, 2 ** 53 + 2, 100, 3_600_000),
);

const leaf = fc.oneof(oddString, oddNumber, fc.boolean(), fc.constant(null));

/** A value of any shape, the messages of a batch and a group ack's slots included. */
const oddValue = fc.oneof(
  { depthSize: 'small' },
  { weight: 3, arbitrary: oddString },
  { weight: 2, arbitrary: oddNumber },
  fc.boolean(),
  fc.constant(null),
  fc.array(leaf, { maxLength: 3 }),
  fc.dictionary(fc.constantFrom('payload', 'topic', 'key', '0', '31', '32', 'x'), leaf, {
    maxKeys: 3,
  }),
  fc.array(fc.dictionary(fc.constantFrom('payload', 'topic', 'key', 'seq'), leaf, { maxKeys: 3 }), {
    minLength: 1,
    maxLength: 3,
  }),
  fc.jsonValue({ maxDepth: 3 }),
);

/**
 * A body for `route`: a valid one with some fields dropped and some set to odd values (an
 * unknown name now and then), or bytes that are no such object.
 */
function bodyFor(route: RouteCase): fc.Arbitrary<string | Uint8Array<ArrayBuffer>> {
  const name = fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...route.fields) },
    { weight: 1, arbitrary: fc.constantFrom('extra', '__proto__', 'constructor', '') },
  );
  const object = fc
    .record({
      valid: route.valid,
      dropped: fc.subarray([...route.fields], { maxLength: Math.min(2, route.fields.length) }),
      odd: fc.dictionary(name, oddValue, { maxKeys: 2 }),
    })
    .map(({ valid, dropped, odd }) => {
      const body: Record<string, unknown> = { ...valid };
      for (const field of dropped) delete body[field];
      // Keys set one by one: `__proto__` is then a field of the JSON text, not a prototype.
      const text = JSON.stringify(body);
      const extra = Object.entries(odd).map(
        ([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value)}`,
      );
      if (extra.length === 0) return text;
      return text === '{}' ? `{${extra.join(',')}}` : `${text.slice(0, -1)},${extra.join(',')}}`;
    });
  return fc.oneof(
    { weight: 6, arbitrary: object },
    { weight: 1, arbitrary: object.map((text) => text.slice(0, Math.max(0, text.length - 1))) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 16 }) },
    {
      weight: 1,
      arbitrary: fc.uint8Array({ maxLength: 16 }).map((bytes) => new Uint8Array(bytes)),
    },
  );
}

const requestArbitrary = fc
  .constantFrom(...routes)
  .chain((route) => fc.record({ path: fc.constant(route.path), body: bodyFor(route) }));

test('any body gets a 2xx or a 4xx with a JSON error naming the field, never a 5xx', {
  timeout: 180_000,
}, async () => {
  // A follower: it forwards broadcasts and acks, and refuses a transfer (only leaders do).
  const { url } = await cluster.follower();
  await fc.assert(
    fc.asyncProperty(requestArbitrary, async ({ path, body }) => {
      const response = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      const text = await response.text();
      const what = `${path} ${String(body).slice(0, 120)} -> ${response.status} ${text.slice(0, 200)}`;
      assert.ok(response.status < 500, what);
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/, what);
      const answer = JSON.parse(text);
      if (response.status < 400) return;
      assert.equal(typeof answer.error, 'string', what);
      assert.equal(typeof answer.message, 'string', what);
      if (response.status === 400) assert.equal(typeof answer.field, 'string', what);
    }),
    // One failure is enough to see: shrinking a request that waits for its deadline is slow.
    { numRuns: 300, endOnFailure: true },
  );
});
