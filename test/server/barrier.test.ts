// GET /v1/barrier against three real nodes: on the leader and on a follower, the index it
// answers covers every broadcast acknowledged before the request (checked while broadcasts
// keep arriving), the answering node has delivered up to it, and errors are the API's own
// (400 for a query, 503 node_stopped with Retry-After on a stopped node).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { broadcast, call, type HttpCluster, startHttpCluster } from './cluster.ts';

let cluster: HttpCluster;

before(async () => {
  cluster = await startHttpCluster();
});

after(async () => {
  await cluster.close();
});

test('the barrier index covers every broadcast acknowledged before it, leader and follower', {
  timeout: 30_000,
}, async () => {
  const leader = await cluster.leader();
  const follower = await cluster.follower();
  let acknowledgedMax = 0;
  let sending = true;
  // Broadcasts through every node keep arriving while barriers are asked.
  const writers = cluster.members.map(async (member) => {
    for (let n = 0; sending && n < 10_000; n++) {
      const answer = await broadcast(member.url, { payload: { n }, topic: 'load' });
      assert.equal(answer.status, 200);
      acknowledgedMax = Math.max(acknowledgedMax, answer.body.index);
    }
  });
  try {
    for (let round = 0; round < 20; round++) {
      for (const member of [leader, follower]) {
        const floor = acknowledgedMax;
        const answer = await call(`${member.url}/v1/barrier`);
        assert.equal(answer.status, 200);
        assert.deepEqual(Object.keys(answer.body), ['index']);
        assert.ok(Number.isSafeInteger(answer.body.index));
        assert.ok(answer.body.index >= floor, `${answer.body.index} < acknowledged ${floor}`);
        assert.ok(
          member.node.lastPosition >= answer.body.index,
          'the answering node delivered up to the index',
        );
      }
    }
    assert.ok(acknowledgedMax > 0, 'broadcasts were acknowledged during the barriers');
  } finally {
    sending = false;
    await Promise.all(writers);
  }
  // Quiet: the barrier is exactly what was delivered last.
  const last = acknowledgedMax;
  const quiet = await call(`${follower.url}/v1/barrier`);
  assert.equal(quiet.body.index, last);
});

test('GET /v1/barrier refuses a query and answers 503 node_stopped on a stopped node', {
  timeout: 30_000,
}, async () => {
  const { url } = cluster.members[0]!;
  const withQuery = await call(`${url}/v1/barrier?from=1`);
  assert.equal(withQuery.status, 400);
  assert.equal(withQuery.body.error, 'invalid_argument');
  assert.equal(withQuery.body.field, 'from');
  const wrongMethod = await call(`${url}/v1/barrier`, { method: 'POST', body: {} });
  assert.equal(wrongMethod.status, 405);
  const stopped = cluster.members[2]!;
  await cluster.stopNode(stopped.id);
  const answer = await call(`${stopped.url}/v1/barrier`);
  assert.equal(answer.status, 503);
  assert.equal(answer.body.error, 'node_stopped');
  assert.equal(answer.headers.get('retry-after'), '1');
});
