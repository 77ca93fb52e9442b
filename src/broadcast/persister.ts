/**
 * The Ready loop's write: what a Ready must make durable before its messages leave (Raft §5.1:
 * a server persists its term, vote and log before answering an RPC). A hard state that changed
 * only its commit index is a hint (the commit index is recomputed after a restart), so it
 * rides along with the next write instead of costing an fsync of its own.
 */
import type { HardState, Ready } from '../raft/types.ts';
import type { RaftStorage } from '../storage/types.ts';
import { assert } from '../util/assert.ts';
import type { Environment } from '../util/environment.ts';
import { FixedHistogram } from '../util/histogram.ts';

export class Persister {
  /** Seconds per durable write (write plus fsync). */
  readonly persistSeconds = new FixedHistogram([
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1,
  ]);
  /** A commit-only hard state not written yet: it goes with the next write. */
  private lazyHardState: HardState | null = null;

  constructor(
    private readonly storage: RaftStorage,
    private readonly environment: Environment,
    /** The hard state on disk at start. */
    private lastDurableHardState: HardState | null,
  ) {}

  /**
   * Makes `ready` durable; resolves with the hard state written with it, or null when none
   * was (nothing to write, or only a commit-index hint that waits for the next write).
   */
  async persist(ready: Ready): Promise<HardState | null> {
    const durable = this.lastDurableHardState;
    const onlyCommit =
      ready.hardState !== null &&
      durable !== null &&
      ready.hardState.term === durable.term &&
      ready.hardState.vote === durable.vote;
    const nothingElse = ready.snapshot === null && ready.entriesToAppend.length === 0;
    if (nothingElse && (ready.hardState === null || onlyCommit)) {
      if (ready.hardState !== null) this.lazyHardState = ready.hardState;
      return null;
    }
    const hardState = ready.hardState ?? this.lazyHardState;
    if (hardState !== null && durable !== null) {
      assert(hardState.term >= durable.term, 'the durable term never goes back');
    }
    const startedMs = this.environment.monotonicMs();
    await this.storage.append({
      hardState,
      snapshot: ready.snapshot,
      entries: ready.entriesToAppend,
    });
    this.persistSeconds.observe((this.environment.monotonicMs() - startedMs) / 1000);
    if (hardState !== null) this.lastDurableHardState = hardState;
    this.lazyHardState = null;
    return hardState;
  }
}
