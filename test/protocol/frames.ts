/**
 * The frames of docs/protocol.md, written from that document alone: a second codec that
 * shares nothing with the node's, so that a test passing with it shows the document is
 * enough to speak the protocol. Only node:buffer; nothing from src/.
 */
import { Buffer } from 'node:buffer';

export const protocolVersion = 1;

export const frameType = {
  hello: 1,
  welcome: 2,
  request: 3,
  answer: 4,
  goAway: 5,
  streamHead: 6,
  streamData: 7,
  streamEnd: 8,
  cancel: 9,
  broadcastRun: 10,
  runAnswer: 11,
} as const;

export const method = { GET: 1, POST: 2, DELETE: 3 } as const;

/** Header names are lower case (`a-z 0-9 -`), each once; order is kept as given. */
export type Headers = Readonly<Record<string, string>>;

export interface RunMessage {
  /** The payload's JSON text, carried as it is. */
  readonly payloadJson: string;
  readonly topic?: string;
  readonly key?: string;
}

export type RunResult =
  | {
      readonly kind: 'delivered' | 'duplicate';
      readonly position: number;
      readonly term: number;
    }
  | {
      readonly kind: 'error';
      readonly status: number;
      readonly code: string;
      readonly message: string;
      readonly details: Record<string, unknown> | null;
    };

export type ServerFrame =
  | {
      readonly type: 'welcome';
      readonly windowRequests: number;
      readonly frameBytesMax: number;
      readonly nodeId: string;
    }
  | {
      readonly type: 'answer';
      readonly requestId: number;
      readonly status: number;
      readonly headers: Headers;
      readonly body: Buffer;
    }
  | {
      readonly type: 'goAway';
      readonly requestId: number;
      readonly code: string;
      readonly message: string;
    }
  | {
      readonly type: 'streamHead';
      readonly requestId: number;
      readonly status: number;
      readonly headers: Headers;
    }
  | { readonly type: 'streamData'; readonly requestId: number; readonly data: Buffer }
  | { readonly type: 'streamEnd'; readonly requestId: number }
  | { readonly type: 'runAnswer'; readonly requestId: number; readonly results: RunResult[] };

/** Appends big-endian fields; `frame` puts the length, version, type and request id first. */
export class FieldWriter {
  private readonly parts: Buffer[] = [];

  u8(value: number): this {
    this.parts.push(Buffer.from([value]));
    return this;
  }

  u16(value: number): this {
    const part = Buffer.alloc(2);
    part.writeUInt16BE(value);
    this.parts.push(part);
    return this;
  }

  u32(value: number): this {
    const part = Buffer.alloc(4);
    part.writeUInt32BE(value);
    this.parts.push(part);
    return this;
  }

  /** At most 2^53 − 1, as the document bounds a u64. */
  u64(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`u64 out of range: ${value}`);
    const part = Buffer.alloc(8);
    part.writeBigUInt64BE(BigInt(value));
    this.parts.push(part);
    return this;
  }

  string(value: string): this {
    const bytes = Buffer.from(value, 'utf8');
    return this.u16(bytes.length).raw(bytes);
  }

  bytes(value: Uint8Array): this {
    return this.u32(value.length).raw(value);
  }

  headers(headers: Headers): this {
    const entries = Object.entries(headers);
    this.u16(entries.length);
    for (const [name, value] of entries) this.string(name).string(value);
    return this;
  }

  raw(bytes: Uint8Array): this {
    this.parts.push(Buffer.from(bytes));
    return this;
  }

  frame(type: number, requestId: number, version = protocolVersion): Buffer {
    const fields = Buffer.concat(this.parts);
    const head = Buffer.alloc(10);
    head.writeUInt32BE(fields.length + 6, 0);
    head.writeUInt8(version, 4);
    head.writeUInt8(type, 5);
    head.writeUInt32BE(requestId, 6);
    return Buffer.concat([head, fields]);
  }
}

export function helloFrame(token: string): Buffer {
  return new FieldWriter().string(token).frame(frameType.hello, 0);
}

export interface RequestFields {
  readonly method: keyof typeof method;
  readonly path: string;
  readonly headers?: Headers;
  readonly body?: Uint8Array;
}

export function requestFrame(requestId: number, request: RequestFields): Buffer {
  return new FieldWriter()
    .u8(method[request.method])
    .string(request.path)
    .headers(request.headers ?? {})
    .bytes(request.body ?? Buffer.alloc(0))
    .frame(frameType.request, requestId);
}

export interface RunFields {
  readonly headers?: Headers;
  readonly client: string;
  readonly firstSeq: number;
  readonly nonce?: string;
  readonly messages: readonly RunMessage[];
}

export function broadcastRunFrame(requestId: number, run: RunFields): Buffer {
  const writer = new FieldWriter()
    .headers(run.headers ?? {})
    .string(run.client)
    .u64(run.firstSeq)
    .string(run.nonce ?? '')
    .u16(run.messages.length);
  for (const message of run.messages) {
    writer
      .bytes(Buffer.from(message.payloadJson, 'utf8'))
      .string(message.topic ?? '')
      .string(message.key ?? '');
  }
  return writer.frame(frameType.broadcastRun, requestId);
}

export function cancelFrame(requestId: number): Buffer {
  return new FieldWriter().frame(frameType.cancel, requestId);
}

/** Reads fields in order; every read checks it stays inside the frame. */
export class FieldReader {
  private offset = 0;

  constructor(private readonly buffer: Buffer) {}

  private take(byteCount: number): Buffer {
    if (this.offset + byteCount > this.buffer.length) throw new Error('field runs past the frame');
    const slice = this.buffer.subarray(this.offset, this.offset + byteCount);
    this.offset += byteCount;
    return slice;
  }

  u8(): number {
    return this.take(1).readUInt8(0);
  }

  u16(): number {
    return this.take(2).readUInt16BE(0);
  }

  u32(): number {
    return this.take(4).readUInt32BE(0);
  }

  u64(): number {
    const value = this.take(8).readBigUInt64BE(0);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('u64 over 2^53 - 1');
    return Number(value);
  }

  f64(): number {
    return this.take(8).readDoubleBE(0);
  }

  string(): string {
    return this.take(this.u16()).toString('utf8');
  }

  bytes(): Buffer {
    return this.take(this.u32());
  }

  headers(): Headers {
    const count = this.u16();
    const headers: Record<string, string> = {};
    for (let at = 0; at < count; at++) headers[this.string()] = this.string();
    return headers;
  }

  rest(): Buffer {
    return this.take(this.buffer.length - this.offset);
  }

  end(): void {
    if (this.offset !== this.buffer.length) throw new Error('bytes left after the last field');
  }
}

function readRunResult(reader: FieldReader): RunResult {
  const kind = reader.u8();
  if (kind === 1 || kind === 2) {
    const position = reader.u64();
    const term = reader.u64();
    return { kind: kind === 1 ? 'delivered' : 'duplicate', position, term };
  }
  if (kind !== 3) throw new Error(`unknown run result kind ${kind}`);
  const status = reader.u16();
  const code = reader.string();
  const message = reader.string();
  const detailsText = reader.bytes().toString('utf8');
  const details = detailsText === '' ? null : (JSON.parse(detailsText) as Record<string, unknown>);
  return { kind: 'error', status, code, message, details };
}

/** Decodes one whole frame (its length prefix included) sent by a node. */
export function decodeServerFrame(frame: Buffer): ServerFrame {
  const reader = new FieldReader(frame);
  const length = reader.u32();
  if (length !== frame.length - 4) throw new Error('length does not match the frame');
  const version = reader.u8();
  if (version !== protocolVersion) throw new Error(`version ${version}`);
  const type = reader.u8();
  const requestId = reader.u32();
  const decoded = decodeFields(type, requestId, reader);
  reader.end();
  return decoded;
}

function decodeFields(type: number, requestId: number, reader: FieldReader): ServerFrame {
  switch (type) {
    case frameType.welcome:
      return {
        type: 'welcome',
        windowRequests: reader.u32(),
        frameBytesMax: reader.u32(),
        nodeId: reader.string(),
      };
    case frameType.answer:
      return {
        type: 'answer',
        requestId,
        status: reader.u16(),
        headers: reader.headers(),
        body: reader.bytes(),
      };
    case frameType.goAway:
      return { type: 'goAway', requestId, code: reader.string(), message: reader.string() };
    case frameType.streamHead:
      return { type: 'streamHead', requestId, status: reader.u16(), headers: reader.headers() };
    case frameType.streamData:
      return { type: 'streamData', requestId, data: reader.bytes() };
    case frameType.streamEnd:
      return { type: 'streamEnd', requestId };
    case frameType.runAnswer: {
      const count = reader.u16();
      const results: RunResult[] = [];
      for (let at = 0; at < count; at++) results.push(readRunResult(reader));
      return { type: 'runAnswer', requestId, results };
    }
    default:
      throw new Error(`a node does not send frame type ${type}`);
  }
}

/** Cuts whole frames off the front of what a socket delivered; keeps the rest. */
export class FrameSplitter {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Buffer[] = [];
    while (this.pending.length >= 4) {
      const total = 4 + this.pending.readUInt32BE(0);
      if (this.pending.length < total) break;
      frames.push(this.pending.subarray(0, total));
      this.pending = this.pending.subarray(total);
    }
    return frames;
  }
}
