// The simulator's checkers can fail: each is fed a hand-made history that breaks its property
// and must throw a SimViolation naming it, while a consistent history passes them all.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeConfiguration } from '../../src/raft/config.ts';
import type { Entry, HardState, Message, NodeId, Ready, Snapshot } from '../../src/raft/types.ts';
import { Checker } from '../../src/sim/checkers.ts';
import { SimDisk } from '../../src/sim/disk.ts';
import { type Property, SimViolation, ViolationContext } from '../../src/sim/violation.ts';

const nodes = new Set(['n1', 'n2', 'n3']);
const config = { voters: ['n1', 'n2', 'n3'], learners: [] };

function makeChecker(disabled: Property[] = []): Checker {
  const context = new ViolationContext(
    { seed: 0x5eed, nodeCount: null, unsafe: null, profile: null },
    disabled,
  );
  return new Checker(context, nodes);
}

function configEntry(index: number, term: number): Entry {
  return { index, term, kind: 'config', data: encodeConfiguration(config) };
}

function noop(index: number, term: number): Entry {
  return { index, term, kind: 'noop', data: new Uint8Array() };
}

/** A normal entry; the core's checkers compare its bytes, not what they mean to clients. */
function batch(index: number, term: number, text: string): Entry {
  return { index, term, kind: 'normal', data: new TextEncoder().encode(text) };
}

function diskWith(entries: Entry[], hardState: HardState | null): SimDisk {
  const disk = new SimDisk();
  disk.append(entries);
  disk.hardState = hardState;
  return disk;
}

/** Delivers entries in order through the checker, as a node applies them. */
function deliver(checker: Checker, node: NodeId, disk: SimDisk, entries: Entry[]) {
  for (const entry of entries) checker.onDeliver(node, entry, disk, entry.index - 1);
}

function throwsViolation(action: () => void, property: Property): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof SimViolation, `expected a SimViolation, got ${String(error)}`);
    assert.equal(error.property, property);
    assert.match(error.message, /replay: npm run sim -- --seed 0x5eed --trace/);
    return true;
  });
}

/** Entries 1..4: bootstrap config, a leader's noop, two batches. */
function commonLog(): Entry[] {
  return [configEntry(1, 1), noop(2, 2), batch(3, 2, 'a b'), batch(4, 2, 'c')];
}

function snapshotAt(index: number, term: number): Snapshot {
  return { meta: { index, term, config }, data: new Uint8Array() };
}

test('a consistent history passes every checker', () => {
  const checker = makeChecker();
  const log = commonLog();
  const hardState = { term: 2, vote: 'n1', commit: 4 };
  for (const node of ['n1', 'n2']) {
    const disk = diskWith(log, hardState);
    checker.onDurable(node, log, disk);
    deliver(checker, node, disk, log);
    checker.checkSnapshotState(node, snapshotAt(4, 2));
  }
  checker.onLeader('n1', 2, diskWith(log, hardState));
  assert.equal(checker.record.length, 4);
});

test('election safety: two leaders in one term', () => {
  const checker = makeChecker();
  checker.onLeader('n1', 3, null);
  throwsViolation(() => checker.onLeader('n2', 3, null), 'election safety');
});

test('election safety: a second node sends leader messages in a term', () => {
  const checker = makeChecker();
  const disk = diskWith([configEntry(1, 1)], { term: 3, vote: null, commit: 1 });
  const heartbeat: Message = {
    type: 'Heartbeat',
    from: 'n1',
    to: 'n2',
    term: 3,
    commit: 1,
    readRound: 0,
  };
  checker.onSend('n1', heartbeat, disk);
  const append: Message = {
    type: 'Append',
    from: 'n3',
    to: 'n2',
    term: 3,
    prevLogIndex: 1,
    prevLogTerm: 1,
    entries: [],
    commit: 1,
  };
  throwsViolation(() => checker.onSend('n3', append, disk), 'election safety');
});

test('vote durability: a vote changes within a term', () => {
  const checker = makeChecker();
  const disk = diskWith([configEntry(1, 1)], { term: 2, vote: 'n2', commit: 1 });
  const ready = emptyReady({ hardState: { term: 2, vote: 'n3', commit: 1 } });
  throwsViolation(() => checker.onReady('n1', ready, disk, 1), 'vote durability');
});

test('vote durability: a granted vote leaves before it is on disk', () => {
  const checker = makeChecker();
  const disk = diskWith([configEntry(1, 1)], { term: 2, vote: null, commit: 1 });
  const grant: Message = { type: 'VoteResponse', from: 'n1', to: 'n3', term: 2, granted: true };
  throwsViolation(() => checker.onSend('n1', grant, disk), 'vote durability');
  // A later durable term forecloses voting in term 2 again, so the late grant is safe.
  const later = diskWith([configEntry(1, 1)], { term: 3, vote: null, commit: 1 });
  checker.onSend('n1', grant, later);
});

test('log matching: one (index, term) with two different prefixes', () => {
  const checker = makeChecker();
  const first = [configEntry(1, 1), noop(2, 2)];
  const second = [
    { ...configEntry(1, 1), data: encodeConfiguration({ voters: ['n1'], learners: [] }) },
    noop(2, 2),
  ];
  checker.onDurable('n1', first, diskWith(first, null));
  throwsViolation(() => checker.onDurable('n2', second, diskWith(second, null)), 'log matching');
});

test('state machine safety: two nodes deliver different entries at one index', () => {
  const checker = makeChecker();
  const ours = [configEntry(1, 1), noop(2, 2)];
  deliver(checker, 'n1', diskWith(ours, { term: 2, vote: null, commit: 2 }), ours);
  const theirs = [configEntry(1, 1), noop(2, 3)];
  const disk = diskWith(theirs, { term: 3, vote: null, commit: 2 });
  throwsViolation(() => deliver(checker, 'n2', disk, theirs), 'state machine safety');
});

test('leader completeness: a leader of a later term lacks a committed entry', () => {
  const checker = makeChecker();
  const log = [configEntry(1, 1), noop(2, 2), noop(3, 2)];
  deliver(checker, 'n1', diskWith(log, { term: 2, vote: null, commit: 3 }), log);
  const short = diskWith(log.slice(0, 2), { term: 3, vote: 'n2', commit: 2 });
  throwsViolation(() => checker.onLeader('n2', 3, short), 'leader completeness');
});

test('delivery order: an index is skipped', () => {
  const checker = makeChecker();
  const log = [configEntry(1, 1), noop(2, 2)];
  const disk = diskWith(log, { term: 2, vote: null, commit: 2 });
  throwsViolation(() => checker.onDeliver('n1', log[1] as Entry, disk, 0), 'delivery order');
});

test('durability: an acknowledgement of entries not on disk', () => {
  const checker = makeChecker();
  const disk = diskWith([configEntry(1, 1)], { term: 2, vote: null, commit: 1 });
  const ack: Message = {
    type: 'AppendResponse',
    from: 'n2',
    to: 'n1',
    term: 2,
    success: true,
    index: 5,
    hintIndex: 0,
    hintTerm: 0,
  };
  throwsViolation(() => checker.onSend('n2', ack, disk), 'durability');
  // The ack of an older term may leave after a newer leader truncated it (a delayed packet).
  const newer = diskWith([configEntry(1, 1)], { term: 3, vote: null, commit: 1 });
  checker.onSend('n2', ack, newer);
});

test('durability: a message of a term not yet on disk', () => {
  const checker = makeChecker();
  const disk = diskWith([configEntry(1, 1)], { term: 2, vote: null, commit: 1 });
  const response: Message = {
    type: 'HeartbeatResponse',
    from: 'n2',
    to: 'n1',
    term: 4,
    readRound: 0,
  };
  throwsViolation(() => checker.onSend('n2', response, disk), 'durability');
});

test('durability: a Ready overwrites a committed entry with another', () => {
  const checker = makeChecker();
  const disk = diskWith([configEntry(1, 1), noop(2, 2)], { term: 3, vote: null, commit: 2 });
  const ready = emptyReady({ entriesToAppend: [noop(2, 3)] });
  throwsViolation(() => checker.onReady('n1', ready, disk, 2), 'durability');
  // Re-writing the same committed entry is allowed (the core re-sends its unstable suffix).
  checker.onReady('n1', emptyReady({ entriesToAppend: [noop(2, 2), noop(3, 3)] }), disk, 2);
});

test('snapshot state: a snapshot whose term, configuration or index departs from the log', () => {
  const checker = makeChecker();
  const log = commonLog();
  deliver(checker, 'n1', diskWith(log, { term: 2, vote: null, commit: 4 }), log);
  throwsViolation(() => checker.checkSnapshotState('n1', snapshotAt(4, 3)), 'snapshot state');
  const wrongConfig = { ...snapshotAt(4, 2).meta, config: { voters: ['n1'], learners: [] } };
  throwsViolation(
    () => checker.checkSnapshotState('n1', { meta: wrongConfig, data: new Uint8Array() }),
    'snapshot state',
  );
  throwsViolation(() => checker.checkSnapshotState('n1', snapshotAt(9, 2)), 'snapshot state');
});

test('commit rule: a leader commits an entry of an earlier term by counting', () => {
  const checker = makeChecker();
  const disk = diskWith([configEntry(1, 1), noop(2, 2)], { term: 3, vote: 'n1', commit: 2 });
  throwsViolation(
    () => checker.onLeaderCommit('n1', 1, { term: 3, vote: 'n1', commit: 2 }, disk),
    'commit rule',
  );
});

test('durability: a leader commits an index it does not hold on disk', () => {
  const checker = makeChecker();
  const disk = diskWith([configEntry(1, 1), noop(2, 3)], { term: 3, vote: 'n1', commit: 1 });
  throwsViolation(
    () => checker.onLeaderCommit('n1', 1, { term: 3, vote: 'n1', commit: 3 }, disk),
    'durability',
  );
  checker.onLeaderCommit('n1', 1, { term: 3, vote: 'n1', commit: 2 }, disk);
});

test('ready contract: a Ready appends with a gap', () => {
  const checker = makeChecker();
  const disk = diskWith([configEntry(1, 1)], { term: 2, vote: null, commit: 1 });
  throwsViolation(
    () => checker.onReady('n1', emptyReady({ entriesToAppend: [noop(3, 2)] }), disk, 1),
    'ready contract',
  );
});

test('a disabled property is not checked, and others still are', () => {
  const checker = makeChecker(['election safety']);
  checker.onLeader('n1', 3, null);
  checker.onLeader('n2', 3, null);
  const disk = diskWith([configEntry(1, 1)], { term: 2, vote: null, commit: 1 });
  const grant: Message = { type: 'VoteResponse', from: 'n1', to: 'n3', term: 2, granted: true };
  throwsViolation(() => checker.onSend('n1', grant, disk), 'vote durability');
});

function emptyReady(fields: Partial<Ready>): Ready {
  return {
    softState: null,
    hardState: null,
    snapshot: null,
    entriesToAppend: [],
    messagesToSend: [],
    entriesToDeliver: [],
    readStates: [],
    ...fields,
  };
}
