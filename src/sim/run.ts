/**
 * Running the simulator: one seed, or a sweep over consecutive seeds with throughput figures.
 */
import type { UnsafeVariant } from '../raft/core.ts';
import { assert } from '../util/assert.ts';
import type { Profile } from './fault-mix.ts';
import type { RunResult } from './stats.ts';
import type { Property } from './violation.ts';
import { World } from './world.ts';

/** Long enough for several elections, crashes and membership changes per run. */
export const defaultFaultPhaseTicks = 600;

export interface RunOptions {
  readonly seed: number;
  readonly nodeCount?: number | null;
  readonly unsafe?: UnsafeVariant | null;
  readonly profile?: Profile;
  readonly faultPhaseTicks?: number;
  readonly traceSink?: ((line: string) => void) | null;
  readonly disabledProperties?: readonly Property[];
  readonly isolateInLivenessPhase?: boolean;
}

export function runSeed(options: RunOptions): RunResult {
  assert(options.seed >>> 0 === options.seed, 'seeds are u32');
  const world = new World({
    seed: options.seed,
    nodeCount: options.nodeCount ?? null,
    unsafe: options.unsafe ?? null,
    profile: options.profile ?? 'default',
    faultPhaseTicks: options.faultPhaseTicks ?? defaultFaultPhaseTicks,
    traceSink: options.traceSink ?? null,
    disabledProperties: options.disabledProperties ?? [],
    isolateInLivenessPhase: options.isolateInLivenessPhase ?? false,
  });
  return world.run();
}

export interface SweepOptions extends Omit<RunOptions, 'seed' | 'traceSink'> {
  readonly from: number;
  readonly count: number;
  /** Called after each seed, for progress output. */
  readonly onResult?: (result: RunResult) => void;
  /** Stop early after this many violations (the first is usually enough). */
  readonly violationsMax?: number;
}

export interface SweepReport {
  readonly seedsRun: number;
  readonly violations: readonly RunResult[];
  readonly elapsedMs: number;
  readonly steps: number;
  readonly ticks: number;
  readonly seedsPerSecond: number;
  readonly stepsPerSecond: number;
  readonly ticksPerSecond: number;
}

export function sweep(options: SweepOptions): SweepReport {
  assert(Number.isSafeInteger(options.count) && options.count > 0, 'a sweep runs seeds');
  const violationsMax = options.violationsMax ?? Number.POSITIVE_INFINITY;
  const violations: RunResult[] = [];
  const started = performance.now();
  let steps = 0;
  let ticks = 0;
  let seedsRun = 0;
  for (let offset = 0; offset < options.count; offset++) {
    const seed = (options.from + offset) >>> 0;
    const result = runSeed({ ...options, seed });
    seedsRun++;
    steps += result.stats.steps;
    ticks += result.stats.ticks;
    options.onResult?.(result);
    if (result.violation !== null) {
      violations.push(result);
      if (violations.length >= violationsMax) break;
    }
  }
  const elapsedMs = performance.now() - started;
  const perSecond = (value: number) => (elapsedMs === 0 ? 0 : (value * 1000) / elapsedMs);
  return {
    seedsRun,
    violations,
    elapsedMs,
    steps,
    ticks,
    seedsPerSecond: perSecond(seedsRun),
    stepsPerSecond: perSecond(steps),
    ticksPerSecond: perSecond(ticks),
  };
}
