// Proves the locks' guarantees on the in-memory log (a virtual clock where time must be exact,
// the real one where agents wait) and on a real 3-node cluster through the SDK: one holder at
// a time, FIFO grants decided in the log, tokens strictly increasing, lease intervals that
// never overlap in log time, expiry that hands the lock to a waiter while the crashed
// holder's late renew is refused, cancels on timeout, snapshots, and typed errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type AcquireOptions,
  FencingGuard,
  type Lease,
  Locks,
  type LocksOptions,
  type LocksState,
  locksMachine,
  waitersPerLockMax,
} from '../../src/agents/locks.ts';
import { MemoryLog } from '../../src/agents/memory-log.ts';
import { MemorySnapshotStore } from '../../src/agents/snapshots.ts';
import type { StateMachine } from '../../src/agents/state-machine.ts';
import { type Client, connect } from '../../src/client/index.ts';
import { startHttpCluster } from '../server/cluster.ts';
import { checkRestoreMatchesReplay } from './restore-replay.ts';

function openLocks(log: MemoryLog, extra: Partial<LocksOptions> = {}): Promise<Locks> {
  return Locks.open({
    log: log.session(),
    name: 'main',
    checkDeterminism: true,
    waitTimeoutMs: 5_000,
    ...extra,
  });
}

async function stateOf(locks: Locks): Promise<unknown> {
  return locks.replica.read((state) => structuredClone(locksMachine.encodeState?.(state)));
}

/**
 * Watches every applied command on `observer` and checks, for every lock, that a new holder
 * only appears once the previous lease was released or had ended in log time, and that
 * tokens and acquire positions strictly increase (FIFO). Returns the grants seen, in order.
 */
function watchGrants(observer: Locks): Lease[] {
  const grants: Lease[] = [];
  const current = new Map<string, Lease & { readonly ticket: number }>();
  const released = new Set<number>();
  observer.replica.onApplied((event) => {
    const command = event.command;
    if (command?.op === 'release' && event.outcome.ok && event.outcome.result === true) {
      released.add(command.token);
    }
    if (command?.op === 'cancel' && event.outcome.ok && event.outcome.result === true) {
      // A cancel releases the lock when the grant raced with the waiter giving up.
      const previous = current.get(command.lock);
      if (previous?.ticket === command.ticket) released.add(previous.token);
    }
    for (const [lock, record] of observer.replica.readLocal().locks) {
      const holder = record.holder;
      const previous = current.get(lock);
      if (holder === null || holder.token === previous?.token) {
        if (holder !== null) current.set(lock, holder);
        continue;
      }
      if (previous !== undefined) {
        assert.ok(holder.token > previous.token, 'tokens of a lock strictly increase');
        assert.ok(holder.ticket > previous.ticket, 'grants go FIFO by acquire position');
        assert.ok(
          released.has(previous.token) || previous.expiresAt <= holder.grantedAt,
          `lease ${previous.token} ended before lease ${holder.token} began`,
        );
      }
      current.set(lock, holder);
      grants.push(holder);
    }
  });
  return grants;
}

test('tryAcquire, renew, release and holder; a free lock goes to the next in line', async () => {
  let now = 1_000;
  const log = new MemoryLog({ clockMs: () => now });
  const [a, b] = [await openLocks(log), await openLocks(log)];
  const lease = (await a.tryAcquire('db', { owner: 'a', ttlMs: 100 })) as Lease;
  assert.deepEqual(lease, { lock: 'db', owner: 'a', token: 1, grantedAt: 1_000, expiresAt: 1_100 });
  assert.equal(await b.tryAcquire('db', { owner: 'b', ttlMs: 100 }), null);
  assert.deepEqual(await b.holder('db'), lease);
  now = 1_050;
  const renewed = (await a.renew(lease, { ttlMs: 100 })) as Lease;
  assert.equal(renewed.expiresAt, 1_150);
  assert.equal(renewed.token, lease.token, 'a renewal keeps the token');
  now = 1_149;
  assert.equal(await b.tryAcquire('db', { owner: 'b', ttlMs: 100 }), null);
  now = 1_150;
  const taken = (await b.tryAcquire('db', { owner: 'b', ttlMs: 100 })) as Lease;
  assert.equal(taken.token, 5);
  assert.equal(await a.renew(lease, { ttlMs: 100 }), null, 'an expired lease is not renewed');
  assert.equal(await a.release(lease), false);
  assert.equal(await b.release(taken), true);
  assert.equal(await a.holder('db'), null);
  assert.deepEqual(await stateOf(a), await stateOf(b));
  assert.deepEqual(await stateOf(a), { locks: [], leases: [], heldCount: 0 });
  await Promise.all([a.close(), b.close()]);
});

test('20 agents acquire one lock: FIFO grants, strictly increasing tokens, no overlap', async () => {
  let now = 50_000;
  const log = new MemoryLog({ clockMs: () => (now += 3) });
  const agents = await Promise.all(Array.from({ length: 20 }, () => openLocks(log)));
  const observer = await openLocks(log);
  const grants = watchGrants(observer);
  const guard = new FencingGuard();
  let inside = 0;
  const acquiredTokens: number[] = [];
  await Promise.all(
    agents.map(async (locks, at) => {
      for (let round = 0; round < 3; round++) {
        const lease = await locks.acquire('shared', { owner: `agent-${at}`, ttlMs: 60_000 });
        inside += 1;
        assert.equal(inside, 1, 'one holder at a time');
        assert.ok(guard.admit('shared', lease.token));
        acquiredTokens.push(lease.token);
        await new Promise((resolve) => setImmediate(resolve));
        inside -= 1;
        assert.equal(await locks.release(lease), true);
      }
    }),
  );
  await observer.replica.read();
  assert.equal(grants.length, 60);
  assert.deepEqual(
    acquiredTokens,
    [...acquiredTokens].sort((x, y) => x - y),
  );
  assert.deepEqual(
    grants.map((grant) => grant.token),
    acquiredTokens,
  );
  const states = await Promise.all([...agents, observer].map(stateOf));
  for (const state of states) assert.deepEqual(state, states[0]);
  await Promise.all([...agents, observer].map((locks) => locks.close()));
});

test('a crashed holder loses the lock when its lease ends; a waiter gets it; fencing refuses the old token', async () => {
  const log = new MemoryLog();
  const [crashing, waiting, observer] = [
    await openLocks(log),
    await openLocks(log),
    await openLocks(log),
  ];
  const grants = watchGrants(observer);
  const guard = new FencingGuard();
  const lost = await crashing.acquire('report', { owner: 'crasher', ttlMs: 150 });
  assert.ok(guard.admit('report', lost.token));
  await crashing.close(); // never renews, never releases
  const started = Date.now();
  const lease = await waiting.acquire('report', {
    owner: 'survivor',
    ttlMs: 10_000,
    timeoutMs: 5_000,
  });
  const waitedMs = Date.now() - started;
  assert.ok(waitedMs >= 100 && waitedMs < 2_000, `waited ${waitedMs} ms for a 150 ms lease`);
  assert.ok(lease.token > lost.token);
  assert.ok(lease.grantedAt >= lost.expiresAt);
  assert.ok(guard.admit('report', lease.token));
  assert.equal(guard.admit('report', lost.token), false, 'the paused holder’s write is refused');
  assert.equal(guard.highestToken('report'), lease.token);
  const revived = await openLocks(log);
  assert.equal(await revived.renew(lost, { ttlMs: 1_000 }), null);
  assert.equal(await revived.release(lost), false);
  assert.deepEqual(await revived.holder('report'), lease);
  await observer.replica.read();
  assert.deepEqual(
    grants.map((grant) => grant.owner),
    ['crasher', 'survivor'],
  );
  await Promise.all([waiting.close(), observer.close(), revived.close()]);
});

test('a waiter that times out or aborts leaves the queue through the log', async () => {
  const log = new MemoryLog();
  const [holder, waiter] = [await openLocks(log), await openLocks(log)];
  const lease = await holder.acquire('q', { owner: 'h', ttlMs: 60_000 });
  await assert.rejects(waiter.acquire('q', { owner: 'w', ttlMs: 1_000, timeoutMs: 30 }), {
    code: 'timeout',
  });
  const controller = new AbortController();
  const aborted = waiter.acquire('q', { owner: 'w2', ttlMs: 1_000, signal: controller.signal });
  setTimeout(() => controller.abort(), 10);
  await assert.rejects(aborted, { code: 'aborted' });
  const queue = await holder.replica.read((state) => state.locks.get('q')?.queue.length);
  assert.equal(queue, 0, 'both waiters cancelled');
  // A queued waiter is granted on release, in the log, and sees it.
  const next = waiter.acquire('q', { owner: 'w3', ttlMs: 1_000 });
  await waiter.replica.waitUntil((state) =>
    state.locks.get('q')?.queue.length === 1 ? true : undefined,
  );
  assert.equal(await holder.release(lease), true);
  const granted = await next;
  assert.equal(granted.owner, 'w3');
  assert.ok(granted.token > lease.token);
  await Promise.all([holder.close(), waiter.close()]);
});

test('a restarted replica starts from its snapshot and agrees with a full replay', async () => {
  let now = 0;
  const log = new MemoryLog({ clockMs: () => (now += 10) });
  const store = new MemorySnapshotStore();
  const first = await openLocks(log, { snapshotStore: store, snapshotEveryCommands: 5 });
  const leases: Lease[] = [];
  for (let n = 0; n < 12; n++) {
    const lease = await first.tryAcquire(`l${n % 4}`, { owner: `o${n}`, ttlMs: 25 });
    if (lease !== null) leases.push(lease);
  }
  await first.release(leases[0]!);
  await first.close();
  assert.equal((await store.load('locks/main'))?.position, log.lastPosition);
  const restarted = await openLocks(log, { snapshotStore: store });
  assert.equal(restarted.replica.appliedPosition, log.lastPosition);
  await restarted.tryAcquire('l9', { owner: 'z', ttlMs: 1_000 });
  const replayed = await openLocks(log);
  assert.deepEqual(await stateOf(restarted), await stateOf(replayed));
  await Promise.all([restarted.close(), replayed.close()]);
});

test('bad arguments are invalid_argument; foreign commands on the topic are refused everywhere', async () => {
  const log = new MemoryLog();
  const locks = await openLocks(log);
  const bad: [string, () => Promise<unknown>][] = [
    ['ttl 0', () => locks.tryAcquire('x', { owner: 'o', ttlMs: 0 })],
    ['ttl not integer', () => locks.acquire('x', { owner: 'o', ttlMs: 1.5 })],
    ['no owner', () => locks.acquire('x', { owner: '', ttlMs: 10 })],
    ['control char', () => locks.acquire('x\n', { owner: 'o', ttlMs: 10 })],
    ['timeout', () => locks.acquire('x', { owner: 'o', ttlMs: 10, timeoutMs: -1 })],
    ['lease', () => locks.renew({ lock: 'x' } as Lease, { ttlMs: 10 })],
    ['holder', () => locks.holder(42 as unknown as string)],
    ['no options', () => locks.acquire('x', undefined as unknown as AcquireOptions)],
    ['name', () => Locks.open({ log: log.session(), name: '' })],
  ];
  for (const [what, call] of bad) await assert.rejects(call(), { code: 'invalid_argument' }, what);
  assert.equal(log.lastPosition, 0, 'refused arguments never reach the log');
  assert.throws(() => new FencingGuard().admit('r', 0), { code: 'invalid_argument' });
  for (const payload of [
    7,
    { op: 'acquire', lock: 'x' },
    { op: 'release', lock: 'x', token: -1 },
  ]) {
    log.append(payload, 'locks/main', 'intruder');
  }
  log.append({ op: 'release', lock: 'x', token: 99 }, 'locks/main', 'intruder');
  assert.ok(await locks.tryAcquire('x', { owner: 'o', ttlMs: 100 }));
  assert.equal(locks.replica.failure, null);
  await locks.close();
});

test('agents on a real 3-node cluster through the SDK: one holder at a time, expiry hands over', async () => {
  const cluster = await startHttpCluster();
  const urls = cluster.members.map((member) => member.url);
  const clients: Client[] = urls.map((_, at) =>
    connect({ endpoints: [...urls.slice(at), ...urls.slice(0, at)], requestTimeoutMs: 2_000 }),
  );
  const all = await Promise.all(
    clients.map((client) => Locks.open({ log: client, name: 'cluster', checkDeterminism: true })),
  );
  const grants = watchGrants(all[0]!);
  try {
    const guard = new FencingGuard();
    let inside = 0;
    await Promise.all(
      Array.from({ length: 9 }, async (_, n) => {
        const locks = all[n % 3]!;
        const lease = await locks.acquire('leader', {
          owner: `agent-${n}`,
          ttlMs: 30_000,
          timeoutMs: 10_000,
        });
        inside += 1;
        assert.equal(inside, 1);
        assert.ok(guard.admit('leader', lease.token));
        inside -= 1;
        assert.equal(await locks.release(lease), true);
      }),
    );
    const lost = await all[0]!.acquire('leader', { owner: 'crasher', ttlMs: 300 });
    const lease = await all[1]!.acquire('leader', {
      owner: 'survivor',
      ttlMs: 30_000,
      timeoutMs: 10_000,
    });
    assert.ok(lease.token > lost.token && lease.grantedAt >= lost.expiresAt);
    assert.equal(await all[2]!.renew(lost, { ttlMs: 1_000 }), null);
    await all[0]!.replica.read();
    assert.equal(grants.length, 11);
    const states = await Promise.all(all.map(stateOf));
    for (const state of states) assert.deepEqual(state, states[0]);
  } finally {
    await Promise.all(all.map((locks) => locks.close()));
    for (const client of clients) client.close();
    await cluster.close();
  }
});

test('waiters whose wait lapsed in log time do not keep the queue full for new ones', () => {
  const state = locksMachine.initialState();
  let index = 0;
  const apply = (payload: unknown, time: number) => {
    const command = locksMachine.parseCommand?.(payload) ?? payload;
    return locksMachine.apply(state, command as never, { position: ++index, time, client: null });
  };
  apply({ op: 'acquire', lock: 'l', owner: 'h', ttlMs: 3_600_000, wait: true }, 0);
  // Waiters that crashed after queueing for 10 ms: their entries lapse at log time 10.
  const acquire = { op: 'acquire', lock: 'l', ttlMs: 1_000, wait: true, waitMs: 10 };
  for (let n = 0; n < waitersPerLockMax; n++) apply({ ...acquire, owner: `w${n}` }, 0);
  const late = apply({ ...acquire, owner: 'late', waitMs: null }, 1_000);
  assert.deepEqual(late, { queued: index, position: 0 });
  assert.equal(state.locks.get('l')?.queue.length, 1);
});

// ------------------------------------------------------------ restore against replay

test('a replica restored from its snapshot at any position agrees with one that replayed from 1', () => {
  const name = fc.constantFrom('a', 'b', 'c');
  const back = fc.integer({ min: -8, max: -1 });
  const ttlMs = fc.integer({ min: 1, max: 100 });
  checkRestoreMatchesReplay(
    locksMachine as StateMachine<LocksState, never, unknown>,
    fc.oneof(
      fc.record({
        op: fc.constant('acquire'),
        lock: name,
        owner: name,
        ttlMs,
        wait: fc.boolean(),
        waitMs: fc.option(ttlMs),
      }),
      fc.record({ op: fc.constant('renew'), lock: name, token: back, ttlMs }),
      fc.record({ op: fc.constant('release'), lock: name, token: back }),
      fc.record({ op: fc.constant('cancel'), lock: name, ticket: back }),
      fc.constantFrom({ op: 'tick' }, null, [1], { op: 'steal' }, { op: 'release', lock: 'a' }),
    ),
  );
});

test('a cancel that lands after the grant raced with it releases the lock to the next waiter', () => {
  const state = locksMachine.initialState();
  let index = 0;
  const apply = (payload: unknown, time: number) => {
    const command = locksMachine.parseCommand?.(payload) ?? payload;
    return locksMachine.apply(state, command as never, { position: ++index, time, client: null });
  };
  apply({ op: 'acquire', lock: 'l', owner: 'h', ttlMs: 100, wait: true }, 0);
  const first = apply({ op: 'acquire', lock: 'l', owner: 'w1', ttlMs: 100, wait: true }, 0);
  apply({ op: 'acquire', lock: 'l', owner: 'w2', ttlMs: 100, wait: true }, 0);
  // w1 gave up just as h's lease ended: its cancel is the command that grants it the lock.
  const ticket = (first as { queued: number }).queued;
  assert.equal(apply({ op: 'cancel', lock: 'l', ticket }, 100), true);
  assert.equal(state.locks.get('l')?.holder?.owner, 'w2');
  assert.equal(apply({ op: 'cancel', lock: 'l', ticket }, 100), false, 'only once');
});
