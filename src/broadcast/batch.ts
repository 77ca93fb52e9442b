/**
 * The batch: how client messages travel inside one log entry. A batch is built once, where
 * messages enter the cluster, and from then on stays one opaque buffer through the leader,
 * the WAL, the fsync and the wire. It is decoded only where it is applied.
 *
 * Layout (little-endian):
 *   u8  format version (1)
 *   f64 log time in ms, stamped by the node that built the batch; session expiry uses it so
 *       that every replica decides the same (a replica's own clock never decides anything)
 *   u32 message count
 *   per message:
 *     u16 client id length, client id (UTF-8; empty: anonymous, never deduplicated)
 *     f64 sequence number (a safe integer >= 1; 0 for anonymous)
 *     u16 topic length, topic (UTF-8; empty: no topic)
 *     u32 payload length, payload bytes
 */
import { assert } from '../util/assert.ts';

export const batchFormatVersion = 1;
export const clientIdBytesMax = 255;
export const topicBytesMax = 255;

export interface ClientMessage {
  /** Empty for anonymous messages. */
  readonly clientId: string;
  /** >= 1 with a client id; 0 when anonymous. */
  readonly seq: number;
  /** Empty when the message has no topic. */
  readonly topic: string;
  readonly payload: Uint8Array;
}

export interface DecodedBatch {
  readonly logTimeMs: number;
  readonly messages: readonly ClientMessage[];
}

export class BatchFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BatchFormatError';
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function decodeText(bytes: Uint8Array, what: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new BatchFormatError(`${what} is not valid UTF-8`);
  }
}
const headerBytes = 1 + 8 + 4;

/** Checks a message before it may enter a batch; returns the reason it may not, or null. */
export function clientMessageProblem(message: ClientMessage): string | null {
  if (Buffer.byteLength(message.clientId) > clientIdBytesMax) return 'client id is too long';
  if (Buffer.byteLength(message.topic) > topicBytesMax) return 'topic is too long';
  if (message.clientId === '' && message.seq !== 0) return 'a sequence number needs a client id';
  if (message.clientId !== '' && !(Number.isSafeInteger(message.seq) && message.seq >= 1)) {
    return 'seq must be a safe integer >= 1';
  }
  if (!(message.payload instanceof Uint8Array)) return 'payload must be bytes';
  return null;
}

/** Appends messages to one growing buffer; `finish` returns the batch bytes. */
export class BatchBuilder {
  private chunks: Uint8Array[] = [];
  private count = 0;
  private bytes = headerBytes;

  get messageCount(): number {
    return this.count;
  }

  get byteLength(): number {
    return this.bytes;
  }

  add(message: ClientMessage): void {
    const problem = clientMessageProblem(message);
    assert(problem === null, `batched messages are valid: ${problem}`);
    const clientId = encoder.encode(message.clientId);
    const topic = encoder.encode(message.topic);
    const head = Buffer.allocUnsafe(2 + clientId.length + 8 + 2 + topic.length + 4);
    let offset = head.writeUInt16LE(clientId.length, 0);
    head.set(clientId, offset);
    offset = head.writeDoubleLE(message.seq, offset + clientId.length);
    offset = head.writeUInt16LE(topic.length, offset);
    head.set(topic, offset);
    head.writeUInt32LE(message.payload.length, offset + topic.length);
    this.chunks.push(head, message.payload);
    this.count++;
    this.bytes += head.length + message.payload.length;
  }

  finish(logTimeMs: number): Uint8Array {
    assert(Number.isFinite(logTimeMs), 'log time is a finite number');
    const header = Buffer.allocUnsafe(headerBytes);
    header.writeUInt8(batchFormatVersion, 0);
    header.writeDoubleLE(logTimeMs, 1);
    header.writeUInt32LE(this.count, 9);
    const batch = Buffer.concat([header, ...this.chunks], this.bytes);
    this.chunks = [];
    this.count = 0;
    this.bytes = headerBytes;
    return batch;
  }
}

export function encodeBatch(messages: readonly ClientMessage[], logTimeMs: number): Uint8Array {
  const builder = new BatchBuilder();
  for (const message of messages) builder.add(message);
  return builder.finish(logTimeMs);
}

/** Total: returns the batch or throws BatchFormatError, never reads out of bounds. */
export function decodeBatch(data: Uint8Array): DecodedBatch {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (view.length < headerBytes) throw new BatchFormatError('batch shorter than its header');
  const version = view.readUInt8(0);
  if (version !== batchFormatVersion) {
    throw new BatchFormatError(`batch format ${version} is not supported`);
  }
  const logTimeMs = view.readDoubleLE(1);
  const count = view.readUInt32LE(9);
  const messages: ClientMessage[] = [];
  let offset = headerBytes;
  const need = (bytes: number) => {
    if (offset + bytes > view.length) throw new BatchFormatError('batch ends inside a message');
  };
  for (let position = 0; position < count; position++) {
    need(2);
    const clientIdLength = view.readUInt16LE(offset);
    need(2 + clientIdLength + 8 + 2);
    const clientId = decodeText(
      view.subarray(offset + 2, offset + 2 + clientIdLength),
      'client id',
    );
    offset += 2 + clientIdLength;
    const seq = view.readDoubleLE(offset);
    const topicLength = view.readUInt16LE(offset + 8);
    offset += 10;
    need(topicLength + 4);
    const topic = decodeText(view.subarray(offset, offset + topicLength), 'topic');
    const payloadLength = view.readUInt32LE(offset + topicLength);
    offset += topicLength + 4;
    need(payloadLength);
    const payload = view.subarray(offset, offset + payloadLength);
    offset += payloadLength;
    const message = { clientId, seq, topic, payload };
    const problem = clientMessageProblem(message);
    if (problem !== null) throw new BatchFormatError(problem);
    messages.push(message);
  }
  if (offset !== view.length) throw new BatchFormatError('trailing bytes after the batch');
  return { logTimeMs, messages };
}
