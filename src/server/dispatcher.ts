/**
 * Runs requests through the routing table, whatever front received them: finds the route,
 * gives its handler a RouteContext, answers whatever it throws with the one error shape, and
 * puts a deadline on every request so that none hangs past `requestTimeoutMs` — an
 * unanswered request gets 503 `timeout` (408 `request_timeout` if its body was still
 * arriving) and its handler is told to stop. All time comes from the context's Environment.
 */
import { assert } from '../util/assert.ts';
import type { Timer } from '../util/environment.ts';
import { authorize } from './access.ts';
import type { Identity } from './auth.ts';
import type { AbortWatch } from './body.ts';
import { parseJsonObject } from './body.ts';
import type { RouteContext, ServerContext } from './context.ts';
import { failureReason, HttpError, invalidArgument, toHttpError } from './errors.ts';
import type { ExchangeRequest, ExchangeResponse, Front, StreamWriter } from './exchange.ts';
import { sendError } from './respond.ts';
import { findRoute, type Route, type RouteMatch } from './router.ts';

/**
 * Why a finished request's signal aborts: one shared reason, since a new Error captures a
 * stack, a cost paid on every request (tens of thousands a second with a POST per message).
 */
const requestEnded = new Error('the request ended');

/**
 * How one request is told to stop. Routes that hand a signal on (streams, waits on the node)
 * get a real AbortSignal, made on first use; the common request (read the body, wait for the
 * node, answer) only ever needs these listeners, and pays for no EventTarget.
 */
class ExchangeAbort implements AbortWatch {
  aborted = false;
  reason: unknown = undefined;
  private listeners: (() => void)[] = [];
  private controller: AbortController | null = null;

  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  onAbort(listener: () => void): () => void {
    if (this.aborted) return noRemoval;
    this.listeners.push(listener);
    return () => {
      const at = this.listeners.indexOf(listener);
      if (at >= 0) this.listeners.splice(at, 1);
    };
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = [];
    for (const listener of listeners) listener();
    this.controller?.abort(reason);
  }
}

const noRemoval = () => undefined;

/** One request's lifecycle: what it is doing now, and how it ends. */
interface Exchange {
  readonly front: Front;
  readonly abort: ExchangeAbort;
  /** When its deadline falls (monotonic ms), while it waits in `deadlines`. */
  readonly deadlineMs: number;
  readingBody: boolean;
  streaming: boolean;
}

/**
 * The request's target as a URL. A path the URL parser refuses (`//`, `//[`: an authority
 * with no host) is the client's mistake, answered as one rather than as a bug of ours.
 */
function parsedTarget(target: string): URL {
  try {
    return new URL(target, 'http://localhost');
  } catch {
    throw invalidArgument('path', `the request target ${JSON.stringify(target)} is not a path`);
  }
}

function closingError(): HttpError {
  return new HttpError(503, 'node_stopped', 'the server is closing', {}, true);
}

/** How long after `requestTimeoutMs` an unanswered request gets 503 `timeout`. */
export const deadlineGraceMs = 250;

export class Dispatcher {
  private readonly exchanges = new Set<Exchange>();
  /**
   * Exchanges whose deadline is still ahead, in the order they began: every request has the
   * same timeout, so that is the order their deadlines fall in, and one timer, armed for the
   * first, serves them all (a timer per request was a measurable part of a small request).
   */
  private readonly deadlines = new Set<Exchange>();
  private deadlineTimer: Timer | null = null;
  /** Requests for a route's literal path, found before: the match, without a URL parse. */
  private readonly literalMatches = new Map<string, RouteMatch>();
  private readonly literalPaths: ReadonlySet<string>;
  private closingFlag = false;
  /** Called when the last exchange ends, while closing. */
  private onIdle: () => void = () => undefined;

  constructor(
    private readonly context: ServerContext,
    private readonly routes: readonly Route[],
  ) {
    assert(routes.length > 0, 'a server has routes');
    this.literalPaths = new Set(
      routes.map((route) => route.pattern).filter((pattern) => !pattern.includes(':')),
    );
  }

  /** Closing: new requests get 503 `node_stopped` and error answers close their connection. */
  get closing(): boolean {
    return this.closingFlag;
  }

  /** Exchanges not yet over (answered and closed, or abandoned by their client). */
  get openExchangeCount(): number {
    return this.exchanges.size;
  }

  /**
   * Stops taking requests, ends event streams, and resolves once every other answer in
   * progress has finished: each ends by its deadline, so the wait is bounded, with a backstop
   * one second past it.
   */
  async close(): Promise<void> {
    if (this.closingFlag) return;
    this.closingFlag = true;
    for (const exchange of this.exchanges) {
      if (exchange.streaming) exchange.abort.abort(closingError());
    }
    if (this.exchanges.size === 0) return;
    const { environment, settings } = this.context;
    await new Promise<void>((resolve) => {
      const backstop = environment.setTimer(settings.requestTimeoutMs + 1000, resolve);
      this.onIdle = () => {
        backstop.cancel();
        resolve();
      };
    });
  }

  /**
   * Runs one request; the front reports through `onClose` when its exchange is over.
   * `route`: the handler a front decided itself (a binary frame that is no HTTP request),
   * run with the same deadline, authorization and error answers as a routed one.
   */
  dispatch(front: Front, route?: Route): void {
    const { environment, settings, metrics } = this.context;
    const startedMs = environment.monotonicMs();
    // A little after the node's own deadline for the same request, so that a broadcast
    // hears the node's answer, which knows more (a seq held for a gap is not in doubt).
    const exchange: Exchange = {
      front,
      abort: new ExchangeAbort(),
      deadlineMs: startedMs + settings.requestTimeoutMs + deadlineGraceMs,
      readingBody: false,
      streaming: false,
    };
    this.exchanges.add(exchange);
    this.awaitDeadline(exchange);
    let routeName = 'unmatched';
    front.onClose(() => {
      assert(this.exchanges.has(exchange), 'an exchange closes once');
      this.exchanges.delete(exchange);
      if (this.exchanges.size === 0) this.onIdle();
      this.dropDeadline(exchange);
      // Whatever still runs for this request (a stream, a wait) stops now.
      exchange.abort.abort(requestEnded);
      // A stream's duration is its client's business, not a latency.
      const seconds = exchange.streaming ? null : (environment.monotonicMs() - startedMs) / 1000;
      metrics.requestDone(routeName, front.request.method, front.response.status, seconds);
    });
    let match: RouteMatch;
    let url: URL | null = null;
    let identity: Identity | null;
    try {
      if (this.closingFlag) throw closingError();
      const { method, url: target } = front.request;
      if (route !== undefined) match = { route, params: {} };
      else {
        // A path that is a route's literal pattern is its own pathname: no URL to parse.
        const literal = this.literalPaths.has(target);
        const known = literal ? this.literalMatches.get(`${method} ${target}`) : undefined;
        if (known !== undefined) match = known;
        else {
          url = parsedTarget(target);
          match = findRoute(this.routes, method, url.pathname);
          if (literal) this.literalMatches.set(`${method} ${target}`, match);
        }
      }
      routeName = match.route.pattern;
      const { access } = match.route;
      identity =
        access === 'public' ? null : authorize(this.context.auth ?? null, front.request, access);
    } catch (error) {
      this.answerError(exchange, toHttpError(error), error);
      return;
    }
    this.run(exchange, match.route, this.routeContext(exchange, url, match, identity));
  }

  /** Puts `exchange` in line for its deadline; the timer is armed for the first in line. */
  private awaitDeadline(exchange: Exchange): void {
    this.deadlines.add(exchange);
    if (this.deadlineTimer === null) this.armDeadlineTimer(exchange.deadlineMs);
  }

  /** Takes `exchange` out of line; with nobody left in it, no timer stays armed. */
  private dropDeadline(exchange: Exchange): void {
    this.deadlines.delete(exchange);
    if (this.deadlines.size === 0 && this.deadlineTimer !== null) {
      this.deadlineTimer.cancel();
      this.deadlineTimer = null;
    }
  }

  private armDeadlineTimer(atMs: number): void {
    // One timer at a time, even if a deadline's answer began a new exchange meanwhile.
    this.deadlineTimer?.cancel();
    const { environment } = this.context;
    const delayMs = Math.max(0, atMs - environment.monotonicMs());
    this.deadlineTimer = environment.setTimer(delayMs, () => {
      this.deadlineTimer = null;
      this.onDeadlines();
    });
  }

  /** Answers every exchange whose deadline has come, then waits for the next one's. */
  private onDeadlines(): void {
    const nowMs = this.context.environment.monotonicMs();
    for (const exchange of this.deadlines) {
      if (exchange.deadlineMs > nowMs) {
        this.armDeadlineTimer(exchange.deadlineMs);
        return;
      }
      this.deadlines.delete(exchange);
      this.onDeadline(exchange);
    }
  }

  private run(exchange: Exchange, route: Route, routeContext: RouteContext): void {
    const signal = exchange.abort;
    const { response } = exchange.front;
    const routeName = route.pattern;
    route.handler(routeContext).then(
      () => {
        // Every handler answers or streams; one that returned silently is our bug.
        if (response.answerable && !signal.aborted) {
          const bug = new Error(`${routeName} returned without answering`);
          this.answerError(exchange, toHttpError(bug), bug);
        }
      },
      (error: unknown) => {
        // Once aborted, the deadline has answered or the client left: nothing to say.
        if (!signal.aborted) this.answerError(exchange, toHttpError(error), error);
      },
    );
  }

  private onDeadline(exchange: Exchange): void {
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
          exchange.front.request.url.startsWith('/v1/broadcast')
            ? `no answer within ${timeoutMs} ms; a broadcast may still be delivered: retry with the same client and seq`
            : `no answer within ${timeoutMs} ms; retry`,
          { timeoutMs },
          true,
        );
    this.answerError(exchange, error);
    exchange.abort.abort(error);
  }

  private answerError(exchange: Exchange, error: HttpError, cause?: unknown): void {
    const { request, response } = exchange.front;
    if (error.code === 'internal') {
      const reason = failureReason(cause);
      this.context.logger.error(
        { method: request.method, url: request.url, reason },
        'HTTP handler failed',
      );
    }
    if (!response.answerable) return;
    const headers: Record<string, string> = {};
    if (error.code === 'method_not_allowed') headers.allow = String(error.details.allow);
    if (error.code === 'unauthorized') headers['www-authenticate'] = 'Bearer realm="abcast"';
    // A client whose body is still trickling in is cut off; the front may discard any other
    // unread body (a bounded amount) so the client can read the answer first.
    const closeConnection = error.status === 408 || this.closingFlag;
    sendError(response, error, {
      retryAfterSeconds: this.context.settings.retryAfterSeconds,
      closeConnection,
      headers,
    });
    exchange.front.afterErrorAnswer({ closeConnection });
  }

  private routeContext(
    exchange: Exchange,
    parsedUrl: URL | null,
    match: RouteMatch,
    identity: Identity | null,
  ): RouteContext {
    return new ExchangeContext(this.context, exchange, parsedUrl, match.params, identity, () =>
      this.dropDeadline(exchange),
    );
  }
}

/**
 * What a handler sees of its exchange. A class, so that the common request makes one object
 * here rather than one closure per method; the URL is parsed only if a route reads it.
 */
class ExchangeContext implements RouteContext {
  readonly request: ExchangeRequest;
  readonly response: ExchangeResponse;
  private parsedUrl: URL | null;

  constructor(
    readonly server: ServerContext,
    private readonly exchange: Exchange,
    url: URL | null,
    readonly params: Readonly<Record<string, string>>,
    readonly identity: Identity | null,
    private readonly deadlineOver: () => void,
  ) {
    this.request = exchange.front.request;
    this.response = exchange.front.response;
    this.parsedUrl = url;
  }

  get url(): URL {
    this.parsedUrl ??= new URL(this.request.url, 'http://localhost');
    return this.parsedUrl;
  }

  get signal(): AbortSignal {
    return this.exchange.abort.signal;
  }

  async readJson(options: {
    readonly emptyAllowed: boolean;
    readonly bodyBytesMax?: number;
  }): Promise<Record<string, unknown>> {
    const { exchange } = this;
    exchange.readingBody = true;
    const body = await this.request.readBody({
      bodyBytesMax: options.bodyBytesMax ?? this.server.settings.bodyBytesMax,
      signal: exchange.abort,
    });
    exchange.readingBody = false;
    return body.length === 0 && options.emptyAllowed ? {} : parseJsonObject(body);
  }

  within<T>(promise: Promise<T>): Promise<T> {
    return within(promise, this.exchange.abort);
  }

  startStream(status: number, headers: Readonly<Record<string, string>>): StreamWriter {
    // The front refuses first (in process), so a refused stream keeps its deadline.
    const writer = this.response.startStream(status, headers);
    this.exchange.streaming = true;
    this.deadlineOver();
    return writer;
  }
}

function within<T>(promise: Promise<T>, abort: AbortWatch): Promise<T> {
  // It may settle after we stopped waiting; that is expected, not an unhandled rejection.
  promise.catch(() => undefined);
  if (abort.aborted) return Promise.reject(abort.reason);
  return new Promise<T>((resolve, reject) => {
    const stopWatching = abort.onAbort(() => reject(abort.reason));
    promise.then(
      (value) => {
        stopWatching();
        resolve(value);
      },
      (error: unknown) => {
        stopWatching();
        reject(error);
      },
    );
  });
}
