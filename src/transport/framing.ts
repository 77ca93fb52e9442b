/**
 * Length-prefixed framing over a byte stream: each packet is preceded by its length as a
 * 32-bit big-endian integer. The splitter turns arbitrary socket chunks back into packets.
 *
 * Memory stays bounded by `packetBytesMax` whatever the peer sends: the length is judged as
 * soon as its four bytes are in, before anything is buffered for the body, and a body that
 * spans chunks is assembled into one buffer of the announced size instead of a growing list
 * (a peer trickling one byte per segment cannot make us hold a million tiny buffers).
 */
import { assert } from '../util/assert.ts';

export const lengthPrefixBytes = 4;

/** The largest length a 32-bit prefix can announce. */
export const packetBytesLimit = 0xffff_ffff;

export type FramingErrorCode = 'EMPTY_PACKET' | 'PACKET_TOO_LARGE';

export class FramingError extends Error {
  constructor(
    readonly code: FramingErrorCode,
    message: string,
    readonly details: Readonly<Record<string, number>>,
  ) {
    super(message);
    this.name = 'FramingError';
  }
}

export function writeLengthPrefix(target: Buffer, offset: number, byteCount: number): void {
  assert(byteCount > 0 && byteCount <= packetBytesLimit, 'a packet length fits the prefix');
  target.writeUInt32BE(byteCount, offset);
}

export class PacketSplitter {
  private readonly chunks: Uint8Array[] = [];
  /** Read position inside `chunks[0]`. */
  private chunkOffset = 0;
  private readonly header = new Uint8Array(lengthPrefixBytes);
  private headerFilledBytes = 0;
  private body: Uint8Array | null = null;
  private bodyFilledBytes = 0;
  private bufferedByteCount = 0;
  private lastPacketOwned = false;

  /** The limit may be raised once a peer is trusted (after its handshake). */
  constructor(public packetBytesMax: number) {
    assert(Number.isSafeInteger(packetBytesMax) && packetBytesMax > 0, 'packetBytesMax > 0');
    assert(packetBytesMax <= packetBytesLimit, 'packetBytesMax fits the length prefix');
  }

  /** Bytes received and not yet returned as packets (a partial body counts in full). */
  get bufferedBytes(): number {
    return this.bufferedByteCount + (this.body === null ? 0 : this.body.byteLength);
  }

  /** True when the stream stops inside a packet (or inside a length prefix). */
  get hasPartialPacket(): boolean {
    return this.headerFilledBytes > 0 || this.body !== null || this.bufferedByteCount > 0;
  }

  /**
   * Whether the packet `next` returned last fills a buffer of its own, assembled from
   * several chunks, which the caller may keep; otherwise it is a view of a pushed chunk.
   */
  get ownsLastPacket(): boolean {
    return this.lastPacketOwned;
  }

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.chunks.push(chunk);
    this.bufferedByteCount += chunk.byteLength;
  }

  /**
   * The next complete packet, or null when more bytes are needed. A packet that lies inside
   * one chunk comes back as a view of it, valid until the caller returns to the event loop.
   * Throws `FramingError` for an empty or oversized packet; the stream is then unusable.
   */
  next(): Uint8Array | null {
    if (this.body === null) {
      const byteCount = this.prefixInChunk() ?? (this.fillHeader() ? this.readLength() : null);
      if (byteCount === null) return null;
      const head = this.chunks[0];
      if (head !== undefined && head.byteLength - this.chunkOffset >= byteCount) {
        this.lastPacketOwned = false;
        return this.take(head, byteCount);
      }
      // Not zeroed: every byte is filled before the body is returned. A buffer of its own
      // (never a slice of Node's shared pool), so that what keeps it pins nothing else.
      const body = Buffer.allocUnsafeSlow(byteCount);
      this.body = new Uint8Array(body.buffer, body.byteOffset, byteCount);
      this.bodyFilledBytes = 0;
    }
    return this.fillBody();
  }

  /**
   * The next length when its whole prefix lies in the first chunk, read there (most packets
   * on a busy stream): no byte-by-byte copy into the header.
   */
  private prefixInChunk(): number | null {
    const head = this.chunks[0];
    const at = this.chunkOffset;
    if (this.headerFilledBytes !== 0 || head === undefined) return null;
    if (head.byteLength - at < lengthPrefixBytes) return null;
    const byteCount =
      head[at]! * 0x100_0000 + ((head[at + 1]! << 16) | (head[at + 2]! << 8) | head[at + 3]!);
    this.advance(head, lengthPrefixBytes);
    return this.checkedLength(byteCount);
  }

  private fillHeader(): boolean {
    while (this.headerFilledBytes < lengthPrefixBytes) {
      const head = this.chunks[0];
      if (head === undefined) return false;
      this.header[this.headerFilledBytes++] = head[this.chunkOffset]!;
      this.advance(head, 1);
    }
    return true;
  }

  private readLength(): number {
    const byteCount =
      this.header[0]! * 0x100_0000 +
      ((this.header[1]! << 16) | (this.header[2]! << 8) | this.header[3]!);
    this.headerFilledBytes = 0;
    return this.checkedLength(byteCount);
  }

  private checkedLength(byteCount: number): number {
    if (byteCount === 0) throw new FramingError('EMPTY_PACKET', 'a packet length is zero', {});
    if (byteCount > this.packetBytesMax) {
      throw new FramingError(
        'PACKET_TOO_LARGE',
        `a packet of ${byteCount} bytes exceeds the limit`,
        {
          packetBytes: byteCount,
          packetBytesMax: this.packetBytesMax,
        },
      );
    }
    return byteCount;
  }

  private fillBody(): Uint8Array | null {
    const body = this.body;
    assert(body !== null, 'a body is being assembled');
    while (this.bodyFilledBytes < body.byteLength) {
      const head = this.chunks[0];
      if (head === undefined) return null;
      const copyBytes = Math.min(
        head.byteLength - this.chunkOffset,
        body.byteLength - this.bodyFilledBytes,
      );
      body.set(head.subarray(this.chunkOffset, this.chunkOffset + copyBytes), this.bodyFilledBytes);
      this.bodyFilledBytes += copyBytes;
      this.advance(head, copyBytes);
    }
    this.body = null;
    this.lastPacketOwned = true;
    return body;
  }

  private take(head: Uint8Array, byteCount: number): Uint8Array {
    const view = head.subarray(this.chunkOffset, this.chunkOffset + byteCount);
    this.advance(head, byteCount);
    return view;
  }

  private advance(head: Uint8Array, byteCount: number): void {
    this.chunkOffset += byteCount;
    this.bufferedByteCount -= byteCount;
    assert(this.chunkOffset <= head.byteLength, 'reads stay inside the chunk');
    assert(this.bufferedByteCount >= 0, 'buffered bytes never go negative');
    if (this.chunkOffset === head.byteLength) {
      this.chunks.shift();
      this.chunkOffset = 0;
    }
  }
}
