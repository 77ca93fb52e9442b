/**
 * Reconnection delays: exponential growth from `initialMs` up to `maxMs`, with "equal jitter"
 * (a uniform draw in the upper half of the current step) so that the nodes of a cluster that
 * lost a peer together do not all knock on its door in the same millisecond.
 */
import { assert } from '../util/assert.ts';

export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  /** Uniform in [0, 1); injected so tests can pin the jitter. */
  readonly random: () => number;
}

/** Doubling stops here: 2^30 × initialMs is far past any sensible maxMs. */
const attemptCountMax = 30;

export class Backoff {
  private attemptCount = 0;

  constructor(private readonly options: BackoffOptions) {
    assert(Number.isFinite(options.initialMs) && options.initialMs > 0, 'initialMs > 0');
    assert(
      Number.isFinite(options.maxMs) && options.maxMs >= options.initialMs,
      'maxMs >= initialMs',
    );
  }

  get attempts(): number {
    return this.attemptCount;
  }

  /** The delay before the next attempt, in [step / 2, step] with step = min(max, initial·2^n). */
  nextDelayMs(): number {
    const stepMs = Math.min(this.options.maxMs, this.options.initialMs * 2 ** this.attemptCount);
    if (this.attemptCount < attemptCountMax) this.attemptCount++;
    const draw = this.options.random();
    assert(draw >= 0 && draw < 1, 'random() is uniform in [0, 1)');
    const delayMs = stepMs / 2 + (draw * stepMs) / 2;
    assert(delayMs <= this.options.maxMs, 'a delay never exceeds maxMs');
    return delayMs;
  }

  /** A connection succeeded: the next failure starts again from `initialMs`. */
  reset(): void {
    this.attemptCount = 0;
  }
}
