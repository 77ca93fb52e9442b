/**
 * Rebuilds the log from the snapshot file and the WAL segments at open. Records are replayed
 * in order into a model (entries, truncations, leader-snapshot resets, hard states), then the
 * model is reconciled with the snapshot. Records that verify but disagree are an error, never
 * repaired. A record that fails its checksum where a crash cannot explain it (corruption) ends
 * the replay: the records before it are the intact prefix, and the intact records after it
 * say what was lost (`FoundDamage`). The node then repairs from a leader without voting
 * (LogDamage in src/raft/types.ts; Alagappan et al., FAST 2018): silently dropping a record a
 * quorum counted on is how replicated logs lose data, so the loss is always reported.
 */
import { dirname } from 'node:path';
import type { Entry, HardState, LogDamage, SnapshotMeta } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import {
  parseRecordAt,
  RECORD_HEADER_BYTES,
  RECORD_MAGIC,
  SEAL_RECORD_BYTES,
  type WalItem,
} from './codec.ts';
import { formatTooNew, ioError, StorageError } from './errors.ts';
import type { FileHandle, FileSystem } from './file-system.ts';
import { fsyncDirectory, type IoCounters } from './fs-util.ts';
import { FAST_FILL, fillWithZeros } from './preallocation.ts';
import {
  corruptRecord,
  firstSegmentGap,
  listSegmentsWithGaps,
  readSegmentFile,
  type ScannedRecord,
  type SegmentDamage,
  type SegmentFile,
  type SegmentFormat,
  scanSegment,
  segmentFormat,
} from './segments.ts';
import { STORAGE_FORMAT_VERSION, type StorageLogger } from './types.ts';

/**
 * Buffers larger than twice the entries they hold by more than this are not kept alive by
 * them (the default of FileStorageOptions.keptEntriesCopySlackBytes).
 */
export const DEFAULT_KEPT_ENTRIES_COPY_SLACK_BYTES = 1 << 20;

/** A zero tail larger than this (and than the records) is not kept alive by the entries. */
const COMPACT_SLACK_BYTES = 1 << 20;

/** What the storage knows about a segment it keeps. */
export interface SegmentInfo {
  readonly segmentSeq: number;
  readonly path: string;
  /**
   * The end of its last record: where the next record goes. Only zeros follow it, or in a
   * recycled segment stale bytes that never verify (segments.ts).
   */
  sizeBytes: number;
  /** The file's size, preallocated zeros included. */
  fileBytes: number;
  /** Records in it, its header record included. */
  recordCount: number;
  /** The highest entry index written in it; 0 when it holds none. */
  maxEntryIndex: number;
  /** How its records are written: with which seed, and whether stale bytes follow them. */
  readonly format: SegmentFormat;
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
  /** Corruption found in the WAL: `entries` are the intact prefix. */
  readonly damage: FoundDamage | null;
}

/** A corrupted WAL record, what it cost, and where the WAL must be cut. */
export interface FoundDamage {
  readonly damage: LogDamage;
  /** The newest hard state, from an intact record after the damage (the cut removes it). */
  readonly hardState: HardState;
  /** The damaged record starts here; it and every record after it go. */
  readonly cut: { readonly segmentSeq: number; readonly offsetBytes: number };
  readonly file: string;
  readonly reason: string;
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
      case 'recycled':
      case 'sealed':
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
  readonly keptEntriesCopySlackBytes: number;
}): Promise<RecoveredLog> {
  const segmentFiles = await listSegmentsWithGaps(options.files, options.dataDir);
  const gap = firstSegmentGap(segmentFiles);
  const model = new ReplayModel();
  const segments: SegmentInfo[] = [];
  let found: FoundDamage | null = null;
  for (const [position, file] of segmentFiles.entries()) {
    const isLast = position === segmentFiles.length - 1;
    const replayed =
      file === gap?.after
        ? await missingBefore(options.files, file, gap.missingSegmentSeq)
        : await replaySegment({ file, isLast, model, ...options });
    if (replayed.info !== null) segments.push(replayed.info);
    if (replayed.damage !== null) {
      const later = segmentFiles.slice(position + 1);
      found = await describeDamage({ model, file, replayed, later, files: options.files });
      break;
    }
  }
  if (found === null) {
    found = missingPrefix(model, segmentFiles, options.snapshotMeta);
    // The cut removes every segment.
    if (found !== null) segments.length = 0;
  }
  // A last segment whose header was torn is gone: its number is free again. After a cut,
  // the numbers of the segments it removes are free too.
  const lastFile = segmentFiles[segmentFiles.length - 1];
  const lastKept = segments[segments.length - 1];
  const nextSegmentSeq =
    lastKept !== undefined
      ? lastKept.segmentSeq + 1
      : found !== null
        ? found.cut.segmentSeq
        : (lastFile?.segmentSeq ?? 1);
  if (found !== null) {
    // Reconciled below with the cut prefix; the snapshot may cover some of what was lost.
    found = clampToSnapshot(found, options.snapshotMeta);
  }
  const { entries, replayAgrees } = reconcile(
    model,
    options.snapshotMeta,
    options.log,
    options.keptEntriesCopySlackBytes,
  );
  const resetTo = replayAgrees ? null : options.snapshotMeta;
  assert(replayAgrees || resetTo !== null, 'only a snapshot makes the records disagree');
  const lastIndex = (options.snapshotMeta?.index ?? 0) + entries.length;
  const hardState = raiseCommit(
    found === null ? model.hardState : repairedHardState(found, model.hardState, lastIndex),
    options.snapshotMeta,
  );
  if (hardState !== null && hardState.commit > lastIndex) {
    throw new StorageError(
      'CORRUPT_LOG',
      `the log ends at ${lastIndex} but entries up to ${hardState.commit} were committed`,
      { dataDir: options.dataDir, commit: hardState.commit, lastIndex },
    );
  }
  return { hardState, entries, segments, nextSegmentSeq, resetTo, damage: found };
}

/**
 * A torn write in a preallocated segment (format 2) leaves the file's size alone: the record
 * fits in the zeros it was written over. A record cut short by the end of the file therefore
 * means the file was truncated, unless it is the segment's first record after its header
 * (one too big for a segment is written there and grows the file) or the segment is of
 * format 1 (it grew with every record). Records after the cut may have been fsynced and
 * acknowledged, and the hard state they repeated is lost with them: a vote could be cast
 * twice, so the open refuses (CORRUPT_RECORD) instead of reading the cut as a torn tail.
 */
function refuseTruncation(
  bytes: Buffer,
  file: SegmentFile,
  records: readonly ScannedRecord[],
  validBytes: number,
  cutShort = /cut short/,
): void {
  const header = records[0]?.items[0];
  const preallocated = header?.type === 'segmentHeader' && header.formatVersion >= 2;
  if (!preallocated || records.length < 2) return;
  const next = parseRecordAt(bytes, validBytes);
  if (next.ok || !cutShort.test(next.reason)) return;
  throw corruptRecord(
    file.path,
    validBytes,
    `${next.reason} by the end of the file: the segment was truncated, and records after ` +
      'the cut may have been acknowledged with the term and vote they held; rebuild this ' +
      'node (docs/design.md, "Repair of a corrupted log")',
  );
}

/**
 * A segment whose predecessor is missing (deleted, or lost with its directory entry): the
 * records before it are the intact prefix, and it and the later ones are read as what
 * follows damage, for the hard state and the indexes they show; the cut removes them.
 */
async function missingBefore(
  files: FileSystem,
  file: SegmentFile,
  missingSegmentSeq: number,
): Promise<ReplayedSegment> {
  const { bytes } = await readSegmentFile(files, file.path);
  const reason = `WAL segment ${missingSegmentSeq} is missing before it`;
  const format = segmentFormat(bytes, file.segmentSeq);
  return { info: null, damage: { offsetBytes: 0, reason, resumeBytes: 0 }, bytes, format };
}

/**
 * The oldest segments are gone while the snapshot does not cover their entries (they were
 * deleted by hand, or lost): the log starts after a hole. Nothing of it can be kept (the
 * entries must follow the snapshot), but the intact records still hold the hard state, so
 * the loss is repaired like a damaged record: from the snapshot's index + 1 on.
 */
function missingPrefix(
  model: ReplayModel,
  segmentFiles: readonly SegmentFile[],
  snapshotMeta: SnapshotMeta | null,
): FoundDamage | null {
  const snapshotIndex = snapshotMeta?.index ?? 0;
  const first = segmentFiles[0];
  if (model.firstIndex === null || model.firstIndex <= snapshotIndex + 1) return null;
  if (model.entries.length === 0 || first === undefined) return null;
  const reason = `the log starts at ${model.firstIndex}, after the snapshot's ${snapshotIndex}: older segments are missing`;
  if (model.hardState === null) {
    throw new StorageError('CORRUPT_LOG', `${reason}, and no record holds the hard state`, {
      firstIndex: model.firstIndex,
      snapshotIndex,
    });
  }
  const lastIndexSeen = model.firstIndex + model.entries.length - 1;
  model.entries = [];
  model.firstIndex = null;
  return {
    damage: { firstLostIndex: snapshotIndex + 1, lastIndexSeen, termBound: model.hardState.term },
    hardState: model.hardState,
    cut: { segmentSeq: first.segmentSeq, offsetBytes: 0 },
    file: first.path,
    reason,
  };
}

/**
 * The term and vote of the newest hard state, and a commit index the intact prefix can
 * vouch for: the prefix's own, since a commit index read after the damage may count entries
 * that overwrote the prefix's last ones in the lost records.
 */
function repairedHardState(
  found: FoundDamage,
  prefixHardState: HardState | null,
  lastIndex: number,
): HardState {
  const commit = Math.min(prefixHardState?.commit ?? 0, lastIndex);
  return { term: found.hardState.term, vote: found.hardState.vote, commit };
}

function clampToSnapshot(found: FoundDamage, snapshotMeta: SnapshotMeta | null): FoundDamage {
  const snapshotIndex = snapshotMeta?.index ?? 0;
  if (found.damage.firstLostIndex > snapshotIndex) return found;
  return { ...found, damage: { ...found.damage, firstLostIndex: snapshotIndex + 1 } };
}

/** What the intact records after a damaged one say; see `describeDamage`. */
interface DamageSurvey {
  /** The newest hard state in them. */
  hardState: HardState | null;
  /** A hard state follows the last damaged record: `hardState` is the newest one written. */
  hardStateExact: boolean;
  /** Where the log ended after the last record, once a record after the damage tells. */
  lastIndex: number | null;
  /** The lowest index a record after the damage replaced (truncated, reset or rewrote). */
  lowestReplacedIndex: number;
}

/**
 * Reads what follows a damaged record: the rest of its segment and the later segments,
 * skipping any further damage. Throws the original CORRUPT_RECORD when no intact hard state
 * follows the last damage: the lost record may have held a vote this node would then cast
 * again in the same term (Raft §5.2), and no peer can tell it which.
 */
async function describeDamage(options: {
  readonly files: FileSystem;
  readonly model: ReplayModel;
  readonly file: SegmentFile;
  readonly replayed: ReplayedSegment;
  readonly later: readonly SegmentFile[];
}): Promise<FoundDamage> {
  const { model, file, replayed } = options;
  const damage = replayed.damage;
  assert(damage !== null, 'only a damaged segment is described');
  const survey: DamageSurvey = {
    hardState: null,
    hardStateExact: false,
    lastIndex: null,
    lowestReplacedIndex: Number.POSITIVE_INFINITY,
  };
  const isLast = options.later.length === 0;
  surveyRecords(replayed.bytes, file.path, damage.resumeBytes, isLast, survey, replayed.format);
  for (const [position, laterFile] of options.later.entries()) {
    await surveySegment(options.files, laterFile, position === options.later.length - 1, survey);
  }
  if (!survey.hardStateExact || survey.hardState === null) {
    throw corruptRecord(
      file.path,
      damage.offsetBytes,
      `${damage.reason}; no intact record after it holds the hard state, so a vote it held may be lost`,
    );
  }
  const prefixFirst = model.firstIndex ?? 1;
  const prefixLast = prefixFirst + model.entries.length - 1;
  const keptLast = Math.min(prefixLast, survey.lowestReplacedIndex - 1);
  // Entries the lost records had replaced are not what the log held: drop them too.
  if (keptLast < prefixLast) model.entries.length = Math.max(0, keptLast - prefixFirst + 1);
  const firstLostIndex = prefixFirst + model.entries.length;
  const lastIndexSeen = survey.lastIndex === null ? null : Math.max(survey.lastIndex, 0);
  return {
    damage: { firstLostIndex, lastIndexSeen, termBound: survey.hardState.term },
    hardState: survey.hardState,
    cut: { segmentSeq: file.segmentSeq, offsetBytes: damage.offsetBytes },
    file: file.path,
    reason: damage.reason,
  };
}

/** What the whole WAL says without replaying it: see `surveyWal`. */
export interface WalSurvey {
  /** The newest hard state, or null when no intact record after the last damage holds one. */
  readonly hardState: HardState | null;
  /** The highest index the records show; null when none tells. */
  readonly lastIndex: number | null;
  /** The oldest segment, where a cut of the whole WAL starts; null when there is none. */
  readonly firstSegmentSeq: number | null;
}

/**
 * The newest hard state and the highest index in every segment, damage skipped: for a node
 * that lost its snapshot, the base its log grows from, and keeps only its term and vote.
 */
export async function surveyWal(files: FileSystem, dataDir: string): Promise<WalSurvey> {
  const segmentFiles = await listSegmentsWithGaps(files, dataDir);
  const survey: DamageSurvey = {
    hardState: null,
    hardStateExact: false,
    lastIndex: null,
    lowestReplacedIndex: Number.POSITIVE_INFINITY,
  };
  for (const [position, file] of segmentFiles.entries()) {
    await surveySegment(files, file, position === segmentFiles.length - 1, survey);
  }
  return {
    hardState: survey.hardStateExact ? survey.hardState : null,
    lastIndex: survey.lastIndex,
    firstSegmentSeq: segmentFiles[0]?.segmentSeq ?? null,
  };
}

async function surveySegment(
  files: FileSystem,
  file: SegmentFile,
  isLast: boolean,
  survey: DamageSurvey,
): Promise<void> {
  const { bytes } = await readSegmentFile(files, file.path);
  surveyRecords(bytes, file.path, 0, isLast, survey, segmentFormat(bytes, file.segmentSeq));
}

/** Applies the records of `bytes` from `fromBytes` (null: none) to `survey`, damage and all. */
function surveyRecords(
  bytes: Buffer,
  path: string,
  fromBytes: number | null,
  isLast: boolean,
  survey: DamageSurvey,
  format: SegmentFormat,
): void {
  let offset = fromBytes;
  // Bounded: each pass resumes after a damaged record, strictly further into the file.
  while (offset !== null) {
    const scan = scanSegment(bytes.subarray(offset), path, isLast, undefined, true, format);
    for (const record of scan.records) {
      for (const item of record.items) surveyItem(item, survey);
    }
    if (scan.damage === null) return;
    survey.hardStateExact = false;
    survey.lastIndex = null;
    const resume = scan.damage.resumeBytes;
    assert(resume === null || resume > 0, 'a scan resumes past the damage');
    offset = resume === null ? null : offset + resume;
  }
}

function surveyItem(item: WalItem, survey: DamageSurvey): void {
  switch (item.type) {
    case 'segmentHeader':
    case 'recycled':
    case 'sealed':
      return;
    case 'hardState':
      survey.hardState = item.hardState;
      survey.hardStateExact = true;
      return;
    case 'truncate':
      survey.lastIndex = item.fromIndex - 1;
      survey.lowestReplacedIndex = Math.min(survey.lowestReplacedIndex, item.fromIndex);
      return;
    case 'reset':
      survey.lastIndex = item.index;
      survey.lowestReplacedIndex = Math.min(survey.lowestReplacedIndex, item.index + 1);
      return;
    case 'entries': {
      const first = item.entries[0]!;
      survey.lastIndex = item.entries[item.entries.length - 1]!.index;
      survey.lowestReplacedIndex = Math.min(survey.lowestReplacedIndex, first.index);
      return;
    }
  }
}

interface ReplayedSegment {
  /** Null when the segment is gone: a last one that holds no record, or a damaged header. */
  readonly info: SegmentInfo | null;
  /** Corruption: the segment's records end before it, and the replay stops there. */
  readonly damage: SegmentDamage | null;
  readonly bytes: Buffer;
  readonly format: SegmentFormat;
}

/**
 * Replays one segment; zeroes a torn tail of the last one. No info when the last segment
 * holds no record: its header was torn, or it was never written.
 */
async function replaySegment(options: {
  readonly files: FileSystem;
  readonly file: SegmentFile;
  readonly isLast: boolean;
  readonly model: ReplayModel;
  readonly log: StorageLogger;
  readonly counters: IoCounters;
}): Promise<ReplayedSegment> {
  const { files, file, isLast, model, log } = options;
  const { bytes, contentBytes } = await readSegmentFile(files, file.path);
  const format = segmentFormat(bytes, file.segmentSeq);
  const scan = scanSegment(bytes, file.path, isLast, contentBytes, true, format);
  assert(scan.validBytes + scan.tornBytes <= bytes.length, 'the scan stays within the file');
  if (scan.damage !== null) {
    const info = scan.records.length === 0 ? null : applyRecords(scan.records, file, model, format);
    if (info !== null) {
      info.sizeBytes = scan.validBytes;
      info.fileBytes = bytes.length;
    }
    return { info, damage: scan.damage, bytes, format };
  }
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
    return { info: null, damage: null, bytes, format };
  }
  if (scan.tornBytes > 0) {
    const { validBytes, tornBytes } = scan;
    refuseTruncation(bytes, file, scan.records, validBytes);
    await zeroTornTail({ files, path: file.path, validBytes, tornBytes, log });
  } else if (format.recycled && !isTornSealPastEnd(bytes, scan.validBytes)) {
    // A recycled file keeps its size too, and its stale records all fit in it; but its last
    // bytes may be too few for a record header (a full segment), so only a body counts.
    refuseTruncation(bytes, file, scan.records, scan.validBytes, /body cut short/);
  }
  let records = scan.records;
  if (bytes.length - scan.validBytes > Math.max(COMPACT_SLACK_BYTES, scan.validBytes)) {
    // Entries are views into the buffer: let them keep only the records' bytes alive, not
    // the address space of a mostly empty preallocated segment.
    const compact = Buffer.from(bytes.subarray(0, scan.validBytes));
    records = scanSegment(compact, file.path, isLast, undefined, false, format).records;
    assert(records.length === scan.records.length, 'a copy of the records scans the same');
  }
  const info = applyRecords(records, file, model, format);
  info.sizeBytes = scan.validBytes;
  info.fileBytes = bytes.length;
  return { info, damage: null, bytes, format };
}

/**
 * A seal whose body the end of the file cuts off: a recycled segment whose first record grew
 * its file has no room left for its seal, so the seal grows the file again, and a power cut
 * can keep the sector with its header and lose the next one. Unlike a record cut short by a
 * truncation, it carried nothing, and nothing in this segment was written after it.
 */
function isTornSealPastEnd(bytes: Buffer, offset: number): boolean {
  return (
    bytes.length - offset === RECORD_HEADER_BYTES &&
    bytes.readUInt32LE(offset) === RECORD_MAGIC &&
    bytes.readUInt32LE(offset + 4) === SEAL_RECORD_BYTES - RECORD_HEADER_BYTES
  );
}

/** Replays verified records into the model; the sizes in the result are the caller's. */
function applyRecords(
  records: readonly ScannedRecord[],
  file: SegmentFile,
  model: ReplayModel,
  format: SegmentFormat,
): SegmentInfo {
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
    sizeBytes: 0,
    fileBytes: 0,
    recordCount: records.length,
    maxEntryIndex,
    format,
  };
}

/** The first item of a segment names its format and number; returns the remaining items. */
function checkHeader(items: readonly WalItem[], file: SegmentFile, at: Location): WalItem[] {
  const header = items[0];
  if (header?.type !== 'segmentHeader') {
    throw corruptRecord(at.path, at.offsetBytes, 'the segment does not start with its header');
  }
  if (header.formatVersion > STORAGE_FORMAT_VERSION) {
    throw formatTooNew(`segment ${file.path}`, header.formatVersion, STORAGE_FORMAT_VERSION, {
      file: file.path,
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
  keptEntriesCopySlackBytes: number,
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
    entries: ownBytes(
      entries.slice(Math.max(0, snapshotIndex + 1 - firstIndex)),
      keptEntriesCopySlackBytes,
    ),
    replayAgrees: true,
  };
}

/**
 * The entries with their data copied out of the segments' buffers, when they would otherwise
 * keep much more alive than themselves. A replayed entry's data is a view into the buffer its
 * segment was read into, and the log keeps only what follows the snapshot: a few entries at
 * the end of a segment would hold the whole read (up to 64 MiB) until compaction passed them,
 * which an idle cluster never does. One copy of the kept bytes at start-up instead. (Most of
 * a restarted node's extra ArrayBuffers are not that but segment reads V8 has not collected
 * yet: docs/performance-profile.md, "A restarted node's memory".)
 */
function ownBytes(entries: Entry[], slackBytes: number): Entry[] {
  const buffers = new Set<ArrayBufferLike>();
  let keptBytes = 0;
  for (const entry of entries) {
    buffers.add(entry.data.buffer);
    keptBytes += entry.data.byteLength;
  }
  let heldBytes = 0;
  for (const buffer of buffers) heldBytes += buffer.byteLength;
  if (heldBytes <= 2 * keptBytes + slackBytes) return entries;
  const owned = Buffer.allocUnsafe(keptBytes);
  let offset = 0;
  return entries.map((entry) => {
    const data = owned.subarray(offset, offset + entry.data.byteLength);
    data.set(entry.data);
    offset += entry.data.byteLength;
    return { ...entry, data };
  });
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

/**
 * Removes a damaged record and everything after it, durably: the later segments go newest
 * first (so a crash leaves a run of consecutive ones), then the damaged segment is zeroed from
 * the cut (or removed, when the cut is its header). Idempotent: a crash in the middle is
 * finished by the next open, which finds the cut in damage.json (written before this runs).
 */
export async function cutWal(options: {
  readonly files: FileSystem;
  readonly dataDir: string;
  readonly cut: { readonly segmentSeq: number; readonly offsetBytes: number };
  readonly log: StorageLogger;
  readonly counters: IoCounters;
}): Promise<void> {
  const { files, cut, log } = options;
  const segmentFiles = await listSegmentsWithGaps(files, options.dataDir);
  const later = segmentFiles.filter((file) => file.segmentSeq > cut.segmentSeq).reverse();
  for (const file of later) {
    await removeFile(files, file.path, options.counters);
    log({ type: 'segmentDeleted', file: file.path, reason: 'it follows a corrupted record' });
  }
  const damaged = segmentFiles.find((file) => file.segmentSeq === cut.segmentSeq);
  if (damaged === undefined) return;
  if (cut.offsetBytes === 0) {
    await removeFile(files, damaged.path, options.counters);
    log({ type: 'segmentDeleted', file: damaged.path, reason: 'its header is corrupted' });
    return;
  }
  const { contentBytes } = await readSegmentFile(files, damaged.path);
  if (contentBytes <= cut.offsetBytes) return; // already cut
  let handle: FileHandle | null = null;
  try {
    handle = await files.open(damaged.path, 'readWrite');
    await fillWithZeros({
      handle,
      path: damaged.path,
      fromBytes: cut.offsetBytes,
      toBytes: contentBytes,
      isCancelled: () => false,
      pace: () => FAST_FILL,
    });
  } catch (error) {
    throw ioError('cut corrupted records', damaged.path, error);
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
