// Seeded fault runs of the agents' state machines on a misbehaving log (./chaos-log.ts):
// answers lost after the append, lagging followers, failovers that hand entries out twice,
// agents that crash and come back from the shared snapshot store, and a log clock that
// jumps so that leases expire under the agents' feet. Whatever a seed draws, every task is
// completed exactly once, every replica ends byte-identical (snapshot-restored or not), and
// a lock never has two holders at once. A failing seed replays with the same number.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentError } from '../../src/agents/errors.ts';
import { type Lease, Locks, locksMachine } from '../../src/agents/locks.ts';
import { MemoryLog } from '../../src/agents/memory-log.ts';
import { MemorySnapshotStore } from '../../src/agents/snapshots.ts';
import { type Claim, TaskBoard, taskBoardMachine } from '../../src/agents/taskboard.ts';
import { Prng } from '../../src/util/prng.ts';
import { ChaosLog, type ChaosSettings } from './chaos-log.ts';

const seedCount = Number(process.env.AGENTS_CHAOS_SEEDS ?? 40);
const chaos: ChaosSettings = { lostAnswerChance: 0.08, rewindChance: 0.05, lagTurnsMax: 6 };
const leaseMs = 1_000;

/** An expected refusal under faults: the answer was lost, or the claim moved on. */
function unknownOutcome(error: unknown): boolean {
  return error instanceof AgentError && error.code === 'unknown_outcome';
}

async function runBoardSeed(seed: number): Promise<string | null> {
  const random = new Prng(seed);
  let clockMs = 1_000_000;
  const log = new MemoryLog({ clockMs: () => clockMs });
  const store = new MemorySnapshotStore();
  const open = () =>
    TaskBoard.open({
      log: new ChaosLog(log.session(), random, chaos),
      name: 'work',
      snapshotStore: store,
      snapshotEveryCommands: 1 + random.below(8),
      checkDeterminism: true,
      waitTimeoutMs: 10_000,
    });
  const taskCount = 12 + random.below(20);
  const agentCount = 2 + random.below(4);
  const accepted = new Map<string, number>();
  const observer = await open();
  observer.replica.onApplied((event) => {
    const command = event.command as { op?: string; taskId?: string } | undefined;
    const outcome = event.outcome;
    if (command?.op === 'complete' && outcome.ok && (outcome.result as { ok?: boolean }).ok) {
      accepted.set(command.taskId!, (accepted.get(command.taskId!) ?? 0) + 1);
    }
  });
  const boards: TaskBoard[] = [observer];
  for (let n = 0; n < taskCount; n++) {
    await observer.post({ n }, { id: `t${n}` }).catch((error) => {
      if (!unknownOutcome(error)) throw error;
    });
  }
  // A lost answer may have hidden a post: post again with the same id (idempotent).
  for (let n = 0; n < taskCount; n++) {
    await observer.post({ n }, { id: `t${n}` }).catch((error) => {
      if (!unknownOutcome(error)) throw error;
    });
  }

  const agent = async (name: string) => {
    let board = await open();
    boards.push(board);
    let held: Claim[] = [];
    for (let step = 0; step < 40; step++) {
      clockMs += random.below(250);
      const roll = random.below(10);
      if (roll < 4) {
        const claim = await board.claim(name, { leaseMs }).catch((error) => {
          if (unknownOutcome(error)) return null;
          throw error;
        });
        if (claim !== null) held.push(claim);
      } else if (roll < 8 && held.length > 0) {
        const claim = held.splice(random.below(held.length), 1)[0]!;
        await board.complete(claim, { by: name }).catch((error) => {
          if (!unknownOutcome(error)) throw error;
        });
      } else if (roll === 8) {
        // A crash: the process and its claims are gone; it comes back from the snapshot.
        await board.close();
        board = await open();
        boards.push(board);
        held = [];
      }
    }
  };
  await Promise.all(Array.from({ length: agentCount }, (_, n) => agent(`agent-${n}`)));

  // The leases of whatever crashed agents held run out; a last agent finishes the rest.
  const finisher = await open();
  boards.push(finisher);
  for (let round = 0; round < 10 * taskCount; round++) {
    const counts = await finisher.counts();
    if (counts.open === 0 && counts.claimed === 0) break;
    clockMs += leaseMs + 1;
    const claim = await finisher.claim('finisher', { leaseMs: 10 * leaseMs }).catch((error) => {
      if (unknownOutcome(error)) return null;
      throw error;
    });
    if (claim !== null) {
      await finisher.complete(claim, { by: 'finisher' }).catch((error) => {
        if (!unknownOutcome(error)) throw error;
      });
    }
  }
  const counts = await finisher.counts();
  if (counts.done !== taskCount || counts.open + counts.claimed !== 0) {
    return `seed ${seed}: ${JSON.stringify(counts)} of ${taskCount} tasks`;
  }
  await observer.counts(); // the observer has applied everything acknowledged so far
  for (let n = 0; n < taskCount; n++) {
    if (accepted.get(`t${n}`) !== 1) {
      const failure = observer.replica.failure;
      return `seed ${seed}: t${n} completed ${accepted.get(`t${n}`) ?? 0} times (observer: ${failure?.message ?? 'running'})`;
    }
  }
  const live = boards.filter((board) => board.replica.failure === null);
  const encoded = await Promise.all(
    live.map(async (board) =>
      JSON.stringify(taskBoardMachine.encodeState!(await board.replica.read())),
    ),
  );
  const restored = await open(); // from the newest snapshot, whoever saved it
  encoded.push(JSON.stringify(taskBoardMachine.encodeState!(await restored.replica.read())));
  if (new Set(encoded).size !== 1) return `seed ${seed}: replicas differ`;
  await Promise.all([...live, restored].map((board) => board.close()));
  return null;
}

async function runLocksSeed(seed: number): Promise<string | null> {
  const random = new Prng(seed);
  let clockMs = 1_000_000;
  const log = new MemoryLog({ clockMs: () => clockMs });
  const store = new MemorySnapshotStore();
  const open = () =>
    Locks.open({
      log: new ChaosLog(log.session(), random, chaos),
      name: 'locks',
      snapshotStore: store,
      snapshotEveryCommands: 1 + random.below(8),
      checkDeterminism: true,
      waitTimeoutMs: 10_000,
    });
  const observer = await open();
  const violations: string[] = [];
  let current: { token: number; expiresAt: number } | null = null;
  let grantCount = 0;
  observer.replica.onApplied((event) => {
    const holder = observer.replica.readLocal((state) => state.locks.get('L')?.holder ?? null);
    const command = event.command as { op?: string; token?: number } | undefined;
    if (holder !== null && holder.token !== current?.token) {
      grantCount += 1;
      const released = command?.op === 'release' && command.token === current?.token;
      if (current !== null && !released && current.expiresAt > event.time) {
        violations.push(
          `token ${holder.token} granted at ${event.time} while ${current.token} ran to ${current.expiresAt}`,
        );
      }
      if (current !== null && holder.token <= current.token) violations.push('tokens went back');
    }
    current = holder === null ? null : { token: holder.token, expiresAt: holder.expiresAt };
  });
  const agent = async (name: string) => {
    let locks = await open();
    let held: Lease | null = null;
    for (let step = 0; step < 40; step++) {
      clockMs += random.below(400);
      const roll = random.below(10);
      const answer = async <T>(call: Promise<T>): Promise<T | null> =>
        call.catch((error) => {
          if (unknownOutcome(error)) return null;
          throw error;
        });
      if (roll < 4 && held === null) {
        held = await answer(locks.tryAcquire('L', { owner: name, ttlMs: leaseMs }));
      } else if (roll < 6 && held !== null) {
        held = (await answer(locks.renew(held, { ttlMs: leaseMs }))) ?? null;
      } else if (roll < 9 && held !== null) {
        await answer(locks.release(held));
        held = null;
      } else if (roll === 9) {
        await locks.close();
        locks = await open();
        held = null;
      }
    }
    await locks.close();
  };
  await Promise.all(Array.from({ length: 2 + random.below(4) }, (_, n) => agent(`agent-${n}`)));
  await observer.replica.read();
  const restored = await open();
  const views = [observer, restored].map((locks) =>
    JSON.stringify(locksMachine.encodeState!(locks.replica.readLocal())),
  );
  await restored.replica.read();
  views[1] = JSON.stringify(locksMachine.encodeState!(restored.replica.readLocal()));
  await Promise.all([observer.close(), restored.close()]);
  if (violations.length > 0) return `seed ${seed}: ${violations[0]}`;
  if (grantCount === 0) return `seed ${seed}: no grant at all`;
  if (views[0] !== views[1]) return `seed ${seed}: a restored replica differs`;
  return null;
}

test(`locks: ${seedCount} seeded fault runs, never two holders at once`, async () => {
  const failures: string[] = [];
  for (let seed = 1; seed <= seedCount; seed++) {
    const failure = await runLocksSeed(seed);
    if (failure !== null) failures.push(failure);
  }
  assert.deepEqual(failures, []);
});

test(`task board: ${seedCount} seeded fault runs, each task completed exactly once`, async () => {
  const failures: string[] = [];
  for (let seed = 1; seed <= seedCount; seed++) {
    const failure = await runBoardSeed(seed);
    if (failure !== null) failures.push(failure);
  }
  assert.deepEqual(failures, []);
});
