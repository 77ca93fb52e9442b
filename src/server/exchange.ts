/**
 * One request and its answer as route handlers see them, whichever front received it: the
 * `node:http` server (node-exchange.ts) or a caller in this process (in-process.ts), such as
 * the simulator driving real SDK clients. Handlers never touch a socket, so every route runs
 * the same code behind either.
 */
import type { BodyReadOptions } from './body.ts';

export interface ExchangeRequest {
  readonly method: string;
  /** Path and query, as sent ("/v1/messages?from=3"). */
  readonly url: string;
  /** Header names in lower case; a repeated header's values joined by ",". */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The raw body, at most `bodyBytesMax` bytes: rejects with a 413 as soon as it is over, and
   * with the signal's reason when the signal aborts first. Read once.
   */
  readBody(options: BodyReadOptions): Promise<Uint8Array>;
  /**
   * The name of the client certificate the TLS server verified against its CA
   * (`abcast://client/<name>`, or the CN of a certificate without an abcast URI); null or
   * absent without one.
   */
  readonly certificateName?: string | null;
}

/** A whole answer: headers in lower case, the body as text (UTF-8 on the wire). */
export interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface ExchangeResponse {
  /** Nothing was answered yet and the client is still there: an answer can be written. */
  readonly answerable: boolean;
  /** The status answered; 200 before any answer, as node:http reports it. */
  readonly status: number;
  /** Answers whole. Only while `answerable`: callers check, a second answer is a bug. */
  send(answer: Answer): void;
  /**
   * Answers with a head now and a body that follows through the writer (Server-Sent
   * Events). Only while `answerable`. A front that cannot stream throws an HttpError.
   */
  startStream(status: number, headers: Readonly<Record<string, string>>): StreamWriter;
}

/**
 * The body of a streamed answer. Memory stays bounded because writers respect `write`'s
 * answer: false means the consumer is behind, and the next write waits for `drained`.
 */
export interface StreamWriter {
  /**
   * Queues `data` (text as UTF-8; bytes are not copied, so they must not change after);
   * false once the consumer is behind (wait for `drained` before more).
   */
  write(data: string | Uint8Array): boolean;
  /** The consumer is behind: written text waits in this process. */
  readonly behind: boolean;
  /** The consumer went away or the stream was cut: nothing written reaches anyone. */
  readonly gone: boolean;
  /** Text written and not yet taken by the consumer, in bytes. */
  readonly bufferedBytes: number;
  /** Resolves once the consumer caught up, went away, or `signal` aborted. */
  drained(signal: AbortSignal): Promise<void>;
  /** Ends the stream cleanly after what was written. */
  end(): void;
  /** Cuts the stream off, dropping what the consumer has not taken. */
  destroy(): void;
}

/** What a front hands the dispatcher for one request. */
export interface Front {
  readonly request: ExchangeRequest;
  readonly response: ExchangeResponse;
  /**
   * Registers the one call made when the exchange is over: the answer went out, or the
   * client went away. It comes on a later turn than `send`, never from inside it.
   */
  onClose(listener: () => void): void;
  /**
   * After an error answer: `closeConnection` when the front should drop the connection
   * rather than read an unfinished body (node:http discards a bounded rest otherwise).
   */
  afterErrorAnswer(options: { readonly closeConnection: boolean }): void;
}
