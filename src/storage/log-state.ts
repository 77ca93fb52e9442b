/**
 * The logical state both storage implementations keep in memory: the snapshot's position,
 * the term of every entry after it, and the hard state. Every request is checked here, when
 * it is called, against the state all earlier requests leave; a request that would break a
 * Raft invariant is refused before a byte is written. Storage is the last line of defence:
 * a refused write stops a buggy node, a written one can spread the bug to a quorum.
 */
import type { Entry, EntryKind, HardState, Snapshot, SnapshotMeta } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { invalidArgument } from './errors.ts';
import type { AppendRequest } from './types.ts';

/** Votes are stored with a u16 length. */
export const VOTE_BYTES_MAX = 0xffff;
const ENTRY_KINDS: ReadonlySet<EntryKind> = new Set(['normal', 'noop', 'config']);

/** What an append changes, already validated; `applyAppend` performs it. */
export interface AppendPlan {
  /** A leader's snapshot: the log restarts after it. */
  readonly reset: Snapshot | null;
  /** The log is cut from here before `entries` are added; null when they simply extend it. */
  readonly truncateFrom: number | null;
  readonly entries: readonly Entry[];
  readonly hardState: HardState | null;
}

export interface LogStateInit {
  readonly snapshotIndex: number;
  readonly snapshotTerm: number;
  /** Terms of the entries snapshotIndex + 1, snapshotIndex + 2, ... */
  readonly entryTerms: readonly number[];
  readonly hardState: HardState | null;
}

export class LogState {
  private snapshotIndexValue: number;
  private snapshotTermValue: number;
  private readonly terms: number[];
  private hardStateValue: HardState | null;

  constructor(init: LogStateInit) {
    this.snapshotIndexValue = init.snapshotIndex;
    this.snapshotTermValue = init.snapshotTerm;
    this.terms = [...init.entryTerms];
    this.hardStateValue = init.hardState;
    assert(Number.isSafeInteger(init.snapshotIndex), 'the snapshot index is an integer');
    assert(isNonDecreasing(this.terms, init.snapshotTerm), 'terms never decrease along the log');
  }

  get snapshotIndex(): number {
    return this.snapshotIndexValue;
  }

  get lastIndex(): number {
    return this.snapshotIndexValue + this.terms.length;
  }

  get hardState(): HardState | null {
    return this.hardStateValue;
  }

  /** The term at `index`, the snapshot's term at its index, null outside the log. */
  termAt(index: number): number | null {
    if (index === this.snapshotIndexValue) return this.snapshotTermValue;
    if (index < this.snapshotIndexValue || index > this.lastIndex) return null;
    return this.terms[index - this.snapshotIndexValue - 1] ?? null;
  }

  /** Throws an INVALID_ARGUMENT StorageError when `request` breaks the contract. */
  planAppend(request: AppendRequest): AppendPlan {
    if (typeof request !== 'object' || request === null || !Array.isArray(request.entries)) {
      throw invalidArgument('an append request is { hardState, snapshot, entries[] }');
    }
    const reset = request.snapshot ?? null;
    if (reset !== null) this.checkReset(reset);
    const baseIndex = reset === null ? this.snapshotIndexValue : reset.meta.index;
    const lastIndex = reset === null ? this.lastIndex : baseIndex;
    const entries = request.entries;
    let truncateFrom: number | null = null;
    if (entries.length > 0) {
      checkEntryShapes(entries);
      const firstIndex = entries[0]!.index;
      if (firstIndex <= baseIndex || firstIndex > lastIndex + 1) {
        throw invalidArgument(`entries start at ${firstIndex}, outside the log`, {
          firstIndex,
          snapshotIndex: baseIndex,
          lastIndex,
        });
      }
      const termBefore = reset !== null ? reset.meta.term : this.termAt(firstIndex - 1)!;
      if (entries[0]!.term < termBefore) {
        throw invalidArgument('an entry term is lower than the term before it', {
          index: firstIndex,
          term: entries[0]!.term,
          termBefore,
        });
      }
      if (reset === null) this.checkCommittedKept(entries);
      if (firstIndex <= lastIndex) truncateFrom = firstIndex;
    }
    const newLastIndex = entries.length > 0 ? entries[entries.length - 1]!.index : lastIndex;
    const hardState = request.hardState ?? null;
    if (hardState !== null) this.checkHardState(hardState, newLastIndex);
    return { reset, truncateFrom, entries, hardState };
  }

  applyAppend(plan: AppendPlan): void {
    if (plan.reset !== null) {
      this.snapshotIndexValue = plan.reset.meta.index;
      this.snapshotTermValue = plan.reset.meta.term;
      this.terms.length = 0;
    }
    if (plan.truncateFrom !== null) {
      assert(plan.truncateFrom <= this.lastIndex, 'truncation cuts inside the log');
      this.terms.length = plan.truncateFrom - this.snapshotIndexValue - 1;
    }
    for (const entry of plan.entries) {
      assert(entry.index === this.lastIndex + 1, 'log indexes are dense');
      this.terms.push(entry.term);
    }
    if (plan.hardState !== null) this.hardStateValue = plan.hardState;
  }

  /** Throws INVALID_ARGUMENT unless `snapshot` may compact this log. */
  checkCompaction(snapshot: Snapshot): void {
    checkSnapshotShape(snapshot);
    const { index, term } = snapshot.meta;
    if (index < this.snapshotIndexValue) {
      throw invalidArgument('a snapshot older than the current one', {
        index,
        snapshotIndex: this.snapshotIndexValue,
      });
    }
    const termThere = this.termAt(index);
    if (termThere === null) {
      throw invalidArgument('a snapshot beyond the last log index', {
        index,
        lastIndex: this.lastIndex,
      });
    }
    if (termThere !== term) {
      throw invalidArgument('the snapshot term differs from the log term at its index', {
        index,
        term,
        logTerm: termThere,
      });
    }
  }

  applyCompaction(meta: SnapshotMeta): void {
    assert(meta.index >= this.snapshotIndexValue, 'snapshots never go back');
    assert(this.termAt(meta.index) === meta.term, 'a snapshot agrees with the log');
    this.terms.splice(0, meta.index - this.snapshotIndexValue);
    this.snapshotIndexValue = meta.index;
    this.snapshotTermValue = meta.term;
  }

  private checkReset(snapshot: Snapshot): void {
    checkSnapshotShape(snapshot);
    const { index } = snapshot.meta;
    if (index < this.snapshotIndexValue) {
      throw invalidArgument("a leader's snapshot older than the current one", {
        index,
        snapshotIndex: this.snapshotIndexValue,
      });
    }
    const commit = this.hardStateValue?.commit ?? 0;
    if (index < commit) {
      throw invalidArgument("a leader's snapshot would discard committed entries", {
        index,
        commit,
      });
    }
  }

  /** Committed entries are never overwritten by different ones, nor cut off (Raft §5.4). */
  private checkCommittedKept(entries: readonly Entry[]): void {
    const commit = Math.min(this.hardStateValue?.commit ?? 0, this.lastIndex);
    const firstIndex = entries[0]!.index;
    const newLastIndex = firstIndex + entries.length - 1;
    if (newLastIndex < commit) {
      throw invalidArgument('the append would cut committed entries off the log', {
        firstIndex,
        newLastIndex,
        commit,
      });
    }
    for (let index = firstIndex; index <= commit; index++) {
      const term = entries[index - firstIndex]!.term;
      if (term !== this.termAt(index)) {
        throw invalidArgument('the append would overwrite a committed entry', {
          index,
          term,
          committedTerm: this.termAt(index),
        });
      }
    }
  }

  private checkHardState(hardState: HardState, lastIndexAfter: number): void {
    checkHardStateShape(hardState);
    const previous = this.hardStateValue;
    if (hardState.commit > lastIndexAfter) {
      throw invalidArgument('the commit index lies beyond the log', {
        commit: hardState.commit,
        lastIndex: lastIndexAfter,
      });
    }
    if (previous === null) return;
    if (hardState.term < previous.term) {
      throw invalidArgument('the term went back', { term: hardState.term, was: previous.term });
    }
    if (hardState.commit < previous.commit) {
      throw invalidArgument('the commit index went back', {
        commit: hardState.commit,
        was: previous.commit,
      });
    }
    const sameTerm = hardState.term === previous.term;
    if (sameTerm && previous.vote !== null && hardState.vote !== previous.vote) {
      throw invalidArgument('a second vote in one term (Raft §5.2)', {
        term: hardState.term,
        vote: hardState.vote,
        was: previous.vote,
      });
    }
  }
}

function isNonDecreasing(terms: readonly number[], start: number): boolean {
  let previous = start;
  for (const term of terms) {
    if (term < previous) return false;
    previous = term;
  }
  return true;
}

function isNatural(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function checkEntryShapes(entries: readonly Entry[]): void {
  let previous: Entry | null = null;
  for (const entry of entries) {
    const index = isNatural(entry?.index) ? entry.index : null;
    if (index === null || index < 1 || !isNatural(entry.term)) {
      throw invalidArgument('an entry index is a positive safe integer, its term a natural one', {
        index,
      });
    }
    if (!ENTRY_KINDS.has(entry.kind) || !(entry.data instanceof Uint8Array)) {
      throw invalidArgument('an entry has a known kind and Uint8Array data', { index });
    }
    if (previous !== null && index !== previous.index + 1) {
      throw invalidArgument('entries are dense', { index, previousIndex: previous.index });
    }
    if (previous !== null && entry.term < previous.term) {
      throw invalidArgument('terms never decrease along the log', { index, term: entry.term });
    }
    previous = entry;
  }
}

function checkHardStateShape(hardState: HardState): void {
  if (!isNatural(hardState?.term) || !isNatural(hardState.commit)) {
    throw invalidArgument('a hard state has natural term and commit');
  }
  const vote = hardState.vote;
  if (vote !== null && (typeof vote !== 'string' || vote.length === 0)) {
    throw invalidArgument('a vote is null or a non-empty node id');
  }
  if (vote !== null && Buffer.byteLength(vote, 'utf8') > VOTE_BYTES_MAX) {
    throw invalidArgument('a vote is at most 65535 bytes of UTF-8');
  }
}

export function checkSnapshotShape(snapshot: Snapshot): void {
  const meta = snapshot?.meta;
  if (!isNatural(meta?.index) || !isNatural(meta.term) || meta.index < 1) {
    throw invalidArgument('a snapshot index is a positive safe integer, its term a natural one');
  }
  if (!(snapshot.data instanceof Uint8Array)) {
    throw invalidArgument('snapshot data is a Uint8Array', { index: meta.index });
  }
  const config = meta.config;
  const isNodeList = (list: unknown): boolean =>
    Array.isArray(list) && list.every((node) => typeof node === 'string' && node.length > 0);
  if (!isNodeList(config?.voters) || !isNodeList(config.learners)) {
    throw invalidArgument('a snapshot configuration lists voters and learners by node id', {
      index: meta.index,
    });
  }
}
