// A membership change asked for before the first leader recorded the members' addresses
// still goes through, once, and stays: the table records it in log order with the seed
// (membership.ts), so the seed that lands after it cannot bring a removed member back or undo
// a role change. Proven on the records alone, and on three real nodes whose leader is asked
// to remove a follower the moment it is elected, before its seed is even proposed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MembershipTable, nextConfigChange } from '../../src/broadcast/membership.ts';
import { applyConfigChange } from '../../src/raft/config.ts';
import type { Configuration } from '../../src/raft/types.ts';
import { encode, TwinCluster, waitFor } from './twin-cluster.ts';

const member = (id: string, voter = true) => ({
  id,
  address: `127.0.0.1:${7000 + id.length}`,
  voter,
});

test('a change recorded before the seed outlives it', () => {
  const table = new MembershipTable();
  table.apply({ op: 'remove', id: 'b' });
  table.apply({ op: 'upsert', member: member('c', false) });
  table.apply({ op: 'seed', members: [member('a'), member('b'), member('c')] });
  assert.equal(table.isSeeded, true);
  assert.deepEqual(table.list(), [member('a'), member('c', false)], 'b stays removed, c a learner');
  assert.deepEqual(table.removedIds(), ['b']);
  // The leader's next steps, followed to the end, never add b back.
  let config: Configuration = { voters: ['a', 'b', 'c'], learners: [] };
  const next = () => nextConfigChange(table.list(), table.removedIds(), config, () => true);
  const steps: string[] = [];
  for (let step = next(); step !== null; step = next()) {
    steps.push(`${step.type} ${step.node}`);
    assert.ok(steps.length <= 4, `the steps end: ${steps.join(', ')}`);
    const applied = applyConfigChange(config, step);
    assert.ok(typeof applied !== 'string', `a valid step: ${applied}`);
    config = applied;
  }
  assert.deepEqual(steps, ['demoteVoter c', 'remove b']);
});

test('a follower removed the moment a leader is elected leaves once and for good', async (t) => {
  const initialPeers = new Map(['n1', 'n2', 'n3'].map((id, at) => [id, `127.0.0.1:${7001 + at}`]));
  const cluster = await TwinCluster.start({ tuning: { initialPeers } });
  try {
    const leader = await cluster.waitForLeader();
    const removed = cluster.followers(leader)[0] as string;
    const stayed = cluster.ids.filter((id) => id !== removed);
    const holds = (id: string) => {
      const { config } = cluster.node(id).status();
      return config.voters.includes(removed) || config.learners.includes(removed);
    };
    // Every time the leader's configuration gains the removed node back after losing it.
    let readdedCount = 0;
    let wasOut = false;
    const watch = setInterval(() => {
      const inConfig = holds(leader);
      if (wasOut && inConfig) readdedCount++;
      wasOut = !inConfig;
    }, 1);
    try {
      // The point is a request before the seed (index 3). A machine slow enough to commit the
      // seed first would make this the ordinary case, which must hold the same: it is checked
      // all the same, and the table test above pins the early case on its own, so a slow run
      // says so rather than failing without a bug.
      if (cluster.node(leader).status().commitIndex >= 3) {
        t.diagnostic('the seed was committed before the request: the ordinary case was checked');
      }
      await cluster.node(leader).removeMember(removed);
      await waitFor(() => stayed.every((id) => !holds(id)), 'every remaining node without it');
      // A flip would add it back within a few reconcile rounds. The leader reconciles once a
      // heartbeat interval and sends each follower one heartbeat in it, so twenty heartbeats
      // to a remaining follower are twenty rounds counted by the leader's own ticks: a loaded
      // machine stretches the wait instead of shortening what it checks, as a wait read off
      // the clock would.
      const witness = stayed.find((id) => id !== leader) as string;
      const appends = cluster.watchFrames(
        (frame) => frame.type === 'Heartbeat' && frame.from === leader && frame.to === witness,
      );
      await waitFor(() => appends.count >= 20, 'twenty reconcile rounds pass');
    } finally {
      clearInterval(watch);
    }
    assert.equal(readdedCount, 0, 'the removed node never came back');
    for (const id of stayed) assert.equal(holds(id), false, `${id} no longer holds ${removed}`);
    const { position } = await cluster.node(leader).broadcast(encode('after the removal'));
    assert.ok(position !== null, 'the broadcast took a position');
    await waitFor(
      () => stayed.every((id) => cluster.node(id).status().lastPosition >= position),
      'the remaining nodes deliver a broadcast',
    );
  } finally {
    await cluster.close();
  }
});
