/**
 * A run's fingerprint: its outcome, its step count and a digest of its whole trace (every
 * event the world notes, in order, with its virtual time). Two runs of one seed must have
 * the same fingerprint whatever ran before them in the process: a difference is state that
 * leaked from one run into another (a cache, a counter, a generator shared by modules), or
 * a source of time or chance that bypasses the seed.
 */
import { createHash } from 'node:crypto';
import { type RuntimeRunOptions, runRuntimeSeed } from './world.ts';

export interface RunFingerprint {
  readonly seed: number;
  /** The property violated, or null. */
  readonly property: string | null;
  readonly steps: number;
  readonly virtualMs: number;
  readonly traceLines: number;
  /** SHA-256 of the trace, hex. */
  readonly digest: string;
}

export async function fingerprintRun(
  options: Omit<RuntimeRunOptions, 'traceSink'>,
): Promise<RunFingerprint> {
  const hash = createHash('sha256');
  let traceLines = 0;
  const result = await runRuntimeSeed({
    ...options,
    traceSink: (line) => {
      traceLines++;
      hash.update(line);
      hash.update('\n');
    },
  });
  return {
    seed: options.seed,
    property: result.violation?.property ?? null,
    steps: result.stats.steps,
    virtualMs: result.stats.virtualMs,
    traceLines,
    digest: hash.digest('hex'),
  };
}
