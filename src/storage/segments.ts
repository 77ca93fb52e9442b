/**
 * WAL segment files: naming, listing, and the scan that sorts a damaged record into one of
 * two cases. Every record is written and fdatasynced before the next is written, so a crash
 * can damage only the last record of the last segment: that torn tail was never
 * acknowledged and is cut off. Damage anywhere else, or followed by any valid record, is
 * corruption of acknowledged data and stops the open, naming the file and byte offset.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { assert } from '../util/assert.ts';
import {
  decodeItems,
  ItemDecodeError,
  parseRecordAt,
  RECORD_MAGIC,
  type WalItem,
} from './codec.ts';
import { ioError, StorageError } from './errors.ts';

const SEGMENT_NAME_PATTERN = /^wal-(\d{20})\.wal$/;

export function segmentFileName(segmentSeq: number): string {
  assert(Number.isSafeInteger(segmentSeq) && segmentSeq >= 1, 'segment numbers start at 1');
  return `wal-${String(segmentSeq).padStart(20, '0')}.wal`;
}

export interface SegmentFile {
  readonly segmentSeq: number;
  readonly path: string;
}

/** Segments in order. Their numbers must be consecutive: a hole is a lost file. */
export async function listSegments(dataDir: string): Promise<SegmentFile[]> {
  let names: string[];
  try {
    names = await readdir(dataDir);
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
  for (let position = 1; position < segments.length; position++) {
    const previous = segments[position - 1]!;
    const current = segments[position]!;
    if (current.segmentSeq !== previous.segmentSeq + 1) {
      throw new StorageError(
        'CORRUPT_LOG',
        `WAL segment ${previous.segmentSeq + 1} is missing before ${current.path}`,
        { file: current.path, missingSegment: previous.segmentSeq + 1 },
      );
    }
  }
  return segments;
}

export interface ScannedRecord {
  readonly offsetBytes: number;
  readonly items: readonly WalItem[];
}

export interface SegmentScan {
  readonly records: readonly ScannedRecord[];
  /** Bytes up to the end of the last valid record. */
  readonly validBytes: number;
  /** Bytes after `validBytes`: a torn tail (only ever in the last segment). */
  readonly tornBytes: number;
}

/** Throws CORRUPT_RECORD for damage a crash cannot explain. */
export function scanSegment(file: Buffer, path: string, isLast: boolean): SegmentScan {
  const records: ScannedRecord[] = [];
  let offset = 0;
  while (offset < file.length) {
    const parsed = parseRecordAt(file, offset);
    if (!parsed.ok) {
      if (!isLast) throw corruptRecord(path, offset, `${parsed.reason} (not the last segment)`);
      const laterRecord = findValidRecordAfter(file, offset);
      if (laterRecord !== null) {
        throw corruptRecord(
          path,
          offset,
          `${parsed.reason}, yet a valid record follows at ${laterRecord}`,
        );
      }
      break;
    }
    records.push({ offsetBytes: offset, items: decodeBody(parsed.body, path, offset) });
    offset = parsed.endOffset;
  }
  assert(offset <= file.length, 'the scan stays within the file');
  return { records, validBytes: offset, tornBytes: file.length - offset };
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

/** The offset of the first verifiable record starting after `offset`, or null. */
function findValidRecordAfter(file: Buffer, offset: number): number | null {
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(RECORD_MAGIC, 0);
  let candidate = file.indexOf(magic, offset + 1);
  // Bounded by the file: each step moves at least one byte forward.
  while (candidate !== -1) {
    if (parseRecordAt(file, candidate).ok) return candidate;
    candidate = file.indexOf(magic, candidate + 1);
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
