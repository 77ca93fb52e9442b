/**
 * The broadcastRun frame and its runAnswer (docs/protocol.md): one run of one session's
 * broadcasts with each payload's JSON text carried as it is, length-prefixed, and one
 * compact result per message back. POST /v1/broadcast/batch says the same in JSON, which
 * costs a parse and a re-encoding of every payload on the node and a parse of every result
 * on the client; here the payload bytes pass from the client's frame to the log untouched.
 *
 * Both are laid out straight into one buffer (sizes first, then one write per field), and
 * decoded with the reader every frame uses, which checks each length before it reads.
 */
import { assert } from '../util/assert.ts';
import {
  clientFrameLimits,
  clientProtocolVersion,
  type FrameReader,
  malformed,
  StringMemo,
} from './frame-fields.ts';
import { lengthPrefixBytes } from './framing.ts';

export const runFrameTypes = { broadcastRun: 10, runAnswer: 11 } as const;

/**
 * A run of one session's broadcasts (seqs `firstSeq`, `firstSeq + 1`, …), each payload the
 * JSON text itself: POST /v1/broadcast/batch without the JSON around the payloads.
 */
export interface BroadcastRunFrame {
  readonly type: 'broadcastRun';
  readonly requestId: number;
  /** As a request's: `authorization` overrides the hello's token. */
  readonly headers: Readonly<Record<string, string>>;
  readonly clientId: string;
  readonly firstSeq: number;
  /** Empty: none. */
  readonly nonce: string;
  readonly messages: readonly RunFrameMessage[];
}

export interface RunFrameMessage {
  /**
   * The payload's JSON text in UTF-8 (a string is written as its UTF-8). Decoded, a view
   * of a copy of the frame made for the run, so it outlives the socket's chunk.
   */
  readonly payload: Uint8Array | string;
  /** Empty: none. */
  readonly topic: string;
  /** Empty: none. */
  readonly key: string;
}

/**
 * A message as `encodeBroadcastRun` reads it: a RunFrameMessage, or the SDK's own record of
 * a broadcast, read in place (no object per message is made to encode a run).
 */
export interface RunFrameSource {
  readonly payload: Uint8Array | string;
  /**
   * The payload is a string with nothing in it to escape, whose JSON text is itself in
   * quotes: written with a quote before and after it.
   */
  readonly payloadQuoted?: boolean;
  /**
   * `payloadQuoted`, and every character of it ASCII: its length is its byte count, and it
   * is copied byte for byte (the cost of measuring and encoding UTF-8 per message saved).
   */
  readonly payloadAscii?: boolean;
  /** Undefined or empty: none. */
  readonly topic: string | undefined;
  /** Undefined or empty: none. */
  readonly key?: string | undefined;
}

/** A broadcastRun as `encodeBroadcastRun` takes it: its messages read in place. */
export interface BroadcastRunSource extends Omit<BroadcastRunFrame, 'messages'> {
  readonly messages: readonly RunFrameSource[];
}

/** One message's outcome in a runAnswer: where it is in the order, or why it is not. */
export type RunResult =
  | {
      readonly kind: 'ok';
      /** Null when not known (a duplicate older than what the node remembers). */
      readonly position: number | null;
      /** Null when not known (its entry compacted away). */
      readonly term: number | null;
      readonly duplicate: boolean;
    }
  | {
      readonly kind: 'error';
      /** The HTTP status a single POST /v1/broadcast would have answered. */
      readonly status: number;
      readonly code: string;
      readonly message: string;
      /** The error body's other fields, as a JSON object's text; empty: none. */
      readonly details: string;
    };

/** The answer to a broadcastRun the node took: one result per message, in order. */
export interface RunAnswerFrame {
  readonly type: 'runAnswer';
  readonly requestId: number;
  readonly results: readonly RunResult[];
}

/** A result's first byte. */
const outcomeCodes = { delivered: 1, duplicate: 2, error: 3 } as const;

/** A message takes at least its three lengths: payload (u32), topic and key (u16). */
const runMessageBytesMin = 8;
/** A result takes at least an error's outcome, status and four empty lengths. */
const runResultBytesMin = 11;
const okResultBytes = 17;

/** Writes fields front to back into a buffer sized beforehand. */
class BufferWriter {
  private at = 0;
  readonly buffer: Buffer;
  /** Integers go through a DataView: Buffer's writeUInt32BE checks and writes byte by byte. */
  private readonly view: DataView;

  /** `bodyBytes`: everything after the length prefix; the header is written here. */
  constructor(bodyBytes: number, type: number, requestId: number) {
    assert(bodyBytes <= 0xffff_ffff, 'a frame length fits its prefix');
    this.buffer = Buffer.allocUnsafe(lengthPrefixBytes + bodyBytes);
    this.view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
    this.u32(bodyBytes);
    this.u8(clientProtocolVersion);
    this.u8(type);
    this.u32(requestId);
  }

  u8(value: number): void {
    this.buffer[this.at++] = value;
  }

  u16(value: number): void {
    assert(value >= 0 && value <= 0xffff, 'a u16 field fits');
    this.view.setUint16(this.at, value);
    this.at += 2;
  }

  u32(value: number): void {
    assert(value >= 0 && value <= 0xffff_ffff, 'a u32 field fits');
    this.view.setUint32(this.at, value);
    this.at += 4;
  }

  u64(value: number): void {
    assert(Number.isSafeInteger(value) && value >= 0, 'a u64 field holds a safe integer');
    this.u32(Math.floor(value / 0x1_0000_0000));
    this.u32(value >>> 0);
  }

  /** A u16-length string whose UTF-8 length the caller measured. */
  text(text: string, byteCount: number): void {
    this.u16(byteCount);
    if (byteCount > 0) this.at += this.buffer.write(text, this.at, byteCount, 'utf8');
  }

  /** u32-length bytes, or a string's UTF-8 whose length the caller measured. */
  bytes(bytes: Uint8Array | string, byteCount: number): void {
    this.u32(byteCount);
    if (typeof bytes === 'string') this.at += this.buffer.write(bytes, this.at, byteCount, 'utf8');
    else {
      this.buffer.set(bytes, this.at);
      this.at += byteCount;
    }
  }

  /**
   * u32-length bytes: a string's UTF-8 in quotes, `byteCount` with the quotes; `ascii`:
   * the string is ASCII alone, whose UTF-8 is its Latin-1 (the cheaper copy).
   */
  quoted(text: string, byteCount: number, ascii: boolean): void {
    this.u32(byteCount);
    this.u8(quote);
    if (byteCount > 2) {
      this.at += this.buffer.write(text, this.at, byteCount - 2, ascii ? 'latin1' : 'utf8');
    }
    this.u8(quote);
  }

  finish(): Buffer {
    assert(this.at === this.buffer.length, 'a frame is written to its measured length');
    return this.buffer;
  }
}

function textBytes(text: string, bytesMax: number): number {
  const byteCount = text === '' ? 0 : Buffer.byteLength(text);
  assert(byteCount <= bytesMax, 'a string fits its bound');
  return byteCount;
}

function headerPairs(
  headers: Readonly<Record<string, string>>,
): [string, number, string, number][] {
  const pairs = Object.entries(headers).map(([name, value]): [string, number, string, number] => [
    name,
    textBytes(name, clientFrameLimits.headerNameBytesMax),
    value,
    textBytes(value, clientFrameLimits.headerValueBytesMax),
  ]);
  assert(pairs.length <= clientFrameLimits.headersMax, 'headers fit their bound');
  return pairs;
}

/** The lengths of a run's fields, three per message: reused from run to run. */
let runLengths = new Uint32Array(3 * 1024);
const quote = 0x22;

/** A broadcastRun's bytes on the wire, length prefix included. */
export function encodeBroadcastRun(frame: BroadcastRunSource): Buffer {
  const { messages } = frame;
  assert(messages.length <= clientFrameLimits.runMessagesMax, 'a run fits its count');
  const fieldMax = clientFrameLimits.runFieldBytesMax;
  const headers = headerPairs(frame.headers);
  const clientIdBytes = textBytes(frame.clientId, fieldMax);
  const nonceBytes = textBytes(frame.nonce, fieldMax);
  // Header count, client id, first seq, nonce and message count around their contents.
  let bodyBytes = clientFrameLimits.headerBytes + 2 + 2 + clientIdBytes + 8 + 2 + nonceBytes + 2;
  for (const [, nameBytes, , valueBytes] of headers) bodyBytes += 4 + nameBytes + valueBytes;
  // Three lengths per message, measured once: a run's topic is usually one string.
  if (runLengths.length < messages.length * 3) runLengths = new Uint32Array(messages.length * 3);
  const lengths = runLengths;
  let lastTopic: string | undefined = '';
  let lastTopicBytes = 0;
  for (let at = 0; at < messages.length; at++) {
    const message = messages[at] as RunFrameSource;
    const { payload, topic, key } = message;
    let payloadBytes =
      typeof payload === 'string' && message.payloadAscii !== true
        ? Buffer.byteLength(payload)
        : payload.length;
    if (message.payloadQuoted === true) payloadBytes += 2;
    if (topic !== lastTopic) {
      lastTopic = topic;
      lastTopicBytes = topic === undefined ? 0 : textBytes(topic, fieldMax);
    }
    const keyBytes = key === undefined ? 0 : textBytes(key, fieldMax);
    lengths[at * 3] = payloadBytes;
    lengths[at * 3 + 1] = lastTopicBytes;
    lengths[at * 3 + 2] = keyBytes;
    bodyBytes += runMessageBytesMin + payloadBytes + lastTopicBytes + keyBytes;
  }
  const writer = new BufferWriter(bodyBytes, runFrameTypes.broadcastRun, frame.requestId);
  writer.u16(headers.length);
  for (const [name, nameBytes, value, valueBytes] of headers) {
    writer.text(name, nameBytes);
    writer.text(value, valueBytes);
  }
  writer.text(frame.clientId, clientIdBytes);
  writer.u64(frame.firstSeq);
  writer.text(frame.nonce, nonceBytes);
  writer.u16(messages.length);
  for (let at = 0; at < messages.length; at++) {
    const message = messages[at] as RunFrameSource;
    const payloadBytes = lengths[at * 3] as number;
    if (message.payloadQuoted === true) {
      writer.quoted(message.payload as string, payloadBytes, message.payloadAscii === true);
    } else writer.bytes(message.payload, payloadBytes);
    writer.text(message.topic ?? '', lengths[at * 3 + 1] as number);
    writer.text(message.key ?? '', lengths[at * 3 + 2] as number);
  }
  return writer.finish();
}

export function decodeBroadcastRun(reader: FrameReader, requestId: number): BroadcastRunFrame {
  const { messages, ...run } = readReceivedRun(reader, requestId, false);
  return {
    type: 'broadcastRun',
    ...run,
    messages: messages.map(({ payload, topic, key }) => ({ payload, topic, key: key ?? '' })),
  };
}

/**
 * A message of a broadcastRun as the node reads it, shaped as the log's message of its
 * session (ClientMessage: its client id and seq written in, key undefined when none) so
 * that the node keeps it as it is: one object per message from the frame to the log, its
 * topic and key the string of the message before whenever their bytes repeat.
 *
 * Its payload is a range of the frame, `payloadSource[payloadStart, + payloadBytes)`, read
 * there (the JSON-text check, the batch's copy, every count of bytes) rather than through a
 * view per message: with 10,000 in flight a view each lived as long as its message and was
 * the largest object the node kept per message. `payload` makes a view when asked.
 */
export class ReceivedRunMessage {
  constructor(
    readonly clientId: string,
    /** The run's first seq plus the message's offset in it. */
    readonly seq: number,
    /** Empty: none. */
    readonly topic: string,
    private source: Uint8Array,
    private start: number,
    private byteCount: number,
    /** Undefined: none (never empty). */
    readonly key: string | undefined,
  ) {}

  /** The buffer the payload lies in, from `payloadStart`. */
  get payloadSource(): Uint8Array {
    return this.source;
  }

  get payloadStart(): number {
    return this.start;
  }

  get payloadBytes(): number {
    return this.byteCount;
  }

  /** A view of the payload, made on each read. */
  get payload(): Uint8Array {
    return this.source.subarray(this.start, this.start + this.byteCount);
  }

  /** Replaced by the node when it must store another form (a re-encoding). */
  set payload(bytes: Uint8Array) {
    this.source = bytes;
    this.start = 0;
    this.byteCount = bytes.length;
  }
}

/** A message of a run as the node keeps it, its payload the whole of `payload`. */
export function receivedRunMessage(
  clientId: string,
  seq: number,
  topic: string,
  payload: Uint8Array,
  key: string,
): ReceivedRunMessage {
  return new ReceivedRunMessage(
    clientId,
    seq,
    topic,
    payload,
    0,
    payload.length,
    key === '' ? undefined : key,
  );
}

/** A broadcastRun as the node reads it off the wire. */
export interface ReceivedRun {
  readonly requestId: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly clientId: string;
  readonly firstSeq: number;
  /** Empty: none. */
  readonly nonce: string;
  readonly messages: ReceivedRunMessage[];
}

/**
 * A broadcastRun's fields after its request id. The payloads are kept (in the log, in the
 * node's memory) long after this turn: they are views of a copy of the frame, or with
 * `keepable` of the frame itself (FrameReader.detach), never of memory someone reuses.
 */
export function readReceivedRun(
  reader: FrameReader,
  requestId: number,
  keepable: boolean,
): ReceivedRun {
  reader.detach(keepable);
  const fieldMax = clientFrameLimits.runFieldBytesMax;
  const headers = reader.headers();
  const clientId = reader.string('the client id', fieldMax);
  const firstSeq = reader.u64('the first seq');
  const nonce = reader.string('the nonce', fieldMax);
  const count = reader.u16('the message count');
  // Checked before anything is allocated for them.
  if (count * runMessageBytesMin > reader.remainingBytes) {
    throw malformed(`${count} messages do not fit in the frame's ${reader.remainingBytes} bytes`);
  }
  const topics = new StringMemo();
  const keys = new StringMemo();
  const messages = new Array<ReceivedRunMessage>(count);
  const source = reader.source;
  for (let at = 0; at < count; at++) {
    const payloadStart = reader.skipBytes('a payload');
    const payloadBytes = reader.offset - payloadStart;
    const topic = reader.memoString('a topic', fieldMax, topics);
    const key = reader.memoString('a key', fieldMax, keys);
    messages[at] = new ReceivedRunMessage(
      clientId,
      firstSeq + at,
      topic,
      source,
      payloadStart,
      payloadBytes,
      key === '' ? undefined : key,
    );
  }
  return { requestId, headers, clientId, firstSeq, nonce, messages };
}

/** A runAnswer's bytes on the wire, length prefix included. */
export function encodeRunAnswer(frame: RunAnswerFrame): Buffer {
  return encodeRunAnswerOf(frame.requestId, runResultsOf(frame.results));
}

interface MeasuredError {
  readonly at: number;
  readonly error: RunErrorResult;
  readonly codeBytes: number;
  readonly messageBytes: number;
  readonly detailsBytes: number;
}

/**
 * A runAnswer's bytes on the wire, length prefix included, read from `results` where they
 * are: no object per result (errors, rare, are measured first as objects).
 */
export function encodeRunAnswerOf(requestId: number, results: RunResults): Buffer {
  const { count } = results;
  assert(count <= clientFrameLimits.runMessagesMax, 'an answer fits its count');
  let bodyBytes = clientFrameLimits.headerBytes + 2 + count * okResultBytes;
  const errors: MeasuredError[] = [];
  for (let at = 0; at < count; at++) {
    if (results.ok(at)) continue;
    const error = results.error(at);
    assert(error.status >= 100 && error.status <= 599, 'an error has an HTTP status');
    const measured = {
      at,
      error,
      codeBytes: textBytes(error.code, clientFrameLimits.codeBytesMax),
      messageBytes: textBytes(error.message, clientFrameLimits.messageBytesMax),
      detailsBytes: textBytes(error.details, clientFrameLimits.detailsBytesMax),
    };
    bodyBytes += runResultBytesMin + measured.codeBytes + measured.messageBytes;
    bodyBytes += measured.detailsBytes - okResultBytes;
    errors.push(measured);
  }
  const writer = new BufferWriter(bodyBytes, runFrameTypes.runAnswer, requestId);
  writer.u16(count);
  let nextError = 0;
  for (let at = 0; at < count; at++) {
    const measured = errors[nextError];
    if (measured === undefined || measured.at !== at) {
      writer.u8(results.duplicate(at) ? outcomeCodes.duplicate : outcomeCodes.delivered);
      writer.u64(results.position(at) ?? 0);
      writer.u64(results.term(at) ?? 0);
      continue;
    }
    nextError++;
    const { error } = measured;
    writer.u8(outcomeCodes.error);
    writer.u16(error.status);
    writer.text(error.code, measured.codeBytes);
    writer.text(error.message, measured.messageBytes);
    writer.bytes(error.details, measured.detailsBytes);
  }
  return writer.finish();
}

export function decodeRunAnswer(reader: FrameReader, requestId: number): RunAnswerFrame {
  const count = readResultCount(reader);
  const results = new Array<RunResult>(count);
  for (let at = 0; at < count; at++) {
    const outcome = readOutcome(reader);
    if (outcome === outcomeCodes.error) {
      results[at] = readError(reader);
      continue;
    }
    const position = reader.u64('a position');
    const term = reader.u64('a term');
    results[at] = {
      kind: 'ok',
      position: position === 0 ? null : position,
      term: term === 0 ? null : term,
      duplicate: outcome === outcomeCodes.duplicate,
    };
  }
  return { type: 'runAnswer', requestId, results };
}

/** An error result of a runAnswer. */
export type RunErrorResult = Extract<RunResult, { readonly kind: 'error' }>;

/**
 * A runAnswer's results as they are read, without an object per result: what the SDK hands
 * straight to the broadcasts that wait on them. With 10,000 messages in flight a result
 * object per message is garbage at the rate of the answers.
 */
export interface RunResults {
  readonly count: number;
  /** Whether result `at` put its message in the order (or found it there already). */
  ok(at: number): boolean;
  /** Of an ok result; null when not known (a duplicate older than what the node remembers). */
  position(at: number): number | null;
  /** Of an ok result; null when not known (its entry compacted away). */
  term(at: number): number | null;
  duplicate(at: number): boolean;
  /** Of a result that is not ok. */
  error(at: number): RunErrorResult;
}

/** Decoded results (an in-process exchange's answer) as RunResults. */
export function runResultsOf(results: readonly RunResult[]): RunResults {
  const ok = (at: number) => (results[at] as RunResult).kind === 'ok';
  const okAt = (at: number) => {
    const result = results[at] as RunResult;
    assert(result.kind === 'ok', 'an ok result');
    return result;
  };
  return {
    count: results.length,
    ok,
    position: (at) => okAt(at).position,
    term: (at) => okAt(at).term,
    duplicate: (at) => okAt(at).duplicate,
    error: (at) => {
      const result = results[at] as RunResult;
      assert(result.kind === 'error', 'an error result');
      return result;
    },
  };
}

/** RunResults as objects (an in-process exchange's answer). */
export function runResultList(results: RunResults): RunResult[] {
  return Array.from({ length: results.count }, (_, at): RunResult => {
    if (!results.ok(at)) return results.error(at);
    const position = results.position(at);
    const term = results.term(at);
    return { kind: 'ok', position, term, duplicate: results.duplicate(at) };
  });
}

/**
 * Columns a connection reads its runAnswers into, reused from frame to frame (they grow to
 * the largest run): valid only until the next runAnswer is read into them.
 */
export class RunResultColumns implements RunResults {
  count = 0;
  private outcomes = new Uint8Array(0);
  // Plain arrays: a position read from one is a small integer as it is, where one read
  // from a Float64Array would be a heap number made per message.
  private readonly positions: number[] = [];
  private readonly terms: number[] = [];
  /** By result: errors are rare, so they are kept apart and made as objects. */
  private readonly errors = new Map<number, RunErrorResult>();

  /** Reads a runAnswer's fields (after its request id) into the columns. */
  read(reader: FrameReader): void {
    const count = readResultCount(reader);
    if (count > this.outcomes.length) this.outcomes = new Uint8Array(count);
    this.count = 0;
    this.errors.clear();
    for (let at = 0; at < count; at++) {
      const outcome = readOutcome(reader);
      this.outcomes[at] = outcome;
      if (outcome === outcomeCodes.error) {
        this.errors.set(at, readError(reader));
        this.positions[at] = 0;
        this.terms[at] = 0;
      } else {
        this.positions[at] = reader.u64('a position');
        this.terms[at] = reader.u64('a term');
      }
    }
    this.count = count;
  }

  ok(at: number): boolean {
    assert(at < this.count, 'a result of the run');
    return this.outcomes[at] !== outcomeCodes.error;
  }

  position(at: number): number | null {
    assert(this.ok(at), 'an ok result');
    return (this.positions[at] as number) || null;
  }

  term(at: number): number | null {
    assert(this.ok(at), 'an ok result');
    return (this.terms[at] as number) || null;
  }

  duplicate(at: number): boolean {
    assert(this.ok(at), 'an ok result');
    return this.outcomes[at] === outcomeCodes.duplicate;
  }

  error(at: number): RunErrorResult {
    const error = this.errors.get(at);
    assert(error !== undefined, 'an error result');
    return error;
  }
}

function readResultCount(reader: FrameReader): number {
  const count = reader.u16('the result count');
  if (count * runResultBytesMin > reader.remainingBytes) {
    throw malformed(`${count} results do not fit in the frame's ${reader.remainingBytes} bytes`);
  }
  return count;
}

function readOutcome(reader: FrameReader): number {
  const outcome = reader.u8('a result');
  if (outcome < outcomeCodes.delivered || outcome > outcomeCodes.error) {
    throw malformed(`result outcome ${outcome} is not 1–3`);
  }
  return outcome;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** An error result's fields, after its outcome. */
function readError(reader: FrameReader): RunErrorResult {
  const status = reader.u16('a status');
  if (status < 100 || status > 599) throw malformed(`status ${status} is not 100–599`);
  const code = reader.string('an error code', clientFrameLimits.codeBytesMax);
  const message = reader.string('an error message', clientFrameLimits.messageBytesMax);
  const detailBytes = reader.bytes('error details');
  if (detailBytes.length > clientFrameLimits.detailsBytesMax) {
    throw malformed(`error details are over ${clientFrameLimits.detailsBytesMax} bytes`);
  }
  let details: string;
  try {
    details = utf8.decode(detailBytes);
  } catch {
    throw malformed('error details are not UTF-8');
  }
  return { kind: 'error', status, code, message, details };
}
