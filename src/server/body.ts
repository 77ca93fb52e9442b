/**
 * Reading a JSON request body without ever holding more than `bodyBytesMax` of it: the size
 * is checked against Content-Length before reading and again on every chunk while streaming,
 * so an oversized or endless body is refused after at most one chunk past the limit.
 * `readBody` is node:http's; the in-process front has the whole body at hand.
 */
import type { IncomingMessage } from 'node:http';
import { HttpError, invalidArgument } from './errors.ts';

/**
 * The part of an abort signal a body read needs. Not an AbortSignal itself: the dispatcher
 * makes one of those only when a route asks, since building one and listening on it was a
 * large part of a small request's cost (an EventTarget, listener records, a DOMException).
 */
export interface AbortWatch {
  readonly aborted: boolean;
  readonly reason: unknown;
  /** Calls `listener` once, when aborted (never if already aborted); returns its removal. */
  onAbort(listener: () => void): () => void;
}

export interface BodyReadOptions {
  readonly bodyBytesMax: number;
  /** Aborts the read (request deadline or client gone). */
  readonly signal: AbortWatch;
}

export function tooLarge(bodyBytesMax: number): HttpError {
  return new HttpError(413, 'payload_too_large', `the request body is over ${bodyBytesMax} bytes`, {
    bodyBytesMax,
  });
}

/** The raw body, at most `bodyBytesMax` bytes; rejects with a 413 as soon as it is over. */
export function readBody(req: IncomingMessage, options: BodyReadOptions): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > options.bodyBytesMax) {
    return Promise.reject(tooLarge(options.bodyBytesMax));
  }
  if (options.signal.aborted) return Promise.reject(options.signal.reason);
  return new Promise<Buffer>((resolve, reject) => {
    new BodyRead(req, options, resolve, reject).start();
  });
}

/**
 * One body read. A class rather than closures: a small request is read once per
 * request, and each closure made per request was an allocation (and, where functions keep
 * their names, a property definition).
 */
class BodyRead {
  private readonly chunks: Buffer[] = [];
  private receivedBytes = 0;
  private readonly onData: (chunk: Buffer) => void;
  private readonly onEnd: () => void;
  private readonly onError: (error: Error) => void;
  private stopWatching: () => void = noWatch;

  constructor(
    private readonly req: IncomingMessage,
    private readonly options: BodyReadOptions,
    private readonly resolve: (body: Buffer) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    // Assigned here, not as field initialisers: tsx keeps the names of functions defined
    // in fields, with a property definition each time one is made.
    this.onData = (chunk) => this.data(chunk);
    this.onEnd = () => this.finish(null);
    this.onError = (error) => this.finish(error);
  }

  start(): void {
    this.req.on('data', this.onData);
    this.req.on('end', this.onEnd);
    this.req.on('error', this.onError);
    this.stopWatching = this.options.signal.onAbort(() =>
      this.finish(this.options.signal.reason as Error),
    );
  }

  private data(chunk: Buffer): void {
    this.receivedBytes += chunk.length;
    if (this.receivedBytes > this.options.bodyBytesMax) {
      this.finish(tooLarge(this.options.bodyBytesMax));
    } else this.chunks.push(chunk);
  }

  private finish(error: Error | null): void {
    const { req, chunks } = this;
    req.off('data', this.onData);
    req.off('end', this.onEnd);
    req.off('error', this.onError);
    this.stopWatching();
    if (error === null) {
      // One chunk (a small body's usual case) is the body itself: no copy.
      this.resolve(
        chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, this.receivedBytes),
      );
    } else {
      // Stop taking data in; the caller answers and closes the connection.
      req.pause();
      this.reject(error);
    }
  }
}

function noWatch(): void {}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Deeper than this, a body is refused. JSON.parse copes with any depth, but re-encoding the
 * payload for the log recurses once per level and would overflow the stack (a 500 instead
 * of a 400); no message a client means to send nests this deep.
 */
export const jsonNestingDepthMax = 512;

/** The deepest nesting of arrays and objects in JSON text, brackets inside strings aside. */
function nestingDepth(body: Uint8Array): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let at = 0; at < body.length; at++) {
    const byte = body[at];
    if (inString) {
      if (byte === 0x5c)
        at++; // a backslash escapes the next byte
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) {
      inString = true;
    } else if (byte === 0x5b || byte === 0x7b) {
      depth++;
      if (depth > deepest) deepest = depth;
    } else if (byte === 0x5d || byte === 0x7d) {
      depth--;
    }
  }
  return deepest;
}

/**
 * Text that may hold a number beyond a double's range (about 1.8e308): a three-digit
 * exponent, or 200 digits in a row (with an exponent of two digits at most, a number needs
 * 210 digits before its point to overflow). JSON.parse reads such a number as Infinity,
 * which JSON.stringify then writes as null: a payload would be stored changed, without a
 * word. Only a body this matches (the odd one) is walked to find out.
 */
const mayOverflow = /[0-9][eE]\+?[0-9]{3}|[0-9]{200}/;

function holdsNonFinite(value: unknown): boolean {
  if (typeof value === 'number') return !Number.isFinite(value);
  if (typeof value !== 'object' || value === null) return false;
  // Bounded depth: the body nests at most jsonNestingDepthMax deep.
  return Object.values(value).some(holdsNonFinite);
}

/** Parses a body as one JSON object; the 400 says what is wrong with it. */
export function parseJsonObject(body: Uint8Array): Record<string, unknown> {
  if (body.length === 0)
    throw invalidArgument('body', 'the request body is empty; expected a JSON object');
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw invalidArgument('body', 'the request body is not valid UTF-8');
  }
  // Each level of nesting takes a byte at least: a short body cannot nest too deep, and
  // most bodies (a message of a few hundred bytes) are spared the count.
  const depth = body.length <= jsonNestingDepthMax ? 0 : nestingDepth(body);
  if (depth > jsonNestingDepthMax) {
    throw invalidArgument(
      'body',
      `the request body nests arrays and objects ${depth} deep; at most ${jsonNestingDepthMax}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : 'unparsable';
    throw invalidArgument('body', `the request body is not valid JSON: ${reason}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidArgument('body', 'the request body must be a JSON object');
  }
  if (mayOverflow.test(text)) {
    for (const [field, fieldValue] of Object.entries(value)) {
      if (holdsNonFinite(fieldValue)) {
        throw invalidArgument(
          field,
          `${field} holds a number beyond the range of a double (about 1.8e308)`,
        );
      }
    }
  }
  return value as Record<string, unknown>;
}
