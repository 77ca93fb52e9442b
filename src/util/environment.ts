/**
 * Every source of time and randomness that the node runtime (src/broadcast), its storage
 * (src/storage) and the SDK (src/client) use enters through one Environment. Production fills
 * it with the real clock, timers and crypto (system-environment.ts, the only file there that
 * may touch them); the simulator fills it with its virtual clock, its event queue and the
 * run's seeded PRNG, so that one seed replays the same run of the same code.
 */

/** A pending timer; cancelling one that already fired, or twice, does nothing. */
export interface Timer {
  cancel(): void;
}

export interface Environment {
  /**
   * Milliseconds since the epoch: deadlines and the leader's batch stamps. Production may
   * jump with the wall clock; nothing may rely on it for ordering.
   */
  readonly nowMs: () => number;
  /** Milliseconds on a clock that never goes back, for measuring durations. */
  readonly monotonicMs: () => number;
  /**
   * Calls `fire` once, `delayMs` (>= 0) from now, on its own turn of the event loop. A
   * `background` timer does not keep a production process alive by itself.
   */
  readonly setTimer: (
    delayMs: number,
    fire: () => void,
    options?: { readonly background?: boolean },
  ) => Timer;
  /** Uniform in [0, 1). */
  readonly random: () => number;
  /** `byteCount` random bytes as lowercase hex: ids that must not collide between processes. */
  readonly randomHex: (byteCount: number) => string;
}
