/**
 * What a node's storage acknowledged as durable, as the runtime saw it resolve (the
 * observer's readyDurable and compacted calls): the yardstick for what its recovery must
 * find after a crash. Torn and lost unsynced writes may take away what was never
 * acknowledged, never what was.
 */
import type {
  Entry,
  HardState,
  NodeId,
  PersistedState,
  Ready,
  Snapshot,
} from '../../raft/types.ts';
import { assert } from '../../util/assert.ts';

export class AckedLog {
  hardState: HardState | null = null;
  snapshotIndex = 0;
  snapshotTerm = 0;
  /** Terms of the acknowledged entries after the snapshot, by index - snapshotIndex - 1. */
  private terms: number[] = [];
  /**
   * The log suffix the node's one Ready being persisted writes (its entries, after its
   * leader's snapshot if it has one), from `firstIndex` on: a crash may land it whole,
   * replacing the acknowledged entries from there, or not at all. Null when none is in flight.
   */
  private inFlight: { readonly firstIndex: number; readonly terms: readonly number[] } | null =
    null;

  get lastIndex(): number {
    return this.snapshotIndex + this.terms.length;
  }

  termAt(index: number): number | null {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    if (index < this.snapshotIndex || index > this.lastIndex) return null;
    return this.terms[index - this.snapshotIndex - 1] ?? null;
  }

  /** The node took `ready` and is persisting it; `durable` follows unless a crash comes first. */
  taken(ready: Ready): void {
    const first = ready.entriesToAppend[0];
    if (ready.snapshot === null && first === undefined) {
      this.inFlight = null;
      return;
    }
    const firstIndex =
      ready.snapshot === null ? (first as Entry).index : ready.snapshot.meta.index + 1;
    assert(first === undefined || first.index === firstIndex, 'entries follow the snapshot');
    this.inFlight = { firstIndex, terms: ready.entriesToAppend.map((entry) => entry.term) };
  }

  /** What the Ready taken last had to write is durable (recorded by the calls below). */
  durable(): void {
    this.inFlight = null;
  }

  /** The node recovered `persisted` from its disk: that is the acknowledged state now. */
  reset(persisted: PersistedState): void {
    this.inFlight = null;
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
   * Why `recovered` lost something acknowledged, or null. The write in flight at the crash
   * may have landed (a torn one never verifies): the log may then differ from the
   * acknowledged one from where that write starts, holding exactly what it wrote and nothing
   * after (it truncated the rest: a node replaces entries only with a newer leader's, which
   * never needed the old ones), and the hard state may be newer; but an acknowledged entry
   * never vanishes or changes otherwise, and an acknowledged term or vote never goes back.
   * A corrupted disk may lose entries only where recovery says so (`recovered.damage`): from
   * the first lost index on, the node repairs them from a leader before it votes again.
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
    const reportedFrom = recovered.damage?.firstLostIndex ?? Number.POSITIVE_INFINITY;
    const checkedLastIndex = Math.min(this.lastIndex, reportedFrom - 1);
    for (
      let index = Math.max(snapshotIndex + 1, this.snapshotIndex + 1);
      index <= checkedLastIndex;
      index++
    ) {
      const ackedTerm = this.termAt(index) as number;
      const entry = recovered.entries[index - snapshotIndex - 1];
      if (entry !== undefined && entry.term === ackedTerm) continue;
      if (this.inFlightLanded(recovered, index)) break;
      if (entry === undefined) {
        return `${node} recovered its log up to ${lastIndex}, below the acknowledged ${this.lastIndex}`;
      }
      return `${node} recovered term ${entry.term} at index ${index}, acknowledged term ${ackedTerm}`;
    }
    // A damaged snapshot takes the log it was the base of: reported from index 1.
    const snapshotLossReported = reportedFrom <= this.snapshotIndex;
    if (
      !snapshotLossReported &&
      snapshotIndex < this.snapshotIndex &&
      lastIndex < this.snapshotIndex
    ) {
      return `${node} recovered nothing up to its acknowledged snapshot at ${this.snapshotIndex}`;
    }
    return null;
  }

  /**
   * Whether `recovered`, which differs from the acknowledged log at `index`, ends with
   * exactly the write in flight at the crash, starting at or before `index`.
   */
  private inFlightLanded(recovered: PersistedState, index: number): boolean {
    const inFlight = this.inFlight;
    if (inFlight === null || inFlight.firstIndex > index) return false;
    const snapshotIndex = recovered.snapshot?.meta.index ?? 0;
    if (inFlight.firstIndex <= snapshotIndex) return false;
    const written = recovered.entries.slice(inFlight.firstIndex - snapshotIndex - 1);
    return (
      written.length === inFlight.terms.length &&
      written.every((entry, offset) => entry.term === inFlight.terms[offset])
    );
  }
}
