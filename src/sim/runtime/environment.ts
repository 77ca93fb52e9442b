/**
 * The Environment a simulated process runs on: the world's virtual clock and agenda, and a
 * PRNG of its own forked from the seed. Timers belong to the process's Life, so a crash
 * silences them all at once. A machine's clock may be off: its wall clock skewed from the
 * true virtual time (and jumping when the nemesis sets it), and its clock rate drifting, so
 * its timers fire early or late and its monotonic clock runs fast or slow.
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
  /** Local milliseconds per true virtual millisecond (drift), about 1; fixed for a life. */
  readonly clockRate?: number;
}

export function simEnvironment(options: SimEnvironmentOptions): Environment {
  const { scheduler, life, prng } = options;
  const offset = options.clockOffsetMs ?? (() => 0);
  const rate = options.clockRate ?? 1;
  assert(rate >= 0.5 && rate <= 2, 'a drifting clock stays within a factor of two');
  const startMs = scheduler.nowMs;
  const localMs = () => startMs + (scheduler.nowMs - startMs) * rate;
  return {
    nowMs: () => simEpochMs + Math.floor(localMs()) + offset(),
    monotonicMs: localMs,
    setTimer: (delayMs: number, fire: () => void): Timer => {
      assert(Number.isFinite(delayMs) && delayMs >= 0, 'timer delays are finite and >= 0');
      return scheduler.schedule(delayMs / rate, life, fire);
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
