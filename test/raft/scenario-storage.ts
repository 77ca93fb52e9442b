/**
 * A scenario node's disk and application, in memory. Only what a processed Ready wrote is
 * here, so a crash rebuilds the core from exactly what a real runtime would have fsynced.
 * A Ready that breaks the storage contract (a gap in the log, a term going back) raises
 * `ContractViolation`; the runner prints it and stops that node.
 */
import type {
  Entry,
  HardState,
  LogDamage,
  PersistedState,
  Snapshot,
  SnapshotMeta,
} from '../../src/raft/types.ts';
import { assert } from '../../src/util/assert.ts';
import type { TermView } from './scenario-checks.ts';
import { encodeText, formatData } from './scenario-format.ts';

export class ContractViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContractViolation';
  }
}

/** One delivered normal entry, as the application remembers it. */
export interface AppItem {
  readonly index: number;
  readonly term: number;
  readonly data: string;
}

/**
 * The application: the delivered normal entries. It is durable (as if the application wrote
 * its own state), so a restart resumes delivery after `appliedIndex` unless a script says the
 * application state was lost.
 */
export class ScenarioApp {
  appliedIndex = 0;
  items: AppItem[] = [];

  apply(entry: Entry): void {
    assert(entry.index === this.appliedIndex + 1, 'the application applies in index order');
    this.appliedIndex = entry.index;
    if (entry.kind === 'normal') {
      this.items.push({ index: entry.index, term: entry.term, data: formatData(entry.data) });
    }
  }

  restore(meta: SnapshotMeta, data: Uint8Array): void {
    this.items = decodeAppItems(data);
    this.appliedIndex = meta.index;
  }

  snapshotData(index: number): Uint8Array {
    assert(index <= this.appliedIndex, 'a snapshot covers only applied entries');
    const items = this.items.filter((item) => item.index <= index);
    return encodeText(JSON.stringify({ items }));
  }
}

export function decodeAppItems(data: Uint8Array): AppItem[] {
  const parsed: unknown = JSON.parse(new TextDecoder().decode(data));
  assert(typeof parsed === 'object' && parsed !== null, 'snapshot data is an object');
  const items = (parsed as { items?: unknown }).items;
  assert(Array.isArray(items), 'snapshot data holds an item list');
  return items as AppItem[];
}

export class ScenarioStorage implements TermView {
  hardState: HardState | null = null;
  snapshot: Snapshot | null = null;
  /** Contiguous, starting at snapshotIndex + 1. */
  entries: Entry[] = [];
  /** Entries the disk lost (`damage`); handed to the core at every start until repaired. */
  damage: LogDamage | null = null;

  get snapshotIndex(): number {
    return this.snapshot?.meta.index ?? 0;
  }

  get lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  termAt(index: number): number | undefined {
    if (index === this.snapshotIndex) return this.snapshot?.meta.term ?? 0;
    return this.entries[index - this.snapshotIndex - 1]?.term;
  }

  entryAt(index: number): Entry | undefined {
    return this.entries[index - this.snapshotIndex - 1];
  }

  /** Raft Figure 13: keep the entries after the snapshot only if the log agrees at its index. */
  installSnapshot(snapshot: Snapshot): void {
    const meta = snapshot.meta;
    if (meta.index < this.snapshotIndex) {
      throw new ContractViolation(`snapshot ${meta.index} is older than ${this.snapshotIndex}`);
    }
    const keepsSuffix = this.termAt(meta.index) === meta.term;
    const suffix = keepsSuffix ? this.entries.filter((entry) => entry.index > meta.index) : [];
    this.snapshot = snapshot;
    this.entries = suffix;
  }

  /** The runtime saved a snapshot of applied state; the log up to its index goes. */
  compact(snapshot: Snapshot): void {
    const meta = snapshot.meta;
    assert(meta.index > this.snapshotIndex, 'compaction moves the snapshot forward');
    assert(this.termAt(meta.index) === meta.term, 'the snapshot matches the log at its index');
    this.entries = this.entries.filter((entry) => entry.index > meta.index);
    this.snapshot = snapshot;
  }

  /** Truncates from the first new index and appends; returns the entries overwritten. */
  append(entries: readonly Entry[]): Entry[] {
    const first = entries[0];
    if (first === undefined) return [];
    if (first.index <= this.snapshotIndex || first.index > this.lastIndex + 1) {
      throw new ContractViolation(
        `append at ${first.index} does not fit a log of ${this.snapshotIndex + 1}..${this.lastIndex}`,
      );
    }
    entries.forEach((entry, offset) => {
      if (entry.index !== first.index + offset) {
        throw new ContractViolation(`entries to append are not dense at ${entry.index}`);
      }
    });
    const keptCount = first.index - this.snapshotIndex - 1;
    const next = [...this.entries.slice(0, keptCount), ...entries];
    // Checked before it is written: a refused Ready leaves the disk as it was.
    this.checkTermsAscend(next);
    const overwritten = this.entries.slice(keptCount);
    this.entries = next;
    return overwritten;
  }

  private checkTermsAscend(entries: readonly Entry[]): void {
    let previousTerm = this.snapshot?.meta.term ?? 0;
    for (const entry of entries) {
      if (entry.term < previousTerm) {
        throw new ContractViolation(`term goes back along the log at ${entry.index}`);
      }
      previousTerm = entry.term;
    }
  }

  /**
   * Loses the entries from `fromIndex` on, as a storage that found them corrupted would: the
   * commit hint falls back to the intact prefix. With `reported`, the loss reaches the core.
   * `stale` are the terms of entries the lost records had overwritten, which the intact
   * prefix still holds from `fromIndex` on (normal entries with the data `stale`).
   * `seenIndex` is the highest index intact records after the damage showed.
   */
  loseEntriesFrom(loss: {
    readonly fromIndex: number;
    readonly reported: boolean;
    readonly stale: readonly number[];
    readonly seenIndex: number;
  }): void {
    const { fromIndex, reported, stale, seenIndex } = loss;
    if (fromIndex <= this.snapshotIndex + 1 || fromIndex > this.lastIndex) {
      throw new ContractViolation(`no entries to lose from ${fromIndex}`);
    }
    if (seenIndex < fromIndex - 1 || seenIndex > this.lastIndex) {
      throw new ContractViolation(
        `seen index ${seenIndex} outside ${fromIndex - 1}..${this.lastIndex}`,
      );
    }
    const lastIndexSeen = seenIndex;
    const termBound = this.hardState?.term ?? 0;
    this.entries = this.entries.filter((entry) => entry.index < fromIndex);
    stale.forEach((term, offset) => {
      const data = encodeText('stale');
      this.entries.push({ index: fromIndex + offset, term, kind: 'normal', data });
    });
    this.checkTermsAscend(this.entries);
    if (this.hardState !== null) {
      this.hardState = {
        ...this.hardState,
        commit: Math.min(this.hardState.commit, fromIndex - 1),
      };
    }
    this.damage = reported ? { firstLostIndex: fromIndex, lastIndexSeen, termBound } : null;
  }

  /** Term and commit never go back, and a vote cast in a term never changes (Raft §5.2). */
  writeHardState(next: HardState): void {
    const previous = this.hardState;
    if (previous !== null) {
      if (next.term < previous.term) {
        throw new ContractViolation(`hard state term ${next.term} < ${previous.term}`);
      }
      if (next.commit < previous.commit) {
        throw new ContractViolation(`hard state commit ${next.commit} < ${previous.commit}`);
      }
      const revotes = next.term === previous.term && previous.vote !== null;
      if (revotes && next.vote !== previous.vote) {
        throw new ContractViolation(
          `vote changed from ${previous.vote} to ${next.vote} in term ${next.term}`,
        );
      }
    }
    this.hardState = next;
  }

  persisted(appliedIndex: number): PersistedState {
    return {
      hardState: this.hardState,
      snapshot: this.snapshot,
      entries: [...this.entries],
      appliedIndex: Math.max(appliedIndex, this.snapshotIndex),
      damage: this.damage,
    };
  }
}
