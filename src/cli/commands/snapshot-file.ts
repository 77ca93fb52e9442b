/**
 * The backup file of `abcast snapshot save` and `restore` (docs/ops.md), read and written a
 * line at a time so that memory stays bounded whatever the length of the log.
 *
 * A file is a header line `{"format":"abcast-snapshot","version":2,"sha256":…,"bodyBytes":…}`
 * (padded with spaces to a fixed length, so that `save` writes it last, once the body's
 * checksum is known), then the body: the JSON lines of GET /v1/snapshot as the node sent them
 * (server/routes/snapshot.ts): a header line with the state, one line per message in position
 * order, and an end line with the message count. A file is good only when its length and
 * checksum match its header and its body passes `BodyChecker`: a truncated, changed or
 * incomplete file is refused, never restored.
 *
 * Version 1 files (the whole body as one JSON object) are still read, whole.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Configuration } from '../../raft/types.ts';
import { streamRecordPayloadBytesMax } from '../../transport/stream-records.ts';
import { CliError } from './errors.ts';

export const snapshotFormat = 'abcast-snapshot';
/** The version `save` writes; `restore` reads it and version 1. */
export const snapshotVersion = 2;
const legacyVersion = 1;
/**
 * The longest line read: the header line carries the state (base64), which a node keeps
 * within one buffer; a longer "line" is a damaged file, not one to hold in memory.
 */
export const lineBytesMax = 500 << 20;
/**
 * The longest message line: a payload of the largest a node takes, in base64, and a client
 * id, topic and key of the largest a record holds (u16 lengths), every byte escaped as
 * `\u00XX`. A longer line after the header is damage, refused before it is held whole.
 */
export const messageLineBytesMax =
  Math.ceil(streamRecordPayloadBytesMax / 3) * 4 + 3 * 6 * 0xffff + 1024;
/** The file's header line is short; a first line longer than this is not one. */
const fileHeaderBytesMax = 1024;

/** The first line of the body: everything but the messages. */
export interface SnapshotHeader {
  readonly format: string;
  readonly version: number;
  readonly node: string;
  readonly takenAtMs: number;
  readonly index: number;
  readonly term: number;
  readonly config: Configuration;
  readonly position: number;
  /** The application state, base64: u32 length of the session table, it, membership JSON. */
  readonly state: string;
  /** The first message's position; `position + 1` when the file holds none. */
  readonly firstPosition: number;
}

export interface SnapshotMessage {
  readonly position: number;
  readonly index: number;
  readonly term: number;
  readonly client: string;
  readonly seq: number;
  readonly topic: string;
  readonly time: number;
  readonly payloadBase64: string;
  /** The message's key; absent when it has none. */
  readonly key?: string;
  /** Present when a newer message of its key replaced it: its payload is gone. */
  readonly compacted?: true;
}

const messageFieldsRequired = [
  'position',
  'index',
  'term',
  'client',
  'seq',
  'topic',
  'time',
  'payloadBase64',
] as const;
const messageFieldsKnown = new Set<string>([...messageFieldsRequired, 'key', 'compacted']);

/** Node's base64 decoder skips what it does not read; only its own encoding round-trips. */
function isBase64(text: string): boolean {
  return Buffer.from(text, 'base64').toString('base64') === text;
}

/**
 * What is wrong with a message line's fields, or null. Strict on purpose: a field missing,
 * of another type, or not known to this release would make a backup that restores or reads
 * back differently from what the node held, so it is refused rather than copied.
 */
function messageProblem(fields: Record<string, unknown>): string | null {
  for (const name of Object.keys(fields)) {
    if (!messageFieldsKnown.has(name)) return `has a field this release does not know: ${name}`;
  }
  for (const name of messageFieldsRequired) {
    if (!(name in fields)) return `has no ${name}`;
  }
  const { index, term, seq, time, client, topic, key, compacted, payloadBase64 } = fields;
  for (const [name, value] of Object.entries({ index, term, seq, time })) {
    if (!isCount(value)) return `has a ${name} that is not a count`;
  }
  if (typeof client !== 'string' || typeof topic !== 'string') {
    return 'has a client or topic that is not text';
  }
  if (key !== undefined && typeof key !== 'string') return 'has a key that is not text';
  if (compacted !== undefined && compacted !== true) return 'has a compacted that is not true';
  if (typeof payloadBase64 !== 'string' || !isBase64(payloadBase64)) {
    return 'holds no payload in base64';
  }
  return null;
}

/** What a whole file or answer held, once checked. */
export interface SnapshotSummary {
  readonly header: SnapshotHeader;
  readonly messageCount: number;
}

/**
 * Splits bytes into lines (without their `\n`), holding at most one line's bytes; a line
 * longer than `bytesMax` throws.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private bytesMax: number,
    private readonly tooLong: (bytesMax: number) => Error,
  ) {}

  /** Lowers the bound for the lines still to come (the messages, after the header). */
  narrow(bytesMax: number): void {
    if (bytesMax < this.bytesMax) this.bytesMax = bytesMax;
  }

  push(chunk: Uint8Array, onLine: (line: Buffer) => void): void {
    let bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (let newline = bytes.indexOf(0x0a); newline >= 0; newline = bytes.indexOf(0x0a)) {
      this.hold(newline);
      const line =
        this.pending.length === 0 ? bytes.subarray(0, newline) : this.take(bytes, newline);
      onLine(line);
      bytes = bytes.subarray(newline + 1);
    }
    if (bytes.length === 0) return;
    this.hold(bytes.length);
    // Copied: the caller may reuse its chunk.
    this.pending.push(Buffer.from(bytes));
    this.pendingBytes += bytes.length;
  }

  /** Bytes after the last newline: not a line (a body ends with one). */
  get restBytes(): number {
    return this.pendingBytes;
  }

  private hold(moreBytes: number): void {
    if (this.pendingBytes + moreBytes > this.bytesMax) throw this.tooLong(this.bytesMax);
  }

  private take(bytes: Buffer, newline: number): Buffer {
    const line = Buffer.concat([...this.pending, bytes.subarray(0, newline)]);
    this.pending = [];
    this.pendingBytes = 0;
    return line;
  }
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function parseLine(line: Buffer): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(line.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** The header's fields, checked; null when it is not one of a body this release reads. */
function headerOf(fields: Record<string, unknown>, version: number): SnapshotHeader | null {
  const { index, term, position, firstPosition, state, config } = fields;
  const known =
    fields.format === snapshotFormat &&
    fields.version === version &&
    isCount(index) &&
    isCount(term) &&
    isCount(position) &&
    isCount(firstPosition) &&
    firstPosition >= 1 &&
    firstPosition <= position + 1 &&
    typeof state === 'string' &&
    typeof config === 'object' &&
    config !== null;
  return known ? (fields as unknown as SnapshotHeader) : null;
}

/**
 * Checks a version 2 body a line at a time, as it arrives: a header first, then the messages
 * at every position from `firstPosition` through `position` in order, then an end line whose
 * count matches, and nothing after it. Each problem throws a CliError from `problem`.
 */
export class BodyChecker {
  private headerValue: SnapshotHeader | null = null;
  private nextPosition = 0;
  private messageCount = 0;
  private ended = false;

  constructor(private readonly problem: (what: string) => CliError) {}

  /** Checks one line; returns the message it holds, or null for the header and end lines. */
  line(line: Buffer): SnapshotMessage | null {
    const fields = parseLine(line);
    const where = `line ${this.messageCount + (this.headerValue === null ? 1 : 2)}`;
    if (fields === null) throw this.problem(`${where} is not a JSON object`);
    if (this.ended) throw this.problem(`${where} follows the end line`);
    if (typeof fields.error === 'string') {
      throw this.problem(
        `the node could not finish it: ${fields.error}: ${String(fields.message ?? '')}`,
      );
    }
    if (this.headerValue === null) {
      if (fields.format === snapshotFormat && fields.version !== snapshotVersion) {
        throw this.problem(
          `it is a snapshot of version ${String(fields.version)}; this release reads version ${snapshotVersion} here`,
        );
      }
      const header = headerOf(fields, snapshotVersion);
      if (header === null) throw this.problem('its first line is not a snapshot header');
      this.headerValue = header;
      this.nextPosition = header.firstPosition;
      return null;
    }
    if (fields.end === true) return this.end(fields);
    if (fields.position !== this.nextPosition) {
      throw this.problem(
        `${where} holds position ${String(fields.position)}, not ${this.nextPosition}`,
      );
    }
    if (this.nextPosition > this.headerValue.position) {
      throw this.problem(`${where} holds a position past the snapshot's`);
    }
    const problem = messageProblem(fields);
    if (problem !== null) throw this.problem(`${where} (position ${this.nextPosition}) ${problem}`);
    this.nextPosition++;
    this.messageCount++;
    return fields as unknown as SnapshotMessage;
  }

  /** The body is over: returns what it held, or throws when it stopped short. */
  finish(): SnapshotSummary {
    if (this.headerValue === null) throw this.problem('it is empty');
    if (!this.ended) {
      throw this.problem(`it stops after ${this.messageCount} messages, without its end line`);
    }
    return { header: this.headerValue, messageCount: this.messageCount };
  }

  private end(fields: Record<string, unknown>): null {
    const header = this.headerValue as SnapshotHeader;
    if (fields.messageCount !== this.messageCount) {
      throw this.problem(
        `its end line counts ${String(fields.messageCount)} messages, but it holds ${this.messageCount}`,
      );
    }
    if (this.nextPosition !== header.position + 1) {
      throw this.problem(`it ends at position ${this.nextPosition - 1}, not ${header.position}`);
    }
    this.ended = true;
    return null;
  }
}

/** The file's header line, written before the body and again, filled in, after it. */
export function fileHeaderLine(sha256: string, bodyBytes: number): Buffer {
  const text = JSON.stringify({
    format: snapshotFormat,
    version: snapshotVersion,
    sha256,
    bodyBytes,
  });
  const widest = JSON.stringify({
    format: snapshotFormat,
    version: snapshotVersion,
    sha256: '0'.repeat(64),
    bodyBytes: Number.MAX_SAFE_INTEGER,
  });
  return Buffer.from(`${text.padEnd(widest.length, ' ')}\n`);
}

interface FileHeader {
  readonly version: number;
  readonly sha256: string;
  readonly bodyBytes: number;
}

function fileHeaderOf(line: Buffer, path: string): FileHeader {
  const fields = parseLine(line);
  if (fields === null || fields.format !== snapshotFormat) {
    throw new CliError(`${path} is not an abcast snapshot`);
  }
  if (fields.version !== snapshotVersion && fields.version !== legacyVersion) {
    throw new CliError(
      `${path} is a snapshot of version ${String(fields.version)}; this release reads versions ${legacyVersion} and ${snapshotVersion}`,
    );
  }
  if (typeof fields.state === 'string') {
    // What GET /v1/snapshot answered, kept as it came (say by curl): nothing vouches for it.
    throw new CliError(
      `${path} is a node's answer without the file's header line and checksum; make backups with abcast snapshot save`,
    );
  }
  if (typeof fields.sha256 !== 'string' || !isCount(fields.bodyBytes)) {
    throw new CliError(`${path} is damaged: its header line does not read`);
  }
  return { version: fields.version, sha256: fields.sha256, bodyBytes: fields.bodyBytes };
}

function damaged(path: string): CliError {
  return new CliError(`${path} is damaged: its checksum does not match (truncated or changed)`);
}

/** The file's first line and the bytes after it, from its first chunks. */
async function readFileHeader(
  chunks: AsyncIterator<Buffer>,
  path: string,
): Promise<{ readonly header: FileHeader; readonly rest: Buffer }> {
  let head = Buffer.alloc(0);
  for (;;) {
    const newline = head.indexOf(0x0a);
    if (newline >= 0) {
      return {
        header: fileHeaderOf(head.subarray(0, newline), path),
        rest: head.subarray(newline + 1),
      };
    }
    const next = await chunks.next();
    if (next.done === true || head.length > fileHeaderBytesMax) {
      throw new CliError(`${path} is not an abcast snapshot (no header line)`);
    }
    head = Buffer.concat([head, next.value]);
  }
}

/**
 * Reads and checks a backup file, version 1 or 2, handing each message to `onMessage` in
 * position order. Nothing is known good until it returns: the checksum covers the whole
 * body, and a file that fails it is reported as damaged whatever else is wrong with it.
 */
export async function readSnapshotFile(
  path: string,
  onMessage: (message: SnapshotMessage) => void = () => {},
): Promise<SnapshotSummary> {
  try {
    return await readChecked(path, onMessage);
  } catch (error) {
    // A file missing, unreadable or a directory: said as such, on one line.
    if (error instanceof Error && typeof (error as { syscall?: unknown }).syscall === 'string') {
      throw new CliError(`could not read ${path}: ${error.message}`);
    }
    throw error;
  }
}

async function readChecked(
  path: string,
  onMessage: (message: SnapshotMessage) => void,
): Promise<SnapshotSummary> {
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  try {
    const chunks = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const { header, rest } = await readFileHeader(chunks, path);
    if (header.version === legacyVersion) return await readLegacyFile(path, onMessage);
    const hash = createHash('sha256');
    let bodyBytes = 0;
    let bodyProblem: CliError | null = null;
    const splitter = new LineSplitter(
      lineBytesMax,
      (bytesMax) => new CliError(`${path} is damaged: a line is longer than ${bytesMax} bytes`),
    );
    const checker = new BodyChecker(
      (what) => new CliError(`${path} is not a whole backup: ${what}`),
    );
    const onLine = (line: Buffer) => {
      const message = checker.line(line);
      splitter.narrow(messageLineBytesMax);
      if (message !== null) onMessage(message);
    };
    for (let chunk = rest; ; ) {
      hash.update(chunk);
      bodyBytes += chunk.length;
      // A problem in the body is told once the checksum is judged: damage comes first.
      if (bodyProblem === null) {
        try {
          splitter.push(chunk, onLine);
        } catch (error) {
          if (!(error instanceof CliError)) throw error;
          bodyProblem = error;
        }
      }
      const next = await chunks.next();
      if (next.done === true) break;
      chunk = next.value;
    }
    if (bodyBytes !== header.bodyBytes || hash.digest('hex') !== header.sha256) throw damaged(path);
    if (bodyProblem !== null) throw bodyProblem;
    if (splitter.restBytes > 0) {
      throw new CliError(`${path} is not a whole backup: its last line has no end`);
    }
    return checker.finish();
  } finally {
    stream.destroy();
  }
}

/** A version 1 file, read whole: its body is one JSON object. */
async function readLegacyFile(
  path: string,
  onMessage: (message: SnapshotMessage) => void,
): Promise<SnapshotSummary> {
  const file = await readFile(path);
  const newline = file.indexOf(0x0a);
  const header = fileHeaderOf(file.subarray(0, newline), path);
  const body = file.subarray(newline + 1);
  const sha256 = createHash('sha256').update(body).digest('hex');
  if (body.length !== header.bodyBytes || sha256 !== header.sha256) throw damaged(path);
  const fields = parseLine(body);
  const parsed = fields === null ? null : headerOf(fields, legacyVersion);
  const messages = fields?.messages;
  if (parsed === null || !Array.isArray(messages)) {
    throw new CliError(`${path} holds a body of another format`);
  }
  for (const message of messages as SnapshotMessage[]) onMessage(message);
  return { header: parsed, messageCount: messages.length };
}
