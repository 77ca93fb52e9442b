/**
 * The WAL's byte format. A segment is a sequence of records; every record is written by one
 * `write` and made durable by one `fdatasync`, so a crash can tear only the last one:
 *
 *   record = magic u32 | bodyLength u32 | crc32(seed ‖ bodyLength bytes ‖ body) u32 | body
 *   body   = item+
 *   item   = 1 segmentHeader: formatVersion u32, segmentSeq u64
 *          | 2 hardState:     term u64, commit u64, hasVote u8, voteLength u16, vote utf-8
 *          | 3 truncate:      fromIndex u64           (drop entries >= fromIndex)
 *          | 4 reset:         index u64, term u64     (log restarts after a leader's snapshot)
 *          | 5 entries:       firstIndex u64, count u32, count × (term u64, kind u8,
 *                             dataLength u32, data)
 *          | 6 recycled                            (in the header record: see below)
 *          | 7 sealed                              (the segment's last record: see below)
 *
 * The seed (format 3) is the segment's number as u64, so a record verifies only in the
 * segment it was written for; format 1 and 2 records have none. A segment made from a
 * recycled file (wal-writer.ts) still holds the records of the file's earlier life after
 * its own: its header record says so (`recycled`), and its last record, written before the
 * WAL moves on to the next segment, is a `sealed` item (recovery tells a lost last record
 * from the end that way, as zeros tell it in a zero-filled segment).
 *
 * All integers little-endian; u64 values are safe integers (< 2^53). The checksum covers the
 * length too, so a flipped length bit is caught. Entry data stays opaque: large payloads are
 * handed to `writev` as they are, never copied or inspected.
 */
import type { Entry, EntryKind, HardState } from '../raft/types.ts';
import { assert, assertSafeNatural, unreachable } from '../util/assert.ts';
import { crc32 } from '../util/crc32.ts';

export const RECORD_MAGIC = 0xab5ca571;
export const RECORD_HEADER_BYTES = 12;

/** A `sealed` record: its body is the item's type byte alone. */
export const SEAL_RECORD_BYTES = RECORD_HEADER_BYTES + 1;
/** A record body never exceeds this: the length field is u32, and recovery reads whole files. */
export const RECORD_BODY_BYTES_MAX = 1 << 30;

const ItemType = {
  SegmentHeader: 1,
  HardState: 2,
  Truncate: 3,
  Reset: 4,
  Entries: 5,
  Recycled: 6,
  Sealed: 7,
} as const;

export type WalItem =
  | { readonly type: 'segmentHeader'; readonly formatVersion: number; readonly segmentSeq: number }
  | { readonly type: 'hardState'; readonly hardState: HardState }
  | { readonly type: 'truncate'; readonly fromIndex: number }
  | { readonly type: 'reset'; readonly index: number; readonly term: number }
  | { readonly type: 'entries'; readonly entries: readonly Entry[] }
  | { readonly type: 'recycled' }
  | { readonly type: 'sealed' };

const KIND_CODES: Readonly<Record<EntryKind, number>> = { normal: 0, noop: 1, config: 2 };
const KINDS_BY_CODE: readonly EntryKind[] = ['normal', 'noop', 'config'];
const TWO_POW_32 = 0x1_0000_0000;
/** Payloads at least this large are referenced by `writev` instead of copied. */
const INLINE_DATA_BYTES_MAX = 4096;
/**
 * The first scratch is small enough to come from Buffer's shared pool: a group's record body
 * is mostly a few headers (large payloads are referenced), and a fresh 64 KiB ArrayBuffer per
 * group commit counted as external memory that brought on V8's mark-compacts. Later scratches
 * double up to SCRATCH_BYTES_MAX.
 */
const SCRATCH_BYTES_FIRST = 1024;
const SCRATCH_BYTES_MAX = 64 * 1024;
const VOTE_BYTES_MAX = 0xffff;

/** Builds a record body as a list of chunks, copying only small values. */
export class RecordBodyBuilder {
  private readonly chunks: Uint8Array[] = [];
  private scratch: Buffer = Buffer.allocUnsafe(SCRATCH_BYTES_FIRST);
  private scratchStart = 0;
  private position = 0;
  private totalBytes = 0;

  get byteLength(): number {
    return this.totalBytes;
  }

  add(item: WalItem): void {
    switch (item.type) {
      case 'segmentHeader':
        this.u8(ItemType.SegmentHeader);
        this.u32(item.formatVersion);
        this.u64(item.segmentSeq);
        return;
      case 'hardState':
        this.addHardState(item.hardState);
        return;
      case 'truncate':
        this.u8(ItemType.Truncate);
        this.u64(item.fromIndex);
        return;
      case 'reset':
        this.u8(ItemType.Reset);
        this.u64(item.index);
        this.u64(item.term);
        return;
      case 'entries':
        this.addEntries(item.entries);
        return;
      case 'recycled':
        this.u8(ItemType.Recycled);
        return;
      case 'sealed':
        this.u8(ItemType.Sealed);
        return;
      default:
        unreachable(item, 'WAL item');
    }
  }

  /** The body's chunks, in order; the builder must not be used afterwards. */
  finish(): Uint8Array[] {
    this.flushScratch();
    const chunks = this.chunks.splice(0);
    let sum = 0;
    for (const chunk of chunks) sum += chunk.length;
    assert(sum === this.totalBytes, 'chunks add up to the body length');
    return chunks;
  }

  private addHardState(hardState: HardState): void {
    const vote = hardState.vote === null ? null : Buffer.from(hardState.vote, 'utf8');
    assert(vote === null || vote.length <= VOTE_BYTES_MAX, 'a vote fits a u16 length');
    this.u8(ItemType.HardState);
    this.u64(hardState.term);
    this.u64(hardState.commit);
    this.u8(vote === null ? 0 : 1);
    this.u16(vote === null ? 0 : vote.length);
    if (vote !== null) this.bytes(vote);
  }

  private addEntries(entries: readonly Entry[]): void {
    assert(entries.length > 0, 'an entries item holds at least one entry');
    const first = entries[0]!;
    this.u8(ItemType.Entries);
    this.u64(first.index);
    this.u32(entries.length);
    for (let offset = 0; offset < entries.length; offset++) {
      const entry = entries[offset]!;
      assert(entry.index === first.index + offset, 'entries in one item are dense');
      this.u64(entry.term);
      this.u8(KIND_CODES[entry.kind]);
      this.u32(entry.data.length);
      this.bytes(entry.data);
    }
  }

  private reserve(byteCount: number): void {
    if (this.position + byteCount <= this.scratch.length) return;
    this.flushScratch();
    const grownBytes = Math.min(this.scratch.length * 2, SCRATCH_BYTES_MAX);
    this.scratch = Buffer.allocUnsafe(Math.max(grownBytes, byteCount));
    this.scratchStart = 0;
    this.position = 0;
  }

  private flushScratch(): void {
    if (this.position > this.scratchStart) {
      this.chunks.push(this.scratch.subarray(this.scratchStart, this.position));
    }
    this.scratchStart = this.position;
  }

  private u8(value: number): void {
    this.reserve(1);
    this.scratch[this.position] = value;
    this.position += 1;
    this.totalBytes += 1;
  }

  private u16(value: number): void {
    this.reserve(2);
    this.scratch.writeUInt16LE(value, this.position);
    this.position += 2;
    this.totalBytes += 2;
  }

  private u32(value: number): void {
    this.reserve(4);
    this.scratch.writeUInt32LE(value, this.position);
    this.position += 4;
    this.totalBytes += 4;
  }

  private u64(value: number): void {
    assertSafeNatural(value, 'a u64 field');
    this.reserve(8);
    this.scratch.writeUInt32LE(value % TWO_POW_32, this.position);
    this.scratch.writeUInt32LE(Math.floor(value / TWO_POW_32), this.position + 4);
    this.position += 8;
    this.totalBytes += 8;
  }

  private bytes(data: Uint8Array): void {
    if (data.length >= INLINE_DATA_BYTES_MAX) {
      this.flushScratch();
      this.chunks.push(data);
    } else {
      this.reserve(data.length);
      this.scratch.set(data, this.position);
      this.position += data.length;
    }
    this.totalBytes += data.length;
  }
}

/**
 * A record's checksum starts from its segment's seed (format 3): the CRC of the segment's
 * number, so that a record written for one segment fails verification in any other.
 *
 * Why: a recycled segment file still holds its earlier life's records after the new ones.
 * Those records are well framed and their checksums match their bodies, and their indexes
 * could even continue the new segment's log (a file recycled after a leader change, or one
 * whose old records happen to follow the last new one), so neither the frame nor index
 * continuity can tell them apart; the seed can. Numbers only grow within a directory's
 * life (a number is used again only for a last segment deleted at open because it held no
 * record, and recycled files never outlive an open), so no file holds a stale record seeded
 * with its current number.
 */
export function recordSeed(segmentSeq: number): number {
  assertSafeNatural(segmentSeq, 'a segment number');
  const bytes = Buffer.allocUnsafe(8);
  bytes.writeUInt32LE(segmentSeq % TWO_POW_32, 0);
  bytes.writeUInt32LE(Math.floor(segmentSeq / TWO_POW_32), 4);
  return crc32(bytes);
}

/** Format 1 and 2 records: their checksum covers only the length and the body. */
export const UNSEEDED = 0;

/**
 * The 12-byte record header for a body made of `chunks`; the checksum is computed here,
 * starting from `seed` (see recordSeed).
 */
export function encodeRecordHeader(chunks: readonly Uint8Array[], seed = UNSEEDED): Buffer {
  let bodyLength = 0;
  for (const chunk of chunks) bodyLength += chunk.length;
  assert(bodyLength > 0, 'a record body is never empty');
  assert(bodyLength <= RECORD_BODY_BYTES_MAX, 'a record body fits the length field');
  const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  header.writeUInt32LE(RECORD_MAGIC, 0);
  header.writeUInt32LE(bodyLength, 4);
  let checksum = crc32(header.subarray(4, 8), seed);
  for (const chunk of chunks) checksum = crc32(chunk, checksum);
  header.writeUInt32LE(checksum, 8);
  return header;
}

/** A whole record in one buffer (tests, snapshot files and segment headers). */
export function encodeRecord(items: readonly WalItem[], seed = UNSEEDED): Buffer {
  const builder = new RecordBodyBuilder();
  for (const item of items) builder.add(item);
  const chunks = builder.finish();
  return Buffer.concat([encodeRecordHeader(chunks, seed), ...chunks]);
}

export type RecordParse =
  | { readonly ok: true; readonly body: Buffer; readonly endOffset: number }
  | { readonly ok: false; readonly reason: string };

/** Checks the record starting at `offset` against `seed`; never throws on bad bytes. */
export function parseRecordAt(file: Buffer, offset: number, seed = UNSEEDED): RecordParse {
  assert(offset >= 0 && offset <= file.length, 'the offset lies within the file');
  if (file.length - offset < RECORD_HEADER_BYTES) {
    return { ok: false, reason: 'record header cut short' };
  }
  if (file.readUInt32LE(offset) !== RECORD_MAGIC) return { ok: false, reason: 'bad magic' };
  const bodyLength = file.readUInt32LE(offset + 4);
  if (bodyLength === 0 || bodyLength > RECORD_BODY_BYTES_MAX) {
    return { ok: false, reason: `impossible body length ${bodyLength}` };
  }
  const endOffset = offset + RECORD_HEADER_BYTES + bodyLength;
  if (endOffset > file.length) return { ok: false, reason: 'record body cut short' };
  const body = file.subarray(offset + RECORD_HEADER_BYTES, endOffset);
  const checksum = crc32(body, crc32(file.subarray(offset + 4, offset + 8), seed));
  if (checksum !== file.readUInt32LE(offset + 8)) {
    return { ok: false, reason: 'checksum mismatch' };
  }
  return { ok: true, body, endOffset };
}

/** Where a well-framed body does not decode: a bug or a forged record, never a torn write. */
export class ItemDecodeError extends Error {
  constructor(
    message: string,
    readonly bodyOffset: number,
  ) {
    super(message);
    this.name = 'ItemDecodeError';
  }
}

/** Decodes a verified record body. Entry data are views into `body`, not copies. */
export function decodeItems(body: Buffer): WalItem[] {
  const reader = new BodyReader(body);
  const items: WalItem[] = [];
  while (!reader.done()) items.push(readItem(reader));
  assert(items.length > 0, 'a verified body holds at least one item');
  return items;
}

function readItem(reader: BodyReader): WalItem {
  const type = reader.u8();
  switch (type) {
    case ItemType.SegmentHeader:
      return { type: 'segmentHeader', formatVersion: reader.u32(), segmentSeq: reader.u64() };
    case ItemType.HardState: {
      const term = reader.u64();
      const commit = reader.u64();
      const hasVote = reader.u8();
      const voteBytes = reader.bytes(reader.u16());
      if (hasVote > 1) throw reader.error(`bad vote flag ${hasVote}`);
      const vote = hasVote === 1 ? voteBytes.toString('utf8') : null;
      return { type: 'hardState', hardState: { term, vote, commit } };
    }
    case ItemType.Truncate:
      return { type: 'truncate', fromIndex: reader.u64() };
    case ItemType.Reset:
      return { type: 'reset', index: reader.u64(), term: reader.u64() };
    case ItemType.Entries:
      return { type: 'entries', entries: readEntries(reader) };
    case ItemType.Recycled:
      return { type: 'recycled' };
    case ItemType.Sealed:
      return { type: 'sealed' };
    default:
      throw reader.error(`unknown item type ${type}`);
  }
}

function readEntries(reader: BodyReader): Entry[] {
  const firstIndex = reader.u64();
  const count = reader.u32();
  if (count === 0) throw reader.error('an entries item with no entries');
  const entries: Entry[] = [];
  for (let offset = 0; offset < count; offset++) {
    const term = reader.u64();
    const kindCode = reader.u8();
    const kind = KINDS_BY_CODE[kindCode];
    if (kind === undefined) throw reader.error(`unknown entry kind ${kindCode}`);
    const data = reader.bytes(reader.u32());
    entries.push({ index: firstIndex + offset, term, kind, data });
  }
  return entries;
}

class BodyReader {
  private position = 0;
  constructor(private readonly body: Buffer) {}

  done(): boolean {
    return this.position === this.body.length;
  }

  error(message: string): ItemDecodeError {
    return new ItemDecodeError(message, this.position);
  }

  u8(): number {
    this.need(1);
    const value = this.body[this.position]!;
    this.position += 1;
    return value;
  }

  u16(): number {
    this.need(2);
    const value = this.body.readUInt16LE(this.position);
    this.position += 2;
    return value;
  }

  u32(): number {
    this.need(4);
    const value = this.body.readUInt32LE(this.position);
    this.position += 4;
    return value;
  }

  u64(): number {
    this.need(8);
    const low = this.body.readUInt32LE(this.position);
    const high = this.body.readUInt32LE(this.position + 4);
    if (high > 0x1f_ffff) throw this.error('a u64 field beyond the safe integers');
    this.position += 8;
    return high * TWO_POW_32 + low;
  }

  bytes(byteCount: number): Buffer {
    this.need(byteCount);
    const view = this.body.subarray(this.position, this.position + byteCount);
    this.position += byteCount;
    return view;
  }

  private need(byteCount: number): void {
    if (this.body.length - this.position < byteCount) {
      throw this.error(`item cut short: ${byteCount} bytes needed`);
    }
  }
}
