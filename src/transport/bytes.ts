/**
 * Bounds-checked primitives under the codec: unsigned LEB128 varints for indexes, terms and
 * lengths (small numbers dominate, so most take one byte), length-prefixed UTF-8 strings and
 * raw byte runs.
 *
 * Encoding takes two passes over the same code: a `SizeCounter` measures the frame, then a
 * `BufferWriter` fills one exactly sized buffer, so entry data is copied once and never
 * through a growing buffer. Every read checks the remaining input first, so a lying length
 * can neither read out of bounds nor make us allocate more than the input holds.
 */
import { assert } from '../util/assert.ts';
import { CodecError } from './errors.ts';

/** 8 groups of 7 bits hold every safe integer (53 bits). */
const varintBytesMax = 8;

/** Lone UTF-16 surrogates have no UTF-8 form; they would not survive a round trip. */
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function varintBytes(value: number): number {
  let byteCount = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    byteCount++;
  }
  return byteCount;
}

/** The surface both passes share; a frame writer is written once against it. */
export interface Writer {
  u8(value: number): void;
  varint(value: number): void;
  /** A length-prefixed UTF-8 string. */
  string(value: string): void;
  /** A length-prefixed byte run. */
  bytes(value: Uint8Array): void;
  /** Bytes with no length prefix: the reader knows their length from elsewhere. */
  raw(value: Uint8Array): void;
}

export class SizeCounter implements Writer {
  byteCount = 0;
  /** Of `byteCount`, the bytes of runs a `GatherWriter` references instead of copying. */
  referencedBytes = 0;

  /** `referenceBytesMin`: runs this long are counted as referenced (Infinity: none). */
  constructor(private readonly referenceBytesMin = Number.POSITIVE_INFINITY) {}

  u8(): void {
    this.byteCount += 1;
  }
  varint(value: number): void {
    this.byteCount += varintBytes(value);
  }
  string(value: string): void {
    const length = Buffer.byteLength(value, 'utf8');
    this.byteCount += varintBytes(length) + length;
  }
  bytes(value: Uint8Array): void {
    this.byteCount += varintBytes(value.byteLength) + value.byteLength;
    if (value.byteLength >= this.referenceBytesMin) this.referencedBytes += value.byteLength;
  }
  raw(value: Uint8Array): void {
    this.byteCount += value.byteLength;
  }
}

export class BufferWriter implements Writer {
  offset: number;

  /** Writes into `target` from `offset`; the caller sized it with a `SizeCounter`. */
  constructor(
    readonly target: Buffer,
    offset: number,
  ) {
    this.offset = offset;
  }

  u8(value: number): void {
    assert(this.offset < this.target.length, 'the writer stays inside its sized buffer');
    this.target[this.offset++] = value;
  }

  varint(value: number): void {
    assert(this.offset + varintBytes(value) <= this.target.length, 'varint fits the buffer');
    while (value >= 0x80) {
      this.target[this.offset++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.target[this.offset++] = value;
  }

  string(value: string): void {
    const length = Buffer.byteLength(value, 'utf8');
    this.varint(length);
    const written = this.target.write(value, this.offset, length, 'utf8');
    assert(written === length, 'a string is written whole');
    this.offset += length;
  }

  bytes(value: Uint8Array): void {
    this.varint(value.byteLength);
    this.raw(value);
  }

  raw(value: Uint8Array): void {
    assert(this.offset + value.byteLength <= this.target.length, 'bytes fit the buffer');
    this.target.set(value, this.offset);
    this.offset += value.byteLength;
  }
}

/**
 * Writes like a `BufferWriter`, except that byte runs of at least `referenceBytesMin` are not
 * copied: the encoding comes out as pieces, slices of the target between references to the
 * runs themselves, for one gathered write (writev). The target holds only the copied bytes,
 * as measured by a `SizeCounter` with the same threshold.
 */
export class GatherWriter extends BufferWriter {
  private readonly pieces: Uint8Array[] = [];
  private pieceStart: number;

  constructor(
    target: Buffer,
    offset: number,
    private readonly referenceBytesMin: number,
  ) {
    super(target, offset);
    this.pieceStart = 0;
  }

  override bytes(value: Uint8Array): void {
    if (value.byteLength < this.referenceBytesMin) {
      super.bytes(value);
      return;
    }
    this.varint(value.byteLength);
    this.pieces.push(this.target.subarray(this.pieceStart, this.offset), value);
    this.pieceStart = this.offset;
  }

  /**
   * The pieces in wire order, the first a slice of the target from its start (a frame
   * never begins with a byte run); call once, after the last write.
   */
  finish(): [Buffer, ...Uint8Array[]] {
    if (this.offset > this.pieceStart) {
      this.pieces.push(this.target.subarray(this.pieceStart, this.offset));
    }
    const first = this.pieces[0];
    assert(
      first instanceof Buffer && first.byteOffset === this.target.byteOffset,
      'the first piece heads the target',
    );
    return this.pieces as [Buffer, ...Uint8Array[]];
  }
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export class ByteReader {
  offset: number;
  readonly end: number;

  /**
   * `viewRuns`: byte runs come back as views of `source` instead of copies, for a caller
   * whose source is its own exactly sized buffer, which the decoded values may then keep.
   */
  constructor(
    readonly source: Uint8Array,
    offset = 0,
    end = source.byteLength,
    private readonly viewRuns = false,
  ) {
    assert(offset >= 0 && offset <= end, 'the reader starts inside its input');
    assert(end <= source.byteLength, 'the reader ends inside its input');
    this.offset = offset;
    this.end = end;
  }

  get remainingBytes(): number {
    return this.end - this.offset;
  }

  u8(what: string): number {
    this.need(1, what);
    return this.source[this.offset++]!;
  }

  bool(what: string): boolean {
    const value = this.u8(what);
    if (value > 1) throw invalid(`${what} is a boolean byte (got ${value})`, this.offset - 1);
    return value === 1;
  }

  /** A canonical (shortest form) varint holding a safe integer. */
  varint(what: string): number {
    const start = this.offset;
    let value = 0;
    let scale = 1;
    for (let position = 0; position < varintBytesMax; position++) {
      const byte = this.u8(what);
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (byte === 0 && position > 0) throw invalid(`${what} is an overlong varint`, start);
        if (!Number.isSafeInteger(value)) throw invalid(`${what} exceeds 2^53 - 1`, start);
        return value;
      }
      scale *= 0x80;
    }
    throw invalid(`${what} is a varint longer than ${varintBytesMax} bytes`, start);
  }

  /** A varint that counts items or bytes, at most `limit`. */
  length(what: string, limit: number): number {
    const start = this.offset;
    const value = this.varint(what);
    if (value > limit) {
      throw new CodecError('LIMIT_EXCEEDED', `${what} ${value} exceeds ${limit}`, {
        offset: start,
        value,
        limit,
      });
    }
    return value;
  }

  /** A length-prefixed string of at most `byteLimit` UTF-8 bytes. */
  string(what: string, byteLimit: number): string {
    const length = this.length(`${what} length`, byteLimit);
    this.need(length, what);
    const start = this.offset;
    this.offset += length;
    try {
      return utf8Decoder.decode(this.source.subarray(start, start + length));
    } catch {
      throw new CodecError('INVALID_UTF8', `${what} is not valid UTF-8`, { offset: start });
    }
  }

  /** A length-prefixed byte run, copied so the result does not pin the input buffer (unless `viewRuns`). */
  bytes(what: string): Uint8Array {
    const length = this.length(`${what} length`, this.remainingBytes);
    if (!this.viewRuns) return this.raw(length, what);
    this.need(length, what);
    const view = this.source.subarray(this.offset, this.offset + length);
    this.offset += length;
    return view;
  }

  /** `byteCount` bytes, copied into their own exactly sized buffer. */
  raw(byteCount: number, what: string): Uint8Array {
    this.need(byteCount, what);
    const copy = new Uint8Array(byteCount);
    copy.set(this.source.subarray(this.offset, this.offset + byteCount));
    this.offset += byteCount;
    return copy;
  }

  /** The rest of the input as a view, for callers that copy or consume it at once. */
  restView(): Uint8Array {
    const view = this.source.subarray(this.offset, this.end);
    this.offset = this.end;
    return view;
  }

  expectEnd(what: string): void {
    if (this.offset !== this.end) {
      throw new CodecError('TRAILING_BYTES', `${this.end - this.offset} bytes follow ${what}`, {
        offset: this.offset,
      });
    }
  }

  private need(byteCount: number, what: string): void {
    if (byteCount > this.end - this.offset) {
      throw new CodecError('TRUNCATED', `input ends inside ${what}`, {
        offset: this.offset,
        neededBytes: byteCount,
        remainingBytes: this.end - this.offset,
      });
    }
  }
}

export function invalid(message: string, offset: number): CodecError {
  return new CodecError('INVALID_VALUE', message, { offset });
}

/** True when the string has a UTF-8 form that decodes back to the same string. */
export function isWellFormedString(value: string): boolean {
  return !loneSurrogate.test(value);
}
