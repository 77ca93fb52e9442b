/**
 * What a node's storage acknowledged as durable, as the runtime saw it resolve (the
 * observer's readyDurable and compacted calls): the yardstick for what its recovery must
 * find after a crash. Torn and lost unsynced writes may take away what was never
 * acknowledged, never what was.
 */
import type { Entry, HardState, NodeId, PersistedState, Snapshot } from '../../raft/types.ts';
import { assert } from '../../util/assert.ts';

export class AckedLog {
  hardState: HardState | null = null;
  snapshotIndex = 0;
  snapshotTerm = 0;
  /** Terms of the acknowledged entries after the snapshot, by index - snapshotIndex - 1. */
  private terms: number[] = [];

  get lastIndex(): number {
    return this.snapshotIndex + this.terms.length;
  }

  termAt(index: number): number | null {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    if (index < this.snapshotIndex || index > this.lastIndex) return null;
    return this.terms[index - this.snapshotIndex - 1] ?? null;
  }

  /** The node recovered `persisted` from its disk: that is the acknowledged state now. */
  reset(persisted: PersistedState): void {
    this.hardState = persisted.hardState;
    this.snapshotIndex = persisted.snapshot?.meta.index ?? 0;
    this.snapshotTerm = persisted.snapshot?.meta.term ?? 0;
    this.terms = persisted.entries.map((entry) => entry.term);
  }

  installSnapshot(snapshot: Snapshot): void {
    this.snapshotIndex = snapshot.meta.index;
    this.snapshotTerm = snapshot.meta.term;
    this.terms = [];
  }

  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    assert(first.index > this.snapshotIndex, 'appends start after the snapshot');
    assert(first.index <= this.lastIndex + 1, 'appends leave no gap');
    this.terms.length = first.index - this.snapshotIndex - 1;
    for (const entry of entries) this.terms.push(entry.term);
  }

  compact(snapshot: Snapshot): void {
    const index = snapshot.meta.index;
    if (index <= this.snapshotIndex) return;
    const drop = Math.min(index - this.snapshotIndex, this.terms.length);
    this.terms = this.terms.slice(drop);
    this.snapshotIndex = index;
    this.snapshotTerm = snapshot.meta.term;
  }

  /**
   * Why `recovered` lost something acknowledged, or null. A write that was in flight at the
   * crash may have landed in part: later terms may then replace acknowledged entries (a
   * node only takes them from a newer leader, which never needed the old ones) and the
   * hard state may be newer, but an acknowledged entry never vanishes without such a
   * replacement, and an acknowledged term or vote never goes back.
   */
  lossIn(node: NodeId, recovered: PersistedState): string | null {
    const acked = this.hardState;
    const found = recovered.hardState;
    if (acked !== null) {
      if (found === null || found.term < acked.term) {
        return `${node} recovered term ${found?.term ?? 0}, below the acknowledged ${acked.term}`;
      }
      if (found.term === acked.term && acked.vote !== null && found.vote !== acked.vote) {
        return `${node} recovered vote ${found.vote ?? '-'} in term ${found.term}, acknowledged ${acked.vote}`;
      }
    }
    const snapshotIndex = recovered.snapshot?.meta.index ?? 0;
    const lastIndex = snapshotIndex + recovered.entries.length;
    for (
      let index = Math.max(snapshotIndex + 1, this.snapshotIndex + 1);
      index <= this.lastIndex;
      index++
    ) {
      const ackedTerm = this.termAt(index) as number;
      if (index > lastIndex) {
        return `${node} recovered its log up to ${lastIndex}, below the acknowledged ${this.lastIndex}`;
      }
      const entry = recovered.entries[index - snapshotIndex - 1] as Entry;
      if (entry.term < ackedTerm) {
        return `${node} recovered term ${entry.term} at index ${index}, acknowledged term ${ackedTerm}`;
      }
    }
    if (snapshotIndex < this.snapshotIndex && lastIndex < this.snapshotIndex) {
      return `${node} recovered nothing up to its acknowledged snapshot at ${this.snapshotIndex}`;
    }
    return null;
  }
}
