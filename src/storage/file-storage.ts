/**
 * Durable storage on a local disk. Layout of a data directory:
 *
 *   meta.json        identity: format version, cluster id, node id (see metadata.ts)
 *   LOCK             pid of the process that has it open (see lock.ts)
 *   snapshot.bin     the newest snapshot, replaced atomically (see snapshot-file.ts)
 *   wal-<seq>.wal    WAL segments, preallocated to `segmentBytesMax` (see codec.ts,
 *                    segments.ts, wal-writer.ts)
 *   wal-spare.tmp    the next segment, zero-filled ahead of need (see preallocation.ts)
 *
 * Each group commit is one record, written with one positional `writev` into preallocated
 * space and made durable by one `fdatasync` before any of its appends resolve. A new segment
 * starts with a header record carrying the current hard state, so that older segments can
 * be deleted freely once a snapshot covers their entries.
 */
import { join } from 'node:path';
import type { HardState, NodeId, PersistedState, Snapshot, SnapshotMeta } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import type { Environment } from '../util/environment.ts';
import { systemEnvironment } from '../util/system-environment.ts';
import { RecordBodyBuilder } from './codec.ts';
import {
  DAMAGE_FILE_NAME,
  type DamageRecord,
  mergeDamage,
  readDamageFile,
  removeDamageFile,
  writeDamageFile,
} from './damage-file.ts';
import { invalidArgument, ioError, StorageError } from './errors.ts';
import type { FileSystem } from './file-system.ts';
import {
  ensureDirectory,
  type IoCounters,
  newIoCounters,
  removeIfPresent,
  replaceFileAtomically,
} from './fs-util.ts';
import {
  DEFAULT_QUEUE_LIMITS,
  GroupCommitStorage,
  planItems,
  type QueuedAppend,
  type QueueLimits,
} from './group-commit.ts';
import { acquireLock, type DirectoryLock, noLock } from './lock.ts';
import { LogState } from './log-state.ts';
import { checkMetadata, METADATA_FILE_NAME, readMetadata, writeMetadata } from './metadata.ts';
import { nodeFileSystem } from './node-file-system.ts';
import {
  cutWal,
  DEFAULT_KEPT_ENTRIES_COPY_SLACK_BYTES,
  type RecoveredLog,
  recoverLog,
  type SegmentInfo,
} from './recovery.ts';
import { listSegmentsWithGaps } from './segments.ts';
import { encodeSnapshotFile, SNAPSHOT_FILE_NAME } from './snapshot-file.ts';
import { readSnapshotOrRecordLoss } from './snapshot-loss.ts';
import {
  type OpenedStorage,
  STORAGE_FORMAT_VERSION,
  type StorageLogger,
  type StorageMetadata,
} from './types.ts';
import { type UnsafeStorageMode, WalWriter } from './wal-writer.ts';

export interface FileStorageOptions extends Partial<QueueLimits> {
  /** Created (with its parents) on first use. */
  readonly dataDir: string;
  readonly clusterId: string;
  readonly nodeId: NodeId;
  /**
   * Segments are preallocated (zero-filled) to this size, and a record that does not fit in
   * what is left goes into the next one; default 64 MiB. Tests want it small: every open
   * writes one segment of zeros.
   */
  readonly segmentBytesMax?: number;
  /** Receives torn tails, stale locks and the like; default: ignore. */
  readonly log?: StorageLogger;
  /** Every file operation goes through it; default: the real disk (`nodeFileSystem`). */
  readonly files?: FileSystem;
  /** The clock the WAL paces its background work by; default: `systemEnvironment`. */
  readonly environment?: Environment;
  /**
   * `pidFile` (default): a `LOCK` file keeps a second process out. `none`: for a simulated
   * disk that nothing else opens, where restarts in one process would find their own pid.
   */
  readonly directoryLock?: 'pidFile' | 'none';
  /** Breaks durability on purpose, to prove the tests catch it. Never set outside tests. */
  readonly unsafe?: UnsafeStorageMode;
  /**
   * The entries an open keeps after the snapshot are copied out of the segment buffers they
   * were read into once those buffers exceed twice their bytes by more than this; default
   * 1 MiB (recovery.ts, `ownBytes`). The simulator sets 0, so that its small segments take
   * the copy too and its checks see what the copy gives back.
   */
  readonly keptEntriesCopySlackBytes?: number;
}

export const DEFAULT_SEGMENT_BYTES_MAX = 64 * 1024 * 1024;
export const SEGMENT_BYTES_MIN = 4096;
/** Every segment is preallocated, and recovery holds one in a buffer. */
export const SEGMENT_BYTES_LIMIT = 1 << 30;
const IDENTITY_BYTES_MAX = 256;
/** Everything a FileStorage starts from, as `open` recovered it. */
interface FileStorageParts {
  readonly state: LogState;
  readonly settings: ResolvedOptions;
  readonly lock: DirectoryLock;
  /** Oldest first; the last one is where writing resumes. */
  readonly segments: SegmentInfo[];
  readonly nextSegmentSeq: number;
  readonly durableHardState: HardState | null;
}

export class FileStorage extends GroupCommitStorage {
  private readonly dataDir: string;
  private readonly files: FileSystem;
  private readonly lock: DirectoryLock;
  private readonly wal: WalWriter;
  /** The hard state of the last durable record; new segment headers repeat it. */
  private durableHardState: HardState | null;

  private constructor(parts: FileStorageParts) {
    super(parts.state, parts.settings.limits);
    this.dataDir = parts.settings.dataDir;
    this.files = parts.settings.files;
    this.lock = parts.lock;
    this.durableHardState = parts.durableHardState;
    this.wal = new WalWriter({
      files: parts.settings.files,
      environment: parts.settings.environment,
      unsafe: parts.settings.unsafe,
      dataDir: parts.settings.dataDir,
      segmentBytesMax: parts.settings.segmentBytesMax,
      segments: parts.segments,
      nextSegmentSeq: parts.nextSegmentSeq,
      io: this.io,
      log: parts.settings.log,
    });
  }

  /**
   * Opens (creating on first use) and locks `dataDir`, verifies its identity, recovers the
   * log and returns what was persisted. Throws a StorageError: WRONG_CLUSTER, WRONG_NODE,
   * FORMAT_TOO_NEW, LOCKED, CORRUPT_* or IO.
   */
  static async open(options: FileStorageOptions): Promise<OpenedStorage<FileStorage>> {
    const settings = resolveOptions(options);
    const counters = newIoCounters();
    await ensureDirectory(settings.files, settings.dataDir, counters);
    const lock =
      settings.directoryLock === 'pidFile'
        ? await acquireLock(settings.files, settings.dataDir, settings.log)
        : noLock(settings.dataDir);
    try {
      return await FileStorage.load(settings, lock, counters);
    } catch (error) {
      await lock.release().catch(() => undefined);
      throw error;
    }
  }

  private static async load(
    settings: ResolvedOptions,
    lock: DirectoryLock,
    counters: IoCounters,
  ): Promise<OpenedStorage<FileStorage>> {
    const { files, dataDir, log } = settings;
    const { metadata, created } = await loadIdentity(settings, counters);
    await removeTemporaryFiles(files, dataDir, log);
    const found = await readDamageFile(files, dataDir);
    // A repair that cut the whole WAL and crashed before the next segment keeps its hard
    // state in damage.json.
    if (!created && found === null) await requireWal(files, dataDir);
    const snapshot = await readSnapshotOrRecordLoss({
      files,
      dataDir,
      pending: found,
      log,
      counters,
    });
    // A damaged snapshot was recorded as lost in damage.json just now.
    const pending = snapshot === null ? await readDamageFile(files, dataDir) : found;
    // A cut that a crash interrupted is finished first: damage.json holds what it removes.
    if (pending !== null && !pending.truncated) {
      await cutWal({ files, dataDir, cut: pending.cut, log, counters });
    }
    const recovered = await recoverLog({
      files,
      dataDir,
      snapshotMeta: snapshot?.meta ?? null,
      log,
      counters,
      keptEntriesCopySlackBytes: settings.keptEntriesCopySlackBytes,
    });
    const repair = await startRepair({ settings, counters, pending, recovered });
    // Until the cut is finished, the WAL may still hold entries the damaged records had
    // replaced, and a commit hint that counts them: keep neither.
    const cutting = repair !== null && !repair.truncated;
    const entries = cutting
      ? recovered.entries.filter((entry) => entry.index < repair.damage.firstLostIndex)
      : recovered.entries;
    const hardState = cutting ? repairHardState(repair, recovered) : recovered.hardState;
    const dropsEntries = entries.length < recovered.entries.length;
    const state = new LogState({
      snapshotIndex: snapshot?.meta.index ?? 0,
      snapshotTerm: snapshot?.meta.term ?? 0,
      entryTerms: entries.map((entry) => entry.term),
      hardState,
    });
    const storage = new FileStorage({
      state,
      settings,
      lock,
      segments: recovered.segments,
      nextSegmentSeq: recovered.nextSegmentSeq,
      durableHardState: recovered.hardState,
    });
    Object.assign(storage.io, counters);
    try {
      await storage.wal.start(recovered.hardState);
      if (created) await writeMetadata(files, dataDir, metadata, storage.io);
      if (recovered.resetTo !== null) await storage.writeReset(recovered.resetTo);
      if (cutting) await storage.finishCut({ repair, hardState, dropsEntries });
    } catch (error) {
      await storage.wal.close().catch(() => undefined);
      throw error;
    }
    const persisted: PersistedState = {
      hardState,
      snapshot,
      entries,
      appliedIndex: snapshot?.meta.index ?? 0,
      ...(repair === null ? {} : { damage: repair.damage }),
    };
    return { storage, persisted, metadata, created };
  }

  /**
   * After the cut: the WAL forgets any entry from the first lost index on and holds the
   * newest hard state again (both were in records the cut removed), then damage.json says
   * the cut is done, so that damage found later is told apart from this one.
   */
  private async finishCut(options: {
    readonly repair: DamageRecord;
    readonly hardState: HardState | null;
    readonly dropsEntries: boolean;
  }): Promise<void> {
    const { repair, hardState } = options;
    assert(hardState !== null, 'a repaired log knows its hard state');
    const builder = new RecordBodyBuilder();
    if (options.dropsEntries) {
      builder.add({ type: 'truncate', fromIndex: repair.damage.firstLostIndex });
    }
    builder.add({ type: 'hardState', hardState });
    await this.wal.append({ chunks: builder.finish(), hardState, maxEntryIndex: 0 });
    this.durableHardState = hardState;
    await writeDamageFile({
      files: this.files,
      dataDir: this.dataDir,
      record: { ...repair, hardState, truncated: true },
      counters: this.io,
    });
  }

  /**
   * The node holds every entry it may have acknowledged before the damage again (the core's
   * repair ended): forget damage.json. Until then every open reports the damage again.
   */
  override async repairDone(): Promise<void> {
    await removeDamageFile(this.files, this.dataDir, this.io);
  }

  /**
   * Makes recovery's drop of a stale log durable (see RecoveredLog.resetTo): the same record
   * a leader's snapshot writes, before any entry the node appends after the snapshot.
   */
  private async writeReset(meta: SnapshotMeta): Promise<void> {
    assert(this.state.lastIndex === meta.index, 'the recovered log ends at the snapshot');
    const builder = new RecordBodyBuilder();
    builder.add({ type: 'reset', index: meta.index, term: meta.term });
    await this.wal.append({
      chunks: builder.finish(),
      hardState: this.durableHardState,
      maxEntryIndex: 0,
    });
    await this.wal.deleteOldest(this.wal.inactiveSegmentCount(), 'replaced by a snapshot');
  }

  protected async writeGroup(group: readonly QueuedAppend[]): Promise<void> {
    assert(group.length > 0, 'a group holds at least one append');
    let reset: Snapshot | null = null;
    for (const operation of group) reset = operation.plan.reset ?? reset;
    // The snapshot is durable before the record that resets the log to it (see recovery.ts).
    if (reset !== null) await this.writeSnapshotFile(reset);
    const builder = new RecordBodyBuilder();
    let maxEntryIndex = 0;
    let hardState = this.durableHardState;
    for (const operation of group) {
      for (const item of planItems(operation.plan)) builder.add(item);
      const { entries } = operation.plan;
      if (entries.length > 0) maxEntryIndex = entries[entries.length - 1]!.index;
      hardState = operation.plan.hardState ?? hardState;
    }
    if (builder.byteLength === 0) return; // nothing new: earlier records are already durable
    // Every record repeats the hard state: should an earlier record be corrupted, the next
    // one still tells the vote it may have held (recovery.ts repairs only when one does).
    if (hardState !== null && hardState === this.durableHardState) {
      builder.add({ type: 'hardState', hardState });
    }
    // A new segment's header repeats the hard state durable before this record.
    const chunks = builder.finish();
    await this.wal.append({ chunks, hardState: this.durableHardState, maxEntryIndex });
    this.durableHardState = hardState;
    if (reset !== null) {
      await this.wal.deleteOldest(this.wal.inactiveSegmentCount(), 'replaced by a snapshot');
    }
  }

  protected async writeSnapshot(snapshot: Snapshot): Promise<void> {
    await this.writeSnapshotFile(snapshot);
    // Only a prefix goes: a truncation recorded in a later segment must still find the
    // entries it cuts.
    const { index } = snapshot.meta;
    await this.wal.deleteOldest(
      this.wal.coveredSegmentCount(index),
      `covered by the snapshot at ${index}`,
    );
  }

  protected async release(): Promise<void> {
    try {
      await this.wal.close();
    } finally {
      await this.lock.release();
    }
  }

  private async writeSnapshotFile(snapshot: Snapshot): Promise<void> {
    const byteCount = await replaceFileAtomically({
      files: this.files,
      path: join(this.dataDir, SNAPSHOT_FILE_NAME),
      chunks: encodeSnapshotFile(snapshot),
      counters: this.io,
    });
    this.io.snapshotWrittenBytes += byteCount;
  }
}

interface ResolvedOptions {
  readonly dataDir: string;
  readonly clusterId: string;
  readonly nodeId: NodeId;
  readonly segmentBytesMax: number;
  readonly limits: QueueLimits;
  readonly log: StorageLogger;
  readonly files: FileSystem;
  readonly environment: Environment;
  readonly directoryLock: 'pidFile' | 'none';
  readonly unsafe: UnsafeStorageMode | null;
  readonly keptEntriesCopySlackBytes: number;
}

function resolveOptions(options: FileStorageOptions): ResolvedOptions {
  const isIdentity = (value: unknown): value is string =>
    typeof value === 'string' && value.length > 0 && value.length <= IDENTITY_BYTES_MAX;
  if (typeof options?.dataDir !== 'string' || options.dataDir.length === 0) {
    throw invalidArgument('dataDir is a non-empty path');
  }
  if (!isIdentity(options.clusterId) || !isIdentity(options.nodeId)) {
    throw invalidArgument('clusterId and nodeId are non-empty strings of at most 256 characters');
  }
  const segmentBytesMax = options.segmentBytesMax ?? DEFAULT_SEGMENT_BYTES_MAX;
  if (
    !Number.isSafeInteger(segmentBytesMax) ||
    segmentBytesMax < SEGMENT_BYTES_MIN ||
    segmentBytesMax > SEGMENT_BYTES_LIMIT
  ) {
    throw invalidArgument(
      `segmentBytesMax is an integer from ${SEGMENT_BYTES_MIN} to ${SEGMENT_BYTES_LIMIT}`,
      { segmentBytesMax },
    );
  }
  const directoryLock = options.directoryLock ?? 'pidFile';
  if (directoryLock !== 'pidFile' && directoryLock !== 'none') {
    throw invalidArgument("directoryLock is 'pidFile' or 'none'", { directoryLock });
  }
  const keptEntriesCopySlackBytes =
    options.keptEntriesCopySlackBytes ?? DEFAULT_KEPT_ENTRIES_COPY_SLACK_BYTES;
  if (!Number.isSafeInteger(keptEntriesCopySlackBytes) || keptEntriesCopySlackBytes < 0) {
    throw invalidArgument('keptEntriesCopySlackBytes is an integer >= 0', {
      keptEntriesCopySlackBytes,
    });
  }
  if (options.unsafe !== undefined && options.unsafe !== 'ackBeforeDatasync') {
    throw invalidArgument('unknown unsafe mode', { unsafe: String(options.unsafe) });
  }
  return {
    dataDir: options.dataDir,
    clusterId: options.clusterId,
    nodeId: options.nodeId,
    segmentBytesMax,
    limits: {
      queuedAppendsMax: options.queuedAppendsMax ?? DEFAULT_QUEUE_LIMITS.queuedAppendsMax,
      queuedBytesMax: options.queuedBytesMax ?? DEFAULT_QUEUE_LIMITS.queuedBytesMax,
      groupBytesMax: options.groupBytesMax ?? DEFAULT_QUEUE_LIMITS.groupBytesMax,
    },
    log: options.log ?? (() => undefined),
    files: options.files ?? nodeFileSystem,
    environment: options.environment ?? systemEnvironment,
    directoryLock,
    unsafe: options.unsafe ?? null,
    keptEntriesCopySlackBytes,
  };
}

/**
 * Decides what a damaged WAL costs: damage found now is recorded in damage.json (merged with
 * one still being repaired) BEFORE the cut removes the damaged records, so no crash can make
 * the loss silent. Null when there is nothing to repair.
 */
async function startRepair(options: {
  readonly settings: ResolvedOptions;
  readonly counters: IoCounters;
  readonly pending: DamageRecord | null;
  readonly recovered: RecoveredLog;
}): Promise<DamageRecord | null> {
  const { settings, counters, pending, recovered } = options;
  const { files, dataDir, log } = settings;
  const found = recovered.damage;
  if (found === null) {
    if (pending !== null) log({ type: 'repairPending', ...pending.damage });
    return pending;
  }
  assert(recovered.hardState !== null, 'a damaged log was described with its hard state');
  const hardState =
    pending === null ? found.hardState : newerHardState(pending.hardState, found.hardState);
  const damage = pending === null ? found.damage : mergeDamage(pending.damage, found.damage);
  log({
    type: 'walDamaged',
    file: found.file,
    offsetBytes: found.cut.offsetBytes,
    reason: found.reason,
    ...damage,
  });
  const record: DamageRecord = { damage, hardState, cut: found.cut, truncated: false };
  await writeDamageFile({ files, dataDir, record, counters });
  await cutWal({ files, dataDir, cut: found.cut, log, counters });
  return record;
}

/** The repair's term and vote (from records the cut removed, or newer), the prefix's commit. */
function repairHardState(repair: DamageRecord, recovered: RecoveredLog): HardState {
  const newest =
    recovered.hardState === null
      ? repair.hardState
      : newerHardState(repair.hardState, recovered.hardState);
  const lastIndexKept = repair.damage.firstLostIndex - 1;
  const commit = Math.min(recovered.hardState?.commit ?? 0, lastIndexKept);
  return { term: newest.term, vote: newest.vote, commit };
}

/** Terms only grow, and a vote once cast in a term stays (Raft §5.2). */
function newerHardState(left: HardState, right: HardState): HardState {
  if (left.term !== right.term) return left.term > right.term ? left : right;
  return left.vote !== null ? left : right;
}

/** Whether a data directory's file holds a node's log: a WAL segment or its snapshot. */
export function isLogFileName(name: string): boolean {
  return name.endsWith('.wal') || name === SNAPSHOT_FILE_NAME;
}

/** Reads and checks meta.json, or writes it when the directory holds nothing yet. */
async function loadIdentity(
  settings: ResolvedOptions,
  counters: IoCounters,
): Promise<{ metadata: StorageMetadata; created: boolean }> {
  const { files, dataDir, clusterId, nodeId, log } = settings;
  let found: StorageMetadata | null;
  let unreadable: StorageError | null = null;
  try {
    found = await readMetadata(files, dataDir);
  } catch (error) {
    if (!(error instanceof StorageError) || error.code !== 'CORRUPT_METADATA') throw error;
    found = null;
    unreadable = error;
  }
  if (found !== null) {
    checkMetadata(found, { clusterId, nodeId, dataDir });
    if (found.formatVersion === STORAGE_FORMAT_VERSION) return { metadata: found, created: false };
    // Written by an older release. It will hold preallocated or recycled segments (formats 2
    // and 3) that such a release would misread as damage: marked now, before any is
    // written, it refuses them.
    const upgraded = { ...found, formatVersion: STORAGE_FORMAT_VERSION };
    await writeMetadata(files, dataDir, upgraded, counters);
    return { metadata: upgraded, created: false };
  }
  const metadata = { formatVersion: STORAGE_FORMAT_VERSION, clusterId, nodeId };
  const names = await files.readdir(dataDir).catch((error: unknown) => {
    throw ioError('list directory', dataDir, error);
  });
  const dataFile = names.find(isLogFileName);
  // A new directory gets meta.json only once its first segment is durable (load), so that
  // meta.json without any segment means a lost WAL, never a new node.
  if (dataFile === undefined && unreadable === null) return { metadata, created: true };
  // meta.json holds only the identity: an unreadable one, or one a crash kept from being
  // written after the first segment, is rebuilt from the identity this node starts with.
  const file = join(dataDir, METADATA_FILE_NAME);
  log({
    type: 'metadataRebuilt',
    file,
    reason: unreadable === null ? 'missing beside data files' : unreadable.message,
  });
  await writeMetadata(files, dataDir, metadata, counters);
  return { metadata, created: false };
}

/**
 * A directory that held a log (meta.json is written after its first segment) has at least
 * one segment: the writer always keeps the active one. With none, the hard state went with
 * them, and a node that forgot its vote could vote twice in one term (Raft §5.2): refuse.
 */
async function requireWal(files: FileSystem, dataDir: string): Promise<void> {
  if ((await listSegmentsWithGaps(files, dataDir)).length > 0) return;
  throw new StorageError(
    'CORRUPT_LOG',
    `no WAL segment is left in ${dataDir}, which held a log: the term and vote it recorded ` +
      'are lost, and this node could vote twice in one term. Rebuild it: wipe the data ' +
      'directory, remove the member and add it again (docs/design.md, "Repair of a ' +
      'corrupted log")',
    { dataDir },
  );
}

/** Leftovers of an atomic write cut short by a crash; the real file is intact. */
async function removeTemporaryFiles(
  files: FileSystem,
  dataDir: string,
  log: StorageLogger,
): Promise<void> {
  const names = await files.readdir(dataDir).catch((error: unknown) => {
    throw ioError('list directory', dataDir, error);
  });
  for (const name of names) {
    const temporary = [`${SNAPSHOT_FILE_NAME}.tmp`, 'meta.json.tmp', `${DAMAGE_FILE_NAME}.tmp`];
    if (!temporary.includes(name)) continue;
    const path = join(dataDir, name);
    await removeIfPresent(files, path);
    log({ type: 'temporaryFileRemoved', file: path });
  }
}
