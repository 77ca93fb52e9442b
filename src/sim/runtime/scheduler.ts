/**
 * Virtual time for the code users run. Every timer the nodes, their storage, their servers
 * and the SDK clients set goes into one agenda, ordered by virtual millisecond and then by a
 * key drawn from the run's PRNG (same-millisecond events run in a seed-chosen order). The
 * world takes one event at a time and lets the microtasks it caused run to completion before
 * the next one (`settle`), so async code runs as it does in production, one seed, one history.
 */
import { assert } from '../../util/assert.ts';
import type { Timer } from '../../util/environment.ts';
import type { Prng } from '../../util/prng.ts';
import { EventQueue } from '../event-queue.ts';

/**
 * One incarnation of something that can crash: a node process, a client. Its events are
 * skipped once it ends, as a killed process's timers and I/O completions never fire.
 */
export class Life {
  private alive = true;
  /**
   * While the virtual clock is before this, the process is paused (stopped by the OS, a long
   * GC, a stalled VM): its events wait until then, in their order, as a paused process's
   * timers and socket reads all run at once when it resumes.
   */
  pausedUntilMs = 0;

  constructor(readonly name: string) {}

  get isAlive(): boolean {
    return this.alive;
  }

  end(): void {
    this.alive = false;
  }
}

interface Scheduled {
  readonly life: Life;
  readonly fire: () => void;
  cancelled: boolean;
}

export class SimScheduler {
  private nowMsValue = 0;
  private readonly agenda: EventQueue<Scheduled>;
  private firedCount = 0;

  constructor(
    private readonly orderPrng: Prng,
    eventsMax: number,
  ) {
    this.agenda = new EventQueue(eventsMax);
  }

  get nowMs(): number {
    return this.nowMsValue;
  }

  /** Events that ran (cancelled ones and those of ended lives excluded). */
  get eventCount(): number {
    return this.firedCount;
  }

  /** Runs `fire` `delayMs` from now (rounded up to whole virtual milliseconds). */
  schedule(delayMs: number, life: Life, fire: () => void): Timer {
    assert(Number.isFinite(delayMs) && delayMs >= 0, 'delays are finite and not negative');
    const entry: Scheduled = { life, fire, cancelled: false };
    const atMs = this.nowMsValue + Math.ceil(delayMs);
    this.agenda.push(atMs, this.orderPrng.nextUint32(), entry);
    return {
      cancel: () => {
        entry.cancelled = true;
      },
    };
  }

  /** The virtual time of the next event, or Infinity. */
  peekMs(): number {
    return this.agenda.peekTicks();
  }

  /**
   * Runs the next event due at or before `untilMs`, moving the clock to it; false when there
   * is none (the clock then moves to `untilMs`). Skipped events do not count as a step.
   */
  runNext(untilMs: number): boolean {
    for (;;) {
      const nextMs = this.agenda.peekTicks();
      if (nextMs > untilMs) {
        if (Number.isFinite(untilMs)) this.nowMsValue = Math.max(this.nowMsValue, untilMs);
        return false;
      }
      const entry = this.agenda.pop();
      assert(nextMs >= this.nowMsValue, 'virtual time never goes back');
      this.nowMsValue = nextMs;
      if (entry.cancelled || !entry.life.isAlive) continue;
      if (entry.life.pausedUntilMs > nextMs) {
        this.agenda.push(entry.life.pausedUntilMs, this.orderPrng.nextUint32(), entry);
        continue;
      }
      this.firedCount++;
      entry.fire();
      return true;
    }
  }

  clear(): void {
    this.agenda.clear();
  }
}

/**
 * Lets every microtask run: the promise continuations, awaits and queueMicrotask callbacks
 * that the last event caused. Node runs the whole microtask queue before the next
 * macrotask, and nothing in a simulated run schedules real timers or I/O.
 */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
