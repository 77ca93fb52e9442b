/**
 * The binary encoding of every `Frame`: a version byte, a type byte, then the fields in a
 * fixed order. Integers are unsigned LEB128 varints, strings and byte runs are
 * length-prefixed, booleans are one byte (0 or 1), and `null` is a one-byte tag.
 *
 * An Append does not spell out entry indexes (they are dense from `prevLogIndex + 1`) and
 * stores each entry's term as the increase over the previous one, so a typical entry costs
 * three bytes plus its data. Entry data is an opaque batch: copied once, never inspected.
 *
 * `decodeFrame` is total: any byte string yields a valid frame or throws `CodecError`. It
 * copies every byte run out of its input, so a decoded entry never pins a socket buffer,
 * unless the caller says the input is a buffer of its own (then runs are views of it).
 * `gatherFrame` encodes without copying large byte runs, for a gathered socket write.
 *
 * Format version 1:
 *   frame    = version:u8 type:u8 from:str to:str body
 *   message  = term:varint fields...        (types 1..12, fields below)
 *   Forward (13)       = requestId:varint data:bytes
 *   ForwardResult (14) = requestId:varint (0 index:varint term:varint | 1 code:str leader:opt)
 */
import {
  type Configuration,
  type Entry,
  type EntryKind,
  type Message,
  messageTypeCodes,
  type NodeId,
} from '../raft/types.ts';
import { assert, unreachable } from '../util/assert.ts';
import {
  BufferWriter,
  ByteReader,
  GatherWriter,
  invalid,
  SizeCounter,
  type Writer,
} from './bytes.ts';
import { CodecError } from './errors.ts';
import type { Frame, FrameType } from './types.ts';
import {
  forwardCodeBytesMax,
  nodeIdBytesMax,
  readRequestIdBytesMax,
  validateFrame,
} from './validate.ts';

export const frameFormatVersion = 1;

export const frameTypeCodes: Readonly<Record<FrameType, number>> = {
  ...messageTypeCodes,
  Forward: 13,
  ForwardResult: 14,
};

const frameTypesByCode = new Map<number, FrameType>(
  Object.entries(frameTypeCodes).map(([type, code]) => [code, type as FrameType]),
);

/** True when `code` (the second byte of an encoding) names a frame type. */
export function isFrameTypeCode(code: number): boolean {
  return frameTypesByCode.has(code);
}

const entryKindCodes: Readonly<Record<EntryKind, number>> = { normal: 0, noop: 1, config: 2 };
const entryKindsByCode: readonly EntryKind[] = ['normal', 'noop', 'config'];

/** The fewest bytes an encoded entry takes: term delta, kind, empty data length. */
const entryBytesMin = 3;

function writeConfiguration(writer: Writer, config: Configuration): void {
  writer.varint(config.voters.length);
  for (const voter of config.voters) writer.string(voter);
  writer.varint(config.learners.length);
  for (const learner of config.learners) writer.string(learner);
}

function writeAppendEntries(writer: Writer, prevLogTerm: number, entries: readonly Entry[]): void {
  writer.varint(entries.length);
  let previousTerm = prevLogTerm;
  for (const entry of entries) {
    writer.varint(entry.term - previousTerm);
    writer.u8(entryKindCodes[entry.kind]);
    writer.bytes(entry.data);
    previousTerm = entry.term;
  }
}

function writeMessageBody(writer: Writer, message: Message): void {
  switch (message.type) {
    case 'PreVote':
    case 'Vote':
      writer.varint(message.lastLogIndex);
      writer.varint(message.lastLogTerm);
      if (message.type === 'Vote') writer.u8(message.transfer ? 1 : 0);
      return;
    case 'PreVoteResponse':
    case 'VoteResponse':
      writer.u8(message.granted ? 1 : 0);
      return;
    case 'Append':
      writer.varint(message.prevLogIndex);
      writer.varint(message.prevLogTerm);
      writer.varint(message.commit);
      writeAppendEntries(writer, message.prevLogTerm, message.entries);
      return;
    case 'AppendResponse':
      writer.u8(message.success ? 1 : 0);
      writer.varint(message.index);
      writer.varint(message.hintIndex);
      writer.varint(message.hintTerm);
      return;
    case 'Heartbeat':
      writer.varint(message.commit);
      writer.varint(message.readRound);
      return;
    case 'HeartbeatResponse':
      writer.varint(message.readRound);
      return;
    case 'Snapshot':
      writer.varint(message.snapshot.meta.index);
      writer.varint(message.snapshot.meta.term);
      writeConfiguration(writer, message.snapshot.meta.config);
      writer.bytes(message.snapshot.data);
      return;
    case 'TimeoutNow':
      return;
    case 'ReadIndex':
      writer.string(message.requestId);
      return;
    case 'ReadIndexResponse':
      writer.string(message.requestId);
      writer.u8(message.index === null ? 0 : 1);
      if (message.index !== null) writer.varint(message.index);
      return;
    default:
      unreachable(message, 'message type');
  }
}

function writeFrameFields(writer: Writer, frame: Frame): void {
  writer.u8(frameFormatVersion);
  writer.u8(frameTypeCodes[frame.type]);
  writer.string(frame.from);
  writer.string(frame.to);
  if (frame.type === 'Forward') {
    writer.varint(frame.requestId);
    writer.bytes(frame.data);
    return;
  }
  if (frame.type === 'ForwardResult') {
    writer.varint(frame.requestId);
    if ('code' in frame.result) {
      writer.u8(1);
      writer.string(frame.result.code);
      writer.u8(frame.result.leaderId === null ? 0 : 1);
      if (frame.result.leaderId !== null) writer.string(frame.result.leaderId);
      return;
    }
    writer.u8(0);
    writer.varint(frame.result.index);
    writer.varint(frame.result.term);
    return;
  }
  writer.varint(frame.term);
  writeMessageBody(writer, frame);
}

/**
 * Validates `frame` and returns the size of its encoding. Throws `CodecError` for a frame
 * that breaks a rule; `writeFrame` may then be called with a buffer of that many bytes.
 */
export function measureFrame(frame: unknown): number {
  validateFrame(frame);
  const counter = new SizeCounter();
  writeFrameFields(counter, frame);
  return counter.byteCount;
}

/**
 * Byte runs (entry data, mostly) this long are referenced by a gathered encoding rather than
 * copied: below it, a copy costs less than one more piece to write.
 */
export const referencedRunBytesMin = 2048;

/** A frame's encoded size, and how much of it lies in runs a gathered encoding references. */
export interface GatheredSize {
  readonly byteCount: number;
  readonly referencedBytes: number;
}

/** Like `measureFrame`, for `gatherFrame`; throws `CodecError` for a frame that breaks a rule. */
export function measureGatheredFrame(frame: unknown): GatheredSize {
  validateFrame(frame);
  const counter = new SizeCounter(referencedRunBytesMin);
  writeFrameFields(counter, frame);
  return { byteCount: counter.byteCount, referencedBytes: counter.referencedBytes };
}

/**
 * The encoding of a frame measured by `measureGatheredFrame`, after `headroomBytes` left at
 * the start of `pieces[0]` for the caller (a length prefix), as pieces to write in order:
 * slices of one small buffer holding the copied fields, between the frame's own large byte
 * runs, which are referenced, not copied. Those runs must stay unchanged until the pieces
 * are written (entries are immutable).
 */
export function gatherFrame(
  frame: Frame,
  size: GatheredSize,
  headroomBytes: number,
): [Buffer, ...Uint8Array[]] {
  const target = Buffer.allocUnsafe(headroomBytes + size.byteCount - size.referencedBytes);
  const writer = new GatherWriter(target, headroomBytes, referencedRunBytesMin);
  writeFrameFields(writer, frame);
  assert(writer.offset === target.length, 'a frame copies exactly its measured bytes');
  return writer.finish();
}

/** Writes a frame already measured by `measureFrame` at `offset`; returns the end offset. */
export function writeFrame(
  frame: Frame,
  target: Buffer,
  offset: number,
  byteCount: number,
): number {
  assert(offset + byteCount <= target.length, 'the target holds the measured frame');
  const writer = new BufferWriter(target, offset);
  writeFrameFields(writer, frame);
  assert(writer.offset === offset + byteCount, 'a frame writes exactly its measured size');
  return writer.offset;
}

export function encodeFrame(frame: Frame): Uint8Array {
  const byteCount = measureFrame(frame);
  const target = Buffer.allocUnsafe(byteCount);
  writeFrame(frame, target, 0, byteCount);
  return target;
}

function readNodeId(reader: ByteReader, what: string): NodeId {
  return reader.string(what, nodeIdBytesMax);
}

function readNodeList(reader: ByteReader, what: string): NodeId[] {
  // Each id takes at least two bytes (length and one byte), which bounds the count.
  const count = reader.length(`${what} count`, Math.floor(reader.remainingBytes / 2));
  const list: NodeId[] = [];
  for (let position = 0; position < count; position++) list.push(readNodeId(reader, what));
  return list;
}

function readConfiguration(reader: ByteReader): Configuration {
  const voters = readNodeList(reader, 'voters');
  const learners = readNodeList(reader, 'learners');
  return { voters, learners };
}

function readEntries(reader: ByteReader, prevLogIndex: number, prevLogTerm: number): Entry[] {
  const count = reader.length('entry count', Math.floor(reader.remainingBytes / entryBytesMin));
  const entries: Entry[] = [];
  let term = prevLogTerm;
  for (let position = 0; position < count; position++) {
    term += reader.varint('entry term delta');
    if (!Number.isSafeInteger(term)) throw invalid('entry term exceeds 2^53 - 1', reader.offset);
    const kindCode = reader.u8('entry kind');
    const kind = entryKindsByCode[kindCode];
    if (kind === undefined) throw invalid(`entry kind ${kindCode} is unknown`, reader.offset - 1);
    const data = reader.bytes('entry data');
    entries.push({ index: prevLogIndex + 1 + position, term, kind, data });
  }
  return entries;
}

type Header = { readonly from: NodeId; readonly to: NodeId; readonly term: number };

function readMessage(reader: ByteReader, type: Message['type'], header: Header): Message {
  switch (type) {
    case 'PreVote':
      return {
        type,
        ...header,
        lastLogIndex: reader.varint('lastLogIndex'),
        lastLogTerm: reader.varint('lastLogTerm'),
      };
    case 'Vote': {
      const lastLogIndex = reader.varint('lastLogIndex');
      const lastLogTerm = reader.varint('lastLogTerm');
      return { type, ...header, lastLogIndex, lastLogTerm, transfer: reader.bool('transfer') };
    }
    case 'PreVoteResponse':
    case 'VoteResponse':
      return { type, ...header, granted: reader.bool('granted') };
    case 'Append': {
      const prevLogIndex = reader.varint('prevLogIndex');
      const prevLogTerm = reader.varint('prevLogTerm');
      const commit = reader.varint('commit');
      const entries = readEntries(reader, prevLogIndex, prevLogTerm);
      return { type, ...header, prevLogIndex, prevLogTerm, entries, commit };
    }
    case 'AppendResponse': {
      const success = reader.bool('success');
      const index = reader.varint('index');
      const hintIndex = reader.varint('hintIndex');
      return { type, ...header, success, index, hintIndex, hintTerm: reader.varint('hintTerm') };
    }
    case 'Heartbeat': {
      const commit = reader.varint('commit');
      return { type, ...header, commit, readRound: reader.varint('readRound') };
    }
    case 'HeartbeatResponse':
      return { type, ...header, readRound: reader.varint('readRound') };
    case 'Snapshot': {
      const index = reader.varint('snapshot index');
      const term = reader.varint('snapshot term');
      const config = readConfiguration(reader);
      const data = reader.bytes('snapshot data');
      return { type, ...header, snapshot: { meta: { index, term, config }, data } };
    }
    case 'TimeoutNow':
      return { type, ...header };
    case 'ReadIndex':
      return { type, ...header, requestId: reader.string('requestId', readRequestIdBytesMax) };
    case 'ReadIndexResponse': {
      const requestId = reader.string('requestId', readRequestIdBytesMax);
      const index = reader.bool('index present') ? reader.varint('index') : null;
      return { type, ...header, requestId, index };
    }
    default:
      return unreachable(type, 'message type');
  }
}

function readForwardResult(reader: ByteReader, from: NodeId, to: NodeId): Frame {
  const requestId = reader.varint('requestId');
  if (reader.bool('result refused')) {
    const code = reader.string('result code', forwardCodeBytesMax);
    const leaderId = reader.bool('leader present') ? readNodeId(reader, 'leaderId') : null;
    return { type: 'ForwardResult', from, to, requestId, result: { code, leaderId } };
  }
  const index = reader.varint('result index');
  const term = reader.varint('result term');
  return { type: 'ForwardResult', from, to, requestId, result: { index, term } };
}

function readFrameFields(reader: ByteReader): Frame {
  const version = reader.u8('version');
  if (version !== frameFormatVersion) {
    throw new CodecError('UNSUPPORTED_VERSION', `frame format ${version} is not supported`, {
      version,
      supported: frameFormatVersion,
    });
  }
  const typeCode = reader.u8('frame type');
  const type = frameTypesByCode.get(typeCode);
  if (type === undefined) {
    throw new CodecError('UNKNOWN_TYPE', `frame type ${typeCode} is unknown`, { typeCode });
  }
  const from = readNodeId(reader, 'from');
  const to = readNodeId(reader, 'to');
  if (type === 'Forward') {
    const requestId = reader.varint('requestId');
    return { type, from, to, requestId, data: reader.bytes('data') };
  }
  if (type === 'ForwardResult') return readForwardResult(reader, from, to);
  return readMessage(reader, type, { from, to, term: reader.varint('term') });
}

/**
 * Decodes exactly one frame filling `bytes[offset, end)`; throws `CodecError` otherwise.
 * With `viewRuns`, byte runs (entry data) are views of `bytes` instead of copies: only for
 * input in a buffer of its own that nothing reuses, which the frame then keeps alive.
 */
export function decodeFrame(
  bytes: Uint8Array,
  offset = 0,
  end = bytes.byteLength,
  viewRuns = false,
): Frame {
  if (!(bytes instanceof Uint8Array)) {
    throw new CodecError('INVALID_VALUE', 'a frame decodes from a Uint8Array');
  }
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(end) ||
    offset < 0 ||
    end < offset ||
    end > bytes.byteLength
  ) {
    throw new CodecError('INVALID_VALUE', 'the decode range lies inside the input', {
      offset,
      end,
    });
  }
  const reader = new ByteReader(bytes, offset, end, viewRuns);
  const frame = readFrameFields(reader);
  reader.expectEnd('the frame');
  validateFrame(frame);
  return frame;
}
