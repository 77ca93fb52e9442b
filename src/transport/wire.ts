/**
 * The packets of a TCP link, around the frames of `codec.ts`. Every packet is preceded on
 * the wire by its length (framing.ts) and begins, like a frame, with the format version and
 * a type byte; frame packets are exactly the codec's encoding.
 *
 *   Hello (0x40)         = magic:"ABCT" clusterId:str from:str to:str
 *   Welcome (0x41)       = nodeId:str
 *   Refuse (0x42)        = code:str detail:str
 *   SnapshotBegin (0x43) = streamId:varint totalBytes:varint header:bytes
 *   SnapshotChunk (0x44) = streamId:varint offset:varint data:rest
 *
 * Hello and Refuse keep this layout in every future version, so that a node can always read
 * who is calling and tell a caller of another version why it is refused.
 *
 * A snapshot too large for one frame travels as a SnapshotBegin, whose header is the encoded
 * Snapshot message with empty data, then chunks at increasing offsets until `totalBytes`.
 */
import type { NodeId, SnapshotMessage } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { BufferWriter, ByteReader, SizeCounter, type Writer } from './bytes.ts';
import { decodeFrame, frameFormatVersion, isFrameTypeCode } from './codec.ts';
import { CodecError } from './errors.ts';
import type { Frame } from './types.ts';
import { checkNodeId, checkString, nodeIdBytesMax } from './validate.ts';

export const protocolVersion = frameFormatVersion;
export const helloMagic = Uint8Array.from([0x41, 0x42, 0x43, 0x54]); // "ABCT"
export const clusterIdBytesMax = 255;
const refuseCodeBytesMax = 64;
const refuseDetailBytesMax = 1024;

const packetCodes = {
  Hello: 0x40,
  Welcome: 0x41,
  Refuse: 0x42,
  SnapshotBegin: 0x43,
  SnapshotChunk: 0x44,
} as const;

export type RefuseCode =
  | 'WRONG_CLUSTER'
  | 'UNKNOWN_NODE'
  | 'WRONG_NODE'
  | 'UNSUPPORTED_VERSION'
  | 'BAD_HANDSHAKE'
  | 'SHUTTING_DOWN';

export interface HelloPacket {
  readonly kind: 'Hello';
  readonly version: number;
  readonly clusterId: string;
  readonly from: NodeId;
  /** The node the caller believes it reached; a mismatch means a stale address map. */
  readonly to: NodeId;
}

export type Packet =
  | HelloPacket
  | { readonly kind: 'Welcome'; readonly nodeId: NodeId }
  | { readonly kind: 'Refuse'; readonly code: string; readonly detail: string }
  | {
      readonly kind: 'SnapshotBegin';
      readonly streamId: number;
      readonly totalBytes: number;
      readonly header: SnapshotMessage;
    }
  | {
      readonly kind: 'SnapshotChunk';
      readonly streamId: number;
      readonly offset: number;
      /** A view into the received packet: consume or copy it before the next packet. */
      readonly data: Uint8Array;
    }
  | { readonly kind: 'Frame'; readonly frame: Frame };

function encodeWith(write: (writer: Writer) => void): Buffer {
  const counter = new SizeCounter();
  write(counter);
  const target = Buffer.allocUnsafe(counter.byteCount);
  const writer = new BufferWriter(target, 0);
  write(writer);
  assert(writer.offset === target.length, 'a packet writes exactly its measured size');
  return target;
}

export function encodeHello(hello: Omit<HelloPacket, 'kind'>): Buffer {
  checkString(hello.clusterId, 'clusterId', clusterIdBytesMax);
  checkNodeId(hello.from, 'from');
  checkNodeId(hello.to, 'to');
  return encodeWith((writer) => {
    writer.u8(hello.version);
    writer.u8(packetCodes.Hello);
    writer.raw(helloMagic);
    writer.string(hello.clusterId);
    writer.string(hello.from);
    writer.string(hello.to);
  });
}

export function encodeWelcome(nodeId: NodeId): Buffer {
  checkNodeId(nodeId, 'nodeId');
  return encodeWith((writer) => {
    writer.u8(protocolVersion);
    writer.u8(packetCodes.Welcome);
    writer.string(nodeId);
  });
}

export function encodeRefuse(code: RefuseCode, detail: string): Buffer {
  const shortDetail = detail.slice(0, refuseDetailBytesMax / 4);
  return encodeWith((writer) => {
    writer.u8(protocolVersion);
    writer.u8(packetCodes.Refuse);
    writer.string(code);
    writer.string(shortDetail);
  });
}

/** `header` is the encoded Snapshot message with empty data (see `encodeFrame`). */
export function encodeSnapshotBegin(
  streamId: number,
  totalBytes: number,
  header: Uint8Array,
): Buffer {
  assert(Number.isSafeInteger(streamId) && streamId >= 0, 'stream ids are naturals');
  assert(Number.isSafeInteger(totalBytes) && totalBytes > 0, 'a streamed snapshot has data');
  return encodeWith((writer) => {
    writer.u8(protocolVersion);
    writer.u8(packetCodes.SnapshotBegin);
    writer.varint(streamId);
    writer.varint(totalBytes);
    writer.bytes(header);
  });
}

/** Only the chunk's header; the data follows it on the wire, uncopied. */
export function encodeSnapshotChunkHeader(streamId: number, offset: number): Buffer {
  return encodeWith((writer) => {
    writer.u8(protocolVersion);
    writer.u8(packetCodes.SnapshotChunk);
    writer.varint(streamId);
    writer.varint(offset);
  });
}

/** Hello's layout is the same in every version, so it is read before the version is judged. */
function readHello(reader: ByteReader, version: number): HelloPacket {
  const magic = reader.raw(helloMagic.length, 'magic');
  if (!magic.every((byte, position) => byte === helloMagic[position])) {
    throw new CodecError('INVALID_VALUE', 'the hello magic is not "ABCT"');
  }
  const clusterId = reader.string('clusterId', clusterIdBytesMax);
  const from = reader.string('from', nodeIdBytesMax);
  const to = reader.string('to', nodeIdBytesMax);
  reader.expectEnd('the hello');
  checkNodeId(from, 'from');
  checkNodeId(to, 'to');
  return { kind: 'Hello', version, clusterId, from, to };
}

function readSnapshotBegin(reader: ByteReader): Packet {
  const streamId = reader.varint('streamId');
  const totalBytes = reader.varint('totalBytes');
  if (totalBytes === 0) throw new CodecError('INVALID_VALUE', 'a streamed snapshot has data');
  const headerBytes = reader.length('header length', reader.remainingBytes);
  const headerEnd = reader.offset + headerBytes;
  const header = decodeFrame(reader.source, reader.offset, headerEnd);
  reader.offset = headerEnd;
  reader.expectEnd('the snapshot begin');
  if (header.type !== 'Snapshot' || header.snapshot.data.byteLength !== 0) {
    throw new CodecError('INVALID_VALUE', 'a snapshot header is a Snapshot with empty data');
  }
  return { kind: 'SnapshotBegin', streamId, totalBytes, header };
}

/**
 * Decodes one packet; throws `CodecError` for anything else. Version mismatches surface as
 * 'UNSUPPORTED_VERSION', except in Hello, which callers answer with a Refuse. `viewRuns`: a
 * frame's byte runs are views of `bytes` (see `decodeFrame`).
 */
export function decodePacket(bytes: Uint8Array, viewRuns = false): Packet {
  const reader = new ByteReader(bytes);
  const version = reader.u8('version');
  const typeCode = reader.u8('packet type');
  if (typeCode === packetCodes.Hello) return readHello(reader, version);
  if (typeCode === packetCodes.Refuse) {
    const code = reader.string('refuse code', refuseCodeBytesMax);
    const detail = reader.string('refuse detail', refuseDetailBytesMax);
    reader.expectEnd('the refusal');
    return { kind: 'Refuse', code, detail };
  }
  if (version !== protocolVersion) {
    throw new CodecError('UNSUPPORTED_VERSION', `protocol ${version} is not supported`, {
      version,
    });
  }
  if (isFrameTypeCode(typeCode)) {
    return { kind: 'Frame', frame: decodeFrame(bytes, 0, bytes.byteLength, viewRuns) };
  }
  switch (typeCode) {
    case packetCodes.Welcome: {
      const nodeId = reader.string('nodeId', nodeIdBytesMax);
      reader.expectEnd('the welcome');
      checkNodeId(nodeId, 'nodeId');
      return { kind: 'Welcome', nodeId };
    }
    case packetCodes.SnapshotBegin:
      return readSnapshotBegin(reader);
    case packetCodes.SnapshotChunk: {
      const streamId = reader.varint('streamId');
      const offset = reader.varint('offset');
      if (reader.remainingBytes === 0) throw new CodecError('INVALID_VALUE', 'a chunk has data');
      return { kind: 'SnapshotChunk', streamId, offset, data: reader.restView() };
    }
    default:
      throw new CodecError('UNKNOWN_TYPE', `packet type ${typeCode} is unknown`, { typeCode });
  }
}
