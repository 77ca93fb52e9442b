/**
 * The core's property checkers. Each node's watch (runtime/raft-watch.ts) calls them at each
 * point of the node's Ready cycle (taken, durable, each message sent, each entry delivered,
 * each snapshot); every check is O(1) or O(size of what just happened), so they run after
 * every step. What clients see is checked by runtime/delivery-checker.ts.
 *
 * - election safety: a map term → leader over the whole history; a node is leader of a term
 *   when it says so (softState) or sends an Append, Heartbeat, Snapshot or TimeoutNow in it;
 * - log matching: a map (index, term) → prefix hash over every entry ever made durable;
 * - leader completeness: each delivery at index i by a node of durable term τ proves i was
 *   committed in a term ≤ τ; a new leader of term T must hold the highest such i with τ < T;
 * - durability and vote durability: messages leave only with their facts on disk;
 * - state machine safety and snapshots: against the committed record of the log.
 */

import { sameConfiguration } from '../raft/config.ts';
import type { Entry, HardState, Message, NodeId, Ready, Snapshot } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import type { DurableView } from './disk.ts';
import { hashData } from './hash.ts';
import { CommittedRecord } from './record.ts';
import type { ViolationContext } from './violation.ts';

const TERM_LIMIT = 2 ** 21;

export class Checker {
  readonly record: CommittedRecord;
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly completenessChecked = new Set<number>();
  /** (index, term) → prefix hash, for every entry any node made durable. */
  private readonly prefixOfEntry = new Map<number, number>();
  /** Durable term of a delivering node → highest index it delivered. */
  private readonly deliveredIndexByTerm = new Map<number, number>();

  constructor(
    private readonly context: ViolationContext,
    private readonly knownNodes: ReadonlySet<NodeId>,
  ) {
    this.record = new CommittedRecord(context);
  }

  get leaderCount(): number {
    return this.leaderOfTerm.size;
  }

  // ------------------------------------------------------------ Ready taken

  /** Before the Ready's writes: its shape against the node's disk and application. */
  onReady(node: NodeId, ready: Ready, disk: DurableView, appliedIndex: number): void {
    if (ready.hardState !== null) this.checkHardState(node, ready.hardState, disk.hardState);
    if (ready.snapshot !== null) this.checkIncomingSnapshot(node, ready.snapshot, disk);
    this.checkAppendShape(node, ready, disk, appliedIndex);
    const base = ready.snapshot === null ? appliedIndex : ready.snapshot.meta.index;
    let expected = base + 1;
    for (const entry of ready.entriesToDeliver) {
      if (entry.index !== expected) {
        this.context.fail(
          'delivery order',
          `${node} would deliver index ${entry.index} where ${expected} is next`,
          [node],
        );
      }
      expected = entry.index + 1;
    }
  }

  private checkHardState(node: NodeId, next: HardState, previous: HardState | null): void {
    assert(Number.isSafeInteger(next.term) && next.term >= 0, 'hard state terms are naturals');
    if (previous === null) return;
    if (next.term < previous.term) {
      this.context.fail('durability', `${node} persists term ${next.term} after ${previous.term}`, [
        node,
      ]);
    }
    if (next.term === previous.term && previous.vote !== null && next.vote !== previous.vote) {
      this.context.fail(
        'vote durability',
        `${node} changes its vote within term ${next.term}: ${previous.vote} then ${next.vote}`,
        [node],
      );
    }
    if (next.commit < previous.commit) {
      this.context.fail(
        'durability',
        `${node} persists commit ${next.commit} after ${previous.commit}`,
        [node],
      );
    }
  }

  private checkIncomingSnapshot(node: NodeId, snapshot: Snapshot, disk: DurableView): void {
    const commit = disk.hardState?.commit ?? 0;
    if (snapshot.meta.index <= commit) {
      this.context.fail(
        'ready contract',
        `${node} installs snapshot ${snapshot.meta.index} at or below its commit ${commit}`,
        [node],
      );
    }
    this.checkSnapshotState(node, snapshot);
  }

  private checkAppendShape(
    node: NodeId,
    ready: Ready,
    disk: DurableView,
    appliedIndex: number,
  ): void {
    const entries = ready.entriesToAppend;
    const first = entries[0];
    if (first === undefined) return;
    const snapshot = ready.snapshot;
    const base = snapshot === null ? disk.snapshotIndex : snapshot.meta.index;
    const last = snapshot === null ? disk.lastIndex : snapshot.meta.index;
    if (first.index <= base || first.index > last + 1) {
      this.context.fail(
        'ready contract',
        `${node} appends at ${first.index}, its log spans (${base}, ${last}]`,
        [node],
      );
      return;
    }
    if (snapshot === null) this.checkCommittedKept(node, entries, disk, appliedIndex);
    const termBefore = snapshot === null ? disk.termAt(first.index - 1) : snapshot.meta.term;
    let previousTerm = termBefore ?? 0;
    let expectedIndex = first.index;
    for (const entry of entries) {
      if (entry.index !== expectedIndex || entry.term < previousTerm) {
        this.context.fail(
          'ready contract',
          `${node} appends index ${entry.index} term ${entry.term} after term ${previousTerm}, expected index ${expectedIndex}`,
          [node],
        );
      }
      previousTerm = entry.term;
      expectedIndex = entry.index + 1;
    }
    const term = ready.hardState?.term ?? disk.hardState?.term ?? 0;
    if (previousTerm > term) {
      this.context.fail(
        'ready contract',
        `${node} appends an entry of term ${previousTerm} while its term is ${term}`,
        [node],
      );
    }
  }

  /**
   * A Ready may re-write committed entries (after a conflicting append raced its previous
   * write, the core re-sends the whole unstable suffix), but never change one.
   */
  private checkCommittedKept(
    node: NodeId,
    entries: readonly Entry[],
    disk: DurableView,
    appliedIndex: number,
  ): void {
    const committed = Math.max(disk.hardState?.commit ?? 0, appliedIndex);
    for (const entry of entries) {
      if (entry.index > committed) return;
      if (disk.termAt(entry.index) !== entry.term) {
        this.context.fail(
          'durability',
          `${node} overwrites committed index ${entry.index} (term ${disk.termAt(entry.index)}) with term ${entry.term}; it committed up to ${committed}`,
          [node],
        );
      }
    }
  }

  // ------------------------------------------------------------ writes durable

  /**
   * After the Ready's writes reached the disk: log matching for each new entry, and no entry
   * of term T conflicts with an index proven committed before T (that would let a leader of
   * T hold a log without it).
   */
  onDurable(node: NodeId, entries: readonly Entry[], disk: DurableView): void {
    const record = this.record;
    let boundTerm = -1;
    let committedBeforeTerm = 0;
    for (const entry of entries) {
      assert(entry.term < TERM_LIMIT, 'terms stay below the checker key space');
      const prefixHash = disk.prefixHashAt(entry.index) as number;
      const key = entry.index * TERM_LIMIT + entry.term;
      const known = this.prefixOfEntry.get(key);
      if (known === undefined) this.prefixOfEntry.set(key, prefixHash);
      else if (known !== prefixHash) {
        this.context.fail(
          'log matching',
          `${node} holds index ${entry.index} term ${entry.term} with a prefix that differs from another node's`,
          [node],
        );
      }
      if (entry.term !== boundTerm) {
        boundTerm = entry.term;
        committedBeforeTerm = this.committedBefore(entry.term);
      }
      if (entry.index <= committedBeforeTerm && record.prefixHashAt(entry.index) !== prefixHash) {
        this.context.fail(
          'log matching',
          `${node} appends index ${entry.index} term ${entry.term}, conflicting with the entry of term ${record.termAt(entry.index)} committed before term ${entry.term}`,
          [node],
        );
      }
    }
  }

  /**
   * The highest index proven committed in a term before `term`: some node delivered it while
   * its durable term was below `term`, and a node learns of a commit only in the committing
   * term or later.
   */
  private committedBefore(term: number): number {
    let index = 0;
    for (const [deliveredInTerm, delivered] of this.deliveredIndexByTerm) {
      if (deliveredInTerm < term && delivered > index) index = delivered;
    }
    return index;
  }

  /**
   * After a leader's write: a leader moves its commit index only by counting replicas, so
   * the entry at a commit index it advanced to is of its own term (Raft §5.4.2; entries of
   * earlier terms are committed only with it, the Raft paper's Figure 8).
   */
  onLeaderCommit(
    node: NodeId,
    previousCommit: number,
    hardState: HardState,
    disk: DurableView,
  ): void {
    if (hardState.commit <= previousCommit) return;
    const term = disk.termAt(hardState.commit);
    if (term === null && hardState.commit > disk.lastIndex) {
      // Its previous Ready, holding every entry it could count, completed before this one.
      this.context.fail(
        'durability',
        `leader ${node} of term ${hardState.term} commits index ${hardState.commit} but holds only up to ${disk.lastIndex} on disk`,
        [node],
      );
      return;
    }
    if (term !== null && term !== hardState.term) {
      this.context.fail(
        'commit rule',
        `leader ${node} of term ${hardState.term} commits index ${hardState.commit} of term ${term} by counting replicas`,
        [node],
      );
    }
  }

  // ------------------------------------------------------------ messages

  onSend(node: NodeId, message: Message, disk: DurableView): void {
    if (message.from !== node) {
      this.context.fail('ready contract', `${node} sends a message from ${message.from}`, [node]);
    }
    if (message.to === node || !this.knownNodes.has(message.to)) {
      this.context.fail('ready contract', `${node} sends ${message.type} to ${message.to}`, [node]);
    }
    const durableTerm = disk.hardState?.term ?? 0;
    if (
      message.type !== 'PreVote' &&
      message.type !== 'PreVoteResponse' &&
      message.term > durableTerm
    ) {
      this.context.fail(
        'durability',
        `${node} sends ${message.type} of term ${message.term} with term ${durableTerm} on disk`,
        [node, message.to],
      );
    }
    switch (message.type) {
      case 'Vote':
        this.checkVoteDurable(node, node, message.term, disk, 'asks for votes');
        break;
      case 'VoteResponse':
        if (message.granted)
          this.checkVoteDurable(node, message.to, message.term, disk, 'grants a vote');
        break;
      case 'AppendResponse':
        // Within its term a follower never loses what it acknowledged; an older term's ack can
        // leave after a newer leader truncated the entries, like a delayed packet.
        if (message.success && message.term === durableTerm && message.index > disk.lastIndex) {
          this.context.fail(
            'durability',
            `${node} acknowledges index ${message.index} holding only up to ${disk.lastIndex} on disk`,
            [node, message.to],
          );
        }
        break;
      case 'Append':
        this.checkAppendMessage(node, message);
        this.onLeader(node, message.term, disk);
        break;
      case 'Heartbeat':
      case 'Snapshot':
      case 'TimeoutNow':
        this.onLeader(node, message.term, disk);
        break;
    }
  }

  private checkVoteDurable(
    node: NodeId,
    candidate: NodeId,
    term: number,
    disk: DurableView,
    what: string,
  ): void {
    // A later durable term also suffices: the node can never vote in `term` again, which is
    // what a durable vote protects (a vote built in memory can leave after a newer campaign).
    const hardState = disk.hardState;
    const durable =
      hardState !== null &&
      (hardState.term > term || (hardState.term === term && hardState.vote === candidate));
    if (!durable) {
      const onDisk =
        hardState === null ? 'nothing' : `term ${hardState.term} vote ${hardState.vote}`;
      this.context.fail(
        'vote durability',
        `${node} ${what} for ${candidate} in term ${term} with ${onDisk} on disk`,
        [node, candidate],
      );
    }
  }

  /**
   * An Append's entries follow its prevLogIndex and are of its term or older. They need not
   * be on the sender's disk any more: an Append built while the node led can leave after it
   * stepped down and truncated, which is the same as a delayed packet, so log matching is
   * checked where entries land (onDurable), not where they leave.
   */
  private checkAppendMessage(node: NodeId, message: Message & { type: 'Append' }): void {
    let expected = message.prevLogIndex + 1;
    for (const entry of message.entries) {
      if (entry.index !== expected || entry.term > message.term) {
        this.context.fail(
          'ready contract',
          `${node} sends entry ${entry.index} term ${entry.term} in an Append of term ${message.term} expecting index ${expected}`,
          [node],
        );
      }
      expected = entry.index + 1;
    }
  }

  /** Election safety; with the node's disk, leader completeness the first time. */
  onLeader(node: NodeId, term: number, disk: DurableView | null): void {
    const known = this.leaderOfTerm.get(term);
    if (known === undefined) this.leaderOfTerm.set(term, node);
    else if (known !== node) {
      this.context.fail('election safety', `two leaders in term ${term}: ${known} and ${node}`, [
        known,
        node,
      ]);
    }
    if (disk === null || this.completenessChecked.has(term)) return;
    this.completenessChecked.add(term);
    this.checkCompleteness(node, term, disk);
  }

  private checkCompleteness(node: NodeId, term: number, disk: DurableView): void {
    const required = this.committedBefore(term);
    if (required === 0) return;
    const record = this.record;
    const at = Math.max(required, disk.snapshotIndex);
    const held = disk.prefixHashAt(at);
    if (held === null) {
      this.context.fail(
        'leader completeness',
        `${node} leads term ${term} without committed index ${required} (its log ends at ${disk.lastIndex})`,
        [node],
      );
    } else if (held !== record.prefixHashAt(at)) {
      this.context.fail(
        'leader completeness',
        `${node} leads term ${term} with a log that differs from the committed one at or before index ${at}`,
        [node],
      );
    }
  }

  // ------------------------------------------------------------ delivery

  /** Before the application applies `entry`: order, durability, agreement with the record. */
  onDeliver(node: NodeId, entry: Entry, disk: DurableView, appliedIndex: number): void {
    if (entry.index !== appliedIndex + 1) {
      this.context.fail(
        'delivery order',
        `${node} delivers index ${entry.index} after ${appliedIndex}`,
        [node],
      );
    }
    if (disk.termAt(entry.index) !== entry.term) {
      this.context.fail(
        'durability',
        `${node} delivers index ${entry.index} term ${entry.term} that is not on its disk`,
        [node],
      );
    }
    const record = this.record;
    const dataHash = hashData(entry.data);
    if (entry.index === record.length + 1) {
      record.extend(entry, dataHash, node, disk.prefixHashAt(entry.index));
    } else if (entry.index > record.length) {
      this.context.fail(
        'delivery order',
        `${node} delivers index ${entry.index} beyond anything committed (${record.length})`,
        [node],
      );
    } else if (
      record.termAt(entry.index) !== entry.term ||
      record.kindAt(entry.index) !== entry.kind ||
      record.dataHashAt(entry.index) !== dataHash
    ) {
      this.context.fail(
        'state machine safety',
        `${node} delivers a different entry at index ${entry.index} (term ${entry.term}, committed term ${record.termAt(entry.index)})`,
        [node],
      );
    } else if (disk.prefixHashAt(entry.index) !== record.prefixHashAt(entry.index)) {
      this.context.fail(
        'log matching',
        `${node} delivers index ${entry.index} from a log whose prefix differs from the committed one`,
        [node],
      );
    }
    const durableTerm = disk.hardState?.term ?? 0;
    const known = this.deliveredIndexByTerm.get(durableTerm) ?? 0;
    if (entry.index > known) this.deliveredIndexByTerm.set(durableTerm, entry.index);
  }

  /** A snapshot made by a node or received from a leader holds the common state. */
  checkSnapshotState(node: NodeId, snapshot: Snapshot): void {
    const record = this.record;
    const { index, term, config } = snapshot.meta;
    if (index > record.length) {
      this.context.fail(
        'snapshot state',
        `${node} holds snapshot ${index}, beyond anything delivered (${record.length})`,
        [node],
      );
      return;
    }
    if (record.termAt(index) !== term) {
      this.context.fail(
        'snapshot state',
        `snapshot ${index} has term ${term}, the committed entry has ${record.termAt(index)}`,
        [node],
      );
    }
    if (!sameConfiguration(config, record.configAt(index))) {
      this.context.fail(
        'snapshot state',
        `snapshot ${index} carries configuration ${JSON.stringify(config)}, the committed one is ${JSON.stringify(record.configAt(index))}`,
        [node],
      );
    }
  }
}
