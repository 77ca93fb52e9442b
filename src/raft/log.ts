import { assert, assertSafeNatural } from '../util/assert.ts';
import { decodeConfiguration, emptyConfiguration, sameConfiguration } from './config.ts';
import type { Configuration, Entry, Snapshot } from './types.ts';

interface ConfigAt {
  readonly index: number;
  readonly config: Configuration;
}

/**
 * The in-memory Raft log of one node: a snapshot boundary, the entries after it, and how far
 * they are durable (`stableIndex`), committed and applied. Invariants, checked on change:
 * applied <= committed <= lastIndex; snapshotIndex <= applied; indexes dense; terms never
 * decrease along the log. The configuration in force is the newest config entry, else the
 * snapshot's (Raft thesis §4.1: a server uses the latest configuration in its log).
 */
export class RaftLog {
  snapshotIndex = 0;
  snapshotTerm = 0;
  committed = 0;
  applied = 0;
  /** Entries up to here are on disk; those after it go into the next Ready. */
  stableIndex = 0;
  /** The newest snapshot this node holds, sent to followers that fell behind the log. */
  snapshot: Snapshot | null = null;
  /** Received from a leader and not yet persisted by the runtime. */
  pendingSnapshot: Snapshot | null = null;
  private entries: Entry[] = [];
  private baseConfig: Configuration = emptyConfiguration;
  private configs: ConfigAt[] = [];

  firstIndex(): number {
    return this.snapshotIndex + 1;
  }

  lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  lastTerm(): number {
    const last = this.entries[this.entries.length - 1];
    return last === undefined ? this.snapshotTerm : last.term;
  }

  /** The term at `index`, or null when compacted away or beyond the end. */
  termAt(index: number): number | null {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    const entry = this.entryAt(index);
    return entry === undefined ? null : entry.term;
  }

  entryAt(index: number): Entry | undefined {
    if (index <= this.snapshotIndex) return undefined;
    return this.entries[index - this.snapshotIndex - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.termAt(index) === term;
  }

  /** Entries from `from` on, at most `bytesMax` of data, but always at least one if any. */
  slice(from: number, bytesMax: number): Entry[] {
    assert(from > this.snapshotIndex, 'slices start after the snapshot');
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = from; index <= this.lastIndex(); index++) {
      const entry = this.entryAt(index)!;
      bytes += entry.data.length;
      if (result.length > 0 && bytes > bytesMax) break;
      result.push(entry);
    }
    return result;
  }

  /** Entries in [from, to], both included; all must be present. */
  range(from: number, to: number): Entry[] {
    if (to < from) return [];
    assert(from > this.snapshotIndex, 'ranges start after the snapshot');
    assert(to <= this.lastIndex(), 'ranges end inside the log');
    const start = from - this.snapshotIndex - 1;
    return this.entries.slice(start, start + (to - from + 1));
  }

  /** The first index in `entries` whose term differs from ours, or 0 when all agree. */
  findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (entry.index <= this.snapshotIndex) continue;
      if (this.termAt(entry.index) !== entry.term) return entry.index;
    }
    return 0;
  }

  /**
   * Replaces everything from `entries[0].index` on. Committed entries are never replaced:
   * a leader holds all of them (Leader Completeness, Raft §5.4), so a conflict there is a bug.
   */
  truncateAndAppend(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    assert(first.index > this.committed, 'committed entries are never overwritten');
    assert(first.index <= this.lastIndex() + 1, 'appends leave no gap in the log');
    assert(first.index > this.snapshotIndex, 'appends start after the snapshot');
    const keep = first.index - this.snapshotIndex - 1;
    if (keep < this.entries.length) {
      this.entries.length = keep;
      this.configs = this.configs.filter((config) => config.index < first.index);
      this.stableIndex = Math.min(this.stableIndex, first.index - 1);
    }
    for (const entry of entries) this.push(entry);
  }

  /** A leader's append: always at the end. */
  append(entry: Entry): void {
    assert(entry.index === this.lastIndex() + 1, 'log indexes are dense');
    this.push(entry);
  }

  private push(entry: Entry): void {
    assertSafeNatural(entry.index, 'entry index');
    assertSafeNatural(entry.term, 'entry term');
    assert(entry.index === this.lastIndex() + 1, 'log indexes are dense');
    assert(entry.term >= this.lastTerm(), 'terms never decrease along the log');
    this.entries.push(entry);
    if (entry.kind === 'config') {
      this.configs.push({ index: entry.index, config: decodeConfiguration(entry.data) });
    }
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    assert(index <= this.lastIndex(), 'commit never passes the end of the log');
    this.committed = index;
    return true;
  }

  unstableEntries(): Entry[] {
    const from = Math.max(this.stableIndex, this.snapshotIndex) + 1;
    return this.range(from, this.lastIndex());
  }

  /** The runtime persisted entries up to `index`; ignored if the log changed under it. */
  stableTo(index: number, term: number): void {
    if (this.termAt(index) === term && index > this.stableIndex) this.stableIndex = index;
  }

  /** Committed entries the application has not been given yet. */
  deliverable(): Entry[] {
    return this.range(Math.max(this.applied, this.snapshotIndex) + 1, this.committed);
  }

  appliedTo(index: number): void {
    assert(index >= this.applied, 'applied never goes back');
    assert(index <= this.committed, 'only committed entries are applied');
    this.applied = index;
  }

  /** Replaces the whole log with a leader's snapshot (Raft §7, InstallSnapshot step 7). */
  restore(snapshot: Snapshot): void {
    const { index, term, config } = snapshot.meta;
    assert(index > this.committed, 'a restored snapshot is ahead of the commit index');
    this.entries = [];
    this.configs = [];
    this.baseConfig = config;
    this.snapshotIndex = index;
    this.snapshotTerm = term;
    this.committed = index;
    // What was durable after the snapshot's index belonged to the log just thrown away:
    // entries appended from here on are new and must be written (found by the simulator,
    // seed 0x489: they were acknowledged and counted towards commit without a write).
    this.stableIndex = Math.min(this.stableIndex, index);
    this.snapshot = snapshot;
    this.pendingSnapshot = snapshot;
  }

  /** Called once the runtime has persisted and applied a restored snapshot. */
  snapshotPersisted(snapshot: Snapshot): void {
    if (this.pendingSnapshot === snapshot) this.pendingSnapshot = null;
    this.stableIndex = Math.max(this.stableIndex, snapshot.meta.index);
    if (this.applied < snapshot.meta.index) this.applied = snapshot.meta.index;
  }

  /** Drops entries covered by a snapshot the runtime made and saved itself. */
  compact(snapshot: Snapshot): void {
    const { index, term, config } = snapshot.meta;
    assert(index <= this.applied, 'only applied entries are compacted');
    assert(index >= this.snapshotIndex, 'the snapshot index never goes back');
    assert(this.termAt(index) === term, 'a snapshot agrees with the log at its index');
    this.baseConfig = this.configAt(index);
    assert(
      sameConfiguration(this.baseConfig, config),
      'a snapshot carries the configuration in force at its index',
    );
    this.entries = this.entries.slice(index - this.snapshotIndex);
    this.configs = this.configs.filter((entry) => entry.index > index);
    this.snapshotIndex = index;
    this.snapshotTerm = term;
    this.snapshot = snapshot;
  }

  /** Loads what a node found on disk: everything in it is durable. */
  load(snapshot: Snapshot | null, entries: readonly Entry[]): void {
    if (snapshot !== null) {
      this.snapshotIndex = snapshot.meta.index;
      this.snapshotTerm = snapshot.meta.term;
      this.baseConfig = snapshot.meta.config;
      this.snapshot = snapshot;
      this.committed = snapshot.meta.index;
      this.applied = snapshot.meta.index;
    }
    for (const entry of entries) this.push(entry);
    this.stableIndex = this.lastIndex();
  }

  config(): Configuration {
    const newest = this.configs[this.configs.length - 1];
    return newest === undefined ? this.baseConfig : newest.config;
  }

  configAt(index: number): Configuration {
    let result = this.baseConfig;
    for (const entry of this.configs) if (entry.index <= index) result = entry.config;
    return result;
  }

  /**
   * Every configuration that may be in force cluster-wide as far as this log knows: the one
   * at the commit index (committed, so in force or superseded) and each newer one in the log
   * (not known to be committed yet). Oldest first; at least one.
   */
  configsSinceCommit(): Configuration[] {
    const result = [this.configAt(this.committed)];
    for (const entry of this.configs) if (entry.index > this.committed) result.push(entry.config);
    return result;
  }

  /** The newest config entry's index, or the snapshot index when the log has none. */
  lastConfigIndex(): number {
    const newest = this.configs[this.configs.length - 1];
    return newest === undefined ? this.snapshotIndex : newest.index;
  }

  /**
   * The first index of the run of `term` that contains `index` (terms never decrease, so a
   * binary search finds it). Used by a follower to let the leader skip a whole term at once.
   */
  firstIndexOfTermRun(index: number): number {
    const term = this.termAt(index);
    assert(term !== null, 'the index is in the log');
    let low = this.firstIndex();
    let high = index;
    while (low < high) {
      const middle = Math.floor((low + high) / 2);
      if ((this.termAt(middle) as number) < term) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The last index at or before `index` whose term is `term`, or 0 when there is none. */
  lastIndexOfTerm(term: number, index: number): number {
    let low = this.firstIndex();
    let high = Math.min(index, this.lastIndex());
    if (high < low) return 0;
    // Find the last position whose term is <= term.
    while (low < high) {
      const middle = Math.ceil((low + high) / 2);
      if ((this.termAt(middle) as number) <= term) low = middle;
      else high = middle - 1;
    }
    return this.termAt(low) === term ? low : 0;
  }

  view(): { snapshotIndex: number; snapshotTerm: number; entries: readonly Entry[] } {
    return {
      snapshotIndex: this.snapshotIndex,
      snapshotTerm: this.snapshotTerm,
      entries: this.entries,
    };
  }
}
