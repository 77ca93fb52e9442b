// Proves durability through a disk, not a counter: FileStorage runs on a SimFileSystem whose
// operations complete in an order the seed draws, random bursts of appends (with suffix
// overwrites and hard states) and compactions are issued, and the power is cut at a random
// operation. Reopened, the storage must hold exactly the state after some prefix of the
// requests that includes every one whose promise resolved — nothing acknowledged lost,
// nothing invented, nothing half-applied — and a torn or lost unsynced write never makes the
// open fail. Two crashes per run, many seeds (fast-check). A deliberately broken WalWriter
// that acknowledges before its fdatasync (`unsafe: 'ackBeforeDatasync'`) must fail the same
// property, or the property proves nothing.
//
// Leaders' snapshots are left out: a crash between a leader's snapshot file and the record
// that resets the log is recovered to a state no prefix describes (the new snapshot with the
// old hard state; see recovery.ts), which the recovery tests check on their own.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Entry, HardState, PersistedState } from '../../src/raft/types.ts';
import { SimFileSystem } from '../../src/sim/sim-file-system.ts';
import type { FileStorage } from '../../src/storage/file-storage.ts';
import type { UnsafeStorageMode } from '../../src/storage/wal-writer.ts';
import { Prng } from '../../src/util/prng.ts';
import { entry, snapshot } from './helpers.ts';
import { EventPump, openOnSimDisk, testEnvironment } from './sim-disk.ts';

/** The logical state a reopen must return: what the log holds after the snapshot. */
interface LogicalState {
  readonly snapshotIndex: number;
  readonly snapshotTerm: number;
  readonly entries: readonly Entry[];
  readonly hardState: HardState | null;
}

const EMPTY: LogicalState = { snapshotIndex: 0, snapshotTerm: 0, entries: [], hardState: null };

function lastIndexOf(state: LogicalState): number {
  return state.snapshotIndex + state.entries.length;
}

function termAt(state: LogicalState, index: number): number {
  if (index === state.snapshotIndex) return state.snapshotTerm;
  return state.entries[index - state.snapshotIndex - 1]!.term;
}

/** As recovery reports it: a snapshot covers only committed entries. */
function raised(hardState: HardState | null, snapshotIndex: number): HardState | null {
  if (hardState === null || hardState.commit >= snapshotIndex) return hardState;
  return { ...hardState, commit: snapshotIndex };
}

type Request =
  | {
      readonly kind: 'append';
      readonly entries: Entry[];
      readonly hardState: HardState | null;
    }
  | { readonly kind: 'snapshot'; readonly index: number; readonly term: number };

/** A valid next request for `state`, and the state it leaves. */
function nextRequest(prng: Prng, state: LogicalState): [Request, LogicalState] {
  const lastIndex = lastIndexOf(state);
  const commit = state.hardState?.commit ?? 0;
  const floor = Math.max(commit, state.snapshotIndex);
  if (floor > state.snapshotIndex && prng.chance(0.15)) {
    const index = prng.between(state.snapshotIndex + 1, floor);
    const term = termAt(state, index);
    const entries = state.entries.slice(index - state.snapshotIndex);
    const hardState = raised(state.hardState, index);
    return [
      { kind: 'snapshot', index, term },
      { ...state, snapshotIndex: index, snapshotTerm: term, entries, hardState },
    ];
  }
  let term = state.hardState?.term ?? 1;
  // Appending after the commit point, possibly over an uncommitted suffix in a newer term.
  const firstIndex = prng.chance(0.2) ? prng.between(floor + 1, lastIndex + 1) : lastIndex + 1;
  if (firstIndex <= lastIndex) term += 1;
  const count = prng.between(0, 6);
  const appended: Entry[] = [];
  for (let offset = 0; offset < count; offset++) {
    const size = prng.chance(0.1) ? prng.between(600, 2500) : prng.between(0, 80);
    appended.push(entry(firstIndex + offset, term, size));
  }
  const kept = state.entries.slice(0, firstIndex - state.snapshotIndex - 1);
  const entries = count === 0 ? state.entries : [...kept, ...appended];
  const newLast = state.snapshotIndex + entries.length;
  const changesHardState = count === 0 || term !== state.hardState?.term || prng.chance(0.5);
  const hardState = changesHardState
    ? { term, vote: null, commit: prng.between(commit, Math.max(commit, newLast)) }
    : null;
  const next = { ...state, entries, hardState: hardState ?? state.hardState };
  return [{ kind: 'append', entries: count === 0 ? [] : appended, hardState }, next];
}

function issue(storage: FileStorage, request: Request): Promise<void> {
  if (request.kind === 'snapshot') {
    return storage.saveSnapshot(snapshot(request.index, request.term));
  }
  return storage.append({ hardState: request.hardState, snapshot: null, entries: request.entries });
}

function fromPersisted(persisted: PersistedState): LogicalState {
  return {
    snapshotIndex: persisted.snapshot?.meta.index ?? 0,
    snapshotTerm: persisted.snapshot?.meta.term ?? 0,
    entries: persisted.entries,
    hardState: persisted.hardState,
  };
}

function sameState(left: LogicalState, right: LogicalState): boolean {
  const plain = (state: LogicalState) =>
    JSON.stringify({
      ...state,
      entries: state.entries.map((item) => ({
        ...item,
        data: Buffer.from(item.data).toString('hex'),
      })),
    });
  return plain(left) === plain(right);
}

interface RunOptions {
  readonly seed: number;
  readonly unsafe?: UnsafeStorageMode;
  readonly sectorBytes: number;
}

/**
 * One run: two crash cycles. Throws (an assertion, or the error `open` threw) when the
 * reopened storage holds anything but a prefix state covering every acknowledged request.
 */
/** What the runs did, so that a test can tell the property was not vacuous. */
interface RunStats {
  cycleCount: number;
  /** Cycles cut while some request was not yet acknowledged. */
  cutInFlightCount: number;
  /** Cycles that recovered requests that were never acknowledged. */
  recoveredUnacknowledgedCount: number;
  lostSectorCount: number;
  /** Segments made from a covered segment's file (stale records after the new ones). */
  recycledSegmentCount: number;
}

function newStats(): RunStats {
  return {
    cycleCount: 0,
    cutInFlightCount: 0,
    recoveredUnacknowledgedCount: 0,
    lostSectorCount: 0,
    recycledSegmentCount: 0,
  };
}

async function crashRun(options: RunOptions, stats = newStats()): Promise<void> {
  const prng = new Prng(options.seed);
  const environment = testEnvironment(prng.fork());
  const pump = new EventPump(prng.fork(), environment);
  const files = new SimFileSystem({
    prng: prng.fork(),
    schedule: pump.schedule,
    sectorBytes: options.sectorBytes,
  });
  const open = () =>
    pump.settle(
      openOnSimDisk(files, environment, {
        directoryLock: 'none',
        ...(options.unsafe === undefined ? {} : { unsafe: options.unsafe }),
      }),
    );
  let { storage, persisted } = await open();
  let state = fromPersisted(persisted);
  assert.ok(sameState(state, EMPTY), 'a fresh directory opens empty');
  for (let cycle = 0; cycle < 2; cycle++) {
    // states[k]: the state after the first k requests of this cycle.
    const states: LogicalState[] = [state];
    let acknowledgedCount = 0;
    const failures: string[] = [];
    const burstCount = prng.between(1, 12);
    for (let burst = 0; burst < burstCount; burst++) {
      for (let call = prng.between(1, 3); call > 0; call--) {
        const [request, next] = nextRequest(prng, states[states.length - 1]!);
        const position = states.length;
        states.push(next);
        issue(storage, request).then(
          () => {
            acknowledgedCount = Math.max(acknowledgedCount, position);
          },
          (error: unknown) => failures.push(`request ${position} failed: ${String(error)}`),
        );
      }
      for (let step = prng.between(0, 10); step > 0 && (await pump.step()); step--);
    }
    // A few operations (a record is a write and an fdatasync): the cut often finds some in flight.
    for (let step = prng.between(0, 8); step > 0 && (await pump.step()); step--);
    assert.deepEqual(failures, [], 'valid requests never fail before the power cut');
    stats.recycledSegmentCount += storage.counters().segmentRecycledCount;
    files.powerCut();
    pump.dropAll();
    ({ storage, persisted } = await open());
    const recovered = fromPersisted(persisted);
    // Requests may leave the state as it was (a hard state repeated): take the latest match.
    let match = -1;
    for (const [position, candidate] of states.entries()) {
      if (sameState(candidate, recovered)) match = position;
    }
    assert.ok(match !== -1, `cycle ${cycle}: the recovered state is no prefix of the requests`);
    assert.ok(
      match >= acknowledgedCount,
      `cycle ${cycle}: recovered the state after ${match} requests, ${acknowledgedCount} were acknowledged`,
    );
    state = recovered;
    stats.cycleCount += 1;
    if (acknowledgedCount < states.length - 1) stats.cutInFlightCount += 1;
    if (match > acknowledgedCount) stats.recoveredUnacknowledgedCount += 1;
  }
  stats.lostSectorCount += files.counters().lostSectorCount;
}

describe('FileStorage on a simulated disk: power cuts', () => {
  it('keeps exactly what was acknowledged, for any seed (512-byte sectors)', async () => {
    const stats = newStats();
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 0xffff_ffff }), (seed) =>
        crashRun({ seed, sectorBytes: 512 }, stats),
      ),
      { numRuns: 150, seed: 0x5eed },
    );
    // Not vacuous: power cuts came with requests in flight, tore writes, and kept some
    // unacknowledged requests (which is allowed) as well as dropping others.
    assert.ok(stats.cutInFlightCount > stats.cycleCount / 4, JSON.stringify(stats));
    assert.ok(stats.recoveredUnacknowledgedCount > 0, JSON.stringify(stats));
    assert.ok(stats.lostSectorCount > 0, JSON.stringify(stats));
    // Recovery ran over recycled segments' stale records, torn writes among them.
    assert.ok(stats.recycledSegmentCount > 0, JSON.stringify(stats));
  });

  it('keeps exactly what was acknowledged, for any seed (4 KiB pages)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 0xffff_ffff }), (seed) =>
        crashRun({ seed, sectorBytes: 4096 }),
      ),
      { numRuns: 60, seed: 0x5eee },
    );
  });

  it('catches a WAL that acknowledges appends before their fdatasync', async () => {
    const result = await fc.check(
      fc.asyncProperty(fc.integer({ min: 0, max: 0xffff_ffff }), (seed) =>
        crashRun({ seed, sectorBytes: 512, unsafe: 'ackBeforeDatasync' }),
      ),
      { numRuns: 60, seed: 0x5eed },
    );
    assert.ok(result.failed, 'the property must fail when appends are acknowledged unsynced');
    assert.ok(result.counterexample !== null);
  });
});
