// The probes against three real nodes over HTTP: /healthz answers while the process serves,
// /readyz is 200 once a node knows a leader and has applied what it knows committed, and 503
// naming the failed check once the node's runtime stopped (as after a storage failure). Both
// answer without credentials on a server that checks them, where /v1/status does not.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseAuthFile } from '../../src/server/auth.ts';
import { waitFor } from '../support/ports.ts';
import { call, type HttpCluster, startHttpCluster } from './cluster.ts';

let cluster: HttpCluster;

before(async () => {
  cluster = await startHttpCluster({
    auth: {
      table: parseAuthFile(JSON.stringify({ identities: [{ name: 'ops', role: 'admin' }] })),
    },
  });
});

after(async () => {
  await cluster.close();
});

test('healthz and readyz answer without credentials; the API still asks for them', async () => {
  await cluster.leader();
  for (const member of cluster.members) {
    const health = await call(`${member.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(health.body, { status: 'ok', id: member.id });
    let ready = await call(`${member.url}/readyz`);
    await waitFor(async () => {
      ready = await call(`${member.url}/readyz`);
      return ready.status === 200;
    }, `${member.id} ready`);
    assert.equal(ready.body.status, 'ready');
    assert.equal(ready.body.checks.leader.ok, true);
    assert.equal(ready.body.checks.caught_up.ok, true);
    assert.equal(ready.body.checks.storage.ok, true);
    assert.equal((await call(`${member.url}/v1/status`)).status, 401);
  }
});

test('HEAD of a probe answers its status without a body; HEAD of the API is not allowed', async () => {
  await cluster.leader();
  const { url } = cluster.members[0]!;
  const health = await fetch(`${url}/healthz`, { method: 'HEAD' });
  assert.equal(health.status, 200);
  assert.equal(await health.text(), '');
  await waitFor(
    async () => (await fetch(`${url}/readyz`, { method: 'HEAD' })).status === 200,
    'readyz answers HEAD once the node is ready',
  );
  const status = await fetch(`${url}/v1/status`, { method: 'HEAD' });
  assert.equal(status.status, 405);
  assert.equal(status.headers.get('allow'), 'GET');
  const probe = await fetch(`${url}/healthz`, { method: 'POST' });
  assert.equal(probe.status, 405);
  assert.equal(probe.headers.get('allow'), 'GET, HEAD');
});

test('readyz refuses a bad lagMax with 400 naming it', async () => {
  const answer = await call(`${cluster.members[0]!.url}/readyz?lagMax=-1`);
  assert.equal(answer.status, 400);
  assert.equal(answer.body.field, 'lagMax');
  const unknown = await call(`${cluster.members[0]!.url}/readyz?lag=1`);
  assert.equal(unknown.status, 400);
});

test('a node whose runtime stopped is alive but not ready, and says why', async () => {
  const follower = await cluster.follower();
  await cluster.stopNode(follower.id);
  const health = await call(`${follower.url}/healthz`);
  assert.equal(health.status, 200);
  const ready = await call(`${follower.url}/readyz`);
  assert.equal(ready.status, 503);
  assert.equal(ready.body.error, 'not_ready');
  assert.equal(ready.body.checks.storage.ok, false);
  assert.match(ready.body.message, /storage: the node stopped \(node_stopped\)/);
  assert.equal(ready.headers.get('retry-after'), '1');
});
