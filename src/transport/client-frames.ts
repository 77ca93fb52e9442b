/**
 * The binary client protocol's frames (docs/protocol.md is the contract other languages
 * implement). Every frame is a 32-bit big-endian length, then that many bytes:
 *
 *   u8 version (1) · u8 type · u32 requestId · fields of the type
 *
 * A request frame carries one API call (method, path, headers, body) and its answer comes
 * back with the same requestId, in whatever order the node finishes them: many requests
 * ride one connection at once (pipelining), and a POST /v1/broadcast/batch carries many
 * broadcasts in one frame. A broadcastRun frame carries such a run without the JSON, its
 * payloads' text as bytes, answered by a runAnswer (run-frames.ts). Strings are u16-length
 * UTF-8, bodies u32-length bytes.
 *
 * Decoding trusts nothing: every length is checked against the bytes left and against its
 * own bound before anything is read or allocated, and a frame with bytes left over is
 * refused, so a forged frame is a `ClientFrameError` with a stable code and never an
 * out-of-bounds read.
 */
import { assert } from '../util/assert.ts';
import {
  ClientFrameError,
  clientFrameLimits,
  clientProtocolVersion,
  FrameReader,
  malformed,
} from './frame-fields.ts';
import { FramingError, lengthPrefixBytes, PacketSplitter } from './framing.ts';
import {
  type BroadcastRunFrame,
  type BroadcastRunSource,
  decodeBroadcastRun,
  decodeRunAnswer,
  encodeBroadcastRun,
  encodeRunAnswer,
  type ReceivedRun,
  type RunAnswerFrame,
  RunResultColumns,
  type RunResults,
  readReceivedRun,
  runFrameTypes,
} from './run-frames.ts';

export {
  ClientFrameError,
  type ClientFrameErrorCode,
  clientFrameLimits,
  clientProtocolVersion,
} from './frame-fields.ts';
export type {
  BroadcastRunFrame,
  BroadcastRunSource,
  ReceivedRun,
  ReceivedRunMessage,
  RunAnswerFrame,
  RunErrorResult,
  RunFrameMessage,
  RunFrameSource,
  RunResult,
  RunResults,
} from './run-frames.ts';
export { encodeRunAnswerOf, runResultList, runResultsOf } from './run-frames.ts';

export const frameTypes = {
  hello: 1,
  welcome: 2,
  request: 3,
  answer: 4,
  goAway: 5,
  streamHead: 6,
  streamData: 7,
  streamEnd: 8,
  cancel: 9,
  ...runFrameTypes,
} as const;

export const requestMethods = ['GET', 'POST', 'DELETE'] as const;
export type RequestMethod = (typeof requestMethods)[number];

export interface HelloFrame {
  readonly type: 'hello';
  readonly requestId: 0;
  /** A bearer token; empty: none (a client certificate, or no authentication). */
  readonly token: string;
}

export interface WelcomeFrame {
  readonly type: 'welcome';
  readonly requestId: 0;
  /** Requests the client may have unanswered on this connection at once. */
  readonly windowRequests: number;
  /** The largest frame the node reads (length prefix excluded). */
  readonly frameBytesMax: number;
  readonly nodeId: string;
}

export interface RequestFrame {
  readonly type: 'request';
  readonly requestId: number;
  readonly method: RequestMethod;
  /** Path and query, as in HTTP: "/v1/broadcast/batch". */
  readonly path: string;
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

export interface AnswerFrame {
  readonly type: 'answer';
  readonly requestId: number;
  /** The HTTP status the same call answers with over HTTP. */
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

/** The node's last frame on a connection it closes: why, as a code and a sentence. */
export interface GoAwayFrame {
  readonly type: 'goAway';
  /** The request that caused it, or 0. */
  readonly requestId: number;
  readonly code: string;
  readonly message: string;
}

/** A streamed answer begins (GET /v1/stream): its status and headers; data follows. */
export interface StreamHeadFrame {
  readonly type: 'streamHead';
  readonly requestId: number;
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
}

/** More of a streamed answer's body: the text HTTP would send (Server-Sent Events). */
export interface StreamDataFrame {
  readonly type: 'streamData';
  readonly requestId: number;
  readonly data: Uint8Array;
}

/** A streamed answer is over; its request id is free again. */
export interface StreamEndFrame {
  readonly type: 'streamEnd';
  readonly requestId: number;
}

/** The client stops waiting for a request (a stream it no longer reads). */
export interface CancelFrame {
  readonly type: 'cancel';
  readonly requestId: number;
}

export type ClientFrame =
  | HelloFrame
  | WelcomeFrame
  | RequestFrame
  | AnswerFrame
  | GoAwayFrame
  | StreamHeadFrame
  | StreamDataFrame
  | StreamEndFrame
  | CancelFrame
  | BroadcastRunFrame
  | RunAnswerFrame;

const encoder = new TextEncoder();
/** Appends fields to a growing list of parts; `finish` lays them out behind the prefix. */
class FrameWriter {
  private readonly parts: Uint8Array[] = [];
  private byteCount = 0;

  u8(value: number): this {
    return this.fixed(1, (view) => view.setUint8(0, value));
  }

  u16(value: number): this {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xffff, 'a u16 fits');
    return this.fixed(2, (view) => view.setUint16(0, value));
  }

  u32(value: number): this {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff, 'a u32 fits');
    return this.fixed(4, (view) => view.setUint32(0, value));
  }

  string(text: string, bytesMax: number): this {
    const bytes = encoder.encode(text);
    assert(bytes.length <= bytesMax, 'a string fits its bound');
    return this.u16(bytes.length).raw(bytes);
  }

  bytes(bytes: Uint8Array): this {
    return this.u32(bytes.length).raw(bytes);
  }

  headers(headers: Readonly<Record<string, string>>): this {
    const entries = Object.entries(headers);
    assert(entries.length <= clientFrameLimits.headersMax, 'headers fit their bound');
    this.u16(entries.length);
    for (const [name, value] of entries) {
      this.string(name, clientFrameLimits.headerNameBytesMax);
      this.string(value, clientFrameLimits.headerValueBytesMax);
    }
    return this;
  }

  finish(): Buffer {
    const frame = Buffer.allocUnsafe(lengthPrefixBytes + this.byteCount);
    frame.writeUInt32BE(this.byteCount, 0);
    let at = lengthPrefixBytes;
    for (const part of this.parts) {
      frame.set(part, at);
      at += part.length;
    }
    return frame;
  }

  private fixed(byteCount: number, write: (view: DataView) => void): this {
    const part = new Uint8Array(byteCount);
    write(new DataView(part.buffer));
    return this.raw(part);
  }

  private raw(bytes: Uint8Array): this {
    this.parts.push(bytes);
    this.byteCount += bytes.length;
    return this;
  }
}

/**
 * A frame as `encodeClientFrame` takes it: a broadcastRun's messages may be the sender's own
 * records (BroadcastRunSource).
 */
export type EncodableClientFrame = Exclude<ClientFrame, BroadcastRunFrame> | BroadcastRunSource;

/** A frame's bytes on the wire, length prefix included. */
export function encodeClientFrame(frame: EncodableClientFrame): Buffer {
  if (frame.type === 'broadcastRun') return encodeBroadcastRun(frame);
  const writer = new FrameWriter()
    .u8(clientProtocolVersion)
    .u8(frameTypes[frame.type])
    .u32(frame.requestId);
  switch (frame.type) {
    case 'hello':
      return writer.string(frame.token, clientFrameLimits.tokenBytesMax).finish();
    case 'welcome':
      return writer
        .u32(frame.windowRequests)
        .u32(frame.frameBytesMax)
        .string(frame.nodeId, clientFrameLimits.nodeIdBytesMax)
        .finish();
    case 'request':
      return writer
        .u8(requestMethods.indexOf(frame.method) + 1)
        .string(frame.path, clientFrameLimits.pathBytesMax)
        .headers(frame.headers)
        .bytes(frame.body)
        .finish();
    case 'answer':
      return writer.u16(frame.status).headers(frame.headers).bytes(frame.body).finish();
    case 'goAway':
      return writer
        .string(frame.code, clientFrameLimits.codeBytesMax)
        .string(frame.message.slice(0, 256), clientFrameLimits.messageBytesMax)
        .finish();
    case 'streamHead':
      return writer.u16(frame.status).headers(frame.headers).finish();
    case 'streamData':
      return writer.bytes(frame.data).finish();
    case 'streamEnd':
    case 'cancel':
      return writer.finish();
    case 'runAnswer':
      return encodeRunAnswer(frame);
  }
}

/**
 * The head of a streamData frame whose `byteCount` bytes of data follow it on the wire: what
 * `encodeClientFrame` lays out before the data, so that a large body is written as it is
 * rather than copied into a frame.
 */
export function streamDataHead(requestId: number, byteCount: number): Buffer {
  assert(Number.isInteger(requestId) && requestId >= 0 && requestId <= 0xffff_ffff, 'an id fits');
  assert(Number.isInteger(byteCount) && byteCount >= 0, 'a byte count');
  const head = Buffer.allocUnsafe(lengthPrefixBytes + clientFrameLimits.headerBytes + 4);
  head.writeUInt32BE(clientFrameLimits.headerBytes + 4 + byteCount, 0);
  head[lengthPrefixBytes] = clientProtocolVersion;
  head[lengthPrefixBytes + 1] = frameTypes.streamData;
  head.writeUInt32BE(requestId, lengthPrefixBytes + 2);
  head.writeUInt32BE(byteCount, lengthPrefixBytes + 6);
  return head;
}

/**
 * Sets the request id of a frame encoded before its id was known (a run is laid out when
 * it is sent for, and given an id when the connection's window lets it go).
 */
export function setRequestId(encoded: Buffer, requestId: number): void {
  assert(Number.isInteger(requestId) && requestId >= 0 && requestId <= 0xffff_ffff, 'a u32 id');
  encoded.writeUInt32BE(requestId, lengthPrefixBytes + 2);
}

/** One frame's body (length prefix removed) as a frame, or a ClientFrameError. */
export function decodeClientFrame(body: Uint8Array): ClientFrame {
  const reader = new FrameReader(body);
  const typeCode = readHeader(reader);
  const requestId = reader.u32('the request id');
  const frame = decodeFields(reader, typeCode, requestId);
  reader.end();
  return frame;
}

/** Checks a frame's version; returns its type. */
function readHeader(reader: FrameReader): number {
  const version = reader.u8('the version');
  if (version !== clientProtocolVersion) {
    throw new ClientFrameError(
      'version_unsupported',
      `protocol version ${version} is not spoken here; this node speaks ${clientProtocolVersion}`,
      { version, supported: clientProtocolVersion },
    );
  }
  return reader.u8('the type');
}

function decodeFields(reader: FrameReader, typeCode: number, requestId: number): ClientFrame {
  switch (typeCode) {
    case frameTypes.hello:
      return {
        type: 'hello',
        requestId: 0,
        token: reader.string('the token', clientFrameLimits.tokenBytesMax),
      };
    case frameTypes.welcome:
      return {
        type: 'welcome',
        requestId: 0,
        windowRequests: reader.u32('the window'),
        frameBytesMax: reader.u32('the frame limit'),
        nodeId: reader.string('the node id', clientFrameLimits.nodeIdBytesMax),
      };
    case frameTypes.request: {
      const methodCode = reader.u8('the method');
      const method = requestMethods[methodCode - 1];
      if (method === undefined) throw malformed(`method ${methodCode} is not 1, 2 or 3`);
      const path = reader.string('the path', clientFrameLimits.pathBytesMax);
      if (!path.startsWith('/')) throw malformed('a path starts with "/"');
      return { type: 'request', requestId, method, path, ...headersAndBody(reader) };
    }
    case frameTypes.answer: {
      const status = reader.u16('the status');
      if (status < 100 || status > 599) throw malformed(`status ${status} is not 100–599`);
      return { type: 'answer', requestId, status, ...headersAndBody(reader) };
    }
    case frameTypes.goAway:
      return {
        type: 'goAway',
        requestId,
        code: reader.string('the code', clientFrameLimits.codeBytesMax),
        message: reader.string('the message', clientFrameLimits.messageBytesMax),
      };
    case frameTypes.streamHead: {
      const status = reader.u16('the status');
      if (status < 100 || status > 599) throw malformed(`status ${status} is not 100–599`);
      return { type: 'streamHead', requestId, status, headers: reader.headers() };
    }
    case frameTypes.streamData:
      return { type: 'streamData', requestId, data: reader.bytes('the data') };
    case frameTypes.streamEnd:
      return { type: 'streamEnd', requestId };
    case frameTypes.cancel:
      return { type: 'cancel', requestId };
    case frameTypes.broadcastRun:
      return decodeBroadcastRun(reader, requestId);
    case frameTypes.runAnswer:
      return decodeRunAnswer(reader, requestId);
    default:
      throw new ClientFrameError('frame_type_unknown', `frame type ${typeCode} is not known`, {
        type: typeCode,
      });
  }
}

function headersAndBody(reader: FrameReader): {
  headers: Record<string, string>;
  body: Uint8Array;
} {
  const headers = reader.headers();
  return { headers, body: reader.bytes('the body') };
}

const always = () => true;

/**
 * Socket chunks in, frames out. Memory stays within `frameBytesMax` plus one chunk: the
 * length is judged before any of its body is buffered (framing.ts).
 */
export class ClientFrameDecoder {
  private readonly splitter: PacketSplitter;
  /** Where `pushTo` reads runAnswers, made at the first. */
  private runResults: RunResultColumns | null = null;

  constructor(frameBytesMax: number) {
    assert(frameBytesMax >= clientFrameLimits.headerBytes, 'a frame limit holds a header');
    this.splitter = new PacketSplitter(frameBytesMax);
  }

  /** Bytes of a frame begun and not finished: a stream that ends here was cut. */
  get hasPartialFrame(): boolean {
    return this.splitter.hasPartialPacket;
  }

  /**
   * Takes a chunk: the frames it completes, in order, and the error that made the rest of
   * the stream unreadable (then nothing more is to be pushed), or null.
   */
  push(chunk: Uint8Array): { frames: ClientFrame[]; error: ClientFrameError | null } {
    const frames: ClientFrame[] = [];
    const error = this.split(chunk, always, (body) => frames.push(decodeClientFrame(body)));
    return { frames, error };
  }

  /**
   * As `push`, but each frame goes to `handler` as soon as it is read, and a runAnswer is
   * read into columns this decoder reuses (`handler.runAnswer`, valid during that call
   * only) rather than into an object per result. Nothing read refers to `chunk` afterwards:
   * the caller may reuse it.
   */
  pushTo(chunk: Uint8Array, handler: ClientFrameHandler): ClientFrameError | null {
    return this.split(chunk, always, (body) => {
      if (body.length > 1 && body[1] === frameTypes.runAnswer) {
        const reader = new FrameReader(body);
        readHeader(reader);
        const requestId = reader.u32('the request id');
        this.runResults ??= new RunResultColumns();
        this.runResults.read(reader);
        reader.end();
        handler.runAnswer(requestId, this.runResults);
      } else handler.frame(decodeClientFrame(body));
    });
  }

  /**
   * The node's read: as `pushTo`, each frame goes to `handler` as soon as it is read, and a
   * broadcastRun is read as a ReceivedRun, one object per message, whose payloads are views
   * of the frame where it may be kept: `chunk` must be memory nobody reuses (a socket's
   * 'data' chunk). A frame filling at least half of its chunk, or assembled from several,
   * is kept (pinning at most about twice its size); a smaller one is copied out first.
   *
   * Frames are read only while `more()` holds; the rest stays here (at most the chunks
   * pushed) until a later call, an empty chunk reading on. A node that stops reading when
   * its answers back up thus stops between frames, not between chunks.
   */
  pushAtNode(
    chunk: Uint8Array,
    handler: NodeFrameHandler,
    more: () => boolean = always,
  ): ClientFrameError | null {
    return this.split(chunk, more, (body) => {
      if (body.length > 1 && body[1] === frameTypes.broadcastRun) {
        const reader = new FrameReader(body);
        readHeader(reader);
        const requestId = reader.u32('the request id');
        const keepable =
          this.splitter.ownsLastPacket || body.byteLength * 2 >= body.buffer.byteLength;
        const run = readReceivedRun(reader, requestId, keepable);
        reader.end();
        handler.run(run);
      } else handler.frame(decodeClientFrame(body));
    });
  }

  private split(
    chunk: Uint8Array,
    more: () => boolean,
    onBody: (body: Uint8Array) => void,
  ): ClientFrameError | null {
    try {
      this.splitter.push(chunk);
      while (more()) {
        const body = this.splitter.next();
        if (body === null) break;
        onBody(body);
      }
    } catch (error) {
      if (error instanceof ClientFrameError) return error;
      if (!(error instanceof FramingError)) throw error;
      const code = error.code === 'EMPTY_PACKET' ? 'frame_empty' : 'frame_too_large';
      return new ClientFrameError(code, error.message, error.details);
    }
    return null;
  }
}

/** Where `ClientFrameDecoder.pushAtNode` hands what it reads. */
export interface NodeFrameHandler {
  frame(frame: ClientFrame): void;
  run(run: ReceivedRun): void;
}

/** Where `ClientFrameDecoder.pushTo` hands what it reads. */
export interface ClientFrameHandler {
  frame(frame: ClientFrame): void;
  /** A runAnswer's results, in columns reused for the next one: read them now. */
  runAnswer(requestId: number, results: RunResults): void;
}
