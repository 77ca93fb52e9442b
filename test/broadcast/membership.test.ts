// Membership through the log: records apply the same on every replica, the leader moves the
// configuration one single-server step at a time (learner first, promotion once caught up,
// removals only when asked), and a real node joins a running cluster, catches up, votes,
// and another leaves, while broadcasts keep their one order.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import type { BroadcastError } from '../../src/broadcast/errors.ts';
import {
  decodeMembershipCommand,
  encodeMembershipCommand,
  MembershipTable,
  nextConfigChange,
} from '../../src/broadcast/membership.ts';
import { MembershipDriver } from '../../src/broadcast/membership-driver.ts';
import type { BroadcastNode } from '../../src/broadcast/node.ts';
import type { BroadcastResult } from '../../src/broadcast/pending.ts';
import { startNode } from '../../src/broadcast/start.ts';
import { applyConfigChange } from '../../src/raft/config.ts';
import type { RaftCore } from '../../src/raft/core.ts';
import type { ConfigChange, Configuration } from '../../src/raft/types.ts';
import type { Transport } from '../../src/transport/types.ts';
import { freePorts, waitFor } from '../support/ports.ts';

const member = (id: string, voter = true) => ({
  id,
  address: `127.0.0.1:${7000 + id.length}`,
  voter,
});

test('the next configuration change: add as learner, promote when caught up, remove last', () => {
  const config = { voters: ['a', 'b', 'c'], learners: [] };
  const desired = [member('a'), member('b'), member('c'), member('d')];
  assert.deepEqual(
    nextConfigChange(desired, [], config, () => true),
    { type: 'addLearner', node: 'd' },
  );
  const withLearner = { voters: ['a', 'b', 'c'], learners: ['d'] };
  assert.equal(
    nextConfigChange(desired, [], withLearner, () => false),
    null,
    'waits for catch-up',
  );
  assert.deepEqual(
    nextConfigChange(desired, ['b'], withLearner, () => true),
    {
      type: 'promoteLearner',
      node: 'd',
    },
  );
  const promoted = { voters: ['a', 'b', 'c', 'd'], learners: [] };
  assert.deepEqual(
    nextConfigChange(desired, ['b'], promoted, () => true),
    { type: 'remove', node: 'b' },
  );
  // A member nobody mentioned stays; the last voter is never removed.
  assert.equal(
    nextConfigChange([], [], promoted, () => true),
    null,
  );
  assert.equal(
    nextConfigChange([], ['a'], { voters: ['a'], learners: [] }, () => true),
    null,
  );
  assert.deepEqual(
    nextConfigChange(
      [member('a', false), member('b')],
      [],
      { voters: ['a', 'b'], learners: [] },
      () => true,
    ),
    {
      type: 'demoteVoter',
      node: 'a',
    },
  );
});

test('the table applies records deterministically and survives a snapshot', () => {
  const table = new MembershipTable();
  table.apply({ op: 'seed', members: [member('a'), member('b')] });
  table.apply({ op: 'seed', members: [member('z')] }); // a second seed changes nothing
  table.apply({ op: 'upsert', member: member('c', false) });
  table.apply({ op: 'remove', id: 'b' });
  const copy = MembershipTable.fromJSON(JSON.parse(JSON.stringify(table.toJSON())));
  assert.deepEqual(copy.list(), [member('a'), member('c', false)]);
  assert.deepEqual(copy.removedIds(), ['b']);
  assert.equal(copy.isSeeded, true);
});

test('a request that reaches the log after its deadline changes nothing', () => {
  const table = new MembershipTable();
  table.apply({ op: 'seed', members: [member('a'), member('b'), member('c')] });
  table.apply({ op: 'upsert', member: member('c', false), deadlineMs: 1_000 }, 1_000);
  assert.deepEqual(table.get('c'), member('c', false), 'stamped at its deadline: applied');
  // A promotion asked at 2,000 timed out; the member was then removed (in time), and only
  // later was a copy of the promotion sent again and committed, stamped past its deadline.
  const lateOutcome = table.apply({ op: 'remove', id: 'c', deadlineMs: 4_000 }, 3_500);
  assert.equal(lateOutcome, 'applied');
  const promotion = { op: 'upsert', member: member('c'), deadlineMs: 3_000 } as const;
  assert.equal(table.apply(promotion, 9_000), 'expired');
  assert.deepEqual(table.list(), [member('a'), member('b')], 'c stays out');
  assert.deepEqual(table.removedIds(), ['c']);
  const config: Configuration = { voters: ['a', 'b'], learners: [] };
  assert.equal(
    nextConfigChange(table.list(), table.removedIds(), config, () => true),
    null,
  );
  // A late removal is dropped alike; a record without a deadline applies whenever it lands.
  assert.equal(table.apply({ op: 'remove', id: 'b', deadlineMs: 5_000 }, 5_001), 'expired');
  assert.deepEqual(table.get('b'), member('b'));
  assert.equal(table.apply({ op: 'remove', id: 'b' }, 99_000), 'applied');
  assert.equal(table.get('b'), undefined);
});

test('malformed records decode to null, valid ones round-trip', () => {
  const bytes = (text: string) => new TextEncoder().encode(text);
  assert.equal(decodeMembershipCommand(bytes('not json')), null);
  assert.equal(
    decodeMembershipCommand(
      bytes('{"op":"upsert","member":{"id":"x","address":"nope","voter":true}}'),
    ),
    null,
  );
  assert.equal(decodeMembershipCommand(bytes('{"op":"remove","id":""}')), null);
  assert.equal(decodeMembershipCommand(bytes('{"op":"explode"}')), null);
  assert.equal(decodeMembershipCommand(bytes('{"op":"remove","id":"b","deadlineMs":"9"}')), null);
  assert.equal(decodeMembershipCommand(bytes('{"op":"remove","id":"b","deadlineMs":null}')), null);
  const command = { op: 'upsert' as const, member: member('n9') };
  assert.deepEqual(decodeMembershipCommand(encodeMembershipCommand(command)), command);
  const timed = { op: 'remove' as const, id: 'n9', deadlineMs: 1_796_000_000_000 };
  assert.deepEqual(decodeMembershipCommand(encodeMembershipCommand(timed)), timed);
});

/** Three members on loopback ports and room for a fourth, in a temporary directory. */
async function membersOnDisk() {
  const root = await mkdtemp(join(tmpdir(), 'abcast-members-'));
  const ports = await freePorts(4);
  const address = (offset: number) => `127.0.0.1:${ports[offset]}`;
  const initial = { n1: address(0), n2: address(1), n3: address(2) };
  const logger = pino({ level: 'silent' });
  const nodes = new Map<string, BroadcastNode>();
  const start = (id: string, peers: Record<string, string>, joining = false) =>
    startNode({
      id,
      dataDir: join(root, id),
      listen: peers[id]!,
      peers,
      logger,
      join: joining,
      requestTimeoutMs: 20_000,
      segmentBytesMax: 1 << 20,
    });
  return { root, address, initial, nodes, start };
}

test('removeMember answers only once no step in the log brings the member back', async () => {
  // A forced cluster of one: its table still records n3, its configuration holds n1 alone.
  // The leader's reconcile proposes adding n3 back as a learner while the record removing
  // n3 is on its way; the record then applies, and the applied configuration lacks n3 while
  // the log's latest holds it. Answering then let a status read right after still list n3.
  const table = new MembershipTable();
  table.apply({ op: 'seed', members: [member('n1'), member('n3')] });
  let latest: Configuration = { voters: ['n1'], learners: [] };
  let applied = latest;
  const core = {
    status: () => ({ role: 'leader', config: latest, progress: [], lastIndex: 10 }),
    proposeConfigChange: (change: ConfigChange) => {
      const next = applyConfigChange(latest, change);
      assert.notEqual(typeof next, 'string');
      latest = next as Configuration;
      return { accepted: true, index: 11, term: 2 };
    },
  } as unknown as RaftCore;
  const looks: (() => void)[] = [];
  let recordApplied = (_: BroadcastResult) => {};
  const driver = new MembershipDriver({
    id: 'n1',
    core,
    transport: { setPeers: () => {} } as unknown as Transport,
    logger: { info: () => {}, warn: () => {}, error: () => {} },
    environment: {
      nowMs: () => 0,
      monotonicMs: () => 0,
      setTimer: (_delayMs, fire) => {
        looks.push(fire);
        return { cancel: () => {} };
      },
      random: () => 0,
      randomHex: () => '00',
    },
    initialPeers: new Map([['n1', '127.0.0.1:7001']]),
    membership: () => table,
    appliedConfig: () => applied,
    propose: () => new Promise((resolve) => (recordApplied = resolve)),
    expiredAt: () => false,
    stopped: () => null,
    scheduleLoop: () => {},
    requestTimeoutMs: 10_000,
    pollIntervalMs: 10,
    reconcileIntervalTicks: 1,
  });
  let answered = false;
  const removal = driver.removeMember('n3').then(() => {
    answered = true;
  });
  driver.tick(); // the reconcile, from the table before the record: add n3 as a learner
  assert.deepEqual(latest, { voters: ['n1'], learners: ['n3'] });
  table.apply({ op: 'remove', id: 'n3' });
  recordApplied({ position: 5, index: 10, term: 2, duplicate: false });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(answered, false, 'n3 is still in the latest configuration');
  assert.equal(looks.length, 1);
  driver.tick(); // the reconcile, from the table after the record: n3 goes again
  assert.deepEqual(latest, { voters: ['n1'], learners: [] });
  applied = latest;
  looks.shift()?.();
  await removal;
  assert.equal(answered, true);
});

/**
 * A driver for n1, the only voter, whose clock and records the test sets: `nowMs` the wall
 * clock, `propose` what recording a request answers, `expiredAt` what the applier found. A
 * wait for the configuration ends in a timeout (the monotonic clock runs a second a look).
 */
function soleVoterDriver(test: {
  readonly nowMs: number;
  readonly propose: (payload: Uint8Array) => BroadcastResult;
  readonly expiredAt: (index: number, deadlineMs: number) => boolean;
  /** Runs at each look the driver waits for (the default lets it look again at once). */
  readonly onWait?: () => void;
}): MembershipDriver {
  let clockMs = 0;
  const config = { voters: ['n1'], learners: [] };
  return new MembershipDriver({
    id: 'n1',
    core: { status: () => ({ role: 'leader', config }) } as unknown as RaftCore,
    transport: { setPeers: () => {} } as unknown as Transport,
    logger: { info: () => {}, warn: () => {}, error: () => {} },
    environment: {
      nowMs: () => test.nowMs,
      monotonicMs: () => (clockMs += 1_000),
      setTimer: (_delayMs, fire) => {
        test.onWait?.();
        fire();
        return { cancel: () => {} };
      },
      random: () => 0,
      randomHex: () => '00',
    },
    initialPeers: new Map([['n1', '127.0.0.1:7001']]),
    membership: () => new MembershipTable(),
    appliedConfig: () => config,
    propose: async (_topic, payload) => test.propose(payload),
    expiredAt: test.expiredAt,
    stopped: () => null,
    scheduleLoop: () => {},
    requestTimeoutMs: 10_000,
    pollIntervalMs: 10,
    reconcileIntervalTicks: 1,
  });
}

test('a request recorded after its deadline is answered as expired, stamped with one', async () => {
  const recorded: unknown[] = [];
  const driver = soleVoterDriver({
    nowMs: 50_000,
    propose: (payload) => {
      recorded.push(decodeMembershipCommand(payload));
      return { position: null, index: 7, term: 2, duplicate: false };
    },
    expiredAt: (index, deadlineMs) => index === 7 && deadlineMs === 60_000,
    onWait: () => assert.fail('an expired request is answered without waiting'),
  });
  await assert.rejects(driver.addMember(member('n2')), (error: BroadcastError) => {
    assert.equal(error.code, 'timeout');
    assert.equal(error.details.outcome, 'expired');
    return true;
  });
  await assert.rejects(driver.removeMember('n2'), /after its deadline/);
  assert.deepEqual(recorded, [
    { op: 'upsert', member: member('n2'), deadlineMs: 60_000 },
    { op: 'remove', id: 'n2', deadlineMs: 60_000 },
  ]);
});

test('the only voter cannot be removed or demoted: refused before anything is recorded', async () => {
  let recordCount = 0;
  const driver = soleVoterDriver({
    nowMs: 0,
    propose: () => {
      recordCount++;
      return { position: null, index: 3, term: 1, duplicate: false };
    },
    expiredAt: () => false,
  });
  const lastVoter = (verb: string) => (error: BroadcastError) => {
    assert.equal(error.code, 'last_voter');
    assert.equal(error.details.field, 'id');
    assert.match(error.message, new RegExp(`cannot ${verb} n1`));
    return true;
  };
  await assert.rejects(driver.removeMember('n1'), lastVoter('remove'));
  await assert.rejects(driver.addMember(member('n1', false)), lastVoter('demote'));
  assert.equal(recordCount, 0, 'nothing recorded');
  await driver.removeMember('n2'); // another member goes as asked
  assert.equal(recordCount, 1);
});

test('a node joins a running cluster, catches up and votes; another leaves', {
  timeout: 60_000,
}, async () => {
  const { root, address, initial, nodes, start } = await membersOnDisk();
  try {
    for (const id of Object.keys(initial)) nodes.set(id, await start(id, initial));
    const n1 = nodes.get('n1')!;
    for (let count = 0; count < 20; count++)
      await n1.broadcast(new TextEncoder().encode(`before-${count}`));
    const joiner = await start('n4', { ...initial, n4: address(3) }, true);
    nodes.set('n4', joiner);
    const status = await nodes.get('n2')!.addMember({ id: 'n4', address: address(3), voter: true });
    assert.ok(status.config.voters.includes('n4'), 'n4 votes');
    assert.equal(status.members.find((entry) => entry.id === 'n4')?.address, address(3));
    for (let count = 0; count < 5; count++)
      await joiner.broadcast(new TextEncoder().encode(`joined-${count}`));
    const removal = await n1.removeMember('n2');
    assert.ok(!removal.config.voters.includes('n2') && !removal.config.learners.includes('n2'));
    await n1.broadcast(new TextEncoder().encode('after-removal'));
    const target = n1.status().lastPosition;
    await waitFor(
      () => ['n1', 'n3', 'n4'].every((id) => nodes.get(id)!.status().lastPosition >= target),
      'members caught up',
    );
    const texts = (id: string) =>
      nodes
        .get(id)!
        .read(1, 1000)
        .map((m) => new TextDecoder().decode(m.payload));
    assert.equal(texts('n1').length, 26);
    assert.deepEqual(texts('n4'), texts('n1'));
    assert.deepEqual(texts('n3'), texts('n1'));
  } finally {
    for (const node of nodes.values()) await node.close();
    await rm(root, { recursive: true, force: true });
  }
});

test('a leader that joined later removes itself, and the others go on without it', {
  timeout: 60_000,
}, async () => {
  // The record that removes a member is applied before the configuration change that
  // removes it is proposed: the others must still hear the leader until that change is
  // decided, or they stay pre-candidates waiting for a vote they can no longer get.
  const { root, address, initial, nodes, start } = await membersOnDisk();
  try {
    for (const id of Object.keys(initial)) nodes.set(id, await start(id, initial));
    const joiner = await start('n4', { ...initial, n4: address(3) }, true);
    nodes.set('n4', joiner);
    await nodes.get('n1')!.addMember({ id: 'n4', address: address(3), voter: true });
    await waitFor(() => {
      const leader = [...nodes.values()].find((node) => node.status().role === 'leader');
      if (leader === undefined || leader.id === 'n4') return leader !== undefined;
      leader.transferLeadership('n4');
      return false;
    }, 'n4 leads');
    await joiner.removeMember('n4');
    const survivors = ['n1', 'n2', 'n3'].map((id) => nodes.get(id)!);
    await waitFor(
      () => survivors.some((node) => node.status().role === 'leader'),
      'a leader among the others',
      20_000,
    );
    const leader = survivors.find((node) => node.status().role === 'leader')!;
    await leader.broadcast(new TextEncoder().encode('after the leader left'));
  } finally {
    for (const node of nodes.values()) await node.close();
    await rm(root, { recursive: true, force: true });
  }
});
