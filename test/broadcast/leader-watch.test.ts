// When a node stops following the leader's log, and only then, it says so (leaderLost), so
// that its subscriber streams can end and go to a node that goes on. The watch alone, tick
// by tick: one leaderless stretch short of the bound (a missed heartbeat, an election) says
// nothing, the bound says it once, and hearing from a leader clears it; a member that sees
// itself removed says it at once, a node joining (in no configuration yet) does not. Three real nodes on
// one memory network: a node cut off says it within the bound and takes it back after the
// heal, a follower that lags (its writes held) while it hears the leader never says it, and
// a node removed from the configuration that keeps running says it too.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LeaderWatch, leaderlessElectionTimeoutsMax } from '../../src/broadcast/leader-watch.ts';
import { encode, TwinCluster, waitFor } from './twin-cluster.ts';

/** Ticks of a member that heard a leader, and of one that did not. */
const heard = { leaderHeard: true, member: true };
const silent = { leaderHeard: false, member: true };

function ticks(watch: LeaderWatch, contact: typeof heard, count: number): void {
  for (let tick = 0; tick < count; tick++) watch.tick(contact);
}

test('the watch says the leader is lost once, at the bound, and forgets it on contact', () => {
  const watch = new LeaderWatch(5);
  let calls = 0;
  const detach = watch.onLeaderLost(() => calls++);
  ticks(watch, silent, 4);
  watch.tick(heard); // a leader heard just short of the bound: the count starts again
  ticks(watch, silent, 4);
  assert.equal(watch.leaderLost, false);
  assert.equal(calls, 0);
  watch.tick(silent);
  assert.equal(watch.leaderLost, true);
  assert.equal(calls, 1);
  ticks(watch, silent, 20);
  assert.equal(calls, 1, 'said once per loss');
  watch.tick(heard);
  assert.equal(watch.leaderLost, false);
  ticks(watch, silent, 5);
  assert.equal(calls, 2, 'a second loss is said again');
  detach();
  watch.tick(heard);
  ticks(watch, silent, 5);
  assert.equal(calls, 2, 'a detached listener hears nothing');
});

test('a member that sees itself removed loses its leader at once; one joining does not', () => {
  const watch = new LeaderWatch(5);
  let calls = 0;
  watch.onLeaderLost(() => calls++);
  // Joining: no configuration holds it yet, and a leader sends it the log.
  ticks(watch, { leaderHeard: true, member: false }, 10);
  assert.equal(watch.leaderLost, false, 'never a member, so not removed');
  ticks(watch, heard, 3);
  // Removed: it still names the leader it last heard, but no configuration holds it.
  watch.tick({ leaderHeard: true, member: false });
  assert.equal(watch.leaderLost, true);
  assert.equal(calls, 1);
  ticks(watch, { leaderHeard: false, member: false }, 10);
  assert.equal(calls, 1, 'said once');
  // Added again, it follows the leader: its streams are welcome again.
  watch.tick(heard);
  assert.equal(watch.leaderLost, false);
});

/**
 * How long to watch a node that must not lose its leader: the lease, the bound, and slack.
 * A loaded machine runs fewer ticks in it, so the watch proves less, but never fails wrongly.
 */
function lossWatchMs(cluster: TwinCluster): number {
  const { tickIntervalMs, electionTimeoutTicks } = cluster.tuning;
  return (leaderlessElectionTimeoutsMax + 1) * electionTimeoutTicks * tickIntervalMs + 2_000;
}

/**
 * How long a node that must lose its leader may take: the bound is counted in ticks, and a
 * loaded machine (two cores, other tests beside this one) runs them late, so this bounds a
 * hang, not the speed: 1.2 s of ticks at the test's timing.
 */
const lossHangMs = 10_000;

test('a node cut off loses its leader and regains it; the others never lose theirs', async () => {
  const cluster = await TwinCluster.start();
  try {
    const leader = await cluster.waitForLeader();
    const cutOff = cluster.followers(leader)[0] as string;
    const others = cluster.ids.filter((id) => id !== cutOff);
    let lossCount = 0;
    cluster.node(cutOff).onLeaderLost(() => lossCount++);
    cluster.isolate(cutOff);
    const cutAtMs = Date.now();
    await waitFor(() => cluster.node(cutOff).leaderLost, 'the cut-off node says it', lossHangMs);
    const { tickIntervalMs, electionTimeoutTicks } = cluster.tuning;
    const boundMs = leaderlessElectionTimeoutsMax * electionTimeoutTicks * tickIntervalMs;
    assert.ok(Date.now() - cutAtMs >= boundMs, 'not before the bound');
    assert.ok(Date.now() - cutAtMs <= lossHangMs, 'it ends, however late the ticks');
    assert.equal(lossCount, 1);
    for (const id of others) assert.equal(cluster.node(id).leaderLost, false, id);
    cluster.heal();
    await waitFor(() => !cluster.node(cutOff).leaderLost, 'the healed node hears a leader');
    assert.equal(lossCount, 1);
  } finally {
    await cluster.close();
  }
});

test('a follower that lags while it hears the leader keeps it', async () => {
  const cluster = await TwinCluster.start();
  try {
    const leader = await cluster.waitForLeader();
    const lagging = cluster.followers(leader)[0] as string;
    cluster.storage(lagging).hold();
    try {
      const before = cluster.node(lagging).lastPosition;
      for (let n = 0; n < 5; n++) await cluster.node(leader).broadcast(encode(`m${n}`));
      const waitUntilMs = Date.now() + lossWatchMs(cluster);
      await waitFor(() => Date.now() >= waitUntilMs, 'the bound passes');
      assert.equal(cluster.node(lagging).lastPosition, before, 'the follower lags');
      assert.equal(cluster.node(lagging).leaderLost, false, 'yet it hears the leader');
    } finally {
      // Held writes would hold the node's close.
      cluster.storage(lagging).release();
    }
  } finally {
    await cluster.close();
  }
});

test('a member removed while it runs, no longer sent the log, loses its leader', async () => {
  // Membership changes wait until the first leader recorded every member's address.
  const initialPeers = new Map(['n1', 'n2', 'n3'].map((id, at) => [id, `127.0.0.1:${7001 + at}`]));
  const cluster = await TwinCluster.start({ tuning: { initialPeers } });
  try {
    const leader = await cluster.waitForLeader();
    const removed = cluster.followers(leader)[0] as string;
    // The first leader records the members (index 3, after the configuration and its no-op)
    // before a removal may be asked for.
    await waitFor(() => cluster.node(leader).status().commitIndex >= 3, 'the members recorded');
    await cluster.node(leader).removeMember(removed);
    await waitFor(() => cluster.node(removed).leaderLost, 'the removed node says it', lossHangMs);
    const stayed = cluster.ids.filter((id) => id !== removed);
    for (const id of stayed) assert.equal(cluster.node(id).leaderLost, false, id);
  } finally {
    await cluster.close();
  }
});
