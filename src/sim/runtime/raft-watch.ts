/**
 * The core's invariants checked on a real node: one watch per simulated machine feeds the
 * shared `Checker` (election safety, log matching, leader completeness, the commit rule,
 * vote and log durability, state machine safety, the Ready contract) from the node's
 * observer, in the order the runtime handles each Ready, and from the frames it sends.
 *
 * The watch keeps a mirror of what the node's storage acknowledged as durable (a `SimDisk`,
 * with prefix hashes for O(1) log comparisons), the core's latest hard state and role as the
 * Ready stream tells them, and the applied index. A restart rebuilds all of it from what the
 * node recovered, since that is what its new incarnation starts from.
 */
import type {
  Entry,
  HardState,
  Message,
  NodeId,
  PersistedState,
  Ready,
  Role,
  Snapshot,
} from '../../raft/types.ts';
import { assert } from '../../util/assert.ts';
import type { Checker } from '../checkers.ts';
import { SimDisk } from '../disk.ts';
import type { ViolationContext } from '../violation.ts';

export class RaftWatch {
  private disk = new SimDisk();
  /** The core's hard state as its Readies announced it: its term, vote and commit now. */
  private hardState: HardState | null = null;
  private role: Role = 'follower';
  private appliedIndex = 0;
  /** The core's commit index before the Ready in hand, for the commit rule. */
  private commitBeforeReady = 0;
  /** The Ready in hand, whose deliveries may be reported before it is (appliedDuringWrite). */
  private readyInHand: Ready | null = null;

  constructor(
    readonly node: NodeId,
    private readonly checker: Checker,
    private readonly context: ViolationContext,
  ) {}

  /** The storage of a new incarnation opened with `persisted`. */
  started(persisted: PersistedState): void {
    const disk = new SimDisk();
    const snapshot = persisted.snapshot;
    if (snapshot !== null && !this.installInto(disk, snapshot)) return;
    disk.append(persisted.entries);
    // A write torn at a power cut can keep the hard state and lose unacknowledged entries
    // it came with; the core then starts with its commit at its last index, which is safe
    // (those entries are on a quorum), so the hint is compared from there.
    const found = persisted.hardState;
    disk.hardState =
      found === null ? null : { ...found, commit: Math.min(found.commit, disk.lastIndex) };
    this.disk = disk;
    this.hardState = disk.hardState;
    this.role = 'follower';
    this.appliedIndex = snapshot?.meta.index ?? 0;
    // What recovery found must match every other node's log, like any write made durable.
    this.checker.onDurable(this.node, persisted.entries, disk);
  }

  taken(ready: Ready): void {
    this.checker.onReady(this.node, ready, this.disk, this.appliedIndex);
    this.readyInHand = ready;
    this.commitBeforeReady = this.hardState?.commit ?? 0;
    if (ready.hardState !== null) {
      assert(ready.hardState.term >= this.term, 'a core never goes back a term');
      this.hardState = ready.hardState;
    }
    if (ready.softState !== null) {
      this.role = ready.softState.role;
      // Every change of term comes with a hard state, so the core's term is the last one.
      if (this.role === 'leader') this.checker.onLeader(this.node, this.term, null);
    }
  }

  /** The Ready's writes are durable; `written` is the hard state that went with them. */
  durable(ready: Ready, written: HardState | null): void {
    const disk = this.disk;
    if (ready.snapshot !== null && !this.installInto(disk, ready.snapshot)) return;
    disk.append(ready.entriesToAppend);
    if (written !== null) disk.hardState = written;
    this.checker.onDurable(this.node, ready.entriesToAppend, disk);
    if (ready.hardState !== null && this.role === 'leader') {
      this.checker.onLeaderCommit(this.node, this.commitBeforeReady, ready.hardState, disk);
    }
  }

  get isLeader(): boolean {
    return this.role === 'leader';
  }

  get term(): number {
    return this.hardState?.term ?? 0;
  }

  applied(ready: Ready): void {
    this.readyInHand = null;
    if (ready.snapshot !== null) this.appliedIndex = ready.snapshot.meta.index;
    // Those reported already came with entries applied during the Ready's write.
    for (const entry of ready.entriesToDeliver) {
      if (entry.index > this.appliedIndex) this.deliver(entry);
    }
  }

  /**
   * Entries applied while the Ready in hand was being written: the node gives them only
   * once that Ready's own deliveries are done, so those come first here too.
   */
  appliedDuringWrite(entries: readonly Entry[]): void {
    const ready = this.readyInHand;
    if (ready === null) {
      this.context.fail('ready contract', `${this.node} applied entries with no Ready in hand`, [
        this.node,
      ]);
      return;
    }
    for (const entry of ready.entriesToDeliver) {
      if (entry.index > this.appliedIndex) this.deliver(entry);
    }
    for (const entry of entries) this.deliver(entry);
  }

  private deliver(entry: Entry): void {
    this.checker.onDeliver(this.node, entry, this.disk, this.appliedIndex);
    this.appliedIndex = entry.index;
  }

  /** The node saved a snapshot of its own and compacted its log to it. */
  compacted(snapshot: Snapshot): void {
    this.checker.checkSnapshotState(this.node, snapshot);
    const disk = this.disk;
    if (snapshot.meta.index <= disk.snapshotIndex) return;
    if (disk.termAt(snapshot.meta.index) !== snapshot.meta.term) {
      this.context.fail(
        'snapshot state',
        `${this.node} compacts to ${snapshot.meta.index}/${snapshot.meta.term}, which its durable log does not hold`,
        [this.node],
      );
      return;
    }
    disk.compact(snapshot);
  }

  /** A Raft message leaves the node (frames of the runtime's own forwarding aside). */
  sent(message: Message): void {
    this.checker.onSend(this.node, message, this.disk);
  }

  private installInto(disk: SimDisk, snapshot: Snapshot): boolean {
    const index = snapshot.meta.index;
    const record = this.checker.record;
    if (index > record.length) {
      this.context.fail(
        'snapshot state',
        `${this.node} holds snapshot ${index}, beyond anything delivered (${record.length})`,
        [this.node],
      );
      return false;
    }
    disk.installSnapshot(snapshot, record.prefixHashAt(index));
    return true;
  }
}
