/**
 * Subscriber streams follow the leader's log. A node that hears from no leader — cut off in
 * a minority, or removed from the configuration and no longer sent the log while it runs —
 * would hold its streams open on keep-alives for good, and its subscribers would never fail
 * over to a node that goes on. The watch says when such a node should give its streams up
 * (and refuse new ones, retryably) until it hears from a leader again: after a bound without
 * one, or at once when it sees itself removed. etcd ends its watches opened with "require
 * leader" the same way (monitorLeader, ErrNoLeader).
 */
import { assert } from '../util/assert.ts';

/**
 * Election timeouts without a leader before streams end, counted once the last contact is
 * an election timeout old (a missed heartbeat or two never starts the count). A follower
 * that reaches a majority campaigns within two timeouts of the last contact (its timeout is
 * drawn in [n, 2n)) and has a leader soon after; a split vote costs up to two more. Three
 * ride out an election with a split vote, so elections end no stream, while a node cut off
 * lets its subscribers go within 1.2 s at the default timing (30 ticks of 10 ms: 300 ms of
 * lease, then 900 ms). etcd's monitorLeader allows three election timeouts as well.
 */
export const leaderlessElectionTimeoutsMax = 3;

/** What the node knows at a tick. */
export interface LeaderContact {
  /**
   * A leader was heard from within the last election timeout, or this node leads: one
   * missed heartbeat does not clear it.
   */
  readonly leaderHeard: boolean;
  /** This node is in its latest configuration (as a voter or a learner). */
  readonly member: boolean;
}

export class LeaderWatch {
  /**
   * Consecutive ticks in which no leader had been heard from within an election timeout,
   * counted up to the bound only (a node may stay cut off for good).
   */
  private leaderlessTicks = 0;
  /**
   * This node has been in its configuration since it started. A node joining has none yet,
   * and while it catches up it meets older ones without it: it was not removed.
   */
  private memberOnce = false;
  /** The last tick's verdict, so that listeners hear each loss once. */
  private lost = false;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly leaderlessTicksMax: number) {
    assert(
      Number.isSafeInteger(leaderlessTicksMax) && leaderlessTicksMax > 0,
      'the bound is a positive number of ticks',
    );
  }

  /**
   * One tick. The leader is lost after the whole bound without contact (any contact starts
   * the count again), or at once when this node sees itself removed from the configuration
   * it was in: no leader sends it the log any more.
   */
  tick(contact: LeaderContact): void {
    this.leaderlessTicks = contact.leaderHeard
      ? 0
      : Math.min(this.leaderlessTicks + 1, this.leaderlessTicksMax);
    if (contact.member) this.memberOnce = true;
    const removed = this.memberOnce && !contact.member;
    const lost = removed || this.leaderlessTicks >= this.leaderlessTicksMax;
    const newlyLost = lost && !this.lost;
    this.lost = lost;
    if (!newlyLost) return;
    for (const listener of [...this.listeners]) listener();
  }

  /** True from the bound on until a leader is heard from again; from a removal until re-added. */
  get leaderLost(): boolean {
    return this.lost;
  }

  /** Calls `listener` each time the leader is lost; returns the detach. */
  onLeaderLost(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }
}
