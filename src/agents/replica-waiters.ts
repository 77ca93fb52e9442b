/**
 * The calls waiting on a replica: on a position being applied (submit, read), kept by
 * position so that thousands of concurrent submits cost O(log n) each, and on a probe of the
 * state (waitUntil), checked after every applied command. Each wait ends once done, at its
 * deadline on this process's clock (`timeout`), on its caller's abort, or when the replica
 * fails every wait at once.
 */
import { assert } from '../util/assert.ts';
import { ProgressWaiters } from '../util/progress-waiters.ts';
import { AgentError } from './errors.ts';

interface Waiter {
  /** Called after every change; true when it is done. */
  readonly check: () => boolean;
  readonly fail: (error: Error) => void;
}

/** The longest delay a Node timer takes. */
const timerDelayMaxMs = 2 ** 31 - 1;

export class ReplicaWaiters {
  /** Waiters on a probe of the state: each is checked after every applied command. */
  private readonly probeWaiters = new Set<Waiter>();
  private readonly positionWaiters = new ProgressWaiters<Waiter>();

  constructor(
    /** The replica's topic and applied position, for the details of a timeout. */
    private readonly topic: string,
    private readonly appliedIndex: () => number,
  ) {}

  /** Resolves once the replica has applied `index`. */
  untilApplied(index: number, deadlineMs: number): Promise<void> {
    return this.until(() => this.appliedIndex() >= index, deadlineMs, undefined, index);
  }

  /** Resolves once `done()`; `atIndex` says it is `applied >= atIndex`, kept by position. */
  until(
    done: () => boolean,
    deadlineMs: number,
    signal?: AbortSignal,
    atIndex?: number,
  ): Promise<void> {
    if (done()) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(new AgentError('aborted', 'the wait was aborted'));
    return new Promise<void>((resolve, reject) => {
      let positionWaiterId: number | null = null;
      const finish = (error: Error | null) => {
        this.probeWaiters.delete(waiter);
        // A wait that ends early (timeout, abort) must leave the waiters, or a replica that
        // cannot reach the positions would keep one per call.
        if (positionWaiterId !== null) this.positionWaiters.remove(positionWaiterId);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (error === null) resolve();
        else reject(error);
      };
      const waiter: Waiter = {
        check: () => {
          if (!done()) return false;
          finish(null);
          return true;
        },
        fail: finish,
      };
      const onAbort = () => finish(new AgentError('aborted', 'the wait was aborted'));
      // Timers take at most 2^31-1 ms (a longer one fires at once): re-armed until the end.
      const arm = (): NodeJS.Timeout =>
        setTimeout(
          () => {
            if (Date.now() < deadlineMs) {
              timer = arm();
              return;
            }
            finish(
              new AgentError('timeout', 'this replica did not get there in time', {
                appliedIndex: this.appliedIndex(),
                topic: this.topic,
              }),
            );
          },
          Math.min(timerDelayMaxMs, Math.max(0, deadlineMs - Date.now())),
        );
      let timer = arm();
      signal?.addEventListener('abort', onAbort, { once: true });
      if (atIndex === undefined) {
        this.probeWaiters.add(waiter);
      } else {
        positionWaiterId = this.positionWaiters.add(atIndex, waiter);
      }
    });
  }

  /** After every change: ends the waits that are done; a probe that throws fails its wait. */
  wake(): void {
    for (const waiter of this.positionWaiters.reach(this.appliedIndex())) waiter.check();
    for (const waiter of [...this.probeWaiters]) {
      try {
        waiter.check();
      } catch (error) {
        waiter.fail(error instanceof Error ? error : new Error(String(error)));
      }
    }
  }

  /** The replica stopped: every wait fails with `error`. */
  failAll(error: Error): void {
    for (const waiter of [...this.probeWaiters, ...this.positionWaiters.takeAll()]) {
      waiter.fail(error);
    }
    assert(this.probeWaiters.size === 0, 'a failed probe waiter leaves its set');
    assert(this.positionWaiters.size === 0, 'a failed position waiter leaves its set');
  }
}
