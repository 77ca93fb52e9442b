/**
 * Writes WAL records into preallocated segments (see preallocation.ts) and keeps the list of
 * segments the storage holds.
 *
 * - A segment is zero-filled at its full size and fdatasynced, gets its header record
 *   (fdatasynced), and only then is renamed (without replacing anything) from
 *   `wal-spare.tmp` to `wal-<seq>.wal` and the directory fsynced. So every `.wal` file starts with a durable header, and a crash at any
 *   step leaves either a spare (deleted at the next open) or a valid segment.
 * - Records are written at the end of the last record with one positional `writev` through
 *   a handle opened with O_DSYNC (`readWriteDurable`), which returns once the record is
 *   durable: one trip through libuv's thread pool per record where a write and then an
 *   fdatasync took two, on the leader's and every follower's path to an acknowledgement.
 *   The file size never changes, so the sync flushes only data.
 * - A record that does not fit in what is left of the segment goes into the next one, unless
 *   the segment holds only its header: then it is written there and grows the file.
 * - The next segment is zero-filled in the background (at most one spare) once the active
 *   one is half full, or right after a rotation (a workload that fills segments needs all
 *   the lead it can get: the zeros share the disk with the records). A rotation then finds
 *   it ready and costs a header write, a rename and a directory fsync, not a segment of
 *   zeros; a node that writes little never pays for a spare.
 * - A segment deleted because a snapshot covers it is kept instead, renamed
 *   `wal-recycle-<seq>.tmp` (at most RECYCLED_FILES_MAX of them), and the next spare is made
 *   from it by a rename rather than from zeros: every WAL byte would otherwise be written
 *   twice. Its old records stay after the new ones; they never verify in the new segment
 *   (records are seeded with their segment's number, codec.ts), the header record says
 *   `recycled`, and a `sealed` record ends such a segment before the WAL moves on, so that
 *   recovery tells a lost last record from the end (segments.ts). Recycled files never
 *   outlive an open: the next open deletes them as it deletes the spare, so a crash at any
 *   step of the renames leaves a segment still covered by the snapshot (deleted or recycled
 *   again), or a file recovery never reads. A fresh segment of zeros is made only when no
 *   recycled file is at hand: after an open, or when compaction lags.
 */
import { join } from 'node:path';
import type { HardState } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import type { Environment } from '../util/environment.ts';
import {
  encodeRecordHeader,
  RECORD_HEADER_BYTES,
  RecordBodyBuilder,
  recordSeed,
  SEAL_RECORD_BYTES,
} from './codec.ts';
import { ioError, StorageError } from './errors.ts';
import type { FileHandle, FileSystem } from './file-system.ts';
import { fsyncDirectory, type IoCounters, removeIfPresent } from './fs-util.ts';
import {
  createZeroFilledFile,
  FAST_FILL,
  type FillPace,
  fillWithZeros,
  GENTLE_FILL,
  preallocationCancelled,
  SPARE_SEGMENT_FILE_NAME,
} from './preallocation.ts';
import type { SegmentInfo } from './recovery.ts';
import { segmentFileName } from './segments.ts';
import { STORAGE_FORMAT_VERSION, type StorageLogger } from './types.ts';

interface ActiveSegment {
  readonly info: SegmentInfo;
  readonly handle: FileHandle;
  /** Opened `readWriteDurable` (O_DSYNC): a record is durable once written, no datasync. */
  readonly durableWrites: boolean;
}

type SpareResult =
  | {
      readonly handle: FileHandle;
      readonly sizeBytes: number;
      /** Made from a segment's file: its old records follow whatever is written now. */
      readonly recycled: boolean;
    }
  | { readonly error: unknown };

/**
 * Segment files kept for the next spares. One covers the usual case (compaction frees about
 * a segment per segment written); a second absorbs a snapshot that frees two at once.
 */
const RECYCLED_FILES_MAX = 2;
const RECYCLED_FILE_PATTERN = /^wal-recycle-\d+\.tmp$/;

/** A spare being zero-filled, or ready. */
class SpareFill {
  ready = false;
  /** A rotation waits for it: the rest of the zeros go out fast. */
  urgent = false;
  /** Never rejects. */
  readonly done: Promise<SpareResult>;

  constructor(
    /** `walWrittenBytes` when the fill began: the rate records arrive at since then. */
    readonly walBytesAtStart: number,
    /** On the environment's monotonic clock. */
    readonly startedAtMs: number,
    fill: (spare: SpareFill) => Promise<SpareResult>,
  ) {
    this.done = fill(this);
    void this.done.then(() => {
      this.ready = true;
    });
  }
}

/**
 * A deliberately broken mode, to prove that the durability tests catch what it breaks.
 * `ackBeforeDatasync`: records are reported durable without their fdatasync. Never set
 * outside tests.
 */
export type UnsafeStorageMode = 'ackBeforeDatasync';

export interface WalWriterOptions {
  readonly files: FileSystem;
  readonly environment: Environment;
  readonly dataDir: string;
  readonly segmentBytesMax: number;
  /** The recovered segments, oldest first; writing resumes in the last one. */
  readonly segments: SegmentInfo[];
  readonly nextSegmentSeq: number;
  readonly io: IoCounters;
  readonly log: StorageLogger;
  /** Never set outside tests (see UnsafeStorageMode). */
  readonly unsafe?: UnsafeStorageMode | null;
}

export class WalWriter {
  private active: ActiveSegment | null = null;
  private spare: SpareFill | null = null;
  /** Files of deleted segments, oldest first, kept to become spares. */
  private readonly recycledPaths: string[] = [];
  private closed = false;
  /** Since this open, writing has moved from a full segment to a new one. */
  private rotated = false;
  private nextSegmentSeq: number;
  private readonly dataDir: string;
  private readonly sparePath: string;
  private readonly segmentBytesMax: number;
  /** Oldest first; the last one is the active one once started. */
  private readonly segments: SegmentInfo[];
  private readonly io: IoCounters;
  private readonly log: StorageLogger;
  private readonly files: FileSystem;
  private readonly environment: Environment;
  private readonly skipsRecordDatasync: boolean;

  constructor(options: WalWriterOptions) {
    assert(options.nextSegmentSeq >= 1, 'segment numbers start at 1');
    assert(
      options.segments.every((segment) => segment.segmentSeq < options.nextSegmentSeq),
      'new segments come after the existing ones',
    );
    this.dataDir = options.dataDir;
    this.sparePath = join(options.dataDir, SPARE_SEGMENT_FILE_NAME);
    this.segmentBytesMax = options.segmentBytesMax;
    this.segments = options.segments;
    this.nextSegmentSeq = options.nextSegmentSeq;
    this.io = options.io;
    this.log = options.log;
    this.files = options.files;
    this.environment = options.environment;
    this.skipsRecordDatasync = options.unsafe === 'ackBeforeDatasync';
  }

  /**
   * Makes the last segment ready for writing — zero-filled up to its size — or, when there
   * is none or it is full, creates the first one (its header repeats `hardState`).
   */
  async start(hardState: HardState | null): Promise<void> {
    assert(this.active === null && !this.closed, 'a writer starts once');
    await removeIfPresent(this.files, this.sparePath); // left by a crash; content unknown
    await this.removeRecycledLeftovers();
    const last = this.segments[this.segments.length - 1];
    // A full recycled segment is resumed too: writing moves on from it through rotate(),
    // which seals it (an unsealed recycled segment that is not the last reads as damage).
    if (last !== undefined && (last.sizeBytes < this.capacityOf(last) || last.format.recycled)) {
      this.active = await this.resume(last);
    } else {
      await this.rotate(hardState);
    }
    this.prepareSpareIfDue();
  }

  /**
   * Writes one record (`chunks` are its body) and fdatasyncs it, in a new segment whose
   * header repeats `hardState` when the record does not fit in the active one.
   */
  async append(options: {
    readonly chunks: Uint8Array[];
    readonly hardState: HardState | null;
    readonly maxEntryIndex: number;
  }): Promise<void> {
    let recordBytes = RECORD_HEADER_BYTES;
    for (const chunk of options.chunks) recordBytes += chunk.length;
    const active = this.activeSegment();
    const holdsRecords = active.info.recordCount > 1;
    const sealBytes = active.info.format.recycled ? SEAL_RECORD_BYTES : 0;
    const neededBytes = active.info.sizeBytes + recordBytes + sealBytes;
    if (holdsRecords && neededBytes > this.capacityOf(active.info)) {
      await this.rotate(options.hardState);
    }
    const target = this.activeSegment();
    await this.writeRecord(target, options.chunks, { datasync: !this.skipsRecordDatasync });
    target.info.maxEntryIndex = Math.max(target.info.maxEntryIndex, options.maxEntryIndex);
    this.prepareSpareIfDue();
  }

  /** How many of the oldest segments hold only entries at or below `index`. */
  coveredSegmentCount(index: number): number {
    // The active segment stays, it is being written.
    let count = 0;
    while (count < this.segments.length - 1 && this.segments[count]!.maxEntryIndex <= index) {
      count += 1;
    }
    return count;
  }

  /** Every segment but the active one. */
  inactiveSegmentCount(): number {
    return Math.max(0, this.segments.length - 1);
  }

  /**
   * Deletes the oldest `count` segments, oldest first, so the rest stays a suffix. Their
   * files are kept for later spares while fewer than RECYCLED_FILES_MAX are.
   */
  async deleteOldest(count: number, reason: string): Promise<void> {
    assert(count < this.segments.length || count === 0, 'the active segment is never deleted');
    // Bounded by the segment list, which shrinks by one each pass.
    for (let deleted = 0; deleted < count; deleted++) {
      const info = this.segments[0]!;
      const recycledPath = this.recycles(info)
        ? join(this.dataDir, `wal-recycle-${info.segmentSeq}.tmp`)
        : null;
      if (recycledPath === null) {
        await removeIfPresent(this.files, info.path);
      } else {
        try {
          await this.files.rename(info.path, recycledPath);
        } catch (error) {
          throw ioError('recycle segment', info.path, error);
        }
      }
      this.segments.shift();
      await fsyncDirectory(this.files, this.dataDir, this.io);
      if (recycledPath !== null) this.recycledPaths.push(recycledPath);
      this.io.segmentDeletedCount += 1;
      const kept = recycledPath === null ? '' : '; its file is kept for a later segment';
      this.log({ type: 'segmentDeleted', file: info.path, reason: `${reason}${kept}` });
    }
  }

  /**
   * Only a file of the full size is kept: records written into a smaller one would grow it
   * (a metadata change at every fdatasync, which preallocation avoids).
   */
  private recycles(info: SegmentInfo): boolean {
    return (
      !this.closed &&
      this.recycledPaths.length < RECYCLED_FILES_MAX &&
      info.fileBytes >= this.segmentBytesMax
    );
  }

  /** Recycled files left by a crash (or kept by the last close that failed): unread. */
  private async removeRecycledLeftovers(): Promise<void> {
    let names: string[];
    try {
      names = await this.files.readdir(this.dataDir);
    } catch (error) {
      throw ioError('list directory', this.dataDir, error);
    }
    for (const name of names) {
      if (RECYCLED_FILE_PATTERN.test(name)) {
        await removeIfPresent(this.files, join(this.dataDir, name));
      }
    }
  }

  /** Stops a spare being filled and removes it, and closes the active segment. */
  async close(): Promise<void> {
    this.closed = true;
    const spare = this.spare;
    this.spare = null;
    const result = await spare?.done;
    if (result !== undefined && 'handle' in result) await result.handle.close().catch(() => {});
    // Zeros or a released segment's records: nothing is lost, an open would delete them.
    await removeIfPresent(this.files, this.sparePath).catch(() => undefined);
    for (const path of this.recycledPaths.splice(0)) {
      await removeIfPresent(this.files, path).catch(() => undefined);
    }
    const active = this.active;
    this.active = null;
    try {
      await active?.handle.close();
    } catch (error) {
      throw ioError('close segment', active?.info.path ?? this.dataDir, error);
    }
  }

  /** The segment's size once preallocated: never less than its file, nor than the option. */
  private capacityOf(info: SegmentInfo): number {
    return Math.max(info.fileBytes, this.segmentBytesMax);
  }

  private activeSegment(): ActiveSegment {
    if (this.active === null) {
      throw new StorageError('CLOSED', 'the WAL writer is not started or already closed');
    }
    return this.active;
  }

  /** Opens the recovered last segment and zero-fills it up to its capacity. */
  private async resume(info: SegmentInfo): Promise<ActiveSegment> {
    let handle: FileHandle;
    try {
      handle = await this.files.open(info.path, this.recordOpenMode());
    } catch (error) {
      throw ioError('open segment', info.path, error);
    }
    const capacityBytes = this.capacityOf(info);
    try {
      if (info.fileBytes < capacityBytes) {
        // Written by an older format, or cut short by hand: the rest is preallocated now.
        const fromBytes = info.fileBytes;
        const toBytes = capacityBytes;
        await fillWithZeros({
          handle,
          path: info.path,
          fromBytes,
          toBytes,
          isCancelled: () => false,
          pace: () => FAST_FILL,
        });
        this.io.walPreallocatedBytes += toBytes - fromBytes;
        info.fileBytes = capacityBytes;
      }
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    return { info, handle, durableWrites: !this.skipsRecordDatasync };
  }

  /**
   * Records go through O_DSYNC, except under `ackBeforeDatasync`, whose point is records that
   * are not durable when acknowledged.
   */
  private recordOpenMode(): 'readWrite' | 'readWriteDurable' {
    return this.skipsRecordDatasync ? 'readWrite' : 'readWriteDurable';
  }

  /**
   * The new segment opened again for its records (see recordOpenMode), and the spare's
   * handle, through which only synced writes went (zeros, the header), closed.
   */
  private async reopenForRecords(info: SegmentInfo, spare: FileHandle): Promise<ActiveSegment> {
    let handle: FileHandle;
    try {
      handle = await this.files.open(info.path, this.recordOpenMode());
    } catch (error) {
      await spare.close().catch(() => undefined);
      throw ioError('open segment', info.path, error);
    }
    try {
      await spare.close();
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw ioError('close segment', info.path, error);
    }
    return { info, handle, durableWrites: !this.skipsRecordDatasync };
  }

  /**
   * Moves writing to a new segment made from the spare. A recycled active segment is sealed
   * first: the seal is durable before the next segment's name is.
   */
  private async rotate(hardState: HardState | null): Promise<void> {
    const previousSegment = this.active;
    if (previousSegment?.info.format.recycled === true) {
      const seal = new RecordBodyBuilder();
      seal.add({ type: 'sealed' });
      await this.writeRecord(previousSegment, seal.finish(), { datasync: true });
    }
    const spare = await this.takeSpare();
    const { handle } = spare;
    const segmentSeq = this.nextSegmentSeq;
    const path = join(this.dataDir, segmentFileName(segmentSeq));
    const info: SegmentInfo = {
      segmentSeq,
      path,
      sizeBytes: 0,
      fileBytes: spare.sizeBytes,
      recordCount: 0,
      maxEntryIndex: 0,
      format: { seed: recordSeed(segmentSeq), recycled: spare.recycled },
    };
    const segment = { info, handle, durableWrites: false };
    const builder = new RecordBodyBuilder();
    builder.add({ type: 'segmentHeader', formatVersion: STORAGE_FORMAT_VERSION, segmentSeq });
    if (spare.recycled) builder.add({ type: 'recycled' });
    if (hardState !== null) builder.add({ type: 'hardState', hardState });
    try {
      // The header is durable before the name: a `.wal` file always starts with one.
      await this.writeRecord(segment, builder.finish(), {
        datasync: true,
        pathForErrors: this.sparePath,
      });
      await renameSegment(this.files, this.sparePath, path);
      await fsyncDirectory(this.files, this.dataDir, this.io);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    const active = await this.reopenForRecords(info, handle);
    const previous = this.active;
    this.rotated ||= previous !== null;
    this.active = active;
    this.segments.push(info);
    this.nextSegmentSeq += 1;
    this.io.segmentCreatedCount += 1;
    if (spare.recycled) this.io.segmentRecycledCount += 1;
    try {
      await previous?.handle.close();
    } catch (error) {
      throw ioError('close segment', previous?.info.path ?? path, error);
    }
  }

  /** The spare, waiting for it (or making it) when it is not ready yet. */
  private async takeSpare(): Promise<Extract<SpareResult, { handle: FileHandle }>> {
    const spare = this.spare ?? this.fillSpare();
    this.spare = null;
    // A rotation away from a full segment that has to wait for zeros is a stall.
    if (!spare.ready && this.active !== null) this.io.segmentSpareMissCount += 1;
    spare.urgent = true;
    let result = await spare.done;
    // A failed background fill gets one more attempt, here, before the write fails.
    if ('error' in result && !this.closed) {
      const retry = this.fillSpare();
      retry.urgent = true;
      result = await retry.done;
    }
    if ('error' in result) throw result.error;
    return result;
  }

  private prepareSpareIfDue(): void {
    const active = this.active;
    if (this.spare !== null || this.closed || active === null) return;
    if (!this.rotated && active.info.sizeBytes * 2 < this.capacityOf(active.info)) return;
    this.spare = this.fillSpare();
  }

  /**
   * Gentle, unless a rotation waits, or the records would fill the active segment before the
   * zeros are done: the time left at the rate records arrived since the fill began, against
   * the time the zeros still need at the rate they went out so far, with a margin of 2.
   */
  private spareFillPace(spare: SpareFill, writtenBytes: number, remainingBytes: number): FillPace {
    const active = this.active;
    if (spare.urgent || active === null) return FAST_FILL;
    const elapsedMs = this.environment.monotonicMs() - spare.startedAtMs;
    const walBytes = this.io.walWrittenBytes - spare.walBytesAtStart;
    if (writtenBytes === 0 || walBytes <= 0 || elapsedMs <= 0) return GENTLE_FILL;
    const roomBytes = Math.max(0, this.capacityOf(active.info) - active.info.sizeBytes);
    const roomMs = roomBytes / (walBytes / elapsedMs);
    const zerosMs = remainingBytes / (writtenBytes / elapsedMs);
    return roomMs < 2 * zerosMs ? FAST_FILL : GENTLE_FILL;
  }

  /**
   * Starts making the spare, from a recycled file when there is one, else from zeros; the
   * result is kept, never thrown, until it is taken.
   */
  private fillSpare(): SpareFill {
    const path = this.sparePath;
    const sizeBytes = this.segmentBytesMax;
    const startedAtMs = this.environment.monotonicMs();
    const recycledPath = this.recycledPaths.shift();
    if (recycledPath !== undefined) {
      return new SpareFill(this.io.walWrittenBytes, startedAtMs, () =>
        this.reuseFile(recycledPath),
      );
    }
    return new SpareFill(this.io.walWrittenBytes, startedAtMs, (spare) =>
      createZeroFilledFile({
        files: this.files,
        path,
        sizeBytes,
        isCancelled: () => this.closed,
        pace: (writtenBytes, remainingBytes) =>
          this.spareFillPace(spare, writtenBytes, remainingBytes),
      }).then(
        (handle): SpareResult => {
          if (handle === null) return { error: preallocationCancelled(path) };
          this.io.walPreallocatedBytes += sizeBytes;
          return { handle, sizeBytes, recycled: false };
        },
        (error: unknown): SpareResult => ({ error }),
      ),
    );
  }

  /**
   * A recycled file as the spare. Not synced: a crash leaves the recycled name or the
   * spare's, and the next open deletes either.
   */
  private async reuseFile(recycledPath: string): Promise<SpareResult> {
    let handle: FileHandle | null = null;
    try {
      await this.files.rename(recycledPath, this.sparePath);
      handle = await this.files.open(this.sparePath, 'readWrite');
      const sizeBytes = await handle.sizeBytes();
      return { handle, sizeBytes, recycled: true };
    } catch (error) {
      await handle?.close().catch(() => undefined);
      return { error: ioError('reuse segment file', recycledPath, error) };
    }
  }

  /**
   * Writes one record after the last one and fdatasyncs it. A failure leaves the segment's
   * content unknown (after a failed fdatasync the kernel may have dropped the pages while
   * reads still return them), so the caller fails for good: GroupCommitStorage refuses
   * every later call and nothing more is written to this segment.
   */
  private async writeRecord(
    segment: ActiveSegment,
    chunks: Uint8Array[],
    how: { readonly datasync: boolean; readonly pathForErrors?: string },
  ): Promise<void> {
    const header = encodeRecordHeader(chunks, segment.info.format.seed);
    let byteCount = header.length;
    for (const chunk of chunks) byteCount += chunk.length;
    const { info, handle } = segment;
    try {
      await handle.write([header, ...chunks], info.sizeBytes);
      if (how.datasync && !segment.durableWrites) await handle.datasync();
    } catch (error) {
      throw ioError('append record', how.pathForErrors ?? info.path, error);
    }
    if (how.datasync) this.io.fsyncCount += 1;
    this.io.recordCount += 1;
    this.io.walWrittenBytes += byteCount;
    info.sizeBytes += byteCount;
    info.recordCount += 1;
    // A record larger than what was left grew the file (only ever into a fresh segment).
    info.fileBytes = Math.max(info.fileBytes, info.sizeBytes);
  }
}

/**
 * Gives the spare its segment name. link(2) refuses to replace an existing file, as a
 * rename would: whatever happens, no segment is ever overwritten. A crash between the two
 * calls leaves the spare's name too, which the next open deletes.
 */
async function renameSegment(files: FileSystem, from: string, to: string): Promise<void> {
  try {
    await files.link(from, to);
    await files.unlink(from);
  } catch (error) {
    throw ioError('rename segment', to, error);
  }
}
