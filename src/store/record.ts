/**
 * One delivered message as the message store keeps it, and its record on disk:
 *
 *   u32 bodyBytes | u32 crc32(body) | body
 *   body = f64 position | f64 index | f64 term | f64 seq | f64 logTimeMs
 *        | u16 clientBytes | client | u16 topicField | topic
 *        | [u16 keyBytes | key] | payload (the rest)
 *
 *   topicField = topicBytes | 0x8000 when a key follows the topic | 0x4000 when compacted
 *
 * The two flags live in bits no topic length reaches (topics are at most 255 bytes), so a
 * record written before keys existed reads the same. A compacted record (compaction.ts) is
 * the message's header without its payload: the position stays, and says it was compacted.
 *
 * Little-endian. The checksum finds a record torn by a crash (the store is written without
 * fsync, see store.ts); the position in every record lets a scan check that a segment is
 * dense.
 *
 * A segment lays its records out in frames, one checksum for many records:
 *
 *   frame = u32 (framedBytes | 0x8000_0000) | u32 crc32(framed) | framed
 *   framed = record+, each with 0 in its checksum field
 *
 * A checksum call costs ~0.2 µs before any byte (zlib.crc32 from JS), as much as
 * checksumming ~1.5 KB, and every node writes every message: one call per frame instead of
 * one per record. A segment begins a frame at every flush and at every position its sparse
 * index names (segment.ts), so a read that starts there starts at a frame, and frames hold
 * at most `sparseEveryCount` records; a torn or damaged frame is cut whole (its positions
 * become a hole, as a record's did). The flag bit tells a frame from a record: a record's
 * length never reaches it. Records written one by one (before frames, and the wire format
 * of peers' pages) still read as they are; a release that does not know frames reads one
 * as a damaged record, cuts the segment there and fills the hole again from peers.
 */
import { assert } from '../util/assert.ts';
import { crc32 } from '../util/crc32.ts';

export interface StoredMessage {
  /** Dense from 1, identical on every node. */
  readonly position: number;
  /** The log entry (batch) that carried it. */
  readonly index: number;
  readonly term: number;
  /** Empty for anonymous messages. */
  readonly clientId: string;
  readonly seq: number;
  readonly topic: string;
  readonly payload: Uint8Array;
  /**
   * The log's clock at this message, in ms since the Unix epoch: a function of the log alone,
   * the same on every node for the same position, and non-decreasing along positions.
   */
  readonly logTimeMs: number;
  /** The message's key; absent when it has none. */
  readonly key?: string;
  /**
   * True once compaction by key replaced the message (a newer one has its key): its payload
   * is gone, its position and header stay.
   */
  readonly compacted?: boolean;
}

export const recordHeaderBytes = 8;
const keyFlag = 0x8000;
const compactedFlag = 0x4000;
const topicBytesMask = 0x3fff;
const fixedBodyBytes = 5 * 8 + 2 + 2;

/**
 * The last client id and topic encoded, and their bytes: the messages of one log entry are
 * mostly one client's run on one topic, so each is encoded once a batch, not once a message.
 */
let lastClientId = '';
let lastClientBytes = Buffer.alloc(0);
let lastTopic = '';
let lastTopicBytes = Buffer.alloc(0);

function clientBytesOf(clientId: string): Buffer {
  if (clientId !== lastClientId) {
    lastClientBytes = Buffer.from(clientId, 'utf8');
    lastClientId = clientId;
  }
  return lastClientBytes;
}

function topicBytesOf(topic: string): Buffer {
  if (topic !== lastTopic) {
    lastTopicBytes = Buffer.from(topic, 'utf8');
    lastTopic = topic;
  }
  return lastTopicBytes;
}

/**
 * The client id and topic last decoded, and their bytes: a read goes through runs of one
 * client's messages on one topic, so each is decoded once a run, not once a message.
 */
let decodedClient = { bytes: Buffer.alloc(0), text: '' };
let decodedTopic = { bytes: Buffer.alloc(0), text: '' };

function sameBytes(known: Buffer, body: Buffer, start: number, end: number): boolean {
  if (known.length !== end - start) return false;
  for (let at = start; at < end; at++) if (known[at - start] !== body[at]) return false;
  return true;
}

function decodedClientAt(body: Buffer, start: number, end: number): string {
  if (!sameBytes(decodedClient.bytes, body, start, end)) {
    const bytes = Buffer.from(body.subarray(start, end));
    decodedClient = { bytes, text: bytes.toString('utf8') };
  }
  return decodedClient.text;
}

function decodedTopicAt(body: Buffer, start: number, end: number): string {
  if (!sameBytes(decodedTopic.bytes, body, start, end)) {
    const bytes = Buffer.from(body.subarray(start, end));
    decodedTopic = { bytes, text: bytes.toString('utf8') };
  }
  return decodedTopic.text;
}

export function encodeRecord(message: StoredMessage): Buffer {
  const record = Buffer.allocUnsafe(recordBytesOf(message));
  writeRecord(message, record, 0);
  return record;
}

/** The bytes `message`'s record takes, header included. */
export function recordBytesOf(message: StoredMessage): number {
  const keyBytes = message.key === undefined ? 0 : 2 + Buffer.byteLength(message.key, 'utf8');
  return (
    recordHeaderBytes +
    fixedBodyBytes +
    clientBytesOf(message.clientId).length +
    topicBytesOf(message.topic).length +
    keyBytes +
    message.payload.byteLength
  );
}

/** The DataView of the buffer last written to: a segment writes a batch into one buffer. */
let viewTarget: Buffer | null = null;
let targetView: DataView = new DataView(new ArrayBuffer(0));

function dataViewOf(target: Buffer): DataView {
  if (target !== viewTarget) {
    targetView = new DataView(target.buffer, target.byteOffset, target.byteLength);
    viewTarget = target;
  }
  return targetView;
}

/**
 * Writes `message`'s record into `target` at `start` (which has `recordBytesOf(message)`
 * bytes free there) and returns where it ends: the segment lays a batch's records out in
 * one buffer, so no record is allocated on its own nor copied again to be written.
 */
export function writeRecord(
  message: StoredMessage,
  target: Buffer,
  start: number,
  /** Inside a frame: the frame's checksum covers the record, its own field holds 0. */
  framed = false,
): number {
  assert(Number.isSafeInteger(message.position) && message.position >= 1, 'positions start at 1');
  const client = clientBytesOf(message.clientId);
  const topic = topicBytesOf(message.topic);
  assert(client.length <= 0xffff, 'a client id fits its u16 length');
  assert(topic.length <= 0xffff, 'a topic fits its u16 length');
  // Below the topic field's flag bits.
  assert(topic.length <= topicBytesMask, 'a topic fits its length bits');
  const key = message.key;
  const keyLength = key === undefined ? 0 : Buffer.byteLength(key, 'utf8');
  assert(key === undefined || (keyLength >= 1 && keyLength <= 0xffff), 'a key fits its u16 length');
  assert(message.compacted !== true || message.payload.byteLength === 0, 'compacted: no payload');
  const keyBytes = key === undefined ? 0 : 2 + keyLength;
  const bodyBytes =
    fixedBodyBytes + client.length + topic.length + keyBytes + message.payload.byteLength;
  assert(start + recordHeaderBytes + bodyBytes <= target.length, 'the record fits its target');
  const flags =
    (key === undefined ? 0 : keyFlag) | (message.compacted === true ? compactedFlag : 0);
  const view = dataViewOf(target);
  let at = writeFixedFields(
    view,
    target,
    start,
    message.position,
    message.index,
    message.term,
    message.seq,
    message.logTimeMs,
    client,
    topic,
    flags,
  );
  if (key !== undefined) {
    view.setUint16(at, keyLength, true);
    at += 2;
    at += target.write(key, at, keyLength, 'utf8');
  }
  target.set(message.payload, at);
  at += message.payload.byteLength;
  view.setUint32(start, bodyBytes, true);
  view.setUint32(
    start + 4,
    framed ? 0 : crc32(target.subarray(start + recordHeaderBytes, at)),
    true,
  );
  return at;
}

/**
 * Writes a record's fields up to its topic at `start` and returns where the key or the
 * payload goes. A DataView and TypedArray.set rather than Buffer's writers and copy: no call
 * into C++ nor view allocated per field, on a path taken once per message on every node.
 */
function writeFixedFields(
  view: DataView,
  target: Buffer,
  start: number,
  position: number,
  index: number,
  term: number,
  seq: number,
  logTimeMs: number,
  client: Buffer,
  topic: Buffer,
  flags: number,
): number {
  let at = start + recordHeaderBytes;
  view.setFloat64(at, position, true);
  view.setFloat64(at + 8, index, true);
  view.setFloat64(at + 16, term, true);
  view.setFloat64(at + 24, seq, true);
  view.setFloat64(at + 32, logTimeMs, true);
  at += 40;
  view.setUint16(at, client.length, true);
  target.set(client, at + 2);
  at += 2 + client.length;
  view.setUint16(at, topic.length | flags, true);
  target.set(topic, at + 2);
  return at + 2 + topic.length;
}

/**
 * Messages of one client's run without a key, as a batch delivers them: they share all
 * but their position, seq and payload, so a segment writes their records without an object
 * per message (`Segment.appendRun`).
 */
export interface StoredRun {
  readonly index: number;
  readonly term: number;
  /** Empty for anonymous messages, whose seq is 0. */
  readonly clientId: string;
  /** The seq of `payloads[0]` (0 when anonymous); each next payload's is one more. */
  readonly firstSeq: number;
  readonly topic: string;
  readonly logTimeMs: number;
  readonly payloads: readonly Uint8Array[];
}

/** The bytes a record of `run` takes before its payload, header included. */
export function runRecordBytesOf(run: StoredRun): number {
  const client = clientBytesOf(run.clientId);
  const topic = topicBytesOf(run.topic);
  assert(client.length <= 0xffff, 'a client id fits its u16 length');
  assert(topic.length <= topicBytesMask, 'a topic fits its length bits');
  return recordHeaderBytes + fixedBodyBytes + client.length + topic.length;
}

/**
 * Writes the record of `run`'s message at `offset` (at `position`) into `target` at `start`,
 * framed (its checksum field 0, the frame's checksum covers it), the bytes the record of the
 * same message as a `StoredMessage` takes; returns where it ends.
 */
export function writeRunRecord(
  run: StoredRun,
  offset: number,
  position: number,
  target: Buffer,
  start: number,
): number {
  assert(Number.isSafeInteger(position) && position >= 1, 'positions start at 1');
  const client = clientBytesOf(run.clientId);
  const topic = topicBytesOf(run.topic);
  const payload = run.payloads[offset] as Uint8Array;
  const bodyBytes = fixedBodyBytes + client.length + topic.length + payload.byteLength;
  assert(start + recordHeaderBytes + bodyBytes <= target.length, 'the record fits its target');
  const seq = run.clientId === '' ? 0 : run.firstSeq + offset;
  const view = dataViewOf(target);
  const index = run.index;
  const term = run.term;
  const at = writeFixedFields(
    view,
    target,
    start,
    position,
    index,
    term,
    seq,
    run.logTimeMs,
    client,
    topic,
    0,
  );
  target.set(payload, at);
  view.setUint32(start, bodyBytes, true);
  view.setUint32(start + 4, 0, true);
  return at + payload.byteLength;
}

export const frameHeaderBytes = 8;
const frameFlag = 0x8000_0000;

/**
 * Writes the header of the frame whose records lie in `target` from `start +
 * frameHeaderBytes` to `end`: their length and their one checksum.
 */
export function writeFrameHeader(target: Buffer, start: number, end: number): void {
  const framedBytes = end - start - frameHeaderBytes;
  assert(framedBytes >= recordHeaderBytes + fixedBodyBytes, 'a frame holds a record at least');
  assert(framedBytes <= framedBytesMax, 'a frame fits its length bits');
  const view = dataViewOf(target);
  view.setUint32(start, (framedBytes | frameFlag) >>> 0, true);
  view.setUint32(start + 4, crc32(target.subarray(start + frameHeaderBytes, end)), true);
}

/** What `decodeRecordAt` found at an offset of a buffer. */
export type RecordRead =
  | { readonly kind: 'record'; readonly message: StoredMessage; readonly recordBytes: number }
  /** The buffer ends inside the record: read `recordBytes` from its start to see it whole. */
  | { readonly kind: 'short'; readonly recordBytes: number }
  /** Not a record: the end of what was written (zeros), or a torn or damaged one. */
  | { readonly kind: 'invalid' };

/** Largest body a record may claim: a payload of at most 16 MiB plus its header fields. */
const bodyBytesMax = (16 << 20) + fixedBodyBytes + 2 * 0xffff;
/**
 * Largest run of records a frame may claim: one record of the largest size, or records of
 * a flush, which never reaches a record's largest size (segment.ts writes what it buffered
 * before a record that would take it past 256 KiB, and that record begins a new frame).
 */
export const framedBytesMax = recordHeaderBytes + bodyBytesMax;

/**
 * Where the fields of a record's body lie (offsets into the body), for readers that copy
 * them out as bytes rather than decode a message: what `layoutOf` fills in. The body's
 * numbers are little-endian f64s: position at 0, index 8, term 16, seq 24, log time 32;
 * from 40 on come the client id's u16 length, the client id, the topic field, the topic,
 * the key's u16 length and the key when there is one, and the payload.
 */
export interface RecordLayout {
  position: number;
  clientEnd: number;
  topicStart: number;
  topicEnd: number;
  /** -1 without a key. */
  keyStart: number;
  keyEnd: number;
  compacted: boolean;
}

export const recordLayoutOffsets = { term: 16, seq: 24, logTimeMs: 32, lengths: 40 } as const;

export function emptyLayout(): RecordLayout {
  return {
    position: 0,
    clientEnd: 0,
    topicStart: 0,
    topicEnd: 0,
    keyStart: -1,
    keyEnd: -1,
    compacted: false,
  };
}

/** What `recordAt` found at an offset of a buffer. */
export type RecordFound =
  /** A record whose checksum and lengths hold; its body is a view of the buffer. */
  | { readonly kind: 'record'; readonly body: Buffer; readonly recordBytes: number }
  | { readonly kind: 'short'; readonly recordBytes: number }
  | { readonly kind: 'invalid' };

/**
 * The record at `offset`, checked (checksum, position, field lengths) but not decoded: a
 * record written on its own, not one inside a frame (`RecordWalker` reads both).
 */
export function recordAt(buffer: Buffer, offset: number): RecordFound {
  if (buffer.length - offset < recordHeaderBytes) {
    return { kind: 'short', recordBytes: recordHeaderBytes };
  }
  const bodyBytes = buffer.readUInt32LE(offset);
  if (bodyBytes < fixedBodyBytes || bodyBytes > bodyBytesMax) return { kind: 'invalid' };
  const recordBytes = recordHeaderBytes + bodyBytes;
  if (buffer.length - offset < recordBytes) return { kind: 'short', recordBytes };
  const body = buffer.subarray(offset + recordHeaderBytes, offset + recordBytes);
  if (crc32(body) !== buffer.readUInt32LE(offset + 4)) return { kind: 'invalid' };
  return bodyHolds(body) ? { kind: 'record', body, recordBytes } : { kind: 'invalid' };
}

/** The record at `offset` inside a verified frame ending at `frameEnd`: lengths checked. */
function framedRecordAt(buffer: Buffer, offset: number, frameEnd: number): RecordFound {
  if (frameEnd - offset < recordHeaderBytes) return { kind: 'invalid' };
  const bodyBytes = buffer.readUInt32LE(offset);
  if (bodyBytes < fixedBodyBytes || bodyBytes > bodyBytesMax) return { kind: 'invalid' };
  const recordBytes = recordHeaderBytes + bodyBytes;
  if (frameEnd - offset < recordBytes) return { kind: 'invalid' };
  if (buffer.readUInt32LE(offset + 4) !== 0) return { kind: 'invalid' };
  const body = buffer.subarray(offset + recordHeaderBytes, offset + recordBytes);
  return bodyHolds(body) ? { kind: 'record', body, recordBytes } : { kind: 'invalid' };
}

/**
 * Reads the records of one buffer in order, framed or not: a frame is verified whole when
 * its header is met (`short` until the buffer holds all of it), and its records are then
 * checked for their lengths only. A record that opens a frame counts the frame's header
 * in its `recordBytes`, so callers step from record to record as before frames. `reset`
 * before reading a buffer whose content changed: records inside a frame are taken only
 * from the buffer it was verified in.
 */
export class RecordWalker {
  /** Where the frame of the last record found begins and ends; -1 for an unframed one. */
  frameStart = -1;
  frameEnd = -1;

  reset(): void {
    this.frameStart = -1;
    this.frameEnd = -1;
  }

  at(buffer: Buffer, offset: number): RecordFound {
    if (offset < this.frameEnd) return framedRecordAt(buffer, offset, this.frameEnd);
    this.reset();
    if (buffer.length - offset < frameHeaderBytes) {
      return { kind: 'short', recordBytes: frameHeaderBytes };
    }
    const head = buffer.readUInt32LE(offset);
    if (head < frameFlag) return recordAt(buffer, offset);
    const framedBytes = head - frameFlag;
    if (framedBytes < recordHeaderBytes + fixedBodyBytes || framedBytes > framedBytesMax) {
      return { kind: 'invalid' };
    }
    const frameBytes = frameHeaderBytes + framedBytes;
    if (buffer.length - offset < frameBytes) return { kind: 'short', recordBytes: frameBytes };
    const framed = buffer.subarray(offset + frameHeaderBytes, offset + frameBytes);
    if (crc32(framed) !== buffer.readUInt32LE(offset + 4)) return { kind: 'invalid' };
    const first = framedRecordAt(buffer, offset + frameHeaderBytes, offset + frameBytes);
    if (first.kind !== 'record') return first;
    this.frameStart = offset;
    this.frameEnd = offset + frameBytes;
    return { kind: 'record', body: first.body, recordBytes: frameHeaderBytes + first.recordBytes };
  }
}

/** Whether a body's position and field lengths hold. */
function bodyHolds(body: Buffer): boolean {
  const position = body.readDoubleLE(0);
  if (!Number.isSafeInteger(position) || position < 1) return false;
  const topicLengthAt = 42 + body.readUInt16LE(40);
  if (topicLengthAt + 2 > body.length) return false;
  const topicField = body.readUInt16LE(topicLengthAt);
  const at = topicLengthAt + 2 + (topicField & topicBytesMask);
  if (at > body.length) return false;
  if ((topicField & keyFlag) !== 0) {
    return at + 2 <= body.length && at + 2 + body.readUInt16LE(at) <= body.length;
  }
  return true;
}

/** The position of a body `recordAt` found. */
export function bodyPosition(body: Buffer): number {
  return body.readDoubleLE(0);
}

/** Fills `layout` with where the fields of a body `recordAt` found lie. */
export function layoutOf(body: Buffer, layout: RecordLayout): void {
  layout.position = body.readDoubleLE(0);
  layout.clientEnd = 42 + body.readUInt16LE(40);
  const topicField = body.readUInt16LE(layout.clientEnd);
  layout.topicStart = layout.clientEnd + 2;
  layout.topicEnd = layout.topicStart + (topicField & topicBytesMask);
  if ((topicField & keyFlag) !== 0) {
    layout.keyStart = layout.topicEnd + 2;
    layout.keyEnd = layout.keyStart + body.readUInt16LE(layout.topicEnd);
  } else {
    layout.keyStart = -1;
    layout.keyEnd = -1;
  }
  layout.compacted = (topicField & compactedFlag) !== 0;
}

/** The message of a body `recordAt` found. */
export function decodeBody(body: Buffer): StoredMessage {
  const position = body.readDoubleLE(0);
  const index = body.readDoubleLE(8);
  const term = body.readDoubleLE(16);
  const seq = body.readDoubleLE(24);
  const logTimeMs = body.readDoubleLE(32);
  const clientAt = 42;
  const topicLengthAt = clientAt + body.readUInt16LE(40);
  const topicField = body.readUInt16LE(topicLengthAt);
  const topicAt = topicLengthAt + 2;
  let at = topicAt + (topicField & topicBytesMask);
  const clientId = decodedClientAt(body, clientAt, topicLengthAt);
  const topic = decodedTopicAt(body, topicAt, at);
  let key: string | undefined;
  if ((topicField & keyFlag) !== 0) {
    const keyEnd = at + 2 + body.readUInt16LE(at);
    key = body.toString('utf8', at + 2, keyEnd);
    at = keyEnd;
  }
  // A copy: the read buffer is reused for the next chunk.
  const payload = new Uint8Array(body.subarray(at));
  const compacted = (topicField & compactedFlag) !== 0;
  // Literals rather than spreads: this runs once per message read.
  return key === undefined && !compacted
    ? { position, index, term, clientId, seq, topic, payload, logTimeMs }
    : {
        position,
        index,
        term,
        clientId,
        seq,
        topic,
        payload,
        logTimeMs,
        ...(key === undefined ? {} : { key }),
        ...(compacted ? { compacted: true } : {}),
      };
}

export function decodeRecordAt(buffer: Buffer, offset: number): RecordRead {
  const found = recordAt(buffer, offset);
  if (found.kind !== 'record') return found;
  return { kind: 'record', message: decodeBody(found.body), recordBytes: found.recordBytes };
}
