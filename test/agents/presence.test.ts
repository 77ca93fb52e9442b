// Proves presence on the in-memory log with a virtual clock, then on a real 3-node cluster
// through the SDK: every replica sees the same joins, leaves and expiries in the same order;
// a member that stops heartbeating is expired once its ttl has passed in log time; a refused
// heartbeat tells the agent to rejoin; foreign input is refused without harm; watches are
// bounded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { AgentError } from '../../src/agents/errors.ts';
import { MemoryLog } from '../../src/agents/memory-log.ts';
import { Presence, type PresenceHandle } from '../../src/agents/presence.ts';
import {
  type PresenceEvent,
  type PresenceState,
  parsePresenceCommand,
  presenceMachine,
} from '../../src/agents/presence-machine.ts';
import type { StateMachine } from '../../src/agents/state-machine.ts';
import { type Client, connect } from '../../src/client/index.ts';
import { startHttpCluster } from '../server/cluster.ts';
import { checkRestoreMatchesReplay } from './restore-replay.ts';

const hourMs = 3_600_000;

function openOn(log: MemoryLog, name = 'crew'): Promise<Presence> {
  return Presence.open({ log: log.session(), name, checkDeterminism: true, waitTimeoutMs: 5_000 });
}

/** The next `count` events of a watch, or a failure after `timeoutMs`. */
async function take(
  events: AsyncIterator<PresenceEvent>,
  count: number,
  timeoutMs = 5_000,
): Promise<PresenceEvent[]> {
  const taken: PresenceEvent[] = [];
  const deadline = Date.now() + timeoutMs;
  while (taken.length < count) {
    const left = deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    const step = await Promise.race([
      events.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`only ${taken.length}/${count} events`)), left);
      }),
    ]).finally(() => clearTimeout(timer));
    if (step.done) throw new Error(`the watch ended after ${taken.length}/${count} events`);
    taken.push(step.value);
  }
  return taken;
}

const summary = (events: PresenceEvent[]) =>
  events.map((e) => `${e.kind}:${e.agentId}@${e.position}`);

test('every replica sees the same joins, leaves and expiries, decided on the log clock', async () => {
  let now = 1_000_000;
  const log = new MemoryLog({ clockMs: () => now });
  const replicas = [await openOn(log), await openOn(log), await openOn(log)];
  const watches = replicas.map((replica) => replica.watch());
  const [a, b, c] = replicas as [Presence, Presence, Presence];
  const alice = await a.join('alice', { ttlMs: 10_000, meta: { role: 'planner' } });
  const bob = await b.join('bob', { ttlMs: 20_000 });
  const carol = await c.join('carol', { ttlMs: 10_000 });
  assert.deepEqual(
    a.members().map((m) => m.agentId),
    ['alice', 'bob', 'carol'],
  );
  assert.deepEqual(a.members()[0]?.meta, { role: 'planner' });

  now += 9_000; // alice and bob heartbeat; carol has crashed (nothing from her)
  assert.equal(await alice.heartbeat(), true);
  assert.equal(await bob.heartbeat(), true);
  now += 1_000; // carol's last beat is exactly ttl old: still alive
  await b.refresh();
  assert.ok(b.isMember('carol'));
  now += 1; // now it is older than her ttl: the next command decides the expiry
  await b.refresh();
  assert.ok(!b.isMember('carol'));
  await bob.leave();
  now += 30_000; // alice stops too; the refresh expires her
  const left = await c.refresh();
  assert.deepEqual(left, []);

  const sequences = await Promise.all(watches.map((watch) => take(watch, 6)));
  for (const sequence of sequences) assert.deepEqual(sequence, sequences[0]);
  assert.deepEqual(summary(sequences[0]!), [
    'joined:alice@1',
    'joined:bob@2',
    'joined:carol@3',
    'expired:carol@7',
    'left:bob@8',
    'expired:alice@9',
  ]);
  assert.equal(sequences[0]![3]!.time, 1_010_001);
  assert.equal(carol.state, 'present'); // it never heard; its next heartbeat will tell it
  assert.equal(await carol.heartbeat(), false);
  assert.equal(carol.state, 'lost');
  await Promise.all(replicas.map((replica) => replica.close()));
});

test('a lost member is told to rejoin; a live agentId cannot be joined twice', async () => {
  let now = 5_000;
  const log = new MemoryLog({ clockMs: () => now });
  const [a, b] = [await openOn(log), await openOn(log)];
  const lost: PresenceHandle[] = [];
  const first = await a.join('worker', { ttlMs: 1_000, onLost: (handle) => lost.push(handle) });
  await assert.rejects(b.join('worker', { ttlMs: 1_000 }), (error: AgentError) => {
    assert.equal(error.code, 'rejected');
    assert.equal(error.details.reason, 'already_member');
    return true;
  });
  now += 1_001;
  assert.equal(await first.heartbeat(), false); // the beat's own command expires it first
  assert.deepEqual(lost, [first]);
  assert.equal(first.state, 'lost');
  const second = await a.join('worker', { ttlMs: 1_000 });
  assert.ok(second.incarnation > first.incarnation);
  // The old incarnation's leave does not remove the new one.
  await a.submit({ op: 'leave', agentId: 'worker', incarnation: first.incarnation });
  assert.ok(b.isMember('worker') || (await b.refresh()).some((m) => m.agentId === 'worker'));
  await second.leave();
  await second.leave(); // idempotent
  assert.equal((await b.refresh()).length, 0);
  await Promise.all([a.close(), b.close()]);
});

test('many agents join concurrently and every replica agrees', async () => {
  let now = 0;
  const log = new MemoryLog({ clockMs: () => (now += 3) });
  const replicas = await Promise.all(Array.from({ length: 5 }, () => openOn(log, 'swarm')));
  const watches = replicas.map((replica) => replica.watch());
  const handles = await Promise.all(
    Array.from({ length: 100 }, (_, n) =>
      replicas[n % 5]!.join(`agent-${n}`, { ttlMs: hourMs, meta: n }),
    ),
  );
  await Promise.all(handles.filter((_, n) => n % 4 === 0).map((handle) => handle.leave()));
  const sequences = await Promise.all(watches.map((watch) => take(watch, 125)));
  for (const sequence of sequences) assert.deepEqual(sequence, sequences[0]);
  for (const replica of replicas) await replica.refresh();
  const views = replicas.map((replica) => replica.members());
  for (const view of views) assert.deepEqual(view, views[0]);
  assert.equal(views[0]!.length, 75);
  await Promise.all(replicas.map((replica) => replica.close()));
});

test('foreign input on the topic is refused with a clear message and changes nothing', async () => {
  const log = new MemoryLog();
  const presence = await openOn(log);
  const outcomes: string[] = [];
  presence.replica.onApplied((applied) => {
    if (!applied.outcome.ok) outcomes.push(applied.outcome.error);
  });
  for (const payload of [
    null,
    'join',
    [],
    { op: 'join', agentId: '', ttlMs: 100 },
    { op: 'join', agentId: 'x', ttlMs: 1.5 },
    { op: 'join', agentId: 'x', ttlMs: 100, meta: 'm'.repeat(5_000) },
    { op: 'beat', agentId: 'x' },
    { op: 'explode' },
  ]) {
    log.append(payload, 'presence/crew', 'intruder');
  }
  await presence.refresh();
  assert.equal(outcomes.length, 8);
  for (const outcome of outcomes) assert.match(outcome, /does not parse: .+/);
  assert.deepEqual(presence.members(), []);
  assert.throws(() => parsePresenceCommand({ op: 'join', agentId: 'a\n', ttlMs: 100 }), {
    code: 'invalid_argument',
  });
  await assert.rejects(presence.join('a', { ttlMs: 5 }), { code: 'invalid_argument' });
  await assert.rejects(presence.join('a', { ttlMs: 100, heartbeatEveryMs: 100 }), {
    code: 'invalid_argument',
  });
  await assert.rejects(Presence.open({ log: log.session(), name: '' }), {
    code: 'invalid_argument',
  });
  await presence.close();
});

test('a slow watcher gets what it buffered, then an overflow error; aborting ends a watch', async () => {
  const log = new MemoryLog();
  const presence = await openOn(log);
  const slow = presence.watch({ bufferMax: 3 });
  const controller = new AbortController();
  const aborted = presence.watch({ signal: controller.signal });
  for (let n = 0; n < 5; n++) await presence.join(`a${n}`, { ttlMs: hourMs });
  assert.equal((await take(slow, 3)).length, 3);
  await assert.rejects(slow.next(), (error: AgentError) => {
    assert.equal(error.code, 'stopped');
    assert.equal(error.details.reason, 'overflow');
    return true;
  });
  controller.abort();
  assert.equal((await take(aborted, 5)).length, 5);
  assert.equal((await aborted.next()).done, true);
  await presence.close();
});

test('handles heartbeat by themselves; a crashed agent expires after its ttl', async () => {
  const log = new MemoryLog(); // the real clock: the handles' timers are real
  const [steady, crashing, observer] = [await openOn(log), await openOn(log), await openOn(log)];
  const events = observer.watch();
  // Steady's ttl is long enough that a loaded machine stalling its heartbeat timer for a few
  // hundred ms does not expire it; crashing's is short so that the test stays quick.
  await steady.join('steady', { ttlMs: 1_000 });
  await crashing.join('crashing', { ttlMs: 150 });
  await crashing.close(); // stops heartbeating without leaving
  const expired = await take(events, 3, 5_000);
  assert.deepEqual(
    expired.map((e) => `${e.kind}:${e.agentId}`),
    ['joined:steady', 'joined:crashing', 'expired:crashing'],
  );
  // Steady's own heartbeats decided the expiry; it is still a member well after its ttl.
  const start = Date.now();
  while (Date.now() - start < 2_500) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(
    (await observer.refresh()).map((m) => m.agentId),
    ['steady'],
  );
  await Promise.all([steady.close(), observer.close()]);
});

test('presence through the SDK on a 3-node cluster: the same events everywhere, crash expiry', async () => {
  const cluster = await startHttpCluster();
  const urls = cluster.members.map((member) => member.url);
  const clients: Client[] = urls.map((_, at) =>
    connect({ endpoints: [...urls.slice(at), ...urls.slice(0, at)], requestTimeoutMs: 2_000 }),
  );
  const replicas = await Promise.all(
    clients.map((client) =>
      Presence.open({
        log: client,
        name: 'cluster',
        checkDeterminism: true,
        waitTimeoutMs: 10_000,
      }),
    ),
  );
  try {
    const watches = replicas.map((replica) => replica.watch());
    // A heartbeat is a broadcast round through the cluster: the ttl leaves room for a loaded
    // machine's stalls, or a live agent would expire too and the sequences would differ.
    await Promise.all(replicas.map((replica, at) => replica.join(`agent-${at}`, { ttlMs: 2_000 })));
    await replicas[2]!.close(); // agent-2 crashes
    const sequences = await Promise.all(watches.slice(0, 2).map((watch) => take(watch, 4, 10_000)));
    assert.deepEqual(sequences[0], sequences[1]);
    assert.equal(sequences[0]!.filter((e) => e.kind === 'joined').length, 3);
    assert.deepEqual(
      sequences[0]!.filter((e) => e.kind === 'expired').map((e) => e.agentId),
      ['agent-2'],
    );
    const views = await Promise.all(replicas.slice(0, 2).map((replica) => replica.refresh()));
    assert.deepEqual(
      views.map((view) => view.map((m) => m.agentId).sort()),
      [
        ['agent-0', 'agent-1'],
        ['agent-0', 'agent-1'],
      ],
    );
  } finally {
    await Promise.all(replicas.map((replica) => replica.close()));
    for (const client of clients) client.close();
    await cluster.close();
  }
});

test('expireOnTime decides the expiry of crashed members when nobody else appends', async () => {
  const log = new MemoryLog(); // the real clock
  const observer = await Presence.open({
    log: log.session(),
    name: 'quiet',
    checkDeterminism: true,
    expireOnTime: true,
  });
  const events = observer.watch();
  const agents = [await openOn(log, 'quiet'), await openOn(log, 'quiet')];
  await agents[0]!.join('first', { ttlMs: 80 });
  await agents[1]!.join('second', { ttlMs: 160 });
  await Promise.all(agents.map((agent) => agent.close())); // both crash
  const seen = await take(events, 4, 5_000);
  assert.deepEqual(
    seen.map((e) => `${e.kind}:${e.agentId}`),
    ['joined:first', 'joined:second', 'expired:first', 'expired:second'],
  );
  assert.deepEqual(observer.members(), []);
  const ticks = log.all().filter((entry) => (entry.payload as { op: string }).op === 'tick');
  assert.ok(ticks.length <= 4, `${ticks.length} ticks`);
  await observer.close();
});

test('a member’s meta is the replica’s own: listeners cannot change it, and -0 sent over HTTP survives snapshots', async () => {
  const log = new MemoryLog();
  const presence = await openOn(log);
  presence.replica.onApplied((event) => {
    const meta = (event.command as { meta?: { role: string } } | undefined)?.meta;
    if (meta) meta.role = 'changed by a listener';
  });
  try {
    await presence.join('a', { ttlMs: hourMs, meta: { role: 'pricer' } });
    assert.deepEqual(presence.members()[0]?.meta, { role: 'pricer' });
  } finally {
    await presence.close();
  }
  // A payload POSTed as JSON text may hold -0, which JSON cannot write back: the state must
  // hold what a snapshot restores, or snapshots are refused from then on.
  const state = presenceMachine.initialState();
  const command = parsePresenceCommand(
    JSON.parse('{"op":"join","agentId":"b","ttlMs":1000,"meta":{"x":-0}}'),
  );
  presenceMachine.apply(state, command, { position: 1, time: 5, client: null });
  const encoded = JSON.parse(JSON.stringify(presenceMachine.encodeState?.(state)));
  assert.deepStrictEqual(presenceMachine.decodeState?.(encoded), state);
});

// ------------------------------------------------------------ restore against replay

test('a replica restored from its snapshot at any position agrees with one that replayed from 1', () => {
  const agentId = fc.constantFrom('a', 'b', 'c');
  checkRestoreMatchesReplay(
    presenceMachine as StateMachine<PresenceState, never, unknown>,
    fc.oneof(
      fc.record({
        op: fc.constant('join'),
        agentId,
        ttlMs: fc.integer({ min: 10, max: 100 }),
        meta: fc.jsonValue({ maxDepth: 2 }),
      }),
      fc.record({
        op: fc.constantFrom('beat', 'leave'),
        agentId,
        incarnation: fc.integer({ min: -8, max: -1 }),
      }),
      fc.constantFrom({ op: 'tick' }, null, 'join', { op: 'join', agentId: 'a', ttlMs: 1 }),
    ),
  );
});

test('a heartbeat or leave of an earlier incarnation is refused once the agent joined again', () => {
  const state = presenceMachine.initialState();
  let index = 0;
  const apply = (payload: unknown, time: number) =>
    presenceMachine.apply(state, parsePresenceCommand(payload), {
      position: ++index,
      time,
      client: null,
    }).outcome;
  apply({ op: 'join', agentId: 'a', ttlMs: 100 }, 0);
  apply({ op: 'leave', agentId: 'a', incarnation: 1 }, 10);
  assert.equal(apply({ op: 'join', agentId: 'a', ttlMs: 100 }, 20).status, 'joined');
  assert.equal(apply({ op: 'beat', agentId: 'a', incarnation: 1 }, 30).status, 'not_member');
  assert.equal(apply({ op: 'leave', agentId: 'a', incarnation: 1 }, 30).status, 'not_member');
  assert.equal(state.members.get('a')?.expiresAt, 120, 'the old incarnation renewed nothing');
  assert.equal(apply({ op: 'beat', agentId: 'a', incarnation: 3 }, 40).status, 'alive');
});
