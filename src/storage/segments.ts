/**
 * WAL segment files: naming, listing, and the scan that finds where a segment's records end
 * and sorts anything after them into one of three cases.
 *
 * Segments are preallocated (see preallocation.ts): a segment is zeros up to its full size
 * before its first record, so the records of any segment are followed by zeros. No record
 * starts with a zero byte (the magic), so the first offset that does not hold a valid record
 * ends the records, and what follows is:
 *
 * - only zeros: the clean end, the space the next records would have taken;
 * - damaged bytes (not all zero) with no valid record anywhere after them, in the last
 *   segment: a torn write. Every record is written and fdatasynced before the next one, and a
 *   segment is left for the next one only after its last record was fdatasynced, so a crash
 *   can damage only the last record of the last segment, and it was never acknowledged;
 * - anything else — damaged bytes in an earlier segment, or followed by a valid record — is
 *   corruption of acknowledged data: the scan names the file and byte offset, and recovery
 *   repairs it or stops the open (recovery.ts).
 *
 * A segment that is not the last one is complete: the next one exists only because writing
 * moved on to it. Its end is its last valid record, followed by zeros.
 *
 * A segment made from a recycled file (format 3, its header record says `recycled`) is not
 * zeros after its records but the file's earlier content: records seeded for another
 * segment, which never verify here (codec.ts, recordSeed), and torn remains of them. So
 * there, what follows the records is their end unless a valid record of this segment
 * follows it (damage, as above); a torn write of the last record looks like any other
 * stale byte and is left in place (writing resumes over it). A recycled segment that is
 * not the last one ends with a `sealed` record, written before the next segment was made:
 * without it, its last record was lost (damage), as bytes that are not zeros tell it in a
 * zero-filled segment.
 */
import { basename, join } from 'node:path';
import { assert } from '../util/assert.ts';
import {
  decodeItems,
  ItemDecodeError,
  parseRecordAt,
  RECORD_MAGIC,
  recordSeed,
  UNSEEDED,
  type WalItem,
} from './codec.ts';
import { ioError, StorageError } from './errors.ts';
import type { FileHandle, FileSystem } from './file-system.ts';

const SEGMENT_NAME_PATTERN = /^wal-(\d{20})\.wal$/;

export function segmentFileName(segmentSeq: number): string {
  assert(Number.isSafeInteger(segmentSeq) && segmentSeq >= 1, 'segment numbers start at 1');
  return `wal-${String(segmentSeq).padStart(20, '0')}.wal`;
}

export interface SegmentFile {
  readonly segmentSeq: number;
  readonly path: string;
}

/** The first segment whose predecessor is missing (a lost file), in segments sorted by number. */
export function firstSegmentGap(
  segments: readonly SegmentFile[],
): { readonly after: SegmentFile; readonly missingSegmentSeq: number } | null {
  for (let position = 1; position < segments.length; position++) {
    const previous = segments[position - 1]!;
    const current = segments[position]!;
    if (current.segmentSeq !== previous.segmentSeq + 1) {
      return { after: current, missingSegmentSeq: previous.segmentSeq + 1 };
    }
  }
  return null;
}

/** Every `wal-<seq>.wal`, oldest first, whether or not some are missing between them. */
export async function listSegmentsWithGaps(
  files: FileSystem,
  dataDir: string,
): Promise<SegmentFile[]> {
  let names: string[];
  try {
    names = await files.readdir(dataDir);
  } catch (error) {
    throw ioError('list directory', dataDir, error);
  }
  const segments: SegmentFile[] = [];
  for (const name of names) {
    const match = SEGMENT_NAME_PATTERN.exec(name);
    if (match === null) continue;
    segments.push({ segmentSeq: Number(match[1]), path: join(dataDir, name) });
  }
  segments.sort((left, right) => left.segmentSeq - right.segmentSeq);
  return segments;
}

/** How a segment's records verify, and what may follow them (see the top of this file). */
export interface SegmentFormat {
  /** Every record's checksum starts from it: UNSEEDED before format 3. */
  readonly seed: number;
  /** Stale bytes of the file's earlier life may follow the records, not zeros. */
  readonly recycled: boolean;
}

/** Format 1 and 2 segments; format 3 ones made from zeros read the same but seeded. */
export const ZERO_FILLED_UNSEEDED: SegmentFormat = { seed: UNSEEDED, recycled: false };

/**
 * The format of `file`, segment number `segmentSeq`, from its header record: seeded with
 * the segment's number (format 3) or not (format 1 and 2). A damaged header leaves the
 * records after it to tell; none does, and the segment reads as unseeded, as it always did.
 */
export function segmentFormat(file: Buffer, segmentSeq: number): SegmentFormat {
  const seed = recordSeed(segmentSeq);
  const header = parseRecordAt(file, 0, seed);
  if (header.ok) {
    let recycled = false;
    try {
      recycled = decodeItems(header.body).some((item) => item.type === 'recycled');
    } catch (error) {
      if (!(error instanceof ItemDecodeError)) throw error;
      // The scan reports the undecodable header.
    }
    return { seed, recycled };
  }
  if (parseRecordAt(file, 0, UNSEEDED).ok) return ZERO_FILLED_UNSEEDED;
  const end = nonZeroEnd(file, 0);
  const seeded = end > 0 && findValidRecordAfter(file, 0, end, seed) !== null;
  return seeded ? { seed, recycled: false } : ZERO_FILLED_UNSEEDED;
}

/** The format of a whole segment file named `wal-<seq>.wal`; unseeded for any other name. */
function formatFromName(file: Buffer, path: string): SegmentFormat {
  const match = SEGMENT_NAME_PATTERN.exec(basename(path));
  return match === null ? ZERO_FILLED_UNSEEDED : segmentFormat(file, Number(match[1]));
}

export interface ScannedRecord {
  readonly offsetBytes: number;
  readonly items: readonly WalItem[];
}

export interface SegmentScan {
  readonly records: readonly ScannedRecord[];
  /** Bytes up to the end of the last valid record: where the next record would go. */
  readonly validBytes: number;
  /**
   * Damaged bytes after `validBytes`, up to the last nonzero byte of the file: a torn write
   * (only ever in the last segment). Zeros after the records are preallocated space.
   */
  readonly tornBytes: number;
  /** Corruption a crash cannot explain, when the scan was asked to report it (see below). */
  readonly damage: SegmentDamage | null;
}

export interface SegmentDamage {
  /** Where the first record that fails verification starts: the records end here. */
  readonly offsetBytes: number;
  readonly reason: string;
  /** The next record that verifies, or null when none follows in this segment. */
  readonly resumeBytes: number | null;
}

/**
 * Throws CORRUPT_RECORD for damage a crash cannot explain, or with `reportsDamage` returns
 * the records before it and where it is (recovery then repairs). `zeroFromBytes` says where
 * the file is known to hold only zeros (see `readSegmentFile`), so they need no second look.
 */
export function scanSegment(
  file: Buffer,
  path: string,
  isLast: boolean,
  zeroFromBytes = file.length,
  reportsDamage = false,
  format: SegmentFormat = formatFromName(file, path),
): SegmentScan {
  const records: ScannedRecord[] = [];
  let offset = 0;
  let failure = 'damaged bytes';
  // Bounded: each record moves the offset forward by at least its header.
  while (offset < file.length) {
    const parsed = parseRecordAt(file, offset, format.seed);
    if (!parsed.ok) {
      failure = parsed.reason;
      break;
    }
    records.push({ offsetBytes: offset, items: decodeBody(parsed.body, path, offset) });
    offset = parsed.endOffset;
  }
  const damageEnd = nonZeroEnd(file, offset, Math.max(offset, zeroFromBytes));
  assert(damageEnd >= offset && damageEnd <= file.length, 'damage lies after the records');
  const laterRecord =
    damageEnd > offset ? findValidRecordAfter(file, offset, damageEnd, format.seed) : null;
  // Past the last segment's records, bytes that are not zeros are a torn write; in a
  // recycled segment they may be stale too. An earlier segment ended cleanly: zeros follow
  // its records, or in a recycled one its last record is the seal.
  const endUnproven = format.recycled
    ? !isLast && records[records.length - 1]?.items.some((item) => item.type === 'sealed') !== true
    : !isLast && damageEnd > offset;
  if (laterRecord !== null || endUnproven) {
    const reason =
      laterRecord !== null
        ? `${failure}, yet a valid record follows at ${laterRecord}`
        : format.recycled
          ? `${failure} (not the last segment, and its last record is not the seal)`
          : `${failure} (not the last segment)`;
    if (!reportsDamage) throw corruptRecord(path, offset, reason);
    const damage = { offsetBytes: offset, reason, resumeBytes: laterRecord };
    return { records, validBytes: offset, tornBytes: 0, damage };
  }
  // Stale bytes are left where they are: the next record is written over them.
  const tornBytes = format.recycled ? 0 : damageEnd - offset;
  return { records, validBytes: offset, tornBytes, damage: null };
}

const ZERO_PROBE = Buffer.alloc(64 * 1024);

/**
 * The end of the last nonzero byte in [from, to), or `from` when that range holds only
 * zeros. Compares 64 KiB at a time (memcmp speed): 64 MiB of zeros cost a few milliseconds.
 */
export function nonZeroEnd(file: Buffer, from: number, to = file.length): number {
  assert(from >= 0 && from <= to && to <= file.length, 'the search lies within the file');
  let end = to;
  // Bounded: each pass moves `end` back by at least one byte, never below `from`.
  while (end > from) {
    const start = Math.max(from, end - ZERO_PROBE.length);
    if (file.compare(ZERO_PROBE, 0, end - start, start, end) !== 0) {
      let position = end;
      while (position > start && file[position - 1] === 0) position -= 1;
      assert(position > start, 'a chunk that differs from zeros holds a nonzero byte');
      return position;
    }
    end = start;
  }
  return from;
}

const READ_CHUNK_BYTES = 1 << 20;

export interface SegmentFileContent {
  /** As long as the file; every byte from `contentBytes` on is zero. */
  readonly bytes: Buffer;
  /** The end of the last nonzero byte. */
  readonly contentBytes: number;
}

/**
 * Reads a segment without paying for its preallocated zeros: they are found reading back
 * from the end through a 1 MiB scratch buffer, and never copied. The buffer comes from
 * `Buffer.alloc`, whose large allocations are zero pages the process touches only where the
 * content is read in, so a mostly empty 64 MiB segment costs neither 64 MiB of memory nor
 * (measured) the ~50 ms of reading it whole.
 */
export async function readSegmentFile(
  files: FileSystem,
  path: string,
): Promise<SegmentFileContent> {
  let handle: FileHandle | null = null;
  try {
    handle = await files.open(path, 'read');
    const fileBytes = await handle.sizeBytes();
    const scratch = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, fileBytes));
    let contentBytes = 0;
    // Bounded: each pass moves `end` back by one chunk, or finds the content's end.
    for (let end = fileBytes; end > 0; ) {
      const start = Math.max(0, end - READ_CHUNK_BYTES);
      await readExactly(handle, scratch.subarray(0, end - start), start);
      const chunkContentBytes = nonZeroEnd(scratch, 0, end - start);
      if (chunkContentBytes > 0) {
        contentBytes = start + chunkContentBytes;
        break;
      }
      end = start;
    }
    assert(contentBytes <= fileBytes, 'the content lies within the file');
    const bytes = Buffer.alloc(fileBytes);
    await readExactly(handle, bytes.subarray(0, contentBytes), 0);
    return { bytes, contentBytes };
  } catch (error) {
    throw ioError('read segment', path, error);
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

async function readExactly(handle: FileHandle, target: Buffer, position: number): Promise<void> {
  let doneBytes = 0;
  // Bounded: each pass reads at least one byte, or throws.
  while (doneBytes < target.length) {
    const bytesRead = await handle.read(target.subarray(doneBytes), position + doneBytes);
    if (bytesRead === 0) throw new Error('the file became shorter while it was read');
    doneBytes += bytesRead;
  }
}

function decodeBody(body: Buffer, path: string, offset: number): WalItem[] {
  try {
    return decodeItems(body);
  } catch (error) {
    // The checksum matched: these bytes were written as they are. Not a torn write.
    if (error instanceof ItemDecodeError) {
      throw corruptRecord(path, offset, `undecodable record: ${error.message}`);
    }
    throw error;
  }
}

/**
 * The offset of the first verifiable record starting after `offset` and before `endBytes`
 * (past which there are only zeros, and no record starts with a zero byte), or null.
 */
function findValidRecordAfter(
  file: Buffer,
  offset: number,
  endBytes: number,
  seed: number,
): number | null {
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(RECORD_MAGIC, 0);
  assert(
    magic.every((byte) => byte !== 0),
    'no byte of the magic is zero',
  );
  const region = file.subarray(0, endBytes);
  let candidate = region.indexOf(magic, offset + 1);
  // Bounded by the region: each step moves at least one byte forward.
  while (candidate !== -1) {
    if (parseRecordAt(file, candidate, seed).ok) return candidate;
    candidate = region.indexOf(magic, candidate + 1);
  }
  return null;
}

export function corruptRecord(path: string, offsetBytes: number, reason: string): StorageError {
  return new StorageError(
    'CORRUPT_RECORD',
    `corrupt WAL record in ${path} at byte ${offsetBytes}: ${reason}`,
    { file: path, offsetBytes, reason },
  );
}
