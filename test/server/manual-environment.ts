/**
 * An Environment whose clock moves only when a test says so: timers fire in deadline order
 * (then in the order they were armed) as `advance` passes them, so a test can prove that the
 * server takes its time from the environment it was given and from nothing else.
 */
import type { Environment, Timer } from '../../src/util/environment.ts';

interface PendingTimer {
  readonly dueMs: number;
  readonly order: number;
  readonly fire: () => void;
  cancelled: boolean;
}

export class ManualEnvironment implements Environment {
  private nowValueMs = 1_000_000;
  private armedCount = 0;
  private readonly pending: PendingTimer[] = [];

  readonly nowMs = () => this.nowValueMs;
  readonly monotonicMs = () => this.nowValueMs;
  readonly random = () => 0.5;
  readonly randomHex = (byteCount: number) => '00'.repeat(byteCount);

  readonly setTimer = (delayMs: number, fire: () => void): Timer => {
    const timer: PendingTimer = {
      dueMs: this.nowValueMs + delayMs,
      order: this.armedCount++,
      fire,
      cancelled: false,
    };
    this.pending.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  };

  /** Timers armed and neither fired nor cancelled. */
  get pendingTimerCount(): number {
    return this.pending.filter((timer) => !timer.cancelled).length;
  }

  /** Moves the clock on by `byMs`, firing each timer that falls due, with microtasks between. */
  async advance(byMs: number): Promise<void> {
    const targetMs = this.nowValueMs + byMs;
    for (;;) {
      const live = this.pending
        .filter((timer) => !timer.cancelled && timer.dueMs <= targetMs)
        .sort((a, b) => a.dueMs - b.dueMs || a.order - b.order);
      const next = live[0];
      if (next === undefined) break;
      this.pending.splice(this.pending.indexOf(next), 1);
      this.nowValueMs = next.dueMs;
      next.fire();
      await settle();
    }
    this.nowValueMs = targetMs;
    await settle();
  }
}

/** Lets queued microtasks (and the promise chains they start) run. */
export async function settle(): Promise<void> {
  for (let turn = 0; turn < 20; turn++) await Promise.resolve();
}
