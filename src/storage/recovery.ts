/**
 * Rebuilds the log from the snapshot file and the WAL segments at open. Records are replayed
 * in order into a model (entries, truncations, leader-snapshot resets, hard states), then the
 * model is reconciled with the snapshot. Anything inconsistent is an error, never repaired:
 * silently dropping a record a quorum counted on is how replicated logs lose data.
 */
import { dirname } from 'node:path';
import type { Entry, HardState, SnapshotMeta } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import type { WalItem } from './codec.ts';
import { ioError, StorageError } from './errors.ts';
import type { FileHandle, FileSystem } from './file-system.ts';
import { fsyncDirectory, type IoCounters } from './fs-util.ts';
import { FAST_FILL, fillWithZeros } from './preallocation.ts';
import {
  corruptRecord,
  listSegments,
  readSegmentFile,
  type SegmentFile,
  scanSegment,
} from './segments.ts';
import { STORAGE_FORMAT_VERSION, type StorageLogger } from './types.ts';

/** A zero tail larger than this (and than the records) is not kept alive by the entries. */
const COMPACT_SLACK_BYTES = 1 << 20;

/** What the storage knows about a segment it keeps. */
export interface SegmentInfo {
  readonly segmentSeq: number;
  readonly path: string;
  /** The end of its last record: where the next record goes. Only zeros follow it. */
  sizeBytes: number;
  /** The file's size, preallocated zeros included. */
  fileBytes: number;
  /** Records in it, its header record included. */
  recordCount: number;
  /** The highest entry index written in it; 0 when it holds none. */
  maxEntryIndex: number;
}

export interface RecoveredLog {
  readonly hardState: HardState | null;
  /** Contiguous from the snapshot index + 1. */
  readonly entries: readonly Entry[];
  /** Oldest first; the last one is where writing resumes. */
  readonly segments: SegmentInfo[];
  /** The number the next new segment takes. */
  readonly nextSegmentSeq: number;
  /**
   * Set when the records do not continue where `entries` end (a stale log was dropped, see
   * `reconcile`): a record resetting the log to this snapshot must be durable before any
   * entry is appended, or the next open would replay the new entries onto the stale ones.
   */
  readonly resetTo: SnapshotMeta | null;
}

interface Location {
  readonly path: string;
  readonly offsetBytes: number;
}

/** The log as the records describe it, before the snapshot is taken into account. */
class ReplayModel {
  firstIndex: number | null = null;
  entries: Entry[] = [];
  hardState: HardState | null = null;

  apply(item: WalItem, at: Location): void {
    switch (item.type) {
      case 'segmentHeader':
        throw corruptRecord(at.path, at.offsetBytes, 'a segment header inside a segment');
      case 'hardState':
        this.hardState = item.hardState;
        return;
      case 'truncate':
        this.truncate(item.fromIndex, at);
        return;
      case 'reset':
        this.entries = [];
        this.firstIndex = item.index + 1;
        return;
      case 'entries':
        this.append(item.entries, at);
        return;
    }
  }

  private truncate(fromIndex: number, at: Location): void {
    if (this.firstIndex === null || fromIndex <= this.firstIndex) {
      this.entries = [];
      this.firstIndex = fromIndex;
      return;
    }
    const keptCount = fromIndex - this.firstIndex;
    if (keptCount > this.entries.length) {
      throw inconsistent(at, `a truncation from ${fromIndex} beyond the log's end`);
    }
    this.entries.length = keptCount;
  }

  private append(entries: readonly Entry[], at: Location): void {
    const first = entries[0]!;
    const expectedIndex =
      this.firstIndex === null ? first.index : this.firstIndex + this.entries.length;
    if (first.index !== expectedIndex) {
      throw inconsistent(
        at,
        `entries start at ${first.index}, the log continues at ${expectedIndex}`,
      );
    }
    if (this.firstIndex === null) this.firstIndex = first.index;
    let previousTerm = this.entries[this.entries.length - 1]?.term ?? 0;
    for (const entry of entries) {
      if (entry.term < previousTerm) throw inconsistent(at, `the term falls at ${entry.index}`);
      previousTerm = entry.term;
      this.entries.push(entry);
    }
  }
}

export async function recoverLog(options: {
  readonly files: FileSystem;
  readonly dataDir: string;
  readonly snapshotMeta: SnapshotMeta | null;
  readonly log: StorageLogger;
  readonly counters: IoCounters;
}): Promise<RecoveredLog> {
  const segmentFiles = await listSegments(options.files, options.dataDir);
  const model = new ReplayModel();
  const segments: SegmentInfo[] = [];
  for (const [position, file] of segmentFiles.entries()) {
    const isLast = position === segmentFiles.length - 1;
    const info = await replaySegment({ file, isLast, model, ...options });
    if (info !== null) segments.push(info);
  }
  // A last segment whose header was torn is gone: its number is free again.
  const lastFile = segmentFiles[segmentFiles.length - 1];
  const lastKept = segments[segments.length - 1];
  const nextSegmentSeq =
    lastKept !== undefined ? lastKept.segmentSeq + 1 : (lastFile?.segmentSeq ?? 1);
  const { entries, replayAgrees } = reconcile(model, options.snapshotMeta, options.log);
  const resetTo = replayAgrees ? null : options.snapshotMeta;
  assert(replayAgrees || resetTo !== null, 'only a snapshot makes the records disagree');
  const hardState = raiseCommit(model.hardState, options.snapshotMeta);
  const lastIndex = (options.snapshotMeta?.index ?? 0) + entries.length;
  if (hardState !== null && hardState.commit > lastIndex) {
    throw new StorageError(
      'CORRUPT_LOG',
      `the log ends at ${lastIndex} but entries up to ${hardState.commit} were committed`,
      { dataDir: options.dataDir, commit: hardState.commit, lastIndex },
    );
  }
  return { hardState, entries, segments, nextSegmentSeq, resetTo };
}

/**
 * Replays one segment; zeroes a torn tail of the last one. Null when the last segment holds
 * no record: its header was torn, or it was never written.
 */
async function replaySegment(options: {
  readonly files: FileSystem;
  readonly file: SegmentFile;
  readonly isLast: boolean;
  readonly model: ReplayModel;
  readonly log: StorageLogger;
  readonly counters: IoCounters;
}): Promise<SegmentInfo | null> {
  const { files, file, isLast, model, log } = options;
  const { bytes, contentBytes } = await readSegmentFile(files, file.path);
  const scan = scanSegment(bytes, file.path, isLast, contentBytes);
  assert(scan.validBytes + scan.tornBytes <= bytes.length, 'the scan stays within the file');
  if (scan.records.length === 0) {
    // A segment is renamed into place only after its header is durable, so an earlier one
    // without records lost acknowledged data; the last one may be a torn or foreign file.
    if (!isLast) throw corruptRecord(file.path, 0, 'no record (not the last segment)');
    if (scan.tornBytes > 0) {
      log({
        type: 'tornTailTruncated',
        file: file.path,
        offsetBytes: 0,
        droppedBytes: scan.tornBytes,
      });
    }
    await removeFile(files, file.path, options.counters);
    const reason = scan.tornBytes > 0 ? 'its header was torn' : 'it holds no record';
    log({ type: 'segmentDeleted', file: file.path, reason });
    return null;
  }
  if (scan.tornBytes > 0) {
    const { validBytes, tornBytes } = scan;
    await zeroTornTail({ files, path: file.path, validBytes, tornBytes, log });
  }
  let records = scan.records;
  if (bytes.length - scan.validBytes > Math.max(COMPACT_SLACK_BYTES, scan.validBytes)) {
    // Entries are views into the buffer: let them keep only the records' bytes alive, not
    // the address space of a mostly empty preallocated segment.
    const compact = Buffer.from(bytes.subarray(0, scan.validBytes));
    records = scanSegment(compact, file.path, isLast).records;
    assert(records.length === scan.records.length, 'a copy of the records scans the same');
  }
  let maxEntryIndex = 0;
  for (const [position, record] of records.entries()) {
    const at = { path: file.path, offsetBytes: record.offsetBytes };
    const items = position === 0 ? checkHeader(record.items, file, at) : record.items;
    for (const item of items) {
      model.apply(item, at);
      if (item.type === 'entries') {
        maxEntryIndex = Math.max(maxEntryIndex, item.entries[item.entries.length - 1]!.index);
      }
    }
  }
  return {
    segmentSeq: file.segmentSeq,
    path: file.path,
    sizeBytes: scan.validBytes,
    fileBytes: bytes.length,
    recordCount: scan.records.length,
    maxEntryIndex,
  };
}

/** The first item of a segment names its format and number; returns the remaining items. */
function checkHeader(items: readonly WalItem[], file: SegmentFile, at: Location): WalItem[] {
  const header = items[0];
  if (header?.type !== 'segmentHeader') {
    throw corruptRecord(at.path, at.offsetBytes, 'the segment does not start with its header');
  }
  if (header.formatVersion > STORAGE_FORMAT_VERSION) {
    throw new StorageError('FORMAT_TOO_NEW', `${file.path} has a newer format`, {
      file: file.path,
      formatVersion: header.formatVersion,
      supportedVersion: STORAGE_FORMAT_VERSION,
    });
  }
  if (header.segmentSeq !== file.segmentSeq) {
    throw corruptRecord(at.path, at.offsetBytes, `the header names segment ${header.segmentSeq}`);
  }
  return items.slice(1);
}

/**
 * Overwrites a torn write with zeros, so that the segment ends cleanly after its last valid
 * record and keeps its preallocated size (writing resumes there).
 */
async function zeroTornTail(options: {
  readonly files: FileSystem;
  readonly path: string;
  readonly validBytes: number;
  readonly tornBytes: number;
  readonly log: StorageLogger;
}): Promise<void> {
  const { files, path, validBytes, tornBytes, log } = options;
  assert(tornBytes > 0, 'a torn tail holds damaged bytes');
  let handle: FileHandle | null = null;
  try {
    handle = await files.open(path, 'readWrite');
    const toBytes = validBytes + tornBytes;
    await fillWithZeros({
      handle,
      path,
      fromBytes: validBytes,
      toBytes,
      isCancelled: () => false,
      pace: () => FAST_FILL,
    });
  } catch (error) {
    throw ioError('zero torn tail', path, error);
  } finally {
    await handle?.close().catch(() => undefined);
  }
  log({ type: 'tornTailTruncated', file: path, offsetBytes: validBytes, droppedBytes: tornBytes });
}

async function removeFile(files: FileSystem, path: string, counters: IoCounters): Promise<void> {
  try {
    await files.unlink(path);
  } catch (error) {
    throw ioError('remove', path, error);
  }
  await fsyncDirectory(files, dirname(path), counters);
}

/**
 * Keeps the entries after the snapshot. When the log has an entry at the snapshot's index
 * with another term, or ends before it, it is a stale log: a crash came after a leader's
 * snapshot was saved and before the log reset was durable. Nothing after the snapshot was
 * acknowledged then, so the stale entries are dropped (and reported). `replayAgrees` is false
 * when replaying the records again, with entries appended after the kept ones, would not give
 * back the kept ones and those entries: the drop is not on disk yet.
 */
function reconcile(
  model: ReplayModel,
  snapshotMeta: SnapshotMeta | null,
  log: StorageLogger,
): { readonly entries: Entry[]; readonly replayAgrees: boolean } {
  const snapshotIndex = snapshotMeta?.index ?? 0;
  const firstIndex = model.firstIndex ?? snapshotIndex + 1;
  const entries = model.entries;
  if (firstIndex > snapshotIndex + 1) {
    throw new StorageError(
      'CORRUPT_LOG',
      `the log starts at ${firstIndex} but the snapshot covers only up to ${snapshotIndex}`,
      { firstIndex, snapshotIndex },
    );
  }
  // Records that reset the log, or truncated it, can leave it empty anywhere up to here.
  const continuesAfterSnapshot = firstIndex + entries.length === snapshotIndex + 1;
  if (snapshotMeta === null || entries.length === 0) {
    return { entries, replayAgrees: snapshotMeta === null || continuesAfterSnapshot };
  }
  const lastIndex = firstIndex + entries.length - 1;
  const termAtSnapshot =
    snapshotIndex >= firstIndex && snapshotIndex <= lastIndex
      ? entries[snapshotIndex - firstIndex]!.term
      : null;
  const agrees = firstIndex === snapshotIndex + 1 || termAtSnapshot === snapshotMeta.term;
  if (!agrees) {
    log({ type: 'staleLogDiscarded', snapshotIndex, firstIndex, lastIndex });
    return { entries: [], replayAgrees: false };
  }
  return {
    entries: entries.slice(Math.max(0, snapshotIndex + 1 - firstIndex)),
    replayAgrees: true,
  };
}

/** A snapshot covers only committed entries, so the commit hint is at least its index. */
function raiseCommit(
  hardState: HardState | null,
  snapshotMeta: SnapshotMeta | null,
): HardState | null {
  if (hardState === null || snapshotMeta === null) return hardState;
  if (hardState.commit >= snapshotMeta.index) return hardState;
  return { ...hardState, commit: snapshotMeta.index };
}

function inconsistent(at: Location, reason: string): StorageError {
  return new StorageError(
    'CORRUPT_LOG',
    `inconsistent WAL record in ${at.path} at byte ${at.offsetBytes}: ${reason}`,
    { file: at.path, offsetBytes: at.offsetBytes, reason },
  );
}
