import { assert } from '../util/assert.ts';
import type { FollowerProgress, NodeId, ProgressState } from './types.ts';

/**
 * What a leader knows about one follower's log, and how hard it may push entries at it.
 * - probe: the leader does not know where the logs agree; one append per heartbeat round
 *   trip until a success says where they do;
 * - replicate: the logs agree up to `matchIndex`; appends stream optimistically, at most
 *   `inflightAppendsMax` unacknowledged at once;
 * - snapshot: the entries the follower needs are compacted; nothing is sent until the
 *   snapshot is acknowledged or given up on.
 */
export class Progress {
  state: ProgressState = 'probe';
  matchIndex = 0;
  nextIndex: number;
  /** In probe state: an append is out and unanswered. */
  probeSent = false;
  /** Last index carried by each unacknowledged append, oldest first. */
  private inflight: number[] = [];
  pendingSnapshotIndex = 0;
  snapshotElapsedTicks = 0;
  /** Heard from within the current CheckQuorum period. */
  recentlyActive = false;
  /** Highest ReadIndex round this follower has confirmed. */
  readRoundAcked = 0;
  /** Highest commit index sent to this follower, in an Append or a Heartbeat. */
  commitSent = 0;
  /** Highest index this follower waits to see committed (lazyCommitNews sends that at once). */
  commitAwaited = 0;
  /**
   * lazyCommitNews: `commitSent` as it was at the last tick that found commit news held for
   * this follower, -1 when that tick found none. Equal at the next tick, the news was held
   * the whole tick and goes then.
   */
  commitHeldAtTick = -1;
  /** Since the last heartbeat round: an Append went to this follower, and it answered one. */
  appendedSinceHeartbeat = false;
  answeredSinceHeartbeat = false;

  constructor(
    readonly id: NodeId,
    nextIndex: number,
    private readonly inflightAppendsMax: number,
  ) {
    this.nextIndex = nextIndex;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflight.length >= this.inflightAppendsMax;
      case 'snapshot':
        return true;
    }
  }

  inflightFull(): boolean {
    return this.inflight.length >= this.inflightAppendsMax;
  }

  becomeProbe(): void {
    // After a snapshot, the follower holds at least the snapshot's index.
    const next =
      this.state === 'snapshot'
        ? Math.max(this.matchIndex + 1, this.pendingSnapshotIndex + 1)
        : this.matchIndex + 1;
    this.reset('probe', next);
  }

  becomeReplicate(): void {
    this.reset('replicate', this.matchIndex + 1);
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.reset('snapshot', this.nextIndex);
    this.pendingSnapshotIndex = snapshotIndex;
  }

  private reset(state: ProgressState, nextIndex: number): void {
    this.state = state;
    this.nextIndex = nextIndex;
    this.probeSent = false;
    this.inflight = [];
    this.pendingSnapshotIndex = 0;
    this.snapshotElapsedTicks = 0;
  }

  /** Records an append carrying entries up to `lastIndex` (or none). */
  sentAppend(lastIndex: number | null): void {
    if (this.state === 'replicate') {
      if (lastIndex === null) return;
      assert(lastIndex >= this.nextIndex, 'replicate state only moves forward');
      this.inflight.push(lastIndex);
      this.nextIndex = lastIndex + 1;
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  /** A success up to `index`; returns whether it taught us anything new. */
  acknowledge(index: number): boolean {
    let updated = false;
    if (index > this.matchIndex) {
      this.matchIndex = index;
      this.probeSent = false;
      updated = true;
    }
    if (this.nextIndex < index + 1) this.nextIndex = index + 1;
    while (this.inflight.length > 0 && (this.inflight[0] as number) <= index) this.inflight.shift();
    return updated;
  }

  /** Lets one more append out when the window is full and the follower is alive. */
  freeOldestInflight(): void {
    this.inflight.shift();
  }

  /**
   * A rejection of an append whose previous index was `rejectedIndex`. Returns false if it
   * answers an append older than the ones we now care about (reordered or duplicated).
   */
  rejected(rejectedIndex: number, probeFrom: number): boolean {
    if (this.state === 'snapshot') return false;
    if (this.state === 'replicate') {
      if (rejectedIndex <= this.matchIndex) return false;
    } else if (rejectedIndex !== this.nextIndex - 1) {
      return false;
    }
    const next = Math.max(this.matchIndex + 1, Math.min(probeFrom, rejectedIndex));
    this.reset('probe', next);
    return true;
  }

  /**
   * The follower says its log ends before what it once acknowledged: its disk lost a tail
   * (a torn write the checksum caught). Raft assumes this never happens; we start probing
   * from where its log really ends so it can catch up instead of stalling forever.
   */
  lostEntries(followerLastIndex: number): void {
    assert(followerLastIndex < this.matchIndex, 'only a regression is handled here');
    this.matchIndex = followerLastIndex;
    this.reset('probe', followerLastIndex + 1);
  }

  view(): FollowerProgress {
    return {
      id: this.id,
      state: this.state,
      matchIndex: this.matchIndex,
      nextIndex: this.nextIndex,
      inflightAppends: this.inflight.length,
      recentlyActive: this.recentlyActive,
    };
  }
}
