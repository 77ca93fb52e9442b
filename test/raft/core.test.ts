// Unit tests of the pure core through a small synchronous cluster: elections, replication,
// commit, restarts and refusals, each checked on what every node delivers; and a lone core
// fed responses by hand, to show a late grant of an earlier term is not a vote now (each
// such test also runs the unsafe variant that counts it, so it can fail); and whether a
// node has heard from a leader lately, which a learner cut off cannot tell from leader().
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RaftCore, type UnsafeVariant } from '../../src/raft/core.ts';
import type { Message, NodeId } from '../../src/raft/types.ts';
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

/** Empty Appends (commit news alone) the leader has sent so far. */
function emptyAppendsFrom(cluster: TestCluster, leaderId: NodeId): number {
  return cluster.sent.filter(
    (message) =>
      message.from === leaderId && message.type === 'Append' && message.entries.length === 0,
  ).length;
}

/** Heartbeats far apart, so only the lazy path can bring a commit on a tick. */
function sparseHeartbeatCluster(lazyCommitNews: boolean): TestCluster {
  return new TestCluster(['n1', 'n2', 'n3'], 1, {
    lazyCommitNews,
    electionTimeoutTicks: 100,
    heartbeatIntervalTicks: 50,
  });
}

test('with lazyCommitNews a commit reaches followers with the next entries or once a whole tick held it, not in an Append of its own', () => {
  for (const lazy of [false, true]) {
    const cluster = sparseHeartbeatCluster(lazy);
    const leader = cluster.electLeader();
    cluster.stabilize();
    const followers = cluster.ids.filter((id) => id !== leader.id);
    const emptyAppends = (): number => emptyAppendsFrom(cluster, leader.id);
    const before = emptyAppends();
    leader.propose(bytes('a'));
    cluster.stabilize();
    assert.deepEqual(cluster.normalData(leader.id), ['a']);
    assert.equal(emptyAppends() - before, lazy ? 0 : followers.length, `lazy=${lazy}`);
    for (const id of followers) assert.deepEqual(cluster.normalData(id), lazy ? [] : ['a']);
    leader.propose(bytes('b'));
    cluster.stabilize();
    for (const id of followers) assert.deepEqual(cluster.normalData(id), lazy ? ['a'] : ['a', 'b']);
    // The first tick finds the news held, not held for a whole tick yet: it waits one more.
    cluster.tickAll(1);
    for (const id of followers) assert.deepEqual(cluster.normalData(id), lazy ? ['a'] : ['a', 'b']);
    cluster.tickAll(1);
    for (const id of followers) assert.deepEqual(cluster.normalData(id), ['a', 'b']);
    // A follower waiting on an entry (it forwarded it for a client) hears of its commit at once.
    const proposed = leader.propose(bytes('c'));
    assert.ok(proposed.accepted);
    const [waiting, other] = followers as [string, string];
    leader.commitAwaited(waiting, proposed.index);
    cluster.stabilize();
    assert.deepEqual(cluster.normalData(waiting), ['a', 'b', 'c']);
    assert.deepEqual(cluster.normalData(other), lazy ? ['a', 'b'] : ['a', 'b', 'c']);
  }
});

test('with lazyCommitNews an acknowledgement that leaves only commit news owed asks for no Ready', () => {
  const cluster = sparseHeartbeatCluster(true);
  const leader = cluster.electLeader();
  cluster.stabilize();
  const late = cluster.ids.find((id) => id !== leader.id) as string;
  // The other follower's acknowledgement commits 'a'; the late one's arrives afterwards.
  leader.propose(bytes('a'));
  cluster.stabilize(10_000, (m) => m.from === late && m.type === 'AppendResponse');
  assert.deepEqual(cluster.normalData(leader.id), ['a']);
  assert.equal(cluster.held.length, 1);
  const emptyBefore = cluster.emptyReadyCount;
  leader.step(cluster.held.splice(0)[0] as Message);
  assert.equal(leader.hasReady(), false, 'the commit news waits: nothing to do now');
  cluster.stabilize();
  assert.equal(cluster.emptyReadyCount, emptyBefore);
  assert.deepEqual(cluster.normalData(late), [], 'it hears of the commit later');
  cluster.tickAll(1);
  assert.deepEqual(cluster.normalData(late), [], 'not at the first tick that finds it held');
  cluster.tickAll(1);
  assert.deepEqual(cluster.normalData(late), ['a']);
});

test('with lazyCommitNews a tick between a commit and the next entries sends no Append of its own', () => {
  const cluster = sparseHeartbeatCluster(true);
  const leader = cluster.electLeader();
  cluster.stabilize();
  leader.sendCommitNews();
  cluster.stabilize();
  const emptyAppends = (): number => emptyAppendsFrom(cluster, leader.id);
  const before = emptyAppends();
  // A steady load: every tick lands after a commit and before the next entries carry it.
  for (const text of ['a', 'b', 'c', 'd', 'e']) {
    leader.propose(bytes(text));
    cluster.stabilize();
    assert.equal(leader.commitNewsHeld(), true);
    for (const core of cluster.cores.values()) core.tick();
    cluster.stabilize();
  }
  assert.equal(emptyAppends() - before, 0);
  for (const id of cluster.ids.filter((id) => id !== leader.id)) {
    assert.deepEqual(cluster.normalData(id), ['a', 'b', 'c', 'd']);
  }
});

test('with lazyCommitNews the leader says which followers wait for commit news, and sends it when asked', () => {
  const cluster = sparseHeartbeatCluster(true);
  const leader = cluster.electLeader();
  cluster.stabilize();
  const followers = cluster.ids.filter((id) => id !== leader.id);
  // The leader's first entry of its term committed with nothing after it: news held.
  assert.equal(leader.commitNewsHeld(), true);
  leader.sendCommitNews();
  cluster.stabilize();
  assert.equal(leader.commitNewsHeld(), false);
  leader.propose(bytes('a'));
  cluster.stabilize();
  assert.equal(leader.commitNewsHeld(), true, 'the commit of a is news nobody sent');
  for (const id of followers) assert.deepEqual(cluster.normalData(id), []);
  leader.sendCommitNews();
  assert.equal(leader.hasReady(), true);
  cluster.stabilize();
  for (const id of followers) assert.deepEqual(cluster.normalData(id), ['a']);
  assert.equal(leader.commitNewsHeld(), false);
  // A follower is never asked, and has nothing to send.
  const follower = cluster.cores.get(followers[0] as string) as RaftCore;
  assert.equal(follower.commitNewsHeld(), false);
  follower.sendCommitNews();
  assert.equal(follower.hasReady(), false);
});

test('with lazyCommitNews news owed to a paused follower is not held news: nothing could send it', () => {
  const cluster = new TestCluster(['n1', 'n2', 'n3'], 1, {
    lazyCommitNews: true,
    electionTimeoutTicks: 100,
    heartbeatIntervalTicks: 50,
    inflightAppendsMax: 2,
  });
  const leader = cluster.electLeader();
  cluster.stabilize();
  const [late, other] = cluster.ids.filter((id) => id !== leader.id) as [string, string];
  const toLate = (message: Message) => message.to === late;
  // `late` hears nothing: two Appends fill its window, the third entry is not sent to it.
  for (const text of ['a', 'b', 'c']) {
    leader.propose(bytes(text));
    cluster.stabilize(10_000, toLate);
  }
  const { commitIndex: commit, term } = leader.status();
  const config = { voters: [...cluster.ids], learners: [] };
  leader.compact({ meta: { index: commit, term, config }, data: new Uint8Array(0) });
  // Its acknowledgements arrive: it holds entries committed since the last commit index it
  // was sent, and what it lacks next is compacted, so a snapshot goes (held on its way).
  const lateCore = cluster.cores.get(late) as RaftCore;
  for (const message of cluster.held.splice(0)) lateCore.step(message);
  cluster.stabilize(10_000, toLate);
  const lateProgress = leader.status().progress.find((progress) => progress.id === late);
  assert.equal(lateProgress?.state, 'snapshot');
  leader.sendCommitNews(); // `other` hears it; `late` cannot until its snapshot lands
  cluster.stabilize(10_000, toLate);
  assert.ok(!cluster.held.some((message) => message.type === 'Append'));
  assert.deepEqual(cluster.normalData(other), ['a', 'b', 'c']);
  // Held news would have a runtime wait and ask again, for as long as the snapshot travels.
  assert.equal(leader.commitNewsHeld(), false);
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

/** n1 of voters n1..n3, alone: messages are stepped in by hand. */
function lonelyCore(options: { preVote: boolean; unsafe: UnsafeVariant | null }): RaftCore {
  return new RaftCore(
    {
      nodeId: 'n1',
      electionTimeoutTicks: 10,
      heartbeatIntervalTicks: 1,
      random: () => 0.5,
      preVote: options.preVote,
      checkQuorum: false,
      appendBytesMax: 1 << 20,
      inflightAppendsMax: 8,
      bootstrap: { voters: ['n1', 'n2', 'n3'], learners: [] },
      unsafe: options.unsafe,
    },
    { hardState: null, snapshot: null, entries: [], appliedIndex: 0 },
  );
}

function grant(type: 'VoteResponse' | 'PreVoteResponse', from: NodeId, term: number): Message {
  return { type, from, to: 'n1', term, granted: true };
}

test('a vote granted in an earlier term does not count in the current one (Raft §5.2)', () => {
  for (const unsafe of [null, 'countStaleVotes'] as const) {
    const core = lonelyCore({ preVote: false, unsafe });
    core.campaign();
    core.campaign();
    assert.equal(core.status().term, 3);
    // n2 granted term 2; in term 3 it may have voted for anyone.
    core.step(grant('VoteResponse', 'n2', 2));
    const role = core.status().role;
    if (unsafe === null) {
      assert.equal(role, 'candidate');
      core.step(grant('VoteResponse', 'n3', 3));
      assert.equal(core.status().role, 'leader', 'a grant of the current term still counts');
    } else {
      assert.equal(role, 'leader', 'the unsafe variant counts the stale grant');
    }
  }
});

test('a pre-vote granted for an earlier round does not count in the current one', () => {
  for (const unsafe of [null, 'countStaleVotes'] as const) {
    const core = lonelyCore({ preVote: true, unsafe });
    core.campaign();
    core.step(grant('PreVoteResponse', 'n2', 2));
    assert.equal(core.status().role, 'candidate');
    // Term 2 is lost; the next pre-vote asks about term 3, and n3's answer about term 2 is late.
    core.campaign();
    assert.equal(core.status().role, 'preCandidate');
    core.step(grant('PreVoteResponse', 'n3', 2));
    if (unsafe === null) {
      assert.equal(core.status().role, 'preCandidate');
      core.step(grant('PreVoteResponse', 'n3', 3));
      assert.equal(core.status().role, 'candidate', 'a grant of the current round still counts');
      assert.equal(core.status().term, 3);
    } else {
      assert.equal(core.status().role, 'candidate', 'the unsafe variant counts the stale grant');
    }
  }
});

test('a Vote of a lower term is refused with our term, so its candidate learns it (Raft §5.1)', () => {
  // Ignoring it let a candidate with the better log but a lower term livelock against a
  // lagging node that kept raising its own term (old simulator seeds 0x63d and 0x3044).
  const core = lonelyCore({ preVote: false, unsafe: null });
  core.campaign();
  core.campaign();
  assert.equal(core.status().term, 3);
  core.advance(core.ready());
  core.step({
    type: 'Vote',
    from: 'n2',
    to: 'n1',
    term: 1,
    lastLogIndex: 9,
    lastLogTerm: 1,
    transfer: false,
  });
  const answers = core.ready().messagesToSend.filter((message) => message.to === 'n2');
  assert.deepEqual(
    answers.map((message) => [message.type, message.term]),
    [['VoteResponse', 3]],
  );
  assert.equal(answers[0]?.type === 'VoteResponse' && answers[0].granted, false);
});

test('deliverDurable gives entries committed during a write that an earlier Ready wrote, each once, in order', () => {
  const cluster = new TestCluster(['n1', 'n2', 'n3']);
  const leader = cluster.electLeader();
  cluster.stabilize();
  const leaderId = leader.status().id;
  const followers = cluster.ids.filter((id) => id !== leaderId);
  const text = (entries: readonly { data: Uint8Array }[]) =>
    entries.map((entry) => new TextDecoder().decode(entry.data));
  // Followers take what the leader sent, write it at once and answer; the answers are kept.
  const followersAnswer = (messages: readonly Message[]): Message[] => {
    const answers: Message[] = [];
    for (const message of messages) cluster.cores.get(message.to)?.step(message);
    for (const id of followers) {
      const core = cluster.core(id);
      while (core.hasReady()) {
        const ready = core.ready();
        answers.push(...ready.messagesToSend);
        core.advance(ready);
      }
    }
    return answers.filter((message) => message.to === leaderId);
  };

  assert.deepEqual(leader.deliverDurable(), [], 'nothing without a Ready outstanding');
  assert.equal(leader.propose(bytes('a')).accepted, true);
  const first = leader.ready();
  const answersToA = followersAnswer(first.messagesToSend);
  leader.advance(first); // a is durable on the leader
  assert.equal(leader.propose(bytes('b')).accepted, true);
  const second = leader.ready(); // b's write is under way from here on
  assert.deepEqual(text(second.entriesToDeliver), []);
  for (const answer of answersToA) leader.step(answer);
  assert.deepEqual(text(leader.deliverDurable()), ['a'], 'a committed and written before');
  assert.deepEqual(leader.deliverDurable(), [], 'each entry once');
  // b commits on the two followers alone, but this node has not written it yet.
  for (const answer of followersAnswer(second.messagesToSend)) leader.step(answer);
  assert.equal(leader.status().commitIndex, second.entriesToAppend.at(-1)?.index);
  assert.deepEqual(leader.deliverDurable(), [], 'not before this node holds it durably');
  leader.advance(second);
  assert.equal(leader.status().appliedIndex, first.entriesToAppend.at(-1)?.index);
  const third = leader.ready();
  assert.deepEqual(text(third.entriesToDeliver), ['b'], 'the next Ready goes on after a');
  leader.advance(third);
  assert.deepEqual(leader.deliverDurable(), [], 'nothing without a Ready outstanding');

  // A configuration entry, and what follows it, wait for their Ready.
  assert.equal(leader.proposeConfigChange({ type: 'addLearner', node: 'n4' }).accepted, true);
  assert.equal(leader.propose(bytes('c')).accepted, true);
  const fourth = leader.ready();
  const answersToChange = followersAnswer(fourth.messagesToSend);
  leader.advance(fourth);
  assert.equal(leader.propose(bytes('d')).accepted, true);
  const fifth = leader.ready();
  for (const answer of answersToChange) leader.step(answer);
  assert.equal(leader.status().commitIndex, fourth.entriesToAppend.at(-1)?.index);
  assert.deepEqual(leader.deliverDurable(), [], 'not from a configuration entry on');
  leader.advance(fifth);
  const sixth = leader.ready();
  assert.deepEqual(
    sixth.entriesToDeliver.map((entry) => entry.kind),
    ['config', 'normal'],
    'the change and c come with the next Ready',
  );
  leader.advance(sixth);
});

test('leaderHeardRecently: true within an election timeout of the leader, even for a learner that keeps naming it', () => {
  // The learner may not campaign, so it keeps naming the leader it last heard from however
  // long it is cut off: leader() alone cannot tell that it no longer follows.
  const cluster = new TestCluster(['n1', 'n2', 'n3'], 1, {
    bootstrap: { voters: ['n1', 'n2'], learners: ['n3'] },
  });
  const leader = cluster.electLeader();
  cluster.tickAll(3);
  const learner = cluster.core('n3');
  assert.equal(leader.leaderHeardRecently(), true, 'a leader counts itself');
  assert.equal(learner.leader(), leader.id);
  assert.equal(learner.leaderHeardRecently(), true);
  cluster.cut.add('n3');
  cluster.tickAll(9); // electionTimeoutTicks is 10: heartbeats missed, but not a timeout's
  assert.equal(learner.leaderHeardRecently(), true, 'missed heartbeats alone do not clear it');
  cluster.tickAll(1);
  assert.equal(learner.leaderHeardRecently(), false);
  assert.equal(learner.leader(), leader.id, 'yet it still names the leader');
  cluster.cut.delete('n3');
  cluster.tickAll(2);
  assert.equal(learner.leaderHeardRecently(), true, 'heard again');
});

test('with quietHeartbeats a tick sends no heartbeat where an Append went and was answered since the last round; idle and for reads it does', () => {
  const cluster = new TestCluster(['n1', 'n2', 'n3'], 1, { quietHeartbeats: true });
  const leader = cluster.electLeader();
  cluster.tickAll(3);
  const followers = cluster.ids.filter((id) => id !== leader.id);
  const heartbeatsSince = (from: number): NodeId[] =>
    cluster.sent
      .slice(from)
      .filter((message) => message.from === leader.id && message.type === 'Heartbeat')
      .map((message) => message.to);
  const { term } = leader.status();

  // An Append every tick for three election timeouts: not one heartbeat, and no election.
  let from = cluster.sent.length;
  for (let tick = 0; tick < 30; tick++) {
    leader.propose(bytes(`m${tick}`));
    cluster.stabilize();
    cluster.tickAll(1);
  }
  assert.deepEqual(heartbeatsSince(from), []);
  assert.equal(cluster.leader(), leader);
  for (const id of cluster.ids) {
    assert.equal(cluster.core(id).status().term, term);
    assert.equal(cluster.normalData(id).length, 30);
  }

  // A follower that stops answering is sent heartbeats again while the load goes on.
  const [answering, silent] = followers as [NodeId, NodeId];
  cluster.cut.add(silent);
  from = cluster.sent.length;
  for (let tick = 0; tick < 4; tick++) {
    leader.propose(bytes(`cut${tick}`));
    cluster.stabilize();
    cluster.tickAll(1);
  }
  const whileCut = heartbeatsSince(from);
  assert.equal(whileCut.filter((to) => to === answering).length, 0);
  assert.ok(whileCut.filter((to) => to === silent).length >= 3, whileCut.join());
  cluster.cut.delete(silent);
  cluster.tickAll(3);
  assert.equal(cluster.normalData(silent).length, 34, 'the silent follower caught up');

  // The load stops: heartbeats resume, one a tick for every follower.
  from = cluster.sent.length;
  cluster.tickAll(3);
  const idle = heartbeatsSince(from);
  for (const id of followers) assert.equal(idle.filter((to) => to === id).length, 3, id);

  // A read waiting for confirmation always sends its round, load or not.
  leader.propose(bytes('more'));
  from = cluster.sent.length;
  leader.readIndex('r1');
  cluster.stabilize();
  assert.deepEqual(heartbeatsSince(from).sort(), followers.sort());
});
