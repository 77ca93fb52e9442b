/**
 * What both storage implementations share: validation against the logical state, a bounded
 * queue, group commit, fail-stop and close. Implementations supply only the I/O: writing a
 * group of appends as one record with one fdatasync, writing a snapshot, releasing the
 * directory. Sharing this part is what makes the in-memory twin trustworthy in tests.
 */
import type { Entry, HardState, Snapshot } from '../raft/types.ts';
import { AssertionError, assert } from '../util/assert.ts';
import { RECORD_BODY_BYTES_MAX, type WalItem } from './codec.ts';
import { invalidArgument, StorageError } from './errors.ts';
import { type IoCounters, newIoCounters } from './fs-util.ts';
import type { AppendPlan, LogState } from './log-state.ts';
import { SNAPSHOT_DATA_BYTES_MAX } from './snapshot-file.ts';
import type { AppendRequest, RaftStorage, StorageCounters } from './types.ts';

export interface QueueLimits {
  /** Appends waiting for the disk; one more is refused with OVERLOADED. */
  readonly queuedAppendsMax: number;
  /** Bytes of waiting appends; beyond it (and a non-empty queue) OVERLOADED. */
  readonly queuedBytesMax: number;
  /** Record bytes coalesced into one group commit; a larger single append still goes alone. */
  readonly groupBytesMax: number;
}

export const DEFAULT_QUEUE_LIMITS: QueueLimits = {
  queuedAppendsMax: 4096,
  queuedBytesMax: 256 * 1024 * 1024,
  groupBytesMax: 16 * 1024 * 1024,
};

export interface QueuedAppend {
  readonly kind: 'append';
  readonly plan: AppendPlan;
  /** Exactly the bytes `planItems(plan)` encode to. */
  readonly bodyBytes: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

interface QueuedSnapshot {
  readonly kind: 'snapshot';
  readonly snapshot: Snapshot;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

type QueuedOperation = QueuedAppend | QueuedSnapshot;

export abstract class GroupCommitStorage implements RaftStorage {
  protected readonly io: IoCounters = newIoCounters();
  private readonly queue: QueuedOperation[] = [];
  private queuedBytes = 0;
  private draining = false;
  private idleWaiters: (() => void)[] = [];
  private failure: unknown = null;
  private closing = false;
  private closePromise: Promise<void> | null = null;

  protected constructor(
    protected readonly state: LogState,
    private readonly limits: QueueLimits,
  ) {
    checkLimits(limits);
  }

  /** Writes the group as one record and returns once it is fdatasynced. */
  protected abstract writeGroup(group: readonly QueuedAppend[]): Promise<void>;
  /** Durably replaces the snapshot and drops what it covers. */
  protected abstract writeSnapshot(snapshot: Snapshot): Promise<void>;
  /** Releases files and the directory lock; called once, when idle. */
  protected abstract release(): Promise<void>;

  append(request: AppendRequest): Promise<void> {
    const refusal = this.refusal();
    if (refusal !== null) return Promise.reject(refusal);
    let plan: AppendPlan;
    try {
      plan = this.state.planAppend(request);
    } catch (error) {
      return Promise.reject(error);
    }
    const bodyBytes = planBodyBytes(plan);
    const sizeRefusal = this.sizeRefusal(bodyBytes, plan.reset?.data.length ?? 0);
    if (sizeRefusal !== null) return Promise.reject(sizeRefusal);
    this.state.applyAppend(plan);
    return new Promise((resolve, reject) => {
      this.enqueue({ kind: 'append', plan, bodyBytes, resolve, reject }, bodyBytes);
    });
  }

  saveSnapshot(snapshot: Snapshot): Promise<void> {
    const refusal = this.refusal();
    if (refusal !== null) return Promise.reject(refusal);
    try {
      this.state.checkCompaction(snapshot);
    } catch (error) {
      return Promise.reject(error);
    }
    const sizeRefusal = this.sizeRefusal(0, snapshot.data.length);
    if (sizeRefusal !== null) return Promise.reject(sizeRefusal);
    this.state.applyCompaction(snapshot.meta);
    return new Promise((resolve, reject) => {
      this.enqueue({ kind: 'snapshot', snapshot, resolve, reject }, 0);
    });
  }

  counters(): StorageCounters {
    return { ...this.io };
  }

  /** Only a disk reports damage (FileStorage); the in-memory twin has none to forget. */
  repairDone(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closing = true;
    this.closePromise ??= this.whenIdle().then(() => this.release());
    return this.closePromise;
  }

  /** Simulates a crash: queued work is dropped (rejected with CLOSED), nothing more is written. */
  protected abandonQueue(): void {
    this.closing = true;
    const dropped = this.queue.splice(0);
    this.queuedBytes = 0;
    const error = new StorageError('CLOSED', 'the storage was abandoned before this was written');
    for (const operation of dropped) operation.reject(error);
  }

  protected whenIdle(): Promise<void> {
    if (!this.draining && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private refusal(): unknown {
    if (this.failure !== null) return this.failure;
    if (this.closing) return new StorageError('CLOSED', 'the storage is closed');
    return null;
  }

  private sizeRefusal(bodyBytes: number, snapshotBytes: number): StorageError | null {
    if (bodyBytes > RECORD_BODY_BYTES_MAX || snapshotBytes > SNAPSHOT_DATA_BYTES_MAX) {
      return invalidArgument('the request is too large for one record', {
        bodyBytes,
        snapshotBytes,
        recordBodyBytesMax: RECORD_BODY_BYTES_MAX,
        snapshotDataBytesMax: SNAPSHOT_DATA_BYTES_MAX,
      });
    }
    const full =
      this.queue.length >= this.limits.queuedAppendsMax ||
      (this.queue.length > 0 && this.queuedBytes + bodyBytes > this.limits.queuedBytesMax);
    if (!full) return null;
    return new StorageError('OVERLOADED', 'too many appends are waiting for the disk', {
      queuedCount: this.queue.length,
      queuedBytes: this.queuedBytes,
    });
  }

  private enqueue(operation: QueuedOperation, bodyBytes: number): void {
    this.queue.push(operation);
    this.queuedBytes += bodyBytes;
    if (this.draining) return;
    this.draining = true;
    // Start on a microtask, so that appends made in the same turn share the first write.
    queueMicrotask(() => void this.drain());
  }

  private async drain(): Promise<void> {
    // Bounded: every pass removes at least one operation, and failures empty the queue.
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.kind === 'snapshot') {
        this.queue.shift();
        await this.runStep([head], () => this.writeSnapshot(head.snapshot));
      } else {
        const group = this.takeGroup();
        await this.runStep(group, () => this.writeGroup(group));
      }
    }
    this.draining = false;
    for (const waiter of this.idleWaiters.splice(0)) waiter();
  }

  private takeGroup(): QueuedAppend[] {
    const group: QueuedAppend[] = [];
    let groupBytes = 0;
    for (let head = this.queue[0]; head?.kind === 'append'; head = this.queue[0]) {
      if (group.length > 0 && groupBytes + head.bodyBytes > this.limits.groupBytesMax) break;
      this.queue.shift();
      group.push(head);
      groupBytes += head.bodyBytes;
      this.queuedBytes -= head.bodyBytes;
    }
    assert(group.length > 0, 'a group holds at least one append');
    return group;
  }

  private async runStep(
    operations: readonly QueuedOperation[],
    write: () => Promise<void>,
  ): Promise<void> {
    try {
      await write();
    } catch (error) {
      this.fail(error, operations);
      return;
    }
    for (const operation of operations) {
      if (operation.kind === 'append') {
        this.io.appendCount += 1;
        this.io.entryCount += operation.plan.entries.length;
      }
      operation.resolve();
    }
  }

  /** Fail-stop: after a failed write the disk's content is unknown; refuse everything. */
  private fail(error: unknown, operations: readonly QueuedOperation[]): void {
    const known = error instanceof StorageError || error instanceof AssertionError;
    this.failure = known
      ? error
      : new StorageError('IO', `storage write failed: ${String(error)}`, {}, { cause: error });
    for (const operation of [...operations, ...this.queue.splice(0)]) {
      operation.reject(this.failure);
    }
    this.queuedBytes = 0;
  }
}

/** The WAL items an append becomes, in the order recovery must replay them. */
export function planItems(plan: AppendPlan): WalItem[] {
  const items: WalItem[] = [];
  if (plan.reset !== null) {
    items.push({ type: 'reset', index: plan.reset.meta.index, term: plan.reset.meta.term });
  }
  if (plan.truncateFrom !== null) items.push({ type: 'truncate', fromIndex: plan.truncateFrom });
  if (plan.entries.length > 0) items.push({ type: 'entries', entries: plan.entries });
  if (plan.hardState !== null) items.push({ type: 'hardState', hardState: plan.hardState });
  return items;
}

/** The exact encoded size of `planItems(plan)` (see codec.ts for the layout). */
export function planBodyBytes(plan: AppendPlan): number {
  let byteCount = 0;
  if (plan.reset !== null) byteCount += 1 + 8 + 8;
  if (plan.truncateFrom !== null) byteCount += 1 + 8;
  if (plan.entries.length > 0) byteCount += entriesBodyBytes(plan.entries);
  if (plan.hardState !== null) byteCount += hardStateBodyBytes(plan.hardState);
  return byteCount;
}

function entriesBodyBytes(entries: readonly Entry[]): number {
  let byteCount = 1 + 8 + 4;
  for (const entry of entries) byteCount += 8 + 1 + 4 + entry.data.length;
  return byteCount;
}

export function hardStateBodyBytes(hardState: HardState): number {
  const voteBytes = hardState.vote === null ? 0 : Buffer.byteLength(hardState.vote, 'utf8');
  return 1 + 8 + 8 + 1 + 2 + voteBytes;
}

function checkLimits(limits: QueueLimits): void {
  const positive = (value: number): boolean => Number.isSafeInteger(value) && value > 0;
  if (
    !positive(limits.queuedAppendsMax) ||
    !positive(limits.queuedBytesMax) ||
    !positive(limits.groupBytesMax)
  ) {
    throw invalidArgument('queue limits are positive integers', { ...limits });
  }
}
