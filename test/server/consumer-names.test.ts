// Every route of /v1/consumers/:name answers an odd name (empty after decoding, very long,
// with slashes, percent signs, control characters, unicode) with a 400 naming `name` and
// saying what a name may be, and a well-formed name with its usual answer: never a 5xx and
// never a vague "malformed record". A fast-check property draws the names, against three
// real nodes in this process.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { consumerNameProblem } from '../../src/broadcast/stream-state.ts';
import { call, type HttpCluster, startHttpCluster } from './cluster.ts';

let cluster: HttpCluster;

before(async () => {
  cluster = await startHttpCluster({ requestTimeoutMs: 5000 }, { requestTimeoutMs: 4000 });
});

after(async () => {
  await cluster.close();
});

/** Each route with a consumer name in its path, as [method, path after the name, body]. */
const routes: readonly [string, string, unknown][] = [
  ['GET', '', undefined],
  ['DELETE', '', undefined],
  ['POST', '/ack', { index: 0 }],
  ['POST', '/ack', { member: 'm1', slots: { '0': 0 } }],
  ['POST', '/settings', { ackDeadlineMs: null }],
  ['DELETE', '/members/m1', undefined],
];

const nameArbitrary = fc.oneof(
  fc.constantFrom('', '.hidden', 'a/b', 'a%2Fb', 'x'.repeat(129), 'n\u0000', 'é', '😀', 'ok-1'),
  fc.string({ unit: 'grapheme', maxLength: 140 }),
  fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/),
);

test('any consumer name in a path gets its usual answer or a 400 naming name', {
  timeout: 120_000,
}, async () => {
  const { url } = await cluster.leader();
  await fc.assert(
    fc.asyncProperty(nameArbitrary, fc.constantFrom(...routes), async (name, route) => {
      const [method, rest, body] = route;
      const path = `/v1/consumers/${encodeURIComponent(name)}${rest}`;
      const answer = await call(`${url}${path}`, { method, body });
      const what = `${method} ${path.slice(0, 80)} -> ${answer.status} ${JSON.stringify(answer.body)}`;
      assert.ok(answer.status < 500, what);
      if (name === '') {
        // No route has an empty segment (an encoded slash stays inside one, and is refused).
        assert.equal(answer.status, 404, what);
        return;
      }
      if (consumerNameProblem(name) !== null) {
        assert.equal(answer.status, 400, what);
        assert.equal(answer.body.field, 'name', what);
        assert.match(answer.body.message, /a consumer name is 1 to 128/, what);
        return;
      }
      // A good name: whatever the route answers, it is not about the name.
      assert.notEqual(answer.body?.field, 'name', what);
    }),
    { numRuns: 60 },
  );
});
