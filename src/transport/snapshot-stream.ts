/**
 * Streaming a snapshot larger than one frame: the sender cuts its data into chunks lazily,
 * as the socket drains (the data is referenced, never copied whole), and the receiver puts
 * them back together, refusing anything that does not continue the stream in progress.
 *
 * A link is FIFO and carries one stream at a time, so chunks of a stream are contiguous on
 * the wire: any other packet in the middle is a protocol violation, not a race.
 */
import type { SnapshotMessage } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { encodeFrame } from './codec.ts';
import { ProtocolError } from './errors.ts';
import { lengthPrefixBytes } from './framing.ts';
import { encodeSnapshotBegin, encodeSnapshotChunkHeader } from './wire.ts';

/** Prefixes `packet` with its length, in one new buffer. */
function prefixed(packet: Uint8Array): Buffer {
  const target = Buffer.allocUnsafe(lengthPrefixBytes + packet.byteLength);
  target.writeUInt32BE(packet.byteLength, 0);
  target.set(packet, lengthPrefixBytes);
  return target;
}

/** Header bytes of a chunk packet besides its data: version, type and two varints. */
export const chunkHeaderBytesMax = 2 + 8 + 8;

export class SnapshotSender {
  private offsetBytes = 0;
  private begun = false;
  readonly totalBytes: number;

  constructor(
    private readonly message: SnapshotMessage,
    private readonly streamId: number,
    private readonly chunkBytesMax: number,
  ) {
    this.totalBytes = message.snapshot.data.byteLength;
    assert(this.totalBytes > 0, 'only a snapshot with data is streamed');
    assert(Number.isSafeInteger(chunkBytesMax) && chunkBytesMax > 0, 'chunks carry data');
  }

  get done(): boolean {
    return this.begun && this.offsetBytes === this.totalBytes;
  }

  /** The next packet, length prefix included, as pieces to write in order. */
  nextPieces(): readonly Uint8Array[] {
    assert(!this.done, 'a finished stream has no more packets');
    if (!this.begun) {
      this.begun = true;
      const empty = {
        ...this.message,
        snapshot: { ...this.message.snapshot, data: new Uint8Array(0) },
      };
      const begin = encodeSnapshotBegin(this.streamId, this.totalBytes, encodeFrame(empty));
      return [prefixed(begin)];
    }
    const data = this.message.snapshot.data;
    const end = Math.min(this.totalBytes, this.offsetBytes + this.chunkBytesMax);
    const header = encodeSnapshotChunkHeader(this.streamId, this.offsetBytes);
    const piece = data.subarray(this.offsetBytes, end);
    const prefix = Buffer.allocUnsafe(lengthPrefixBytes + header.byteLength);
    prefix.writeUInt32BE(header.byteLength + piece.byteLength, 0);
    prefix.set(header, lengthPrefixBytes);
    this.offsetBytes = end;
    return [prefix, piece];
  }
}

interface StreamInProgress {
  readonly streamId: number;
  readonly totalBytes: number;
  readonly header: SnapshotMessage;
  readonly pieces: Uint8Array[];
  receivedBytes: number;
}

export class SnapshotAssembler {
  private stream: StreamInProgress | null = null;

  constructor(private readonly snapshotBytesMax: number) {
    assert(Number.isSafeInteger(snapshotBytesMax) && snapshotBytesMax > 0, 'snapshotBytesMax > 0');
  }

  get active(): boolean {
    return this.stream !== null;
  }

  begin(streamId: number, totalBytes: number, header: SnapshotMessage): void {
    if (this.stream !== null) {
      throw new ProtocolError('SNAPSHOT_OUT_OF_ORDER', 'a snapshot stream began inside another', {
        streamId,
        activeStreamId: this.stream.streamId,
      });
    }
    if (totalBytes > this.snapshotBytesMax) {
      throw new ProtocolError(
        'SNAPSHOT_TOO_LARGE',
        `a snapshot of ${totalBytes} bytes is refused`,
        {
          totalBytes,
          snapshotBytesMax: this.snapshotBytesMax,
        },
      );
    }
    this.stream = { streamId, totalBytes, header, pieces: [], receivedBytes: 0 };
  }

  /** Adds a chunk (copied); returns the whole Snapshot message once the last one is in. */
  chunk(streamId: number, offset: number, data: Uint8Array): SnapshotMessage | null {
    const stream = this.stream;
    if (stream === null || stream.streamId !== streamId || stream.receivedBytes !== offset) {
      throw new ProtocolError('SNAPSHOT_OUT_OF_ORDER', 'a chunk does not continue its stream', {
        streamId,
        offset,
        expectedOffset: stream === null ? null : stream.receivedBytes,
      });
    }
    if (data.byteLength > stream.totalBytes - stream.receivedBytes) {
      throw new ProtocolError('SNAPSHOT_OUT_OF_ORDER', 'a chunk runs past the announced size', {
        streamId,
        offset,
        chunkBytes: data.byteLength,
        totalBytes: stream.totalBytes,
      });
    }
    stream.pieces.push(Uint8Array.prototype.slice.call(data));
    stream.receivedBytes += data.byteLength;
    if (stream.receivedBytes < stream.totalBytes) return null;
    this.stream = null;
    return this.assemble(stream);
  }

  private assemble(stream: StreamInProgress): SnapshotMessage {
    const data = new Uint8Array(stream.totalBytes);
    let offset = 0;
    for (const piece of stream.pieces) {
      data.set(piece, offset);
      offset += piece.byteLength;
    }
    assert(offset === stream.totalBytes, 'the pieces fill the snapshot exactly');
    const { header } = stream;
    return { ...header, snapshot: { meta: header.snapshot.meta, data } };
  }
}
