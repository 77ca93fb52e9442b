// Unit tests of the pure core through a small synchronous cluster: elections, replication,
// commit, restarts and refusals, each checked on what every node delivers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bytes, TestCluster } from './harness.ts';

test('three nodes elect one leader and deliver proposals in the same order', () => {
  const cluster = new TestCluster(['n1', 'n2', 'n3']);
  const leader = cluster.electLeader();
  for (const text of ['a', 'b', 'c']) {
    const result = leader.propose(bytes(text));
    assert.equal(result.accepted, true);
  }
  cluster.tickAll(3);
  for (const id of cluster.ids) assert.deepEqual(cluster.normalData(id), ['a', 'b', 'c']);
  const leaders = [...cluster.cores.values()].filter((core) => core.status().role === 'leader');
  assert.equal(leaders.length, 1);
});

test('a follower refuses proposals and names the leader', () => {
  const cluster = new TestCluster(['n1', 'n2', 'n3']);
  const leader = cluster.electLeader();
  cluster.tickAll(2);
  const follower = [...cluster.cores.values()].find((core) => core !== leader)!;
  const result = follower.propose(bytes('x'));
  assert.equal(result.accepted, false);
  if (!result.accepted) {
    assert.equal(result.reason, 'NOT_LEADER');
    assert.equal(result.leaderId, leader.id);
  }
});

test('a single node commits its own proposals', () => {
  const cluster = new TestCluster(['solo']);
  const leader = cluster.electLeader();
  leader.propose(bytes('only'));
  cluster.stabilize();
  assert.deepEqual(cluster.normalData('solo'), ['only']);
});

test('no quorum, no commit; the entry commits once a majority is back', () => {
  const cluster = new TestCluster(['n1', 'n2', 'n3', 'n4', 'n5']);
  const leader = cluster.electLeader();
  cluster.tickAll(2);
  const others = cluster.ids.filter((id) => id !== leader.id);
  for (const id of others.slice(0, 3)) cluster.cut.add(id);
  leader.propose(bytes('waits'));
  cluster.tickAll(5);
  assert.deepEqual(cluster.normalData(leader.id), []);
  cluster.cut.clear();
  cluster.tickAll(5);
  const newLeader = cluster.electLeader();
  cluster.tickAll(5);
  for (const id of cluster.ids) {
    assert.deepEqual(cluster.normalData(id), cluster.normalData(newLeader.id));
  }
});

test('a restarted node recovers its log and vote from what it persisted', () => {
  const cluster = new TestCluster(['n1', 'n2', 'n3']);
  const leader = cluster.electLeader();
  leader.propose(bytes('kept'));
  cluster.tickAll(3);
  const before = leader.status();
  const restarted = cluster.start(leader.id);
  const after = restarted.status();
  assert.equal(after.term, before.term);
  assert.equal(after.vote, before.vote);
  assert.equal(after.lastIndex, before.lastIndex);
  assert.equal(after.role, 'follower');
  cluster.tickAll(40);
  assert.ok(cluster.leader() !== undefined);
});
