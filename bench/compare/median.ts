/**
 * `--repeat N`: one race swings by tens of percent on a shared machine, so N races in a row
 * are folded into one set of results whose every figure is the median of that figure across
 * the races that measured it. Each field takes its own median (a level's median msgs/s and
 * median p50 may come from different races); errors add up. Pure, so tested.
 */

import { assert } from '../../src/util/assert.ts';
import type { FloorRun } from '../floor.ts';
import type { LoadResult } from './load.ts';
import type { CatchUp, CompareResults, FloorResult, ResultRow } from './results.ts';

/** The middle value; for an even count, the mean of the two middle ones. */
export function median(values: readonly number[]): number {
  assert(values.length > 0, 'a median needs at least one value');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const upper = sorted[middle] as number;
  return sorted.length % 2 === 1 ? upper : ((sorted[middle - 1] as number) + upper) / 2;
}

function medianOf<T>(items: readonly T[], pick: (item: T) => number): number {
  return median(items.map(pick));
}

export function medianLoad(runs: readonly LoadResult[]): LoadResult {
  const first = runs[0];
  assert(first !== undefined, 'a median load result needs at least one run');
  assert(
    runs.every((run) => run.inFlight === first.inFlight),
    'the runs of a median are at one load level',
  );
  return {
    inFlight: first.inFlight,
    seconds: first.seconds,
    acknowledged: medianOf(runs, (run) => run.acknowledged),
    messagesPerSecond: medianOf(runs, (run) => run.messagesPerSecond),
    p50Ms: medianOf(runs, (run) => run.p50Ms),
    p99Ms: medianOf(runs, (run) => run.p99Ms),
    maxMs: medianOf(runs, (run) => run.maxMs),
    errors: runs.reduce((sum, run) => sum + run.errors, 0),
    firstError: runs.find((run) => run.firstError !== null)?.firstError ?? null,
    clientCpuPercent: medianOf(runs, (run) => run.clientCpuPercent),
    serverCpuPercent: medianOf(runs, (run) => run.serverCpuPercent),
    loadAverage1m: medianOf(runs, (run) => run.loadAverage1m),
  };
}

/** Each level's median over the races whose row ran; the first failure when none ran. */
function medianRow(rows: readonly ResultRow[], levelCount: number): ResultRow {
  const ran = rows.filter((row) => row.failure === null);
  const first = ran[0];
  if (first === undefined) return rows[0] as ResultRow;
  const runs: LoadResult[] = [];
  for (let at = 0; at < levelCount; at++) {
    const atLevel = ran.flatMap((row) => {
      const run = row.runs[at];
      return run === undefined ? [] : [run];
    });
    // Levels are positional: a level no race measured ends the row, as in one race.
    if (atLevel.length === 0) break;
    runs.push(medianLoad(atLevel));
  }
  return { ...first, runs, failure: null };
}

/** Row ids in the order they first appear, so a row missing from a race keeps its place. */
function rowIds(races: readonly CompareResults[]): string[] {
  return [...new Set(races.flatMap((race) => race.rows.map((row) => row.id)))];
}

function medianCatchUp(catchUps: readonly CatchUp[]): CatchUp {
  const first = catchUps[0];
  assert(first !== undefined, 'a median catch-up needs at least one catch-up');
  const binaries = catchUps.flatMap((catchUp) =>
    catchUp.binary === undefined ? [] : [catchUp.binary],
  );
  return {
    messages: first.messages,
    seconds: medianOf(catchUps, (catchUp) => catchUp.seconds),
    messagesPerSecond: medianOf(catchUps, (catchUp) => catchUp.messagesPerSecond),
    ...(binaries.length === 0
      ? {}
      : {
          binary: {
            seconds: medianOf(binaries, (binary) => binary.seconds),
            messagesPerSecond: medianOf(binaries, (binary) => binary.messagesPerSecond),
          },
        }),
  };
}

function medianFloor(floors: readonly FloorResult[], levels: readonly number[]): FloorResult {
  const ran = floors.filter((floor) => floor.failure === null);
  if (ran.length === 0) return floors[0] as FloorResult;
  const runs: FloorRun[] = [];
  for (const inFlight of levels) {
    const atLevel = ran.flatMap((floor) => floor.runs.filter((run) => run.inFlight === inFlight));
    if (atLevel.length === 0) continue;
    runs.push({
      inFlight,
      messagesPerSecond: medianOf(atLevel, (run) => run.messagesPerSecond),
      p50Ms: medianOf(atLevel, (run) => run.p50Ms),
      p99Ms: medianOf(atLevel, (run) => run.p99Ms),
    });
  }
  return { runs, failure: null };
}

/** The POST run, the catch-up, and why one of them is missing from every race. */
function medianExtras(races: readonly CompareResults[]) {
  const posts = races.flatMap((race) => (race.abcastPost === null ? [] : [race.abcastPost]));
  const catchUps = races.flatMap((race) =>
    race.abcastCatchUp === null ? [] : [race.abcastCatchUp],
  );
  const abcastPost = posts.length === 0 ? null : medianLoad(posts);
  const abcastCatchUp = catchUps.length === 0 ? null : medianCatchUp(catchUps);
  const failure = races.find((race) => race.abcastFailure !== null)?.abcastFailure ?? null;
  return {
    abcastPost,
    abcastCatchUp,
    abcastFailure: abcastPost !== null && abcastCatchUp !== null ? null : failure,
  };
}

/**
 * One set of results from races run one after the other with the same settings, oldest
 * first. A single race comes back as it is; more carry themselves in `repeats`.
 */
export function medianOfRaces(races: readonly CompareResults[]): CompareResults {
  const first = races[0];
  const last = races[races.length - 1];
  assert(first !== undefined && last !== undefined, 'there is at least one race');
  if (races.length === 1) return first;
  const levels = first.settings.inFlight;
  assert(
    races.every((race) => race.settings.inFlight.join(',') === levels.join(',')),
    'every race ran the same load levels',
  );
  assert(
    races.every((race) => race.repeats === undefined),
    'a race folded into medians is a single race',
  );
  const floors = races.flatMap((race) => (race.floor === undefined ? [] : [race.floor]));
  const combined: CompareResults = {
    startedAt: first.startedAt,
    finishedAt: last.finishedAt,
    machine: first.machine,
    settings: first.settings,
    loadAverage: { before: first.loadAverage.before, after: last.loadAverage.after },
    rows: rowIds(races).map((id) =>
      medianRow(
        races.flatMap((race) => race.rows.filter((row) => row.id === id)),
        levels.length,
      ),
    ),
    ...medianExtras(races),
    ...(floors.length === 0 ? {} : { floor: medianFloor(floors, levels) }),
    repeats: { count: races.length, races },
  };
  assert(combined.rows.length >= first.rows.length, 'no row is lost in the median');
  return combined;
}
