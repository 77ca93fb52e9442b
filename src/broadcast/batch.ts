/**
 * The batch: how client messages travel inside one log entry. A batch is built once, where
 * messages enter the cluster, and from then on stays one opaque buffer through the leader,
 * the WAL, the fsync and the wire. It is decoded only where it is applied.
 *
 * Messages are grouped in runs: consecutive messages of one client session, with one topic
 * and consecutive sequence numbers, share one header. A run is what the session table
 * decides on, so exactly-once costs one check per run, not per message.
 *
 * Layout (little-endian):
 *   u8  format version (1; 2 when some run has an owner or a nonce; 3 when some run has a key)
 *   f64 log time in ms, stamped by the node that built the batch; session expiry uses it so
 *       that every replica decides the same (a replica's own clock never decides anything)
 *   u32 run count
 *   per run:
 *     u16 client id length, client id (UTF-8; empty: anonymous, never deduplicated)
 *     f64 first sequence number (a safe integer >= 1; 0 when anonymous)
 *     u16 topic length, topic (UTF-8; empty: no topic)
 *     u32 message count (>= 1)
 *     per message: u32 payload length, payload bytes
 *   format 2 only, per run in the same order (the session's owner and nonce, sessions.ts):
 *     u8 owner length, owner (UTF-8; empty: nobody authenticated)
 *     u8 nonce length, nonce (ASCII; empty: none sent)
 *   format 3 only, after each run's nonce: u8 key length, key (UTF-8; empty: no key). A run's
 *     messages share its key: a message with another key opens a new run.
 *
 * The owner and nonce trail the runs so that a batch without them is written in format 1,
 * byte for byte as before they existed: a cluster without authentication or nonces can be
 * upgraded one node at a time. A node that only reads format 1 refuses a format 2 batch as a
 * whole (it halts rather than apply it without its owners), so upgrade every node before
 * turning authentication on.
 */
import { isUtf8 } from 'node:buffer';
import { ReceivedRunMessage } from '../transport/run-frames.ts';
import { assert } from '../util/assert.ts';
import {
  batchedMessageProblem,
  type ClientMessage,
  clientIdBytesMax,
  payloadProblem,
  runSeqProblem,
  seqProblem,
  topicBytesMax,
} from './message-rules.ts';

export { clientIdBytesMax, topicBytesMax };

/** The format of a batch whose runs have no owner and no nonce. */
export const batchFormatVersion = 1;
/** The format of a batch where some run has an owner or a nonce. */
export const batchFormatVersionOwned = 2;
/** The format of a batch where some run has a key (its trailer carries the keys too). */
export const batchFormatVersionKeyed = 3;

export type { ClientMessage } from './message-rules.ts';

/** Consecutive messages of one session and topic: seqs firstSeq, firstSeq + 1, … */
export interface MessageRun {
  readonly clientId: string;
  readonly firstSeq: number;
  readonly topic: string;
  readonly payloads: readonly Uint8Array[];
  /** The identity that sent the run; empty when nobody was authenticated. */
  readonly owner: string;
  /** The sender's session nonce; empty when it sent none. */
  readonly nonce: string;
  /** The messages' key (message-rules.ts); empty when they have none. */
  readonly key: string;
}

export interface DecodedBatch {
  readonly logTimeMs: number;
  readonly runs: readonly MessageRun[];
  /** The messages one by one, built on first use (tests, tools, the simulator). */
  readonly messages: readonly ClientMessage[];
}

class Batch implements DecodedBatch {
  private expanded: ClientMessage[] | null = null;

  constructor(
    readonly logTimeMs: number,
    readonly runs: readonly MessageRun[],
  ) {}

  get messages(): readonly ClientMessage[] {
    this.expanded ??= this.runs.flatMap((run) =>
      run.payloads.map((payload, offset) => ({
        clientId: run.clientId,
        seq: run.clientId === '' ? 0 : run.firstSeq + offset,
        topic: run.topic,
        payload,
        ...(run.owner === '' ? {} : { owner: run.owner }),
        ...(run.nonce === '' ? {} : { nonce: run.nonce }),
        ...(run.key === '' ? {} : { key: run.key }),
      })),
    );
    return this.expanded;
  }
}

export class BatchFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BatchFormatError';
  }
}

/**
 * A message whose payload is a range of a larger buffer (a run read off the binary port,
 * src/transport/run-frames.ts): its bytes are counted and copied where they lie, since its
 * `payload` makes a view on every read.
 */
interface PayloadRange {
  readonly payloadSource: Uint8Array;
  readonly payloadStart: number;
  readonly payloadBytes: number;
}

/** A message's payload length, read without a view where its payload is a range. */
export function payloadBytesOf(message: { readonly payload: Uint8Array }): number {
  const byteCount = (message as Partial<PayloadRange>).payloadBytes;
  return byteCount === undefined ? message.payload.byteLength : byteCount;
}

const headerBytes = 1 + 8 + 4;
/** Spare room a batch may keep alive with it when its buffer is handed over uncopied. */
const handOverWasteBytesMax = 16 << 10;

/** Appends messages to one growing buffer, extending the open run when it can. */
export class BatchBuilder {
  private buffer = Buffer.allocUnsafe(4096);
  private count = 0;
  private runCount = 0;
  private bytes = headerBytes;
  /** The open run: where its message count is written, and what extends it. */
  private runCountOffset = -1;
  private runMessageCount = 0;
  private runClientId = '';
  private runTopic = '';
  private runNextSeq = 0;
  private runOwner = '';
  private runNonce = '';
  private runKey = '';
  /** Each run's owner, nonce and key, written after the runs when any is set (format 2, 3). */
  private runOwners: [owner: string, nonce: string, key: string][] = [];
  /** Bytes the trailer's owners and nonces take, and its keys (format 3 only). */
  private ownersBytes = 0;
  private keysBytes = 0;
  private owned = false;
  private keyed = false;

  get messageCount(): number {
    return this.count;
  }

  /** The batch's size if finished now, the owners' trailer included. */
  /** The batch's size as `finish` will write it, the trailer included. */
  get byteLength(): number {
    if (this.keyed) return this.bytes + this.ownersBytes + this.keysBytes;
    return this.bytes + (this.owned ? this.ownersBytes : 0);
  }

  private reserve(extraBytes: number): void {
    if (this.bytes + extraBytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.bytes + extraBytes));
    this.buffer.copy(grown, 0, 0, this.bytes);
    this.buffer = grown;
  }

  /**
   * Makes room for a batch of about `bytes` before it is built: `finish` hands over the
   * buffer itself when the batch fills it closely enough, so it should fit the batch.
   */
  reserveFor(bytes: number): void {
    assert(this.count === 0, 'room is made before a batch, not during one');
    const spareBytes = this.buffer.length - bytes;
    if (spareBytes < 0 || spareBytes > handOverWasteBytesMax) {
      this.buffer = Buffer.allocUnsafe(Math.max(bytes, headerBytes));
    }
  }

  add(message: ClientMessage): void {
    const range = message instanceof ReceivedRunMessage ? message : null;
    const extendsRun =
      this.runCountOffset >= 0 &&
      message.clientId === this.runClientId &&
      message.topic === this.runTopic &&
      (message.owner ?? '') === this.runOwner &&
      (message.nonce ?? '') === this.runNonce &&
      (message.key ?? '') === this.runKey &&
      (message.clientId === '' || message.seq === this.runNextSeq);
    if (extendsRun) {
      // Only what differs from the run's first message, checked in full, is checked again.
      // A payload range is bytes by construction.
      const problem =
        (message.clientId === '' || Number.isSafeInteger(message.seq)
          ? null
          : seqProblem(message.seq)) ??
        (range === null ? payloadProblem(message.payload, Number.POSITIVE_INFINITY) : null);
      assert(problem === null, `batched messages are valid: ${problem?.message}`);
    } else {
      const problem = batchedMessageProblem(message);
      assert(problem === null, `batched messages are valid: ${problem?.message}`);
      this.openRun(message);
    }
    let offset: number;
    if (range === null) {
      const { payload } = message;
      this.reserve(4 + payload.length);
      offset = this.buffer.writeUInt32LE(payload.length, this.bytes);
      this.buffer.set(payload, offset);
      offset += payload.length;
    } else {
      const { payloadSource, payloadStart, payloadBytes } = range;
      this.reserve(4 + payloadBytes);
      offset = this.buffer.writeUInt32LE(payloadBytes, this.bytes);
      this.buffer.set(payloadSource.subarray(payloadStart, payloadStart + payloadBytes), offset);
      offset += payloadBytes;
    }
    this.bytes = offset;
    this.runMessageCount++;
    this.runNextSeq = message.seq + 1;
    this.count++;
  }

  private openRun(message: ClientMessage): void {
    this.closeRun();
    const clientIdBytes = Buffer.byteLength(message.clientId);
    const topicBytes = Buffer.byteLength(message.topic);
    this.reserve(2 + clientIdBytes + 8 + 2 + topicBytes + 4);
    const buffer = this.buffer;
    let offset = buffer.writeUInt16LE(clientIdBytes, this.bytes);
    offset += buffer.write(message.clientId, offset, 'utf8');
    offset = buffer.writeDoubleLE(message.seq, offset);
    offset = buffer.writeUInt16LE(topicBytes, offset);
    offset += buffer.write(message.topic, offset, 'utf8');
    this.runCountOffset = offset;
    this.bytes = offset + 4;
    this.runMessageCount = 0;
    this.runClientId = message.clientId;
    this.runTopic = message.topic;
    this.runOwner = message.owner ?? '';
    this.runNonce = message.nonce ?? '';
    this.runKey = message.key ?? '';
    this.runOwners.push([this.runOwner, this.runNonce, this.runKey]);
    this.ownersBytes += 2 + Buffer.byteLength(this.runOwner) + Buffer.byteLength(this.runNonce);
    this.keysBytes += 1 + Buffer.byteLength(this.runKey);
    this.owned ||= this.runOwner !== '' || this.runNonce !== '';
    this.keyed ||= this.runKey !== '';
    this.runCount++;
  }

  /** Format 2's trailer: the owner and nonce of every run, in run order; format 3 adds keys. */
  private writeOwners(): void {
    for (const [owner, nonce, key] of this.runOwners) {
      const ownerBytes = Buffer.byteLength(owner);
      const nonceBytes = Buffer.byteLength(nonce);
      const keyBytes = Buffer.byteLength(key);
      assert(ownerBytes <= 255 && nonceBytes <= 255, 'owner and nonce lengths fit a u8');
      assert(keyBytes <= 255, 'a key length fits a u8');
      this.reserve(3 + ownerBytes + nonceBytes + keyBytes);
      let offset = this.buffer.writeUInt8(ownerBytes, this.bytes);
      offset += this.buffer.write(owner, offset, 'utf8');
      offset = this.buffer.writeUInt8(nonceBytes, offset);
      offset += this.buffer.write(nonce, offset, 'utf8');
      if (this.keyed) {
        offset = this.buffer.writeUInt8(keyBytes, offset);
        offset += this.buffer.write(key, offset, 'utf8');
      }
      this.bytes = offset;
    }
  }

  private closeRun(): void {
    if (this.runCountOffset < 0) return;
    this.buffer.writeUInt32LE(this.runMessageCount, this.runCountOffset);
    this.runCountOffset = -1;
  }

  /**
   * The batch bytes. The buffer itself when the batch fills most of it (a batch is kept
   * while the log holds it, so little room may go to waste with it), and the builder starts
   * on a new one; otherwise a copy, and the builder keeps its buffer.
   */
  finish(logTimeMs: number): Uint8Array {
    assert(Number.isFinite(logTimeMs), 'log time is a finite number');
    this.reserve(0); // the header's room, in a buffer handed over with the last batch
    this.closeRun();
    if (this.owned || this.keyed) this.writeOwners();
    const buffer = this.buffer;
    const version = this.keyed
      ? batchFormatVersionKeyed
      : this.owned
        ? batchFormatVersionOwned
        : batchFormatVersion;
    buffer.writeUInt8(version, 0);
    buffer.writeDoubleLE(logTimeMs, 1);
    buffer.writeUInt32LE(this.runCount, 9);
    const wasteBytes = buffer.length - this.bytes;
    const handedOver = wasteBytes <= handOverWasteBytesMax && wasteBytes * 8 <= this.bytes;
    const batch = handedOver
      ? buffer.subarray(0, this.bytes)
      : Buffer.from(buffer.subarray(0, this.bytes));
    if (handedOver) this.buffer = Buffer.allocUnsafe(0);
    this.count = 0;
    this.runCount = 0;
    this.bytes = headerBytes;
    this.runOwners = [];
    this.ownersBytes = 0;
    this.keysBytes = 0;
    this.owned = false;
    this.keyed = false;
    return batch;
  }
}

export function encodeBatch(messages: readonly ClientMessage[], logTimeMs: number): Uint8Array {
  const builder = new BatchBuilder();
  for (const message of messages) builder.add(message);
  return builder.finish(logTimeMs);
}

function decodeText(view: Buffer, start: number, end: number, what: string): string {
  if (start === end) return '';
  if (!isUtf8(view.subarray(start, end))) throw new BatchFormatError(`${what} is not valid UTF-8`);
  return view.toString('utf8', start, end);
}

/** Total: returns the batch or throws BatchFormatError, never reads out of bounds. */
export function decodeBatch(data: Uint8Array): DecodedBatch {
  const { buffer } = data;
  const view = Buffer.from(buffer, data.byteOffset, data.byteLength);
  if (view.length < headerBytes) throw new BatchFormatError('batch shorter than its header');
  const version = view.readUInt8(0);
  if (
    version !== batchFormatVersion &&
    version !== batchFormatVersionOwned &&
    version !== batchFormatVersionKeyed
  ) {
    throw new BatchFormatError(`batch format ${version} is not supported`);
  }
  const logTimeMs = view.readDoubleLE(1);
  const runCount = view.readUInt32LE(9);
  const runs: MessageRun[] = [];
  let offset = headerBytes;
  const need = (bytes: number) => {
    if (offset + bytes > view.length) throw new BatchFormatError('batch ends inside a run');
  };
  for (let run = 0; run < runCount; run++) {
    need(2);
    const clientIdLength = view.readUInt16LE(offset);
    if (clientIdLength > clientIdBytesMax) throw new BatchFormatError('client id is too long');
    need(2 + clientIdLength + 8 + 2);
    const clientId = decodeText(view, offset + 2, offset + 2 + clientIdLength, 'client id');
    offset += 2 + clientIdLength;
    const firstSeq = view.readDoubleLE(offset);
    const topicLength = view.readUInt16LE(offset + 8);
    if (topicLength > topicBytesMax) throw new BatchFormatError('topic is too long');
    offset += 10;
    need(topicLength + 4);
    const topic = decodeText(view, offset, offset + topicLength, 'topic');
    const messageCount = view.readUInt32LE(offset + topicLength);
    offset += topicLength + 4;
    if (messageCount === 0) throw new BatchFormatError('a run holds at least one message');
    if (clientIdLength === 0) {
      if (firstSeq !== 0) throw new BatchFormatError('a sequence number needs a client id');
    } else {
      const seqs = runSeqProblem(firstSeq, messageCount);
      if (seqs !== null) throw new BatchFormatError(seqs.message);
    }
    // Each message needs at least its 4-byte length: refuse a lying count before looping.
    need(messageCount * 4);
    const payloads: Uint8Array[] = new Array(messageCount);
    for (let message = 0; message < messageCount; message++) {
      need(4);
      const payloadLength = view.readUInt32LE(offset);
      offset += 4;
      need(payloadLength);
      // A plain view, made directly: a Buffer's subarray goes through Buffer's constructor
      // (its species), which costs twice as much, and every node makes one per message.
      payloads[message] = new Uint8Array(buffer, view.byteOffset + offset, payloadLength);
      offset += payloadLength;
    }
    runs.push({ clientId, firstSeq, topic, payloads, owner: '', nonce: '', key: '' });
  }
  if (version === batchFormatVersionOwned || version === batchFormatVersionKeyed) {
    const readText = (what: string): string => {
      need(1);
      const length = view.readUInt8(offset);
      need(1 + length);
      const text = decodeText(view, offset + 1, offset + 1 + length, what);
      offset += 1 + length;
      return text;
    };
    for (let at = 0; at < runs.length; at++) {
      const owner = readText('owner');
      const nonce = readText('nonce');
      if (nonce !== '' && !/^[0-9A-Za-z_-]{1,64}$/.test(nonce)) {
        throw new BatchFormatError('a nonce is 1–64 characters of [0-9A-Za-z_-]');
      }
      const key = version === batchFormatVersionKeyed ? readText('key') : '';
      runs[at] = { ...(runs[at] as MessageRun), owner, nonce, key };
    }
  }
  if (offset !== view.length) throw new BatchFormatError('trailing bytes after the batch');
  return new Batch(logTimeMs, runs);
}

/** The batch these messages make, decoded (tests and the simulator). */
export function batchOf(messages: readonly ClientMessage[], logTimeMs: number): DecodedBatch {
  return decodeBatch(encodeBatch(messages, logTimeMs));
}
