// Proves cyclic barriers on the in-memory log, then on a real 3-node cluster through the
// SDK: many agents arriving concurrently pass generation after generation with exactly N
// distinct agents each, seen identically by all; retries do not count twice; a wrong
// `parties` is refused; a wait that times out or is aborted withdraws its arrival, unless
// the barrier tripped first; foreign input is refused; the state survives a snapshot.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  Barrier,
  type BarrierState,
  barrierMachine,
  barriersMax,
  parseBarrierCommand,
} from '../../src/agents/barrier.ts';
import type { AgentError } from '../../src/agents/errors.ts';
import { MemoryLog } from '../../src/agents/memory-log.ts';
import { MemorySnapshotStore } from '../../src/agents/snapshots.ts';
import type { StateMachine } from '../../src/agents/state-machine.ts';
import { type Client, connect } from '../../src/client/index.ts';
import { startHttpCluster } from '../server/cluster.ts';
import { checkRestoreMatchesReplay } from './restore-replay.ts';

function openOn(log: MemoryLog, extra: { snapshotStore?: MemorySnapshotStore } = {}) {
  return Barrier.open({
    log: log.session(),
    name: 'phases',
    checkDeterminism: true,
    waitTimeoutMs: 5_000,
    ...extra,
  });
}

test('10 agents pass 3 generations in a row, exactly 10 distinct agents each', async () => {
  let now = 0;
  const log = new MemoryLog({ clockMs: () => (now += 1) });
  const agents = await Promise.all(Array.from({ length: 10 }, () => openOn(log)));
  const results = await Promise.all(
    agents.map(async (barrier, n) => {
      const passed = [];
      for (let round = 0; round < 3; round++) {
        passed.push(await barrier.arrive('step', `agent-${n}`, { parties: 10 }));
      }
      return passed;
    }),
  );
  for (let round = 0; round < 3; round++) {
    const seen = results.map((passed) => passed[round]!);
    for (const passed of seen) assert.deepEqual(passed, seen[0]);
    assert.equal(seen[0]!.generation, round);
    assert.equal(new Set(seen[0]!.arrived).size, 10);
  }
  for (const barrier of agents) {
    assert.deepEqual(await barrier.replica.read(), await agents[0]!.replica.read());
  }
  assert.deepEqual(agents[3]!.status('step'), { generation: 3, parties: null, arrived: [] });
  await Promise.all(agents.map((barrier) => barrier.close()));
});

test('a retried arrival counts once; a wrong parties is refused', async () => {
  const log = new MemoryLog();
  const [a, b] = [await openOn(log), await openOn(log)];
  const first = a.arrive('gate', 'alice', { parties: 2 });
  const retry = a.arrive('gate', 'alice', { parties: 2 });
  await a.replica.waitUntil((state) => (state.barriers.get('gate') ? true : undefined));
  await b.replica.read();
  assert.deepEqual(b.status('gate'), { generation: 0, parties: 2, arrived: ['alice'] });
  await assert.rejects(b.arrive('gate', 'bob', { parties: 3 }), (error: AgentError) => {
    assert.equal(error.code, 'rejected');
    assert.equal(error.details.reason, 'parties_mismatch');
    assert.equal(error.details.parties, 2);
    return true;
  });
  const passed = await b.arrive('gate', 'bob', { parties: 2 });
  assert.deepEqual(passed, { generation: 0, arrived: ['alice', 'bob'] });
  assert.deepEqual(await first, passed);
  assert.deepEqual(await retry, passed);
  // The next generation may choose another size.
  assert.deepEqual(await a.arrive('gate', 'solo', { parties: 1 }), {
    generation: 1,
    arrived: ['solo'],
  });
  await Promise.all([a.close(), b.close()]);
});

test('agents whose peer crashed time out or abort, and their arrivals are withdrawn', async () => {
  const log = new MemoryLog();
  const [a, b] = [await openOn(log), await openOn(log)];
  const controller = new AbortController();
  const timedOut = a.arrive('sync', 'alice', { parties: 3, timeoutMs: 50 });
  const aborted = b.arrive('sync', 'bob', { parties: 3, signal: controller.signal });
  // carol crashed before arriving: nobody completes the generation.
  await assert.rejects(timedOut, (error: AgentError) => {
    assert.equal(error.code, 'timeout');
    assert.equal(error.details.generation, 0);
    return true;
  });
  controller.abort();
  await assert.rejects(aborted, { code: 'aborted' });
  await b.replica.read();
  assert.deepEqual(b.status('sync'), { generation: 0, parties: null, arrived: [] });
  // With the arrivals withdrawn, a fresh set of agents starts generation 0 anew.
  const pair = await Promise.all([
    a.arrive('sync', 'dave', { parties: 2 }),
    b.arrive('sync', 'erin', { parties: 2 }),
  ]);
  assert.equal(pair[0].generation, 0);
  assert.deepEqual([...pair[0].arrived].sort(), ['dave', 'erin']);
  assert.equal(await a.withdraw('sync', 'nobody'), false);
  await assert.rejects(a.arrive('sync', 'x', { parties: 1, signal: AbortSignal.abort() }), {
    code: 'aborted',
  });
  await Promise.all([a.close(), b.close()]);
});

test('a withdrawal that lands after the barrier tripped resolves with the generation', async () => {
  const log = new MemoryLog();
  const barrier = await openOn(log);
  const controller = new AbortController();
  const waiting = barrier.arrive('late', 'alice', { parties: 2, signal: controller.signal });
  await barrier.replica.waitUntil((state) => (state.barriers.has('late') ? true : undefined));
  // Bob's arrival is in the log before alice's withdrawal, which follows the abort.
  log.append({ op: 'arrive', barrier: 'late', agentId: 'bob', parties: 2 }, 'barrier/phases', 'b');
  controller.abort();
  assert.deepEqual(await waiting, { generation: 0, arrived: ['alice', 'bob'] });
  await barrier.close();
});

test('an arrival withdrawn by another process fails its wait with withdrawn', async () => {
  const log = new MemoryLog();
  const [a, b] = [await openOn(log), await openOn(log)];
  const waiting = a.arrive('door', 'alice', { parties: 2 });
  await b.replica.waitUntil((state) => (state.barriers.has('door') ? true : undefined));
  assert.equal(await b.withdraw('door', 'alice'), true);
  await assert.rejects(waiting, (error: AgentError) => {
    assert.equal(error.code, 'rejected');
    assert.equal(error.details.reason, 'withdrawn');
    return true;
  });
  await Promise.all([a.close(), b.close()]);
});

test('idle barriers are forgotten, oldest first, when a topic holds the most it may', async () => {
  const log = new MemoryLog();
  const barrier = await Barrier.open({ log: log.session(), name: 'many', waitTimeoutMs: 20_000 });
  const waiting = barrier.arrive('busy', 'alice', { parties: 2 });
  // Appended as another process's arrivals: one read then waits for them all.
  for (let n = 0; n < barriersMax; n++) {
    log.append(
      { op: 'arrive', barrier: `round-${n}`, agentId: 'a', parties: 1 },
      'barrier/many',
      'x',
    );
  }
  await barrier.replica.read();
  // Full: round-0 (idle, completed first) made room for the last; 'busy' has a waiter.
  assert.equal(
    barrier.replica.readLocal((state) => state.barriers.size),
    barriersMax,
  );
  assert.ok(barrier.replica.readLocal((state) => !state.barriers.has('round-0')));
  assert.deepEqual(barrier.status('round-1'), { generation: 1, parties: null, arrived: [] });
  assert.deepEqual(await barrier.arrive('busy', 'bob', { parties: 2 }), {
    generation: 0,
    arrived: ['alice', 'bob'],
  });
  assert.deepEqual((await waiting).arrived, ['alice', 'bob']);
  await barrier.close();
});

test('foreign input is refused; the state survives a snapshot and a restart', async () => {
  const log = new MemoryLog();
  const store = new MemorySnapshotStore();
  const barrier = await openOn(log, { snapshotStore: store });
  const errors: string[] = [];
  barrier.replica.onApplied((applied) => {
    if (!applied.outcome.ok) errors.push(applied.outcome.error);
  });
  for (const payload of [
    7,
    { op: 'arrive', barrier: 'x', agentId: 'a', parties: 0 },
    { op: 'arrive', barrier: 'x', agentId: 'a', parties: 1001 },
    { op: 'arrive', barrier: '', agentId: 'a', parties: 2 },
    { op: 'withdraw', barrier: 'x', agentId: 'a', generation: -1 },
    { op: 'arrive', barrier: '__proto__', agentId: 'a', parties: 2 },
  ]) {
    log.append(payload, 'barrier/phases', 'intruder');
  }
  await barrier.replica.read();
  assert.equal(errors.length, 5);
  for (const error of errors) assert.match(error, /does not parse: .+/);
  assert.deepEqual(barrier.status('__proto__'), { generation: 0, parties: 2, arrived: ['a'] });
  assert.throws(() => parseBarrierCommand({ op: 'leave', barrier: 'x', agentId: 'a' }), {
    code: 'invalid_argument',
  });
  await assert.rejects(barrier.arrive('x', 'a', { parties: 1.5 }), { code: 'invalid_argument' });
  await barrier.arrive('x', 'a', { parties: 1 });
  await barrier.close();
  const restarted = await openOn(log, { snapshotStore: store });
  assert.equal(restarted.replica.appliedPosition, 7);
  assert.deepEqual(restarted.status('x'), { generation: 1, parties: null, arrived: [] });
  assert.deepEqual(await restarted.arrive('__proto__', 'b', { parties: 2 }), {
    generation: 0,
    arrived: ['a', 'b'],
  });
  await restarted.close();
});

test('barriers through the SDK on a 3-node cluster: 6 agents, 2 generations', async () => {
  const cluster = await startHttpCluster();
  const urls = cluster.members.map((member) => member.url);
  const clients: Client[] = urls.map((_, at) =>
    connect({ endpoints: [...urls.slice(at), ...urls.slice(0, at)], requestTimeoutMs: 2_000 }),
  );
  const barriers = await Promise.all(
    clients.map((client) =>
      Barrier.open({ log: client, name: 'cluster', checkDeterminism: true, waitTimeoutMs: 10_000 }),
    ),
  );
  try {
    const results = await Promise.all(
      Array.from({ length: 6 }, async (_, n) => {
        const barrier = barriers[n % 3]!;
        const first = await barrier.arrive('round', `agent-${n}`, { parties: 6 });
        const second = await barrier.arrive('round', `agent-${n}`, { parties: 6 });
        return [first, second];
      }),
    );
    for (const [round, generation] of [0, 1].entries()) {
      const seen = results.map((pair) => pair[round]!);
      for (const passed of seen) assert.deepEqual(passed, seen[0]);
      assert.equal(seen[0]!.generation, generation);
      assert.equal(new Set(seen[0]!.arrived).size, 6);
    }
  } finally {
    await Promise.all(barriers.map((barrier) => barrier.close()));
    for (const client of clients) client.close();
    await cluster.close();
  }
});

test('an abort that comes while the arrival is being appended ends the wait at once, withdrawn', async () => {
  const log = new MemoryLog();
  const barrier = await openOn(log);
  const controller = new AbortController();
  // Aborted the moment the arrival is applied, before arrive() starts waiting for the others.
  const unsubscribe = barrier.replica.onApplied(() => controller.abort());
  const startedMs = Date.now();
  await assert.rejects(
    barrier.arrive('gate', 'a', { parties: 2, timeoutMs: 4_000, signal: controller.signal }),
    { code: 'aborted' },
  );
  unsubscribe();
  assert.ok(Date.now() - startedMs < 2_000, 'the abort did not wait for the timeout');
  assert.deepEqual(barrier.status('gate').arrived, []);
  await barrier.close();
});

// ------------------------------------------------------------ restore against replay

test('a replica restored from its snapshot at any position agrees with one that replayed from 1', () => {
  const name = fc.constantFrom('a', 'b', 'c');
  checkRestoreMatchesReplay(
    barrierMachine as StateMachine<BarrierState, never, unknown>,
    fc.oneof(
      fc.record({
        op: fc.constant('arrive'),
        barrier: name,
        agentId: name,
        parties: fc.integer({ min: 1, max: 3 }),
      }),
      fc.record({
        op: fc.constant('withdraw'),
        barrier: name,
        agentId: name,
        generation: fc.integer({ min: 0, max: 3 }),
      }),
      fc.constantFrom(null, { op: 'arrive' }, { op: 'arrive', barrier: 'a', agentId: 'b' }),
    ),
  );
});

test('a barrier remembers its last 16 completed generations and no more', () => {
  const state = barrierMachine.initialState();
  for (let index = 1; index <= 40; index++) {
    const command = parseBarrierCommand({ op: 'arrive', barrier: 'b', agentId: 'a', parties: 1 });
    barrierMachine.apply(state, command, { position: index, time: index, client: null });
  }
  const history = state.barriers.get('b')?.history ?? [];
  assert.deepEqual(
    history.map((completed) => completed.generation),
    Array.from({ length: 16 }, (_, at) => 24 + at),
  );
});
