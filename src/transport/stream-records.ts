/**
 * The binary body of a stream (GET /v1/stream asked with `accept: application/x-abcast-records`
 * over HTTP or the binary port; docs/protocol.md "Stream records"): what the Server-Sent
 * Events say, as length-prefixed items instead of text, so that neither end builds or parses
 * a JSON object per message. A payload is the message's stored bytes, spliced in as they are.
 *
 *   item     = u32 itemBytes (what follows) · u8 kind · fields
 *   message  (kind 1) = f64 position · f64 term · f64 seq · f64 time · u8 flags
 *                       · u16 clientBytes · client · u16 topicBytes · topic
 *                       · [u16 keyBytes · key, when flags & 1] · payload (the rest)
 *   progress (kind 2) = f64 position: every position up to it was passed
 *   error    (kind 3) = the error's JSON text, as the `error` event carries it; the last item
 *   keepAlive (kind 4) = nothing: the stream is idle, not gone
 *
 * Big-endian, as the client frames. An empty client is a message sent without a session.
 * Decoding trusts nothing: every length is checked against the item's bytes first.
 */
import { assert } from '../util/assert.ts';
import { AbcastError } from '../util/errors.ts';
import { FramingError, PacketSplitter } from './framing.ts';

export const streamRecordsType = 'application/x-abcast-records';

export const streamRecordKinds = { message: 1, progress: 2, error: 3, keepAlive: 4 } as const;

export const messageKeyFlag = 1;
const keyFlag = messageKeyFlag;
/** Kind and the message's fixed fields. */
const messageFixedBytes = 1 + 4 * 8 + 1 + 2 + 2;
const itemPrefixBytes = 4;
/** The largest payload an item carries: a node's payload limit may not exceed it. */
export const streamRecordPayloadBytesMax = 16 << 20;
/** Any item is at most this: the largest payload and its header fields. */
export const streamRecordBytesMax = streamRecordPayloadBytesMax + (1 << 20);

/** What a message item carries; a stored message fits it as is. */
export interface RecordMessage {
  readonly position: number;
  readonly term: number;
  /** Empty for a message sent without a session. */
  readonly clientId: string;
  readonly seq: number;
  readonly topic: string;
  readonly logTimeMs: number;
  readonly key?: string;
  readonly payload: Uint8Array;
}

export class StreamRecordError extends AbcastError<'stream_malformed'> {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('stream_malformed', message, details);
    this.name = 'StreamRecordError';
  }
}

/**
 * Items gathered into chunks of about `chunkBytes` (one item may be larger), ready to be
 * written as they are. A client id or topic repeated from the previous message is encoded
 * once: a catch-up reads runs of one client's messages.
 */
export class StreamRecordWriter {
  private chunk: Buffer;
  private at = 0;
  private readonly full: Buffer[] = [];
  private fullBytes = 0;
  private lastClientId = '';
  private lastClient: Buffer = Buffer.alloc(0);
  private lastTopic = '';
  private lastTopicBytes: Buffer = Buffer.alloc(0);

  constructor(private readonly chunkBytes = 256 << 10) {
    this.chunk = Buffer.allocUnsafe(chunkBytes);
  }

  /** Bytes gathered and not taken. */
  get pendingBytes(): number {
    return this.fullBytes + this.at;
  }

  message(message: RecordMessage): void {
    if (message.clientId !== this.lastClientId) {
      this.lastClient = Buffer.from(message.clientId, 'utf8');
      this.lastClientId = message.clientId;
    }
    if (message.topic !== this.lastTopic) {
      this.lastTopicBytes = Buffer.from(message.topic, 'utf8');
      this.lastTopic = message.topic;
    }
    const client = this.lastClient;
    const topic = this.lastTopicBytes;
    const key = message.key === undefined ? null : Buffer.from(message.key, 'utf8');
    assert(client.length <= 0xffff && topic.length <= 0xffff, 'a client id and a topic fit u16');
    assert(key === null || key.length <= 0xffff, 'a key fits u16');
    const itemBytes =
      messageFixedBytes +
      client.length +
      topic.length +
      (key === null ? 0 : 2 + key.length) +
      message.payload.byteLength;
    const out = this.room(itemPrefixBytes + itemBytes);
    let at = this.at;
    at = out.writeUInt32BE(itemBytes, at);
    out[at++] = streamRecordKinds.message;
    at = out.writeDoubleBE(message.position, at);
    at = out.writeDoubleBE(message.term, at);
    at = out.writeDoubleBE(message.seq, at);
    at = out.writeDoubleBE(message.logTimeMs, at);
    out[at++] = key === null ? 0 : keyFlag;
    at = out.writeUInt16BE(client.length, at);
    at += client.copy(out, at);
    at = out.writeUInt16BE(topic.length, at);
    at += topic.copy(out, at);
    if (key !== null) {
      at = out.writeUInt16BE(key.length, at);
      at += key.copy(out, at);
    }
    out.set(message.payload, at);
    this.at = at + message.payload.byteLength;
  }

  /**
   * Room for an item of `kind` with `fieldBytes` of fields, for a caller that lays the
   * fields out itself (a message copied from bytes it already holds): returns the offset in
   * `buffer` where they go; `endItem` is then called with the offset after them.
   */
  beginItem(kind: number, fieldBytes: number): number {
    const out = this.room(itemPrefixBytes + 1 + fieldBytes);
    const at = out.writeUInt32BE(1 + fieldBytes, this.at);
    out[at] = kind;
    return at + 1;
  }

  /** The buffer `beginItem`'s offset is in. */
  get buffer(): Buffer {
    return this.chunk;
  }

  endItem(end: number): void {
    this.at = end;
  }

  progress(position: number): void {
    const out = this.room(itemPrefixBytes + 1 + 8);
    let at = out.writeUInt32BE(1 + 8, this.at);
    out[at++] = streamRecordKinds.progress;
    this.at = out.writeDoubleBE(position, at);
  }

  error(json: string): void {
    const text = Buffer.from(json, 'utf8');
    const out = this.room(itemPrefixBytes + 1 + text.length);
    let at = out.writeUInt32BE(1 + text.length, this.at);
    out[at++] = streamRecordKinds.error;
    this.at = at + text.copy(out, at);
  }

  keepAlive(): void {
    const out = this.room(itemPrefixBytes + 1);
    const at = out.writeUInt32BE(1, this.at);
    out[at] = streamRecordKinds.keepAlive;
    this.at = at + 1;
  }

  /** The chunks gathered since the last take, in order; the writer starts afresh. */
  take(): Buffer[] {
    if (this.at > 0) {
      this.full.push(this.chunk.subarray(0, this.at));
      this.chunk = this.chunk.subarray(this.at);
      this.at = 0;
      if (this.chunk.length < 4096) this.chunk = Buffer.allocUnsafe(this.chunkBytes);
    }
    this.fullBytes = 0;
    return this.full.splice(0);
  }

  /** The chunk to write `byteCount` bytes into at `this.at`: the current one if they fit. */
  private room(byteCount: number): Buffer {
    if (this.chunk.length - this.at >= byteCount) return this.chunk;
    if (this.at > 0) {
      this.full.push(this.chunk.subarray(0, this.at));
      this.fullBytes += this.at;
    }
    this.chunk = Buffer.allocUnsafe(Math.max(this.chunkBytes, byteCount));
    this.at = 0;
    return this.chunk;
  }
}

/**
 * One decoded item. A message's payload is `bytes[payloadStart, payloadEnd)`, bytes that are
 * valid until the next push: a range rather than a view, because a view is an object per
 * message, and a catch-up decodes hundreds of thousands a second (a reader that wants one
 * takes `subarray`).
 */
export type StreamRecord =
  | {
      readonly kind: 'message';
      readonly position: number;
      readonly term: number;
      readonly seq: number;
      readonly time: number;
      readonly clientId: string;
      readonly topic: string;
      readonly key: string | undefined;
      readonly bytes: Buffer;
      readonly payloadStart: number;
      readonly payloadEnd: number;
    }
  | { readonly kind: 'progress'; readonly position: number }
  | { readonly kind: 'error'; readonly json: string }
  | { readonly kind: 'keepAlive' };

/**
 * Body bytes in, items out, whatever the chunking. Holds at most one unfinished item
 * (bounded by `streamRecordBytesMax`) between pushes.
 */
export class StreamRecordReader {
  /**
   * Items are length-prefixed packets: the splitter judges each length before buffering and
   * assembles an item that spans chunks into one buffer of its size.
   */
  private readonly splitter = new PacketSplitter(streamRecordBytesMax);
  private lastClient: Buffer = Buffer.alloc(0);
  private lastClientId = '';
  private lastTopicBytes: Buffer = Buffer.alloc(0);
  private lastTopic = '';

  /** Calls `each` for every item `chunk` completes, in order; throws StreamRecordError. */
  push(chunk: Uint8Array, each: (record: StreamRecord) => void): void {
    // Drained before returning: the splitter then holds no view of the chunk, which the
    // caller may reuse (what spans chunks was copied into its own buffer).
    this.splitter.push(chunk);
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (;;) {
      const item = this.nextItem();
      if (item === null) return;
      if (this.splitter.ownsLastPacket) {
        each(this.item(Buffer.from(item.buffer, item.byteOffset, item.byteLength), 0, item.length));
      } else {
        // A view of this chunk: read in place, no Buffer made per item.
        const start = item.byteOffset - bytes.byteOffset;
        each(this.item(bytes, start, start + item.byteLength));
      }
    }
  }

  /** Bytes of an item begun and not finished: a stream that ends here was cut. */
  get hasPartialItem(): boolean {
    return this.splitter.hasPartialPacket;
  }

  private nextItem(): Uint8Array | null {
    try {
      return this.splitter.next();
    } catch (error) {
      if (!(error instanceof FramingError)) throw error;
      const itemBytes = error.details.packetBytes ?? 0;
      throw new StreamRecordError(`an item of ${itemBytes} bytes`, { itemBytes });
    }
  }

  private item(bytes: Buffer, start: number, end: number): StreamRecord {
    const kind = bytes[start];
    if (kind === streamRecordKinds.message) return this.message(bytes, start + 1, end);
    if (kind === streamRecordKinds.progress) {
      if (end - start !== 9) throw new StreamRecordError('a progress item is 9 bytes');
      return { kind: 'progress', position: bytes.readDoubleBE(start + 1) };
    }
    if (kind === streamRecordKinds.error) {
      return { kind: 'error', json: bytes.toString('utf8', start + 1, end) };
    }
    if (kind === streamRecordKinds.keepAlive) {
      if (end - start !== 1) throw new StreamRecordError('a keep-alive item is 1 byte');
      return { kind: 'keepAlive' };
    }
    throw new StreamRecordError(`item kind ${kind} is not known`, { kind });
  }

  private message(bytes: Buffer, start: number, end: number): StreamRecord {
    if (end - start < messageFixedBytes - 1) throw new StreamRecordError('a message item is cut');
    const position = bytes.readDoubleBE(start);
    const term = bytes.readDoubleBE(start + 8);
    const seq = bytes.readDoubleBE(start + 16);
    const time = bytes.readDoubleBE(start + 24);
    const flags = bytes[start + 32] as number;
    let at = start + 33;
    const clientBytes = bytes.readUInt16BE(at);
    at += 2;
    if (at + clientBytes + 2 > end) throw new StreamRecordError('a client id past its item');
    const clientId = this.clientAt(bytes, at, clientBytes);
    at += clientBytes;
    const topicBytes = bytes.readUInt16BE(at);
    at += 2;
    if (at + topicBytes > end) throw new StreamRecordError('a topic past its item');
    const topic = this.topicAt(bytes, at, topicBytes);
    at += topicBytes;
    let key: string | undefined;
    if ((flags & keyFlag) !== 0) {
      if (at + 2 > end) throw new StreamRecordError('a key past its item');
      const keyEnd = at + 2 + bytes.readUInt16BE(at);
      if (keyEnd > end) throw new StreamRecordError('a key past its item');
      key = bytes.toString('utf8', at + 2, keyEnd);
      at = keyEnd;
    }
    return {
      kind: 'message',
      position,
      term,
      seq,
      time,
      clientId,
      topic,
      key,
      bytes,
      payloadStart: at,
      payloadEnd: end,
    };
  }

  /** The client id at `at`: the previous one when its bytes are the same. */
  private clientAt(bytes: Buffer, at: number, byteCount: number): string {
    if (!sameBytes(this.lastClient, bytes, at, byteCount)) {
      this.lastClient = Buffer.from(bytes.subarray(at, at + byteCount));
      this.lastClientId = this.lastClient.toString('utf8');
    }
    return this.lastClientId;
  }

  private topicAt(bytes: Buffer, at: number, byteCount: number): string {
    if (!sameBytes(this.lastTopicBytes, bytes, at, byteCount)) {
      this.lastTopicBytes = Buffer.from(bytes.subarray(at, at + byteCount));
      this.lastTopic = this.lastTopicBytes.toString('utf8');
    }
    return this.lastTopic;
  }
}

function sameBytes(known: Buffer, bytes: Buffer, at: number, byteCount: number): boolean {
  if (known.length !== byteCount) return false;
  for (let offset = 0; offset < byteCount; offset++) {
    if (known[offset] !== bytes[at + offset]) return false;
  }
  return true;
}
