/**
 * The node:http front of an exchange: a request and its ServerResponse seen through the
 * socket-free interfaces of exchange.ts, with the same bytes on the wire as before they
 * existed.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { assert } from '../util/assert.ts';
import type { Environment } from '../util/environment.ts';
import { type BodyReadOptions, readBody } from './body.ts';
import type { Answer, ExchangeRequest, ExchangeResponse, Front, StreamWriter } from './exchange.ts';

const clientUriPrefix = 'URI:abcast://client/';

/**
 * The name a verified client certificate gives (null without one): its SAN URI
 * `abcast://client/<name>`, or its CN when it has no abcast URI (one issued by another tool).
 * A node's certificate (`abcast://node/…`) names no client. Only a certificate the server
 * verified against its CA counts; the server asks for one but lets token clients in without.
 */
export function certificateNameOf(req: IncomingMessage): string | null {
  return certificateNameOfSocket(req.socket as Partial<TLSSocket>);
}

/** The same, for a socket of any TLS server (the binary client port's too). */
export function certificateNameOfSocket(socket: Partial<TLSSocket>): string | null {
  if (socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return null;
  const certificate = socket.getPeerCertificate();
  if (certificate === null || typeof certificate !== 'object') return null;
  const names = (certificate.subjectaltname ?? '').split(', ');
  const uri = names.find((name) => name.startsWith(clientUriPrefix));
  if (uri !== undefined) {
    try {
      return decodeURIComponent(uri.slice(clientUriPrefix.length));
    } catch {
      return null;
    }
  }
  if (names.some((name) => name.startsWith('URI:abcast://'))) return null;
  const commonName = certificate.subject?.CN;
  return typeof commonName === 'string' && commonName !== '' ? commonName : null;
}

/** After an early answer, unread body bytes discarded before the connection is cut. */
const lingerBytesMax = 8 << 20;

function lowerCaseHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    // Node already lower-cases names and joins most repeated headers; only a few stay lists.
    flat[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return flat;
}

/** Resolves once the socket drained, or at once if the stream is ending. */
function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  if (signal.aborted || res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

function streamWriter(res: ServerResponse): StreamWriter {
  return {
    write: (data) => res.write(data),
    get behind() {
      return res.writableNeedDrain;
    },
    get gone() {
      return res.destroyed;
    },
    get bufferedBytes() {
      return res.writableLength;
    },
    drained: (signal) => drained(res, signal),
    end: () => res.end(),
    destroy: () => res.destroy(),
  };
}

/**
 * Reads and drops the rest of a body we answered early (413), so that the client sees the
 * answer instead of a reset; a body that goes on past `lingerBytesMax`, or for longer than
 * `lingerMs`, gets the connection cut.
 */
function discardRest(req: IncomingMessage, lingerMs: number, environment: Environment): void {
  let discardedBytes = 0;
  const cut = () => req.socket.destroy();
  // In the background: a lingering client must not keep the process alive.
  const timer = environment.setTimer(lingerMs, cut, { background: true });
  req.on('data', (chunk: Buffer) => {
    discardedBytes += chunk.length;
    if (discardedBytes > lingerBytesMax) cut();
  });
  req.once('end', () => timer.cancel());
  req.once('close', () => timer.cancel());
  req.resume();
}

/**
 * One request through node:http. A single object is the request, the response and the
 * front at once: a small request (a broadcast) makes one allocation here instead of a
 * closure per method.
 */
class NodeExchange implements Front, ExchangeRequest, ExchangeResponse {
  readonly method: string;
  readonly url: string;
  readonly certificateName: string | null;
  private flatHeaders: Record<string, string> | null = null;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly options: { readonly lingerMs: number; readonly environment: Environment },
  ) {
    this.method = req.method ?? '';
    this.url = req.url ?? '/';
    this.certificateName = certificateNameOf(req);
  }

  get request(): ExchangeRequest {
    return this;
  }

  get response(): ExchangeResponse {
    return this;
  }

  /** Flattened when first read: a broadcast's route never reads them. */
  get headers(): Readonly<Record<string, string>> {
    this.flatHeaders ??= lowerCaseHeaders(this.req.headers);
    return this.flatHeaders;
  }

  readBody(options: BodyReadOptions): Promise<Uint8Array> {
    return readBody(this.req, options);
  }

  get answerable(): boolean {
    const res = this.res;
    return !res.headersSent && !res.writableEnded && !res.destroyed;
  }

  get status(): number {
    return this.res.statusCode;
  }

  send(answer: Answer): void {
    assert(!this.res.headersSent, 'a response is answered once');
    this.res.writeHead(answer.status, answer.headers);
    this.res.end(answer.body);
  }

  startStream(status: number, headers: Readonly<Record<string, string>>): StreamWriter {
    assert(!this.res.headersSent, 'a response is answered once');
    this.res.writeHead(status, headers);
    return streamWriter(this.res);
  }

  onClose(listener: () => void): void {
    this.res.once('close', listener);
  }

  afterErrorAnswer({ closeConnection }: { readonly closeConnection: boolean }): void {
    if (!closeConnection && !this.req.complete) {
      discardRest(this.req, this.options.lingerMs, this.options.environment);
    }
  }
}

export function nodeFront(
  req: IncomingMessage,
  res: ServerResponse,
  options: { readonly lingerMs: number; readonly environment: Environment },
): Front {
  return new NodeExchange(req, res, options);
}
