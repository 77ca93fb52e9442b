/**
 * A mirror of what one node's storage acknowledged as durable (runtime/raft-watch.ts keeps it
 * from the node's Ready stream and rebuilds it from what each restart recovers). Beside the
 * Raft state it keeps each entry's prefix hash, so the checkers compare whole log prefixes in
 * O(1).
 */
import type { Entry, HardState, Snapshot } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { extendPrefixHash, hashData } from './hash.ts';

/** The durable facts the checkers read; SimDisk is the one implementation. */
export interface DurableView {
  readonly hardState: HardState | null;
  readonly snapshotIndex: number;
  readonly lastIndex: number;
  /** The term at `index` (the snapshot's at its index), or null when not held. */
  termAt(index: number): number | null;
  /** The prefix hash up to `index` (from the snapshot boundary on), or null. */
  prefixHashAt(index: number): number | null;
}

export class SimDisk implements DurableView {
  hardState: HardState | null = null;
  snapshot: Snapshot | null = null;
  private snapshotPrefixHash = 0;
  private entries: Entry[] = [];
  private prefixHashes: number[] = [];

  get snapshotIndex(): number {
    return this.snapshot === null ? 0 : this.snapshot.meta.index;
  }

  get lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  get isEmpty(): boolean {
    return this.hardState === null && this.snapshot === null && this.entries.length === 0;
  }

  entryAt(index: number): Entry | undefined {
    return this.entries[index - this.snapshotIndex - 1];
  }

  termAt(index: number): number | null {
    if (index === this.snapshotIndex) return this.snapshot === null ? 0 : this.snapshot.meta.term;
    return this.entryAt(index)?.term ?? null;
  }

  prefixHashAt(index: number): number | null {
    if (index === this.snapshotIndex) return this.snapshotPrefixHash;
    if (index < this.snapshotIndex) return null;
    return this.prefixHashes[index - this.snapshotIndex - 1] ?? null;
  }

  /** A leader's snapshot replaces the whole log, as the core's restore does. */
  installSnapshot(snapshot: Snapshot, prefixHash: number): void {
    assert(snapshot.meta.index >= this.snapshotIndex, 'the snapshot index never goes back');
    this.snapshot = snapshot;
    this.snapshotPrefixHash = prefixHash;
    this.entries = [];
    this.prefixHashes = [];
  }

  /** Truncates from the first entry's index and appends: the Ready's log write. */
  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    assert(first.index > this.snapshotIndex, 'appends start after the snapshot');
    assert(first.index <= this.lastIndex + 1, 'appends leave no gap');
    const keep = first.index - this.snapshotIndex - 1;
    this.entries.length = keep;
    this.prefixHashes.length = keep;
    let previousHash = this.prefixHashAt(first.index - 1) as number;
    for (const entry of entries) {
      assert(entry.index === this.lastIndex + 1, 'appended indexes are dense');
      previousHash = extendPrefixHash(previousHash, entry.term, entry.kind, hashData(entry.data));
      this.entries.push(entry);
      this.prefixHashes.push(previousHash);
    }
  }

  /** The runtime's own compaction: the snapshot is saved, the entries it covers go. */
  compact(snapshot: Snapshot): void {
    const index = snapshot.meta.index;
    assert(index > this.snapshotIndex, 'compaction moves the snapshot forward');
    assert(this.termAt(index) === snapshot.meta.term, 'compaction agrees with the log');
    const prefixHash = this.prefixHashAt(index) as number;
    const drop = index - this.snapshotIndex;
    this.entries = this.entries.slice(drop);
    this.prefixHashes = this.prefixHashes.slice(drop);
    this.snapshot = snapshot;
    this.snapshotPrefixHash = prefixHash;
  }
}
