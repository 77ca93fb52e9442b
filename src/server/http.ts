/**
 * The HTTP API of one node (docs/api.md is the contract). Plain `node:http`: a routing table
 * of small handlers, JSON answers, one error shape, and a deadline on every request so that
 * none hangs past `requestTimeoutMs` — an unanswered request gets 503 `timeout` (408
 * `request_timeout` if its body was still arriving) and its handler is told to stop.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { BroadcastError } from '../broadcast/errors.ts';
import type { NodeLogger } from '../broadcast/node.ts';
import type { NodeId } from '../raft/types.ts';
import { formatAddress, parseAddress } from '../transport/address.ts';
import { parseJsonObject, readBody } from './body.ts';
import type { RouteContext, ServedNode, ServerContext, ServerSettings } from './context.ts';
import { HttpError, toHttpError } from './errors.ts';
import { HttpMetrics } from './http-metrics.ts';
import { canRespond, sendError } from './respond.ts';
import { findRoute, type Route, type RouteMatch } from './router.ts';
import { apiRoutes } from './routes/index.ts';

export interface HttpServerOptions {
  readonly node: ServedNode;
  readonly logger: NodeLogger;
  /** Node id → address of every member this node knows; shown in /v1/status. */
  readonly peers?: Readonly<Record<NodeId, string>>;
  /** Largest payload (its JSON text, UTF-8 bytes); default 1 MiB. */
  readonly payloadBytesMax?: number;
  /** No request stays unanswered longer; default 10 s. */
  readonly requestTimeoutMs?: number;
  /** The Retry-After of every 503; default 1 s. */
  readonly retryAfterSeconds?: number;
  /** Keep-alive comments on idle event streams; default 15 s. */
  readonly keepAliveIntervalMs?: number;
  /** Event streams open at once; beyond it a new one gets 503 `overloaded`; default 1024. */
  readonly streamsMax?: number;
  /** Largest page of GET /v1/messages (a larger `limit` is cut to it); default 1000. */
  readonly messagesLimitMax?: number;
}

export interface HttpServer {
  /** Listens on "host:port" (port 0 picks a free one); resolves with the base URL. */
  listen(address: string): Promise<string>;
  /** Ends event streams, lets answers in progress finish (within their deadline), stops. */
  close(): Promise<void>;
}

/** Room in a request body for the fields around the payload (client, seq, topic, spaces). */
const envelopeBytesMax = 64 << 10;
/** After an early answer, unread body bytes discarded before the connection is cut. */
const lingerBytesMax = 8 << 20;

export const defaultHttpSettings = {
  payloadBytesMax: 1 << 20,
  requestTimeoutMs: 10_000,
  retryAfterSeconds: 1,
  keepAliveIntervalMs: 15_000,
  streamsMax: 1024,
  messagesLimitMax: 1000,
} as const;

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new BroadcastError('INVALID_ARGUMENT', `${name} must be a positive integer`, {
      field: name,
    });
  }
  return value;
}

function settingsFrom(options: HttpServerOptions): ServerSettings {
  const payloadBytesMax = positiveInteger(
    'payloadBytesMax',
    options.payloadBytesMax,
    defaultHttpSettings.payloadBytesMax,
  );
  const messagesLimitMax = positiveInteger(
    'messagesLimitMax',
    options.messagesLimitMax,
    defaultHttpSettings.messagesLimitMax,
  );
  return {
    payloadBytesMax,
    bodyBytesMax: payloadBytesMax + envelopeBytesMax,
    requestTimeoutMs: positiveInteger(
      'requestTimeoutMs',
      options.requestTimeoutMs,
      defaultHttpSettings.requestTimeoutMs,
    ),
    retryAfterSeconds: positiveInteger(
      'retryAfterSeconds',
      options.retryAfterSeconds,
      defaultHttpSettings.retryAfterSeconds,
    ),
    keepAliveIntervalMs: positiveInteger(
      'keepAliveIntervalMs',
      options.keepAliveIntervalMs,
      defaultHttpSettings.keepAliveIntervalMs,
    ),
    streamsMax: positiveInteger('streamsMax', options.streamsMax, defaultHttpSettings.streamsMax),
    messagesLimitDefault: Math.min(100, messagesLimitMax),
    messagesLimitMax,
    messagesScanMax: Math.max(10_000, messagesLimitMax),
    peers: new Map(Object.entries(options.peers ?? {})),
  };
}

export function createHttpServer(options: HttpServerOptions): HttpServer {
  const context: ServerContext = {
    node: options.node,
    settings: settingsFrom(options),
    metrics: new HttpMetrics(),
    logger: options.logger,
  };
  const api = new ApiServer(context, apiRoutes);
  return { listen: (address) => api.listen(address), close: () => api.close() };
}

/** One request's lifecycle: what it is doing now, and how it ends. */
interface Exchange {
  readonly controller: AbortController;
  readingBody: boolean;
  streaming: boolean;
  deadline: NodeJS.Timeout | null;
}

class ApiServer {
  private readonly server: Server;
  private readonly exchanges = new Set<Exchange>();
  private closing = false;
  private closed: Promise<void> = Promise.resolve();
  /** Called when the last exchange ends, while closing. */
  private onIdle: () => void = () => undefined;

  constructor(
    private readonly context: ServerContext,
    private readonly routes: readonly Route[],
  ) {
    const timeoutMs = context.settings.requestTimeoutMs;
    this.server = createServer({
      // Slow headers are Node's to refuse (our deadline starts once they are in); the body
      // and the answer are under our own deadline, with Node's requestTimeout as a backstop.
      headersTimeout: timeoutMs,
      requestTimeout: timeoutMs + 1000,
      connectionsCheckingInterval: Math.min(1000, timeoutMs),
    });
    this.server.on('request', (req, res) => this.onRequest(req, res));
  }

  async listen(address: string): Promise<string> {
    const { host, port } = parseAddress(address, true);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const bound = this.server.address() as AddressInfo;
    return `http://${formatAddress({ host: bound.address, port: bound.port })}`;
  }

  async close(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    this.closed = new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
    const stopping = new HttpError(503, 'node_stopped', 'the server is closing', {}, true);
    for (const exchange of this.exchanges) {
      if (exchange.streaming) exchange.controller.abort(stopping);
    }
    // Every other answer ends by its deadline; wait for them (bounded), then close every
    // connection, idle keep-alive ones included.
    if (this.exchanges.size > 0) {
      await new Promise<void>((resolve) => {
        const backstop = setTimeout(resolve, this.context.settings.requestTimeoutMs + 1000);
        this.onIdle = () => {
          clearTimeout(backstop);
          resolve();
        };
      });
    }
    this.server.closeAllConnections();
    await this.closed;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const startedMs = performance.now();
    const exchange: Exchange = {
      controller: new AbortController(),
      readingBody: false,
      streaming: false,
      deadline: null,
    };
    this.exchanges.add(exchange);
    exchange.deadline = setTimeout(
      () => this.onDeadline(req, res, exchange),
      this.context.settings.requestTimeoutMs,
    );
    let routeName = 'unmatched';
    res.on('close', () => {
      this.exchanges.delete(exchange);
      if (this.exchanges.size === 0) this.onIdle();
      if (exchange.deadline !== null) clearTimeout(exchange.deadline);
      // Whatever still runs for this request (a stream, a wait) stops now.
      exchange.controller.abort(new Error('the request ended'));
      // A stream's duration is its client's business, not a latency.
      const seconds = exchange.streaming ? null : (performance.now() - startedMs) / 1000;
      this.context.metrics.requestDone(routeName, req.method ?? '', res.statusCode, seconds);
    });
    let match: RouteMatch;
    let url: URL;
    try {
      if (this.closing) throw new HttpError(503, 'node_stopped', 'the server is closing', {}, true);
      url = new URL(req.url ?? '/', 'http://localhost');
      match = findRoute(this.routes, req.method ?? '', url.pathname);
    } catch (error) {
      this.answerError(req, res, toHttpError(error));
      return;
    }
    routeName = match.route.pattern;
    const routeContext = this.routeContext(req, res, url, match, exchange);
    match.route.handler(routeContext).then(
      () => {
        // Every handler answers or streams; one that returned silently is our bug.
        if (canRespond(res) && !exchange.controller.signal.aborted) {
          const bug = new Error(`${routeName} returned without answering`);
          this.answerError(req, res, toHttpError(bug), bug);
        }
      },
      (error: unknown) => {
        // Once aborted, the deadline has answered or the client left: nothing to say.
        if (!exchange.controller.signal.aborted) {
          this.answerError(req, res, toHttpError(error), error);
        }
      },
    );
  }

  private onDeadline(req: IncomingMessage, res: ServerResponse, exchange: Exchange): void {
    exchange.deadline = null;
    if (exchange.streaming) return;
    const timeoutMs = this.context.settings.requestTimeoutMs;
    const error = exchange.readingBody
      ? new HttpError(
          408,
          'request_timeout',
          `the request body did not arrive within ${timeoutMs} ms`,
        )
      : new HttpError(
          503,
          'timeout',
          req.url?.startsWith('/v1/broadcast')
            ? `no answer within ${timeoutMs} ms; a broadcast may still be delivered: retry with the same client and seq`
            : `no answer within ${timeoutMs} ms; retry`,
          { timeoutMs },
          true,
        );
    this.answerError(req, res, error);
    exchange.controller.abort(error);
  }

  private answerError(
    req: IncomingMessage,
    res: ServerResponse,
    error: HttpError,
    cause?: unknown,
  ): void {
    if (error.code === 'internal') {
      const reason = cause instanceof Error ? (cause.stack ?? cause.message) : String(cause);
      this.context.logger.error(
        { method: req.method, url: req.url, reason },
        'HTTP handler failed',
      );
    }
    if (!canRespond(res)) return;
    const allow =
      error.code === 'method_not_allowed' ? { allow: String(error.details.allow) } : undefined;
    // A client whose body is still trickling in is cut off; any other unread body is
    // discarded (a bounded amount) so the client can read the answer before the socket
    // closes.
    const closeConnection = error.status === 408 || this.closing;
    sendError(res, error, {
      retryAfterSeconds: this.context.settings.retryAfterSeconds,
      closeConnection,
      headers: allow,
    });
    if (!closeConnection && !req.complete) discardRest(req, this.context.settings.requestTimeoutMs);
  }

  private routeContext(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    match: RouteMatch,
    exchange: Exchange,
  ): RouteContext {
    const signal = exchange.controller.signal;
    const settings = this.context.settings;
    return {
      server: this.context,
      req,
      res,
      url,
      params: match.params,
      signal,
      readJson: async ({ emptyAllowed, bodyBytesMax }) => {
        exchange.readingBody = true;
        const body = await readBody(req, {
          bodyBytesMax: bodyBytesMax ?? settings.bodyBytesMax,
          signal,
        });
        exchange.readingBody = false;
        return body.length === 0 && emptyAllowed ? {} : parseJsonObject(body);
      },
      within: (promise) => within(promise, signal),
      startStreaming: () => {
        exchange.streaming = true;
        if (exchange.deadline !== null) clearTimeout(exchange.deadline);
        exchange.deadline = null;
      },
    };
  }
}

function within<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  // It may settle after we stopped waiting; that is expected, not an unhandled rejection.
  promise.catch(() => undefined);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * Reads and drops the rest of a body we answered early (413), so that the client sees the
 * answer instead of a reset; a body that goes on past `lingerBytesMax`, or for longer than
 * `lingerMs`, gets the connection cut.
 */
function discardRest(req: IncomingMessage, lingerMs: number): void {
  let discardedBytes = 0;
  const cut = () => req.socket.destroy();
  const timer = setTimeout(cut, lingerMs);
  timer.unref();
  req.on('data', (chunk: Buffer) => {
    discardedBytes += chunk.length;
    if (discardedBytes > lingerBytesMax) cut();
  });
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
  req.resume();
}
