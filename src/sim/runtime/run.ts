/**
 * Running the runtime simulation: one seed, or a sweep over consecutive seeds with its
 * throughput (seeds/s, simulated steps/s and virtual seconds per real second).
 */
import { assert } from '../../util/assert.ts';
import { type RuntimeRunOptions, type RuntimeRunResult, runRuntimeSeed } from './world.ts';

export interface RuntimeSweepOptions extends Omit<RuntimeRunOptions, 'seed' | 'traceSink'> {
  readonly from: number;
  readonly count: number;
  readonly onResult?: (result: RuntimeRunResult) => void;
  readonly violationsMax?: number;
  /** Real wall-clock ms, read by the caller (the simulator itself never reads a clock). */
  readonly clockMs: () => number;
}

export interface RuntimeSweepReport {
  readonly seedsRun: number;
  readonly violations: readonly RuntimeRunResult[];
  readonly elapsedMs: number;
  readonly steps: number;
  readonly virtualMs: number;
  readonly seedsPerSecond: number;
  readonly stepsPerSecond: number;
}

export async function sweepRuntime(options: RuntimeSweepOptions): Promise<RuntimeSweepReport> {
  assert(Number.isSafeInteger(options.count) && options.count > 0, 'a sweep runs seeds');
  const violations: RuntimeRunResult[] = [];
  const startedMs = options.clockMs();
  let steps = 0;
  let virtualMs = 0;
  let seedsRun = 0;
  for (let offset = 0; offset < options.count; offset++) {
    const seed = (options.from + offset) >>> 0;
    const {
      from: _from,
      count: _count,
      onResult,
      violationsMax,
      clockMs: _clock,
      ...run
    } = options;
    const result = await runRuntimeSeed({ ...run, seed });
    seedsRun++;
    steps += result.stats.steps;
    virtualMs += result.stats.virtualMs;
    onResult?.(result);
    if (result.violation !== null) {
      violations.push(result);
      if (violations.length >= (violationsMax ?? Number.POSITIVE_INFINITY)) break;
    }
  }
  const elapsedMs = Math.max(1, options.clockMs() - startedMs);
  return {
    seedsRun,
    violations,
    elapsedMs,
    steps,
    virtualMs,
    seedsPerSecond: (seedsRun * 1000) / elapsedMs,
    stepsPerSecond: (steps * 1000) / elapsedMs,
  };
}

export { runRuntimeSeed };
