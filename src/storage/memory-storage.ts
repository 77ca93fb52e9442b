/**
 * The in-memory twin of FileStorage, for tests of the runtime and for the simulator. A
 * `MemoryDisk` plays the data directory: it outlives the storage opened on it, so a test
 * can close (or `crash`) a storage and open another on the same disk. Validation, ordering,
 * group commit and fail-stop are the shared code of FileStorage; a group commit lands on the
 * disk whole, as a record with one fdatasync would.
 */
import type { Entry, HardState, NodeId, PersistedState, Snapshot } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { invalidArgument, StorageError } from './errors.ts';
import {
  DEFAULT_QUEUE_LIMITS,
  GroupCommitStorage,
  planBodyBytes,
  type QueuedAppend,
  type QueueLimits,
} from './group-commit.ts';
import { LogState } from './log-state.ts';
import { checkMetadata } from './metadata.ts';
import { type OpenedStorage, STORAGE_FORMAT_VERSION, type StorageMetadata } from './types.ts';

/** What survives a crash. Fields are public so tests can inspect and damage them. */
export class MemoryDisk {
  metadata: StorageMetadata | null = null;
  hardState: HardState | null = null;
  snapshot: Snapshot | null = null;
  /** Contiguous from the snapshot index + 1. */
  entries: Entry[] = [];
  /** The storage currently open on this disk, as a LOCK file would record. */
  holder: MemoryStorage | null = null;
  private failuresPending = 0;

  /** The next `count` writes fail with an IO error (after which the storage fail-stops). */
  failNextWrites(count = 1): void {
    assert(Number.isSafeInteger(count) && count >= 0, 'a write count is a natural');
    this.failuresPending = count;
  }

  /** Throws the injected failure, if one is pending. */
  consumeFailure(operation: string): void {
    if (this.failuresPending === 0) return;
    this.failuresPending -= 1;
    throw new StorageError('IO', `injected ${operation} failure`, { operation });
  }
}

export interface MemoryStorageOptions extends Partial<QueueLimits> {
  readonly disk: MemoryDisk;
  readonly clusterId: string;
  readonly nodeId: NodeId;
}

export class MemoryStorage extends GroupCommitStorage {
  private constructor(
    state: LogState,
    limits: QueueLimits,
    private readonly disk: MemoryDisk,
  ) {
    super(state, limits);
  }

  /** Same checks as FileStorage.open: LOCKED, FORMAT_TOO_NEW, WRONG_CLUSTER, WRONG_NODE. */
  static async open(options: MemoryStorageOptions): Promise<OpenedStorage<MemoryStorage>> {
    const { disk, clusterId, nodeId } = options;
    if (!(disk instanceof MemoryDisk)) throw invalidArgument('disk is a MemoryDisk');
    if (typeof clusterId !== 'string' || clusterId.length === 0) {
      throw invalidArgument('clusterId is a non-empty string');
    }
    if (typeof nodeId !== 'string' || nodeId.length === 0) {
      throw invalidArgument('nodeId is a non-empty string');
    }
    if (disk.holder !== null) {
      throw new StorageError('LOCKED', 'the memory disk is already open', { pid: null });
    }
    const created = disk.metadata === null;
    disk.metadata ??= { formatVersion: STORAGE_FORMAT_VERSION, clusterId, nodeId };
    checkMetadata(disk.metadata, { clusterId, nodeId, dataDir: '(memory)' });
    const persisted = readPersisted(disk);
    const state = new LogState({
      snapshotIndex: persisted.snapshot?.meta.index ?? 0,
      snapshotTerm: persisted.snapshot?.meta.term ?? 0,
      entryTerms: persisted.entries.map((entry) => entry.term),
      hardState: persisted.hardState,
    });
    const limits = { ...DEFAULT_QUEUE_LIMITS, ...definedLimits(options) };
    const storage = new MemoryStorage(state, limits, disk);
    disk.holder = storage;
    return { storage, persisted, metadata: disk.metadata, created };
  }

  /** Simulates `kill -9`: queued appends never reach the disk, and the lock is released. */
  crash(): void {
    this.abandonQueue();
    if (this.disk.holder === this) this.disk.holder = null;
  }

  protected async writeGroup(group: readonly QueuedAppend[]): Promise<void> {
    this.disk.consumeFailure('write');
    let byteCount = 0;
    for (const operation of group) {
      applyToDisk(this.disk, operation);
      byteCount += planBodyBytes(operation.plan);
    }
    this.io.recordCount += 1;
    this.io.fsyncCount += 1;
    this.io.walWrittenBytes += byteCount;
  }

  protected async writeSnapshot(snapshot: Snapshot): Promise<void> {
    this.disk.consumeFailure('snapshot');
    const disk = this.disk;
    const previousIndex = disk.snapshot?.meta.index ?? 0;
    const dropCount = snapshot.meta.index - previousIndex;
    assert(dropCount >= 0 && dropCount <= disk.entries.length, 'the snapshot lies in the log');
    disk.snapshot = copySnapshot(snapshot);
    disk.entries = disk.entries.slice(dropCount);
    this.io.fsyncCount += 1;
    this.io.snapshotWrittenBytes += snapshot.data.length;
  }

  protected async release(): Promise<void> {
    if (this.disk.holder === this) this.disk.holder = null;
  }
}

function applyToDisk(disk: MemoryDisk, operation: QueuedAppend): void {
  const { reset, truncateFrom, entries, hardState } = operation.plan;
  if (reset !== null) {
    disk.snapshot = copySnapshot(reset);
    disk.entries = [];
  }
  const snapshotIndex = disk.snapshot?.meta.index ?? 0;
  if (truncateFrom !== null) disk.entries.length = truncateFrom - snapshotIndex - 1;
  for (const entry of entries) {
    assert(entry.index === snapshotIndex + disk.entries.length + 1, 'log indexes are dense');
    disk.entries.push({ ...entry, data: entry.data.slice() });
  }
  if (hardState !== null) disk.hardState = { ...hardState };
}

/** Copies, so that later mutation by the caller cannot reach the "disk". */
function readPersisted(disk: MemoryDisk): PersistedState {
  const snapshot = disk.snapshot === null ? null : copySnapshot(disk.snapshot);
  const snapshotIndex = snapshot?.meta.index ?? 0;
  let hardState = disk.hardState === null ? null : { ...disk.hardState };
  // As in FileStorage: a snapshot covers only committed entries.
  if (hardState !== null && hardState.commit < snapshotIndex) {
    hardState = { ...hardState, commit: snapshotIndex };
  }
  return {
    hardState,
    snapshot,
    entries: disk.entries.map((entry) => ({ ...entry, data: entry.data.slice() })),
    appliedIndex: snapshotIndex,
  };
}

function copySnapshot(snapshot: Snapshot): Snapshot {
  const config = {
    voters: [...snapshot.meta.config.voters],
    learners: [...snapshot.meta.config.learners],
  };
  return { meta: { ...snapshot.meta, config }, data: snapshot.data.slice() };
}

function definedLimits(options: Partial<QueueLimits>): Partial<QueueLimits> {
  const limits: { -readonly [Key in keyof QueueLimits]?: number } = {};
  if (options.queuedAppendsMax !== undefined) limits.queuedAppendsMax = options.queuedAppendsMax;
  if (options.queuedBytesMax !== undefined) limits.queuedBytesMax = options.queuedBytesMax;
  if (options.groupBytesMax !== undefined) limits.groupBytesMax = options.groupBytesMax;
  return limits;
}
