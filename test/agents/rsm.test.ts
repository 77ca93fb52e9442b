// Proves the replicated state machine's contract on the in-memory log: results come back to
// the submitter, replicas agree, reads see acknowledged writes, bad commands are refused the
// same way everywhere, snapshots restore, and the determinism guard catches clocks and
// randomness in a reducer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AgentError } from '../../src/agents/errors.ts';
import type { SharedLog } from '../../src/agents/log.ts';
import { MemoryLog } from '../../src/agents/memory-log.ts';
import { ReplicatedStateMachine } from '../../src/agents/rsm.ts';
import { MemorySnapshotStore } from '../../src/agents/snapshots.ts';
import type { ReplicaOptions, StateMachine } from '../../src/agents/state-machine.ts';
import type { ProgressWaiters } from '../../src/util/progress-waiters.ts';

interface Accounts {
  balances: Record<string, number>;
  lastTime: number;
}
type Transfer = { from: string; to: string; amount: number } | { open: string; amount: number };

const bank: StateMachine<Accounts, Transfer, number> = {
  initialState: () => ({ balances: {}, lastTime: 0 }),
  parseCommand(payload) {
    const command = payload as Transfer;
    if (typeof command !== 'object' || command === null || !Number.isInteger(command.amount)) {
      throw new Error('a command has an integer amount');
    }
    return command;
  },
  apply(state, command, context) {
    state.lastTime = context.time;
    if ('open' in command) {
      state.balances[command.open] = command.amount;
      return command.amount;
    }
    const available = state.balances[command.from] ?? 0;
    if (command.amount <= 0 || available < command.amount) throw new Error('insufficient funds');
    state.balances[command.from] = available - command.amount;
    state.balances[command.to] = (state.balances[command.to] ?? 0) + command.amount;
    return state.balances[command.from] as number;
  },
};

async function replicaOf(
  log: MemoryLog,
  extra: Partial<ReplicaOptions<Accounts, Transfer, number>> = {},
) {
  return ReplicatedStateMachine.start<Accounts, Transfer, number>({
    log: log.session(),
    topic: 'bank',
    machine: bank,
    checkDeterminism: true,
    waitTimeoutMs: 2_000,
    ...extra,
  });
}

test('submit resolves with the result; replicas agree; refusals are the same everywhere', async () => {
  let now = 1_000;
  const log = new MemoryLog({ clockMs: () => now++ });
  const [a, b] = [await replicaOf(log), await replicaOf(log)];
  assert.equal(await a.submit({ open: 'alice', amount: 100 }), 100);
  assert.equal(await b.submit({ from: 'alice', to: 'bob', amount: 30 }), 70);
  await assert.rejects(a.submit({ from: 'bob', to: 'alice', amount: 31 }), (error: AgentError) => {
    assert.equal(error.code, 'rejected');
    assert.match(error.message, /insufficient funds/);
    return true;
  });
  // Refused by parseCommand before it is sent: nothing enters the log.
  const before = log.lastPosition;
  await assert.rejects(a.submit({ open: 'x', amount: 1.5 }), { code: 'invalid_argument' });
  assert.equal(log.lastPosition, before);
  const seenByA = await a.read();
  const seenByB = await b.read();
  assert.deepEqual(seenByA, seenByB);
  assert.deepEqual(seenByA.balances, { alice: 70, bob: 30 });
  assert.equal(a.appliedPosition, 3);
  await Promise.all([a.close(), b.close()]);
});

test('foreign input on the topic is refused by every replica and changes nothing', async () => {
  const log = new MemoryLog();
  const replica = await replicaOf(log);
  const events: unknown[] = [];
  replica.onApplied((event) => events.push(event.outcome));
  log.append('not a transfer', 'bank', 'intruder');
  log.append({ open: 'carol', amount: 5 }, 'other-topic', 'intruder');
  await replica.read();
  assert.deepEqual(replica.readLocal().balances, {});
  assert.equal(replica.appliedPosition, 2);
  assert.equal(events.length, 1);
  assert.match(JSON.stringify(events[0]), /does not parse/);
  await replica.close();
});

test('a restarted replica starts from its snapshot and goes on identically', async () => {
  const log = new MemoryLog();
  const store = new MemorySnapshotStore();
  const first = await replicaOf(log, { snapshotStore: store, snapshotEveryCommands: 10 });
  await first.submit({ open: 'a', amount: 1000 });
  for (let n = 0; n < 25; n++) await first.submit({ from: 'a', to: `b${n % 3}`, amount: 7 });
  await first.close();
  const saved = await store.load('bank');
  assert.equal(saved?.position, 26);
  const second = await replicaOf(log, { snapshotStore: store });
  assert.equal(second.appliedPosition, 26);
  await second.submit({ from: 'b0', to: 'a', amount: 1 });
  const fresh = await replicaOf(log); // replays from position 1
  assert.deepEqual(await second.read(), await fresh.read());
  await Promise.all([second.close(), fresh.close()]);
});

test('a snapshot ahead of the log (a reset cluster) stops the replica instead of a wrong state', async () => {
  const store = new MemorySnapshotStore();
  const old = new MemoryLog();
  const first = await replicaOf(old, { snapshotStore: store });
  for (let n = 0; n < 5; n++) await first.submit({ open: `a${n}`, amount: 10 });
  await first.close();
  // The cluster was wiped and started afresh; the store still holds the old snapshot.
  const fresh = new MemoryLog();
  const errors: Error[] = [];
  const replica = await replicaOf(fresh, { snapshotStore: store, onError: (e) => errors.push(e) });
  await assert.rejects(replica.submit({ open: 'z', amount: 1 }), (error: AgentError) => {
    assert.ok(['corrupt_snapshot', 'stopped'].includes(error.code), error.code);
    return true;
  });
  assert.equal(replica.failure?.code, 'corrupt_snapshot');
  await assert.rejects(replica.read(), { code: 'stopped' });
  await replica.close();
});

test('a state JSON cannot carry is refused at the snapshot, not found at the restart', async () => {
  const log = new MemoryLog();
  const errors: Error[] = [];
  const replica = await ReplicatedStateMachine.start({
    log: log.session(),
    topic: 'maps',
    machine: {
      initialState: () => ({ seen: new Map<string, number>() }),
      apply: (state, command: string) => state.seen.set(command, 1).size,
    },
    snapshotStore: new MemorySnapshotStore(),
    onError: (error) => errors.push(error),
  });
  await replica.submit('x');
  await assert.rejects(replica.saveSnapshot(), /does not survive JSON/);
  await replica.close();
});

for (const [name, reducer] of [
  ['Date.now()', () => Date.now()],
  ['new Date()', () => new Date().toISOString()],
  ['Math.random()', () => Math.random()],
  ['performance.now()', () => Math.floor(performance.now() / 1000)],
] as const) {
  test(`the determinism guard stops a reducer that uses ${name}`, async () => {
    const log = new MemoryLog();
    const errors: Error[] = [];
    const replica = await ReplicatedStateMachine.start({
      log: log.session(),
      topic: 'clock',
      machine: {
        initialState: () => ({ last: 0 as unknown }),
        apply(state, _command: null) {
          state.last = reducer();
          return state.last;
        },
      },
      checkDeterminism: true,
      onError: (error) => errors.push(error),
    });
    await assert.rejects(replica.submit(null), (error: AgentError) => {
      assert.equal(error.code, 'non_deterministic');
      assert.match(error.message, /position 1/);
      return true;
    });
    assert.equal(replica.failure?.code, 'non_deterministic');
    await assert.rejects(replica.submit(null), { code: 'stopped' });
    await replica.close();
  });
}

test('the determinism guard accepts a reducer that makes Dates from the log time', async () => {
  const log = new MemoryLog();
  const errors: Error[] = [];
  const replica = await ReplicatedStateMachine.start({
    log: log.session(),
    topic: 'dates',
    machine: {
      initialState: () => ({ seen: [] as Date[] }),
      apply(state, _command: null, context) {
        const at = new Date(context.time);
        // Dates already in the state, and the ones made now, are all plain Dates.
        if (!state.seen.every((date) => date instanceof Date)) throw new Error('not a Date');
        if (Date.UTC(2020, 0, 1) !== Date.parse('2020-01-01T00:00:00Z')) throw new Error('UTC');
        state.seen.push(at);
        return { at, count: state.seen.length };
      },
    },
    checkDeterminism: true,
    onError: (error) => errors.push(error),
  });
  assert.equal((await replica.submit(null)).count, 1);
  const second = await replica.submit(null);
  assert.equal(second.count, 2);
  assert.ok(second.at instanceof Date);
  assert.deepEqual(errors, []);
  await replica.close();
});

test('an async reducer is refused rather than applied at different moments', async () => {
  const log = new MemoryLog();
  const replica = await ReplicatedStateMachine.start({
    log: log.session(),
    topic: 'async',
    machine: { initialState: () => ({}), apply: async () => 1 },
  });
  await assert.rejects(replica.submit(1), /must be synchronous/);
  await replica.close();
});

test('waitUntil resolves on the command that makes the probe true, and times out otherwise', async () => {
  const log = new MemoryLog();
  const [a, b] = [await replicaOf(log), await replicaOf(log)];
  const funded = b.waitUntil((state) =>
    (state.balances.dave ?? 0) >= 50 ? state.balances.dave : undefined,
  );
  await a.submit({ open: 'dave', amount: 10 });
  await a.submit({ open: 'dave', amount: 60 });
  assert.equal(await funded, 60);
  await assert.rejects(
    b.waitUntil(() => undefined, { timeoutMs: 30 }),
    { code: 'timeout' },
  );
  await Promise.all([a.close(), b.close()]);
});

test('close fails waiting calls with closed and later calls too', async () => {
  const log = new MemoryLog();
  const replica = await replicaOf(log);
  const waiting = replica.waitUntil(() => undefined);
  await replica.close();
  await assert.rejects(waiting, { code: 'closed' });
  await assert.rejects(replica.submit({ open: 'z', amount: 1 }), { code: 'closed' });
  assert.throws(() => replica.readLocal(), { code: 'closed' });
});

test('bad options are refused with a clear error', async () => {
  const log = new MemoryLog();
  await assert.rejects(
    ReplicatedStateMachine.start({ log: log.session(), topic: '$reserved', machine: bank }),
    { code: 'invalid_argument' },
  );
  await assert.rejects(
    // @ts-expect-error: a machine without apply
    ReplicatedStateMachine.start({ log: log.session(), topic: 't', machine: {} }),
    { code: 'invalid_argument' },
  );
  await assert.rejects(
    ReplicatedStateMachine.start({
      log: log.session(),
      topic: 't',
      machine: bank,
      snapshotEveryCommands: 0,
    }),
    { code: 'invalid_argument' },
  );
});

test('results and applied events are copies: callers cannot change a replica through them', async () => {
  const log = new MemoryLog();
  const seen: unknown[] = [];
  const replica = await ReplicatedStateMachine.start({
    log: log.session(),
    topic: 'alias',
    machine: {
      initialState: () => ({ items: [] as { name: string }[] }),
      apply(state, command: { name: string }) {
        state.items.push(command); // keeps the command object itself
        return state.items; // and hands out a piece of the state
      },
    },
    onApplied: (event) => {
      seen.push(event.command);
      (event.command as { name: string }).name = 'changed by a listener';
    },
  });
  const items = await replica.submit({ name: 'first' });
  items.push({ name: 'added by the caller' });
  assert.deepEqual(replica.readLocal().items, [{ name: 'first' }]);
  assert.equal(seen.length, 1);
  await replica.close();
});

test('a -0 in the state does not stop snapshots', async () => {
  const log = new MemoryLog();
  const replica = await ReplicatedStateMachine.start({
    log: log.session(),
    topic: 'zero',
    machine: {
      initialState: () => ({ values: [] as number[] }),
      // Arithmetic makes -0 (here the negation of 0); JSON writes it as 0.
      apply: (state, command: number) => state.values.push(-command),
    },
    snapshotStore: new MemorySnapshotStore(),
  });
  await replica.submit(0);
  assert.ok(Object.is(replica.readLocal().values[0], -0));
  assert.equal((await replica.saveSnapshot()).position, 1);
  await replica.close();
});

test('followers in one process never share a payload object', async () => {
  const log = new MemoryLog();
  log.append({ shared: false }, 'x', 'writer');
  const signal = new AbortController().signal;
  const first = log.follow({ from: 1, topics: ['x'], signal });
  const second = log.follow({ from: 1, topics: ['x'], signal });
  const a = (await first.next()).value as {
    kind: 'entry';
    entry: { payload: { shared: boolean } };
  };
  const b = (await second.next()).value as { kind: 'entry'; entry: { payload: unknown } };
  a.entry.payload.shared = true;
  assert.deepEqual(b.entry.payload, { shared: false });
  assert.deepEqual(log.all()[0]?.payload, { shared: false });
});

test('a wait whose signal was aborted before it began fails at once', async () => {
  const log = new MemoryLog();
  const replica = await replicaOf(log);
  const started = Date.now();
  await assert.rejects(
    replica.waitUntil(() => undefined, { signal: AbortSignal.abort(), timeoutMs: 5_000 }),
    { code: 'aborted' },
  );
  assert.ok(Date.now() - started < 1_000);
  await replica.close();
});

test('waits that time out on a replica that cannot get there leave nothing behind', async () => {
  // A log whose read index is far ahead of anything this replica will see.
  const stuck: SharedLog = {
    append: async () => ({ position: 1_000_000, duplicate: false }),
    async *follow(options) {
      await new Promise((resolve) => options.signal.addEventListener('abort', resolve));
    },
    readIndex: async () => 1_000_000,
    isOwnSession: () => true,
  };
  const replica = await ReplicatedStateMachine.start({
    log: stuck,
    topic: 'stuck',
    machine: { initialState: () => ({}), apply: () => 1 },
    waitTimeoutMs: 1,
  });
  for (let round = 0; round < 2_000; round++) {
    await assert.rejects(round % 2 === 0 ? replica.read() : replica.submit(null), {
      code: 'timeout',
    });
  }
  const waiters = (replica as unknown as { waiters: { positionWaiters: ProgressWaiters<unknown> } })
    .waiters.positionWaiters;
  assert.ok(waiters.slotCount <= 100, `${waiters.slotCount} slots of ended waits`);
  await replica.close();
});

test('results are kept only for the submits that wait for them', async () => {
  const log = new MemoryLog();
  const session = log.session();
  // Two replicas of one topic on one session: each sees the other's commands as its own.
  const a = await replicaOf(log, { log: session });
  const b = await replicaOf(log, { log: session });
  await a.submit({ open: 'a', amount: 1_000 });
  for (let n = 0; n < 300; n++) await a.submit({ from: 'a', to: 'b', amount: 1 });
  assert.equal(await b.submit({ from: 'a', to: 'c', amount: 1 }), 699);
  await a.read();
  const kept = (replica: unknown) => (replica as { results: Map<number, unknown> }).results.size;
  assert.equal(kept(a), 0);
  assert.equal(kept(b), 0);
  await Promise.all([a.close(), b.close()]);
});

test('a second close waits for the first, last snapshot included', async () => {
  const log = new MemoryLog();
  const store = new MemorySnapshotStore();
  const replica = await replicaOf(log, { snapshotStore: store });
  await replica.submit({ open: 'a', amount: 5 });
  const first = replica.close();
  await replica.close();
  assert.equal((await store.load('bank'))?.position, 1, 'saved when the second close resolves');
  await first;
});

test('a read whose read index cannot be had fails with an AgentError', async () => {
  const log = new MemoryLog();
  const session = log.session();
  const failing: SharedLog = {
    append: (payload, topic) => session.append(payload, topic),
    follow: (options) => session.follow(options),
    readIndex: () =>
      Promise.reject(Object.assign(new Error('no endpoint answered'), { code: 'unavailable' })),
    isOwnSession: (client) => session.isOwnSession(client),
  };
  const replica = await replicaOf(log, { log: failing });
  await assert.rejects(replica.read(), (error: AgentError) => {
    assert.equal(error.name, 'AgentError');
    assert.equal(error.code, 'timeout');
    assert.match(error.message, /no endpoint answered/);
    return true;
  });
  await replica.close();
});

test('the determinism guard accepts commands and states that are class instances', async () => {
  class Deposit {
    constructor(readonly amount: number) {}
    doubled(): number {
      return this.amount * 2;
    }
  }
  class Vault {
    total = 0;
    add(amount: number): number {
      this.total += amount;
      return this.total;
    }
  }
  const log = new MemoryLog();
  const replica = await ReplicatedStateMachine.start({
    log: log.session(),
    topic: 'vault',
    machine: {
      initialState: () => new Vault(),
      parseCommand(payload) {
        const amount = (payload as { amount?: unknown })?.amount;
        if (typeof amount !== 'number') throw new Error('a deposit has an amount');
        return new Deposit(amount);
      },
      apply: (state, command: Deposit) => state.add(command.doubled()),
    },
    checkDeterminism: true,
    waitTimeoutMs: 2_000,
  });
  assert.equal(await replica.submit(new Deposit(3)), 6);
  assert.equal(await replica.submit(new Deposit(4)), 14);
  await replica.close();
});

test('a result structuredClone cannot copy reaches its submitter and stops no replica', async () => {
  class Receipt {
    constructor(readonly total: number) {}
    describe(): string {
      return `total ${this.total}`;
    }
  }
  const log = new MemoryLog();
  const errors: Error[] = [];
  const machine: StateMachine<{ total: number }, number, unknown> = {
    initialState: () => ({ total: 0 }),
    apply(state, amount) {
      state.total += amount;
      return { receipt: new Receipt(state.total), later: () => state.total };
    },
  };
  const start = (session = log.session()) =>
    ReplicatedStateMachine.start({
      log: session,
      topic: 'receipts',
      machine,
      onApplied: () => undefined,
      onError: (error) => errors.push(error),
      waitTimeoutMs: 2_000,
    });
  const [own, other] = [await start(), await start()];
  const answer = (await own.submit(5)) as { receipt: Receipt; later: () => number };
  assert.equal(answer.receipt.describe(), 'total 5');
  assert.equal(await other.read((state) => state.total), 5);
  assert.equal(own.failure, null);
  assert.deepEqual(errors, []);
  await Promise.all([own.close(), other.close()]);
});

test('an onError that throws neither stops the replica nor escapes as an unhandled rejection', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  const warned: string[] = [];
  const onWarning = (warning: Error) => warned.push(warning.message);
  process.on('warning', onWarning);
  try {
    const log = new MemoryLog();
    const replica = await replicaOf(log, {
      onApplied: () => {
        throw new Error('listener broke');
      },
      onError: () => {
        throw new Error('onError broke too');
      },
    });
    assert.equal(await replica.submit({ open: 'a', amount: 3 }), 3);
    assert.equal(await replica.submit({ open: 'b', amount: 4 }), 4);
    assert.equal(replica.failure, null);
    await replica.close();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled, []);
    assert.ok(
      warned.some((message) => message.includes('onError broke too')),
      warned.join(),
    );
  } finally {
    process.off('unhandledRejection', onUnhandled);
    process.off('warning', onWarning);
  }
});
