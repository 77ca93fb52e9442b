/**
 * Safety facts the scenario runner checks after every step, whatever the script says: a broken
 * one prints a `!!` line into the transcript, so no golden file can hide it.
 * - agreement: every node delivers the same entry at an index (Raft §5.4.3, State Machine Safety);
 * - election safety: at most one leader per term (Raft §5.2);
 * - leader completeness: a leader holds every entry committed in an earlier term (Raft §5.4.1).
 */
import type { Entry, NodeId } from '../../src/raft/types.ts';
import { formatData } from './scenario-format.ts';

export interface DeliveredFact {
  readonly index: number;
  readonly term: number;
  /** `noop`, `config` or the data as printed; what must agree across nodes. */
  readonly content: string;
}

export function deliveredFact(entry: Entry): DeliveredFact {
  const content = entry.kind === 'normal' ? `data ${formatData(entry.data)}` : entry.kind;
  return { index: entry.index, term: entry.term, content };
}

interface LedgerFact extends DeliveredFact {
  readonly node: NodeId;
  /**
   * The lowest current term of any node when it delivered this entry. The entry was committed
   * in a term no higher than that, so every leader of a later term must hold it.
   */
  committedByTerm: number;
}

/** The first delivery of an index fixes it for every node; later ones must match. */
export class DeliveryLedger {
  private readonly facts = new Map<number, LedgerFact>();

  /** Returns a violation sentence, or null when the delivery agrees. */
  record(node: NodeId, fact: DeliveredFact, nodeTerm: number): string | null {
    const known = this.facts.get(fact.index);
    if (known === undefined) {
      this.facts.set(fact.index, { ...fact, node, committedByTerm: nodeTerm });
      return null;
    }
    known.committedByTerm = Math.min(known.committedByTerm, nodeTerm);
    if (known.term === fact.term && known.content === fact.content) return null;
    return (
      `agreement: ${node} delivered ${fact.index}/${fact.term} ${fact.content} but ` +
      `${known.node} delivered ${known.index}/${known.term} ${known.content}`
    );
  }

  /** What a leader of `leaderTerm` must hold above `afterIndex`, in index order. */
  requiredOfLeader(leaderTerm: number, afterIndex: number): DeliveredFact[] {
    return [...this.facts.values()]
      .filter((fact) => fact.index > afterIndex && fact.committedByTerm < leaderTerm)
      .sort((left, right) => left.index - right.index);
  }
}

export class LeaderRegistry {
  private readonly leaderByTerm = new Map<number, NodeId>();

  record(node: NodeId, term: number): string | null {
    const known = this.leaderByTerm.get(term);
    if (known === undefined) {
      this.leaderByTerm.set(term, node);
      return null;
    }
    return known === node ? null : `election safety: ${node} and ${known} both lead term ${term}`;
  }
}

export interface TermView {
  readonly snapshotIndex: number;
  readonly lastIndex: number;
  /** The term at an index above snapshotIndex, undefined beyond the log. */
  termAt(index: number): number | undefined;
}

/**
 * Where two logs disagree, checking only indexes both still hold; null when they agree.
 * Used to hold the core's in-memory log to what the runner persisted for it.
 */
export function logMismatch(persisted: TermView, core: TermView): string | null {
  if (persisted.lastIndex !== core.lastIndex) {
    return `persisted log ends at ${persisted.lastIndex}, the core's at ${core.lastIndex}`;
  }
  const from = Math.max(persisted.snapshotIndex, core.snapshotIndex) + 1;
  for (let index = from; index <= core.lastIndex; index++) {
    const persistedTerm = persisted.termAt(index);
    const coreTerm = core.termAt(index);
    if (persistedTerm !== coreTerm) {
      return `persisted term at ${index} is ${persistedTerm}, the core's is ${coreTerm}`;
    }
  }
  return null;
}
