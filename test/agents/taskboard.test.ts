// Proves the task board's guarantees on the in-memory log (a virtual clock where time must be
// exact, the real one where agents wait) and on a real 3-node cluster through the SDK: one
// winner per claim, FIFO by post order, each task completed exactly once under contention,
// leases that expire in log time hand the task to another agent while the crashed agent's
// late complete is refused, replicas agree, snapshots restore, and bad input gets typed errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MemoryLog } from '../../src/agents/memory-log.ts';
import { MemorySnapshotStore } from '../../src/agents/snapshots.ts';
import type { StateMachine } from '../../src/agents/state-machine.ts';
import {
  type BoardState,
  type Claim,
  pendingTasksMax,
  TaskBoard,
  type TaskBoardOptions,
  taskBoardMachine,
} from '../../src/agents/taskboard.ts';
import { type Client, connect } from '../../src/client/index.ts';
import { startHttpCluster } from '../server/cluster.ts';
import { checkRestoreMatchesReplay } from './restore-replay.ts';

function openBoard(log: MemoryLog, extra: Partial<TaskBoardOptions> = {}): Promise<TaskBoard> {
  return TaskBoard.open({
    log: log.session(),
    name: 'jobs',
    checkDeterminism: true,
    waitTimeoutMs: 5_000,
    ...extra,
  });
}

/** The board's whole state as JSON, to compare replicas. */
async function stateOf(board: TaskBoard): Promise<unknown> {
  return board.replica.read((state) => structuredClone(taskBoardMachine.encodeState?.(state)));
}

test('claims go FIFO by post order, one task each; posting with an id is idempotent', async () => {
  let now = 1_000_000;
  const log = new MemoryLog({ clockMs: () => now });
  const [a, b] = [await openBoard(log), await openBoard(log)];
  const first = await a.post({ n: 1 });
  assert.equal(first, '#1');
  assert.equal(await a.post({ n: 2 }, { id: 'two' }), 'two');
  assert.equal(await b.post({ n: 2, again: true }, { id: 'two' }), 'two');
  await b.post({ n: 3 }, { id: 'three' });
  assert.deepEqual(await a.counts(), { open: 3, claimed: 0, done: 0 });
  assert.deepEqual(
    (await a.task('two'))?.task,
    { n: 2 },
    'the second post of an id changes nothing',
  );

  const claimA = (await a.claim('agent-a', { leaseMs: 1_000 })) as Claim;
  const claimB = (await b.claim('agent-b', { leaseMs: 1_000 })) as Claim;
  assert.deepEqual([claimA.taskId, claimB.taskId], ['#1', 'two']);
  assert.equal(claimA.token, 5, 'the token is the position of the claim command');
  assert.equal(claimA.leaseExpiresAt, now + 1_000);
  assert.equal(claimA.attempt, 1);
  assert.deepEqual(await a.release(claimA, 'not mine'), { ok: true });
  // Released, #1 is first in post order again.
  const again = (await b.claim('agent-b', { leaseMs: 1_000 })) as Claim;
  assert.equal(again.taskId, '#1');
  assert.equal(again.attempt, 2);
  assert.deepEqual(await a.complete(claimA, 'late'), { ok: false, reason: 'superseded' });
  assert.deepEqual(await b.complete(again, { answer: 42 }), { ok: true });
  assert.deepEqual(await b.complete(again, { answer: 43 }), { ok: false, reason: 'already_done' });
  now += 500;
  const renewed = await b.renew(claimB, { leaseMs: 2_000 });
  assert.ok(renewed.ok && renewed.claim.leaseExpiresAt === now + 2_000);
  assert.deepEqual(await a.counts(), { open: 1, claimed: 1, done: 1 });
  assert.deepEqual(
    (await a.list()).map((task) => [task.id, task.status]),
    [
      ['#1', 'done'],
      ['two', 'claimed'],
      ['three', 'open'],
    ],
  );
  assert.deepEqual((await a.task('#1'))?.result, { answer: 42 });
  assert.equal(await a.task('nope'), null);
  assert.deepEqual(await stateOf(a), await stateOf(b));
  await Promise.all([a.close(), b.close()]);
});

test('20 agents claiming concurrently: one winner per claim, every task completed exactly once', async () => {
  let now = 5_000_000;
  const log = new MemoryLog({ clockMs: () => now++ });
  const boards = await Promise.all(Array.from({ length: 20 }, () => openBoard(log)));
  const taskCount = 100;
  await Promise.all(
    Array.from({ length: taskCount }, (_, n) => boards[n % 20]!.post({ n }, { id: `t${n}` })),
  );
  const completedBy = new Map<string, string>();
  const tokens = new Set<number>();
  await Promise.all(
    boards.map(async (board, at) => {
      const agentId = `agent-${at}`;
      for (let claim = await board.claim(agentId, { leaseMs: 60_000 }); claim !== null; ) {
        assert.ok(!tokens.has(claim.token), 'tokens are unique');
        tokens.add(claim.token);
        assert.deepEqual(await board.complete(claim, agentId), { ok: true });
        assert.ok(!completedBy.has(claim.taskId), `task ${claim.taskId} completed once`);
        completedBy.set(claim.taskId, agentId);
        claim = await board.claim(agentId, { leaseMs: 60_000 });
      }
    }),
  );
  assert.equal(completedBy.size, taskCount);
  assert.deepEqual(await boards[0]!.counts(), { open: 0, claimed: 0, done: taskCount });
  const states = await Promise.all(boards.map(stateOf));
  for (const state of states) assert.deepEqual(state, states[0]);
  for (const task of await boards[3]!.list({ limit: taskCount })) {
    assert.equal(task.result, completedBy.get(task.id));
    assert.equal(task.attempts, 1);
  }
  await Promise.all(boards.map((board) => board.close()));
});

test('a lease ends in log time: the task is reassigned and the late complete or renew is refused', async () => {
  let now = 10_000;
  const log = new MemoryLog({ clockMs: () => now });
  const [a, b] = [await openBoard(log), await openBoard(log)];
  await a.post('only');
  const claimA = (await a.claim('a', { leaseMs: 1_000 })) as Claim;
  now += 999;
  assert.equal(await b.claim('b', { leaseMs: 1_000 }), null, 'not yet expired at 999 ms');
  now += 1;
  // The first command at or after the lease end reopens the task.
  await b.tick();
  assert.deepEqual(await a.renew(claimA, { leaseMs: 1_000 }), {
    ok: false,
    reason: 'lease_expired',
  });
  assert.deepEqual(await b.counts(), { open: 1, claimed: 0, done: 0 });
  const claimB = (await b.claim('b', { leaseMs: 1_000 })) as Claim;
  assert.equal(claimB.attempt, 2);
  assert.ok(claimB.token > claimA.token);
  assert.deepEqual(await a.complete(claimA, 'late'), { ok: false, reason: 'superseded' });
  assert.deepEqual(await b.complete(claimB, 'on time'), { ok: true });
  assert.equal((await a.task('#1'))?.result, 'on time');
  await Promise.all([a.close(), b.close()]);
});

test('next() waits out a crashed claimer’s lease and takes the task over (real clock)', async () => {
  const log = new MemoryLog();
  const [crashing, waiting] = [await openBoard(log), await openBoard(log)];
  await crashing.post({ job: 'x' });
  const lost = (await crashing.claim('crasher', { leaseMs: 150 })) as Claim;
  await crashing.close(); // the agent crashes: it never renews
  const started = Date.now();
  const taken = await waiting.next('survivor', { leaseMs: 5_000, timeoutMs: 5_000 });
  const waitedMs = Date.now() - started;
  assert.equal(taken.taskId, lost.taskId);
  assert.equal(taken.attempt, 2);
  assert.ok(taken.token > lost.token);
  assert.ok(waitedMs >= 100 && waitedMs < 2_000, `waited ${waitedMs} ms for a 150 ms lease`);
  // The crashed agent's process comes back with its old claim: refused.
  const revived = await openBoard(log);
  assert.deepEqual(await revived.complete(lost, 'late'), { ok: false, reason: 'superseded' });
  assert.deepEqual(await revived.renew(lost, { leaseMs: 100 }), {
    ok: false,
    reason: 'superseded',
  });
  assert.deepEqual(await waiting.complete(taken, 'done'), { ok: true });
  await Promise.all([waiting.close(), revived.close()]);
});

test('10 agents waiting in next() on one expiring lease: exactly one takes the task', async () => {
  const log = new MemoryLog();
  const crashing = await openBoard(log);
  await crashing.post('contended');
  const lost = (await crashing.claim('crasher', { leaseMs: 100 })) as Claim;
  await crashing.close();
  const boards = await Promise.all(Array.from({ length: 10 }, () => openBoard(log)));
  const controller = new AbortController();
  const waits = boards.map((board, at) =>
    board.next(`w${at}`, { leaseMs: 60_000, signal: controller.signal }),
  );
  const winner = await Promise.race(waits);
  assert.ok(winner.token > lost.token);
  controller.abort();
  const settled = await Promise.allSettled(waits);
  assert.equal(settled.filter((outcome) => outcome.status === 'fulfilled').length, 1);
  assert.deepEqual(await boards[0]!.counts(), { open: 0, claimed: 1, done: 0 });
  await Promise.all(boards.map((board) => board.close()));
});

test('next() waits for a post on an empty board, and an abort ends the wait', async () => {
  const log = new MemoryLog();
  const [worker, poster] = [await openBoard(log), await openBoard(log)];
  const waiting = worker.next('w', { leaseMs: 1_000 });
  await poster.post('arrives later', { id: 'late' });
  assert.equal((await waiting).taskId, 'late');
  const controller = new AbortController();
  const aborted = worker.next('w', { leaseMs: 1_000, signal: controller.signal });
  setImmediate(() => controller.abort());
  await assert.rejects(aborted, { code: 'aborted' });
  await assert.rejects(worker.next('w', { leaseMs: 1_000, timeoutMs: 20 }), { code: 'timeout' });
  await Promise.all([worker.close(), poster.close()]);
});

test('a restarted replica starts from its snapshot and agrees with a full replay', async () => {
  let now = 0;
  const log = new MemoryLog({ clockMs: () => (now += 10) });
  const store = new MemorySnapshotStore();
  const first = await openBoard(log, { snapshotStore: store, snapshotEveryCommands: 7 });
  for (let n = 0; n < 30; n++) await first.post({ n });
  for (let n = 0; n < 12; n++) {
    const claim = (await first.claim('a', { leaseMs: n % 3 === 0 ? 15 : 100_000 })) as Claim;
    if (n % 2 === 0) await first.complete(claim, n);
  }
  await first.close();
  const saved = await store.load('taskboard/jobs');
  assert.equal(saved?.position, log.lastPosition);
  const restarted = await openBoard(log, { snapshotStore: store });
  assert.equal(restarted.replica.appliedPosition, log.lastPosition);
  await restarted.claim('b', { leaseMs: 1_000 });
  const replayed = await openBoard(log);
  assert.deepEqual(await stateOf(restarted), await stateOf(replayed));
  assert.deepEqual(await restarted.counts(), await replayed.counts());
  await Promise.all([restarted.close(), replayed.close()]);
});

test('bad arguments are invalid_argument; foreign commands on the topic are refused everywhere', async () => {
  const log = new MemoryLog();
  const board = await openBoard(log);
  const bad: [string, () => Promise<unknown>][] = [
    ['leaseMs 0', () => board.claim('a', { leaseMs: 0 })],
    ['no agent', () => board.claim('', { leaseMs: 10 })],
    ['id with #', () => board.post(1, { id: '#7' })],
    ['options null', () => board.post(1, null as unknown as { id: string })],
    ['task not JSON', () => board.post(() => 1)],
    ['huge task', () => board.post('x'.repeat(70_000))],
    ['claim without token', () => board.complete({ taskId: 'x' } as Claim)],
    ['list limit', () => board.list({ limit: 0 })],
    ['next lease', () => board.next('a', { leaseMs: -1 })],
    ['bad name', () => TaskBoard.open({ log: log.session(), name: '' })],
  ];
  for (const [what, call] of bad) await assert.rejects(call(), { code: 'invalid_argument' }, what);
  const before = log.lastPosition;
  assert.equal(before, 0, 'refused arguments never reach the log');
  for (const payload of [
    null,
    'claim',
    { op: 'claim' },
    { op: 'nuke' },
    { op: 'post', task: undefined },
  ]) {
    log.append(payload, 'taskboard/jobs', 'intruder');
  }
  log.append({ op: 'complete', taskId: 'x', token: 1 }, 'taskboard/jobs', 'intruder');
  await board.post('fine');
  assert.deepEqual(await board.counts(), { open: 1, claimed: 0, done: 0 });
  assert.equal(board.replica.failure, null);
  await board.close();
});

test('agents on a real 3-node cluster through the SDK: one winner per claim, expiry hands over', async () => {
  const cluster = await startHttpCluster();
  const urls = cluster.members.map((member) => member.url);
  const clients: Client[] = urls.map((_, at) =>
    connect({ endpoints: [...urls.slice(at), ...urls.slice(0, at)], requestTimeoutMs: 2_000 }),
  );
  const boards = await Promise.all(
    clients.map((client) =>
      TaskBoard.open({ log: client, name: 'cluster', checkDeterminism: true }),
    ),
  );
  try {
    await Promise.all(
      Array.from({ length: 30 }, (_, n) => boards[n % 3]!.post({ n }, { id: `c${n}` })),
    );
    const done = new Set<string>();
    await Promise.all(
      boards.map(async (board, at) => {
        for (let claim = await board.claim(`n${at}`, { leaseMs: 30_000 }); claim !== null; ) {
          assert.deepEqual(await board.complete(claim, at), { ok: true });
          assert.ok(!done.has(claim.taskId));
          done.add(claim.taskId);
          claim = await board.claim(`n${at}`, { leaseMs: 30_000 });
        }
      }),
    );
    assert.equal(done.size, 30);
    await boards[0]!.post('leased', { id: 'expiring' });
    const lost = (await boards[0]!.claim('crasher', { leaseMs: 300 })) as Claim;
    const taken = await boards[1]!.next('survivor', { leaseMs: 30_000, timeoutMs: 10_000 });
    assert.equal(taken.taskId, 'expiring');
    assert.ok(taken.token > lost.token);
    assert.deepEqual(await boards[0]!.complete(lost, 'late'), { ok: false, reason: 'superseded' });
    assert.deepEqual(await boards[2]!.complete(taken, 'ok'), { ok: true });
    const states = await Promise.all(boards.map(stateOf));
    for (const state of states) assert.deepEqual(state, states[0]);
    assert.deepEqual(await boards[2]!.counts(), { open: 0, claimed: 0, done: 31 });
  } finally {
    await Promise.all(boards.map((board) => board.close()));
    for (const client of clients) client.close();
    await cluster.close();
  }
});

test('what onApplied listeners see never aliases the board: mutating it changes no task', async () => {
  const log = new MemoryLog();
  const board = await openBoard(log);
  board.replica.onApplied((event) => {
    const command = event.command as { task?: { n: number }; result?: { n: number } };
    if (command.task !== undefined) command.task.n = -1;
    if (command.result !== undefined) command.result.n = -1;
  });
  await board.post({ n: 1 }, { id: 'a' });
  const claim = (await board.claim('w', { leaseMs: 60_000 })) as Claim;
  assert.deepEqual(claim.task, { n: 1 });
  await board.complete(claim, { n: 2 });
  const task = await board.task('a');
  assert.deepEqual([task?.task, task?.result], [{ n: 1 }, { n: 2 }]);
  await board.close();
});

// ------------------------------------------------------------ restore against replay

test('a replica restored from its snapshot at any position agrees with one that replayed from 1', () => {
  const agent = fc.constantFrom('a', 'b', 'c');
  const taskId = fc.oneof(
    agent,
    fc.integer({ min: 1, max: 12 }).map((at) => `#${at}`),
  );
  const back = fc.integer({ min: -8, max: -1 });
  const leaseMs = fc.integer({ min: 1, max: 100 });
  checkRestoreMatchesReplay(
    taskBoardMachine as StateMachine<BoardState, never, unknown>,
    fc.oneof(
      fc.record({ op: fc.constant('post'), id: fc.option(agent), task: fc.jsonValue() }),
      fc.record({ op: fc.constant('claim'), agentId: agent, leaseMs }),
      fc.record({ op: fc.constant('renew'), taskId, token: back, leaseMs }),
      fc.record({
        op: fc.constantFrom('complete', 'release'),
        taskId,
        token: back,
        result: fc.jsonValue(),
      }),
      fc.constantFrom({ op: 'tick' }, null, 'claim', { op: 'nuke' }, { op: 'claim', leaseMs: 0 }),
    ),
  );
});

test('a post refused at the pending limit leaves the lease heap’s top live, as next() relies on', () => {
  const state = taskBoardMachine.initialState();
  let index = 0;
  const apply = (payload: unknown, time: number) =>
    taskBoardMachine.apply(state, taskBoardMachine.parseCommand?.(payload) as never, {
      position: ++index,
      time,
      client: null,
    });
  for (let n = 0; n < pendingTasksMax; n++) apply({ op: 'post', task: n }, 0);
  apply({ op: 'claim', agentId: 'a', leaseMs: 100 }, 0); // leases [100, a]
  const b = apply({ op: 'claim', agentId: 'b', leaseMs: 200 }, 0) as Claim;
  apply({ op: 'renew', taskId: b.taskId, token: b.token, leaseMs: 1_000 }, 5); // 200 is stale
  // The lease ending at 100 expires in this command, which is then refused: the board is full.
  assert.throws(() => apply({ op: 'post', task: 'one too many' }, 150), /pending tasks/);
  assert.equal(state.leases[0]?.[0], 1_005, 'the earliest lease end is a live one');
});
