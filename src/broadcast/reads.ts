/**
 * Linearizable reads: `barrier()` asks the leader for a read index (ReadIndex, Raft thesis
 * §6.4), then waits until this node has applied up to it, so the position it answers
 * includes every message acknowledged anywhere before the call. Also keeps the waiters on
 * the applied index, ordered by index, that the applier wakes.
 */
import type { RaftCore } from '../raft/core.ts';
import type { NodeId, ReadState } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import type { Environment } from '../util/environment.ts';
import { ProgressWaiters } from '../util/progress-waiters.ts';
import { BroadcastError } from './errors.ts';

export interface ReadsOptions {
  readonly id: NodeId;
  readonly core: RaftCore;
  readonly environment: Environment;
  readonly requestTimeoutMs: number;
  /** A read index not answered by then is asked for again (the leader may have changed). */
  readonly retryIntervalMs: number;
  /** The pause between two attempts when no leader answered: about one heartbeat. */
  readonly retryPauseMs: number;
  readonly appliedIndex: () => number;
  readonly lastPosition: () => number;
  readonly stopped: () => BroadcastError | null;
  readonly scheduleLoop: () => void;
}

export class Reads {
  private nextReadId = 1;
  private readonly readWaiters = new Map<string, (index: number | null) => void>();
  /** Each ends its wait: true once applied reached its index, false when it cannot. */
  private readonly appliedWaiters = new ProgressWaiters<(reached: boolean) => void>();

  constructor(private readonly options: ReadsOptions) {
    assert(options.retryIntervalMs > 0, 'retryIntervalMs is positive');
    assert(options.retryPauseMs > 0, 'retryPauseMs is positive');
  }

  async barrier(): Promise<number> {
    const { environment, stopped } = this.options;
    const deadlineMs = environment.monotonicMs() + this.options.requestTimeoutMs;
    while (stopped() === null && environment.monotonicMs() < deadlineMs) {
      const index = await this.readIndex();
      if (index !== null) {
        if (await this.appliedAtLeast(index, deadlineMs)) return this.options.lastPosition();
        break;
      }
      await new Promise<void>((resolve) =>
        environment.setTimer(this.options.retryPauseMs, resolve),
      );
    }
    throw stopped() ?? new BroadcastError('no_leader', 'no leader confirmed a read in time');
  }

  /** One ReadIndex request: the index the leader confirmed, or null after a retry interval. */
  private readIndex(): Promise<number | null> {
    const requestId = `${this.options.id}.${this.nextReadId++}`;
    return new Promise<number | null>((resolve) => {
      const answer = (index: number | null) => {
        timer.cancel();
        this.readWaiters.delete(requestId);
        resolve(index);
      };
      const timer = this.options.environment.setTimer(this.options.retryIntervalMs, () =>
        answer(null),
      );
      this.readWaiters.set(requestId, answer);
      this.options.core.readIndex(requestId);
      this.options.scheduleLoop();
    });
  }

  /** The Ready's read states: answers the requests that are still waiting. */
  onReadStates(states: readonly ReadState[]): void {
    for (const state of states) {
      // A null index is a refusal (not the leader after all): the request is asked again.
      assert(state.index === null || Number.isSafeInteger(state.index), 'read indexes are indexes');
      this.readWaiters.get(state.requestId)?.(state.index);
    }
  }

  /** True once applied reaches `index`; false at the deadline or when the node stops. */
  appliedAtLeast(index: number, deadlineMs: number): Promise<boolean> {
    if (this.options.appliedIndex() >= index) return Promise.resolve(true);
    return new Promise((resolve) => {
      const { environment } = this.options;
      const waitMs = Math.max(0, deadlineMs - environment.monotonicMs());
      const timer = environment.setTimer(waitMs, () => finish(false));
      const finish = (reached: boolean) => {
        timer.cancel();
        this.appliedWaiters.remove(id);
        resolve(reached);
      };
      const id = this.appliedWaiters.add(index, finish);
    });
  }

  /** Wakes the waiters whose index is applied. */
  onApplied(appliedIndex: number): void {
    for (const finish of this.appliedWaiters.reach(appliedIndex)) finish(true);
  }

  /** The node stopped: every wait ends now, unanswered. */
  halt(): void {
    for (const finish of this.appliedWaiters.takeAll()) finish(false);
    for (const answer of [...this.readWaiters.values()]) answer(null);
  }
}
