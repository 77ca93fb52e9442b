// Membership over HTTP against three real nodes: POST /v1/members on a follower brings a new
// node in (learner, then voter once caught up) and answers with the members and addresses;
// DELETE /v1/members/:id takes it out; bad bodies are 400s naming the field.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { BroadcastNode } from '../../src/broadcast/node.ts';
import { startNode } from '../../src/broadcast/start.ts';
import { freePorts, waitFor } from '../support/ports.ts';
import { broadcast, call, type HttpCluster, logger, startHttpCluster } from './cluster.ts';

let cluster: HttpCluster;
let joiner: BroadcastNode | null = null;
let root = '';

before(async () => {
  cluster = await startHttpCluster({ requestTimeoutMs: 20_000 }, { requestTimeoutMs: 15_000 });
  root = await mkdtemp(join(tmpdir(), 'abcast-http-join-'));
});

after(async () => {
  await joiner?.close();
  await cluster.close();
  await rm(root, { recursive: true, force: true });
});

test('a node joins through POST /v1/members and leaves through DELETE', {
  timeout: 60_000,
}, async () => {
  const [port] = await freePorts(1);
  const address = `127.0.0.1:${port}`;
  joiner = await startNode({
    id: 'n4',
    dataDir: join(root, 'n4'),
    listen: address,
    peers: { ...cluster.peers, n4: address },
    logger,
    join: true,
    clusterId: 'http-test',
    segmentBytesMax: 1 << 20,
  });
  const follower = await cluster.follower();
  assert.equal((await broadcast(follower.url, { payload: { before: true } })).status, 200);
  const added = await call(`${follower.url}/v1/members`, {
    method: 'POST',
    body: { id: 'n4', address, voter: true },
  });
  assert.equal(added.status, 200, JSON.stringify(added.body));
  assert.deepEqual(
    added.body.members.find((member: { id: string }) => member.id === 'n4'),
    { id: 'n4', address, voter: true },
  );
  const newcomer = joiner;
  await waitFor(() => newcomer.status().config.voters.includes('n4'), 'n4 learns it votes');
  const removed = await call(`${follower.url}/v1/members/n4`, { method: 'DELETE' });
  assert.equal(removed.status, 200, JSON.stringify(removed.body));
  assert.ok(!removed.body.members.some((member: { id: string }) => member.id === 'n4'));
  assert.equal((await broadcast(follower.url, { payload: { after: true } })).status, 200);
});

test('bad membership requests are 400s naming the field', async () => {
  const url = `${cluster.members[0]!.url}/v1/members`;
  const cases: [unknown, string][] = [
    [{ address: '127.0.0.1:1', voter: true }, 'id'],
    [{ id: 'x', address: 'nowhere', voter: true }, 'address'],
    [{ id: 'x', address: '127.0.0.1:1', voter: 'yes' }, 'voter'],
    [{ id: 'x', address: '127.0.0.1:1', extra: 1 }, 'extra'],
  ];
  for (const [body, field] of cases) {
    const answer = await call(url, { method: 'POST', body });
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.match(JSON.stringify(answer.body), new RegExp(field));
  }
  const wrongMethod = await call(`${url}/n1`, { method: 'POST', body: {} });
  assert.equal(wrongMethod.status, 405);
});
