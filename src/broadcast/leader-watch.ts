/**
 * Subscriber streams follow the leader's log. A node that hears from no leader — cut off in
 * a minority, or removed from the configuration and no longer sent the log while it runs —
 * would hold its streams open on keep-alives for good, and its subscribers would never fail
 * over to a node that goes on. The watch says when such a node should give its streams up
 * (and refuse new ones, retryably) until it hears from a leader again; etcd ends its watches
 * opened with "require leader" the same way (monitorLeader, ErrNoLeader).
 */
import { assert } from '../util/assert.ts';

/**
 * Election timeouts without a leader before streams end. A node that reaches a majority
 * has a leader again within one or two timeouts of losing one (a timeout is drawn in
 * [n, 2n)), and a split vote costs one more: three ride that out, so an election alone ends
 * no stream, while a node cut off or removed lets its subscribers go within about a second
 * at the default timing (30 ticks of 10 ms). etcd's monitorLeader allows three as well.
 */
export const leaderlessElectionTimeoutsMax = 3;

export class LeaderWatch {
  /** Consecutive ticks in which no leader had been heard from within an election timeout. */
  private leaderlessTicks = 0;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly leaderlessTicksMax: number) {
    assert(
      Number.isSafeInteger(leaderlessTicksMax) && leaderlessTicksMax > 0,
      'the bound is a positive number of ticks',
    );
  }

  /**
   * One tick. `leaderHeard` is true while a leader was heard from within an election timeout
   * (or this node leads): one missed heartbeat does not clear it, and any contact starts the
   * count again, so streams end only after the whole bound without a leader.
   */
  tick(leaderHeard: boolean): void {
    if (leaderHeard) {
      this.leaderlessTicks = 0;
      return;
    }
    this.leaderlessTicks++;
    if (this.leaderlessTicks !== this.leaderlessTicksMax) return;
    assert(this.leaderLost, 'the bound reached means the leader is lost');
    for (const listener of [...this.listeners]) listener();
  }

  /** True from the bound on, until a leader is heard from again. */
  get leaderLost(): boolean {
    return this.leaderlessTicks >= this.leaderlessTicksMax;
  }

  /** Calls `listener` each time the leader is lost; returns the detach. */
  onLeaderLost(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }
}
