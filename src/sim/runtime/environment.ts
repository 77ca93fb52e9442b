/**
 * The Environment a simulated process runs on: the world's virtual clock and agenda, and a
 * PRNG of its own forked from the seed. Timers belong to the process's Life, so a crash
 * silences them all at once.
 */
import { assert } from '../../util/assert.ts';
import type { Environment, Timer } from '../../util/environment.ts';
import type { Prng } from '../../util/prng.ts';
import type { Life, SimScheduler } from './scheduler.ts';

/** Virtual time starts at a fixed, realistic epoch, so stamps look like real ones. */
export const simEpochMs = Date.UTC(2026, 0, 1);

export interface SimEnvironmentOptions {
  readonly scheduler: SimScheduler;
  readonly life: Life;
  readonly prng: Prng;
  /** How far this process's wall clock is off the true virtual time (clock skew). */
  readonly clockOffsetMs?: () => number;
}

export function simEnvironment(options: SimEnvironmentOptions): Environment {
  const { scheduler, life, prng } = options;
  const offset = options.clockOffsetMs ?? (() => 0);
  return {
    nowMs: () => simEpochMs + scheduler.nowMs + offset(),
    monotonicMs: () => scheduler.nowMs,
    setTimer: (delayMs: number, fire: () => void): Timer => {
      assert(Number.isFinite(delayMs) && delayMs >= 0, 'timer delays are finite and >= 0');
      return scheduler.schedule(delayMs, life, fire);
    },
    random: () => prng.next(),
    randomHex: (byteCount: number) => {
      assert(Number.isSafeInteger(byteCount) && byteCount > 0, 'randomHex takes a positive count');
      let text = '';
      for (let at = 0; at < byteCount; at++) text += prng.below(256).toString(16).padStart(2, '0');
      return text;
    },
  };
}
