/**
 * The fields every client frame is made of (client-frames.ts): its bounds, its error, and the
 * reader that checks every length against the bytes left and its own bound before it reads.
 */
import { AbcastError } from '../util/errors.ts';

export const clientProtocolVersion = 1;

/** Bounds every decoder applies, whatever the peer announces. */
export const clientFrameLimits = {
  /** Version, type and requestId. */
  headerBytes: 6,
  tokenBytesMax: 512,
  pathBytesMax: 2048,
  headersMax: 32,
  headerNameBytesMax: 64,
  headerValueBytesMax: 1024,
  codeBytesMax: 64,
  messageBytesMax: 1024,
  nodeIdBytesMax: 255,
  /**
   * A run's client id, nonce, topics and keys: far above what the node accepts (its answer
   * to a longer one is a 400 that names the field), only so that no length is unbounded.
   */
  runFieldBytesMax: 1024,
  /** Messages in one broadcastRun frame (the node accepts fewer: a 400 names its limit). */
  runMessagesMax: 0xffff,
  /** An error result's details (a JSON object's text). */
  detailsBytesMax: 16 << 10,
  /** A frame is at most this (length prefix excluded) unless the decoder is given less. */
  frameBytesMax: (8 << 20) + (64 << 10),
} as const;

export type ClientFrameErrorCode =
  | 'frame_too_large'
  | 'frame_empty'
  | 'frame_malformed'
  | 'version_unsupported'
  | 'frame_type_unknown';

export class ClientFrameError extends AbcastError<ClientFrameErrorCode> {
  constructor(code: ClientFrameErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
    this.name = 'ClientFrameError';
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function malformed(message: string): ClientFrameError {
  return new ClientFrameError('frame_malformed', message);
}

/** The last string `FrameReader.memoString` decoded, and where its bytes lie. */
export class StringMemo {
  value = '';
  start = 0;
  /** 0: none yet (an empty string is never decoded). */
  byteCount = 0;
}

/** Reads one frame's body front to back; every read checks the bytes left first. */
export class FrameReader {
  private at = 0;
  private view: DataView;

  constructor(private frame: Uint8Array) {
    this.view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  }

  /** Bytes not read yet. */
  get remainingBytes(): number {
    return this.frame.length - this.at;
  }

  /**
   * Makes what is read from here on (views of bytes) outlive the buffer the frame came in:
   * reads on from a copy of the frame, or with `keepable` (the buffer is nobody else's to
   * reuse, and keeping it keeps little besides the frame alive) from the frame itself.
   * Either way views are plain Uint8Arrays.
   */
  detach(keepable = false): void {
    const frame = this.frame;
    // Not `slice()`: on a Buffer (what a socket read is) that is a view, not a copy.
    this.frame = keepable
      ? new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength)
      : new Uint8Array(frame);
    this.view = new DataView(this.frame.buffer, this.frame.byteOffset, this.frame.byteLength);
  }

  /** `what` is only turned into a sentence on failure: reads run once per message of a run. */
  private need(byteCount: number, what: string, lengthOf = false): void {
    if (this.frame.length - this.at < byteCount) {
      throw malformed(`the frame ends inside ${lengthOf ? `the length of ${what}` : what}`);
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.at++);
  }

  u16(what: string): number {
    this.need(2, what);
    const value = this.view.getUint16(this.at);
    this.at += 2;
    return value;
  }

  u32(what: string): number {
    this.need(4, what);
    const value = this.view.getUint32(this.at);
    this.at += 4;
    return value;
  }

  /** An unsigned 64-bit integer that a double holds exactly; a larger one is malformed. */
  u64(what: string): number {
    this.need(8, what);
    const high = this.view.getUint32(this.at);
    const low = this.view.getUint32(this.at + 4);
    this.at += 8;
    if (high > 0x1f_ffff) throw malformed(`${what} is over 2^53 - 1`);
    return high * 0x1_0000_0000 + low;
  }

  string(what: string, bytesMax: number): string {
    this.need(2, what, true);
    const byteCount = this.view.getUint16(this.at);
    this.at += 2;
    if (byteCount === 0) return '';
    if (byteCount > bytesMax) throw malformed(`${what} is over ${bytesMax} bytes`);
    return this.text(byteCount, what);
  }

  /**
   * As `string`, for fields that mostly repeat (a run's topics and keys): bytes equal to
   * those `memo` last read give its string again without decoding them. A memo serves one
   * reader.
   */
  memoString(what: string, bytesMax: number, memo: StringMemo): string {
    this.need(2, what, true);
    const byteCount = this.view.getUint16(this.at);
    this.at += 2;
    if (byteCount === 0) return '';
    if (byteCount > bytesMax) throw malformed(`${what} is over ${bytesMax} bytes`);
    this.need(byteCount, what);
    const frame = this.frame;
    const start = this.at;
    if (byteCount === memo.byteCount) {
      let at = 0;
      while (at < byteCount && frame[start + at] === frame[memo.start + at]) at++;
      if (at === byteCount) {
        this.at += byteCount;
        return memo.value;
      }
    }
    const value = this.text(byteCount, what);
    memo.value = value;
    memo.start = start;
    memo.byteCount = byteCount;
    return value;
  }

  bytes(what: string): Uint8Array {
    this.need(4, what, true);
    const byteCount = this.view.getUint32(this.at);
    this.at += 4;
    return this.raw(byteCount, what);
  }

  /** What is read: the frame, or after `detach` the buffer it reads on from. */
  get source(): Uint8Array {
    return this.frame;
  }

  /**
   * `bytes` without the view: skips u32-length bytes and answers where they start in
   * `source`; their length is `source`'s bytes up to where reading goes on (`offset`).
   */
  skipBytes(what: string): number {
    this.need(4, what, true);
    const byteCount = this.view.getUint32(this.at);
    this.at += 4;
    this.need(byteCount, what);
    const start = this.at;
    this.at += byteCount;
    return start;
  }

  /** Where the next read starts in `source`. */
  get offset(): number {
    return this.at;
  }

  headers(): Record<string, string> {
    const count = this.u16('the header count');
    if (count > clientFrameLimits.headersMax) {
      throw malformed(`a frame carries at most ${clientFrameLimits.headersMax} headers`);
    }
    const headers: Record<string, string> = {};
    for (let at = 0; at < count; at++) {
      const name = this.string('a header name', clientFrameLimits.headerNameBytesMax);
      if (!/^[a-z0-9-]+$/.test(name)) throw malformed(`header name "${name}" is not lower-case`);
      if (Object.hasOwn(headers, name)) throw malformed(`header ${name} is repeated`);
      headers[name] = this.string('a header value', clientFrameLimits.headerValueBytesMax);
    }
    return headers;
  }

  end(): void {
    if (this.at !== this.frame.length) {
      throw malformed(`${this.frame.length - this.at} bytes follow the frame's last field`);
    }
  }

  private text(byteCount: number, what: string): string {
    const bytes = this.raw(byteCount, what);
    try {
      return utf8.decode(bytes);
    } catch {
      throw malformed(`${what} is not UTF-8`);
    }
  }

  private raw(byteCount: number, what: string): Uint8Array {
    this.need(byteCount, what);
    const bytes = this.frame.subarray(this.at, this.at + byteCount);
    this.at += byteCount;
    return bytes;
  }
}
