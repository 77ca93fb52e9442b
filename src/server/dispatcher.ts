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
import { parseJsonObject } from './body.ts';
import type { RouteContext, ServerContext } from './context.ts';
import { HttpError, toHttpError } from './errors.ts';
import type { Front } from './exchange.ts';
import { sendError } from './respond.ts';
import { findRoute, type Route, type RouteMatch } from './router.ts';

/**
 * Why a finished request's signal aborts: one shared reason, since a new Error captures a
 * stack, a cost paid on every request (tens of thousands a second with a POST per message).
 */
const requestEnded = new Error('the request ended');

/** One request's lifecycle: what it is doing now, and how it ends. */
interface Exchange {
  readonly front: Front;
  readonly controller: AbortController;
  readingBody: boolean;
  streaming: boolean;
  deadline: Timer | null;
}

function closingError(): HttpError {
  return new HttpError(503, 'node_stopped', 'the server is closing', {}, true);
}

/** How long after `requestTimeoutMs` an unanswered request gets 503 `timeout`. */
export const deadlineGraceMs = 250;

export class Dispatcher {
  private readonly exchanges = new Set<Exchange>();
  private closingFlag = false;
  /** Called when the last exchange ends, while closing. */
  private onIdle: () => void = () => undefined;

  constructor(
    private readonly context: ServerContext,
    private readonly routes: readonly Route[],
  ) {
    assert(routes.length > 0, 'a server has routes');
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
      if (exchange.streaming) exchange.controller.abort(closingError());
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
    const exchange: Exchange = {
      front,
      controller: new AbortController(),
      readingBody: false,
      streaming: false,
      deadline: null,
    };
    this.exchanges.add(exchange);
    // A little after the node's own deadline for the same request, so that a broadcast
    // hears the node's answer, which knows more (a seq held for a gap is not in doubt).
    exchange.deadline = environment.setTimer(settings.requestTimeoutMs + deadlineGraceMs, () =>
      this.onDeadline(exchange),
    );
    let routeName = 'unmatched';
    front.onClose(() => {
      assert(this.exchanges.has(exchange), 'an exchange closes once');
      this.exchanges.delete(exchange);
      if (this.exchanges.size === 0) this.onIdle();
      exchange.deadline?.cancel();
      exchange.deadline = null;
      // Whatever still runs for this request (a stream, a wait) stops now.
      exchange.controller.abort(requestEnded);
      // A stream's duration is its client's business, not a latency.
      const seconds = exchange.streaming ? null : (environment.monotonicMs() - startedMs) / 1000;
      metrics.requestDone(routeName, front.request.method, front.response.status, seconds);
    });
    let match: RouteMatch;
    let url: URL;
    let identity: Identity | null;
    try {
      if (this.closingFlag) throw closingError();
      url = new URL(front.request.url, 'http://localhost');
      match =
        route === undefined
          ? findRoute(this.routes, front.request.method, url.pathname)
          : { route, params: {} };
      routeName = match.route.pattern;
      const { access } = match.route;
      identity =
        access === 'public' ? null : authorize(this.context.auth ?? null, front.request, access);
    } catch (error) {
      this.answerError(exchange, toHttpError(error));
      return;
    }
    this.run(exchange, match.route, this.routeContext(exchange, url, match, identity));
  }

  private run(exchange: Exchange, route: Route, routeContext: RouteContext): void {
    const signal = exchange.controller.signal;
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
          exchange.front.request.url.startsWith('/v1/broadcast')
            ? `no answer within ${timeoutMs} ms; a broadcast may still be delivered: retry with the same client and seq`
            : `no answer within ${timeoutMs} ms; retry`,
          { timeoutMs },
          true,
        );
    this.answerError(exchange, error);
    exchange.controller.abort(error);
  }

  private answerError(exchange: Exchange, error: HttpError, cause?: unknown): void {
    const { request, response } = exchange.front;
    if (error.code === 'internal') {
      const reason = cause instanceof Error ? (cause.stack ?? cause.message) : String(cause);
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
    url: URL,
    match: RouteMatch,
    identity: Identity | null,
  ): RouteContext {
    const signal = exchange.controller.signal;
    const settings = this.context.settings;
    const { request, response } = exchange.front;
    return {
      server: this.context,
      request,
      response,
      url,
      params: match.params,
      identity,
      signal,
      readJson: async ({ emptyAllowed, bodyBytesMax }) => {
        exchange.readingBody = true;
        const body = await request.readBody({
          bodyBytesMax: bodyBytesMax ?? settings.bodyBytesMax,
          signal,
        });
        exchange.readingBody = false;
        return body.length === 0 && emptyAllowed ? {} : parseJsonObject(body);
      },
      within: (promise) => within(promise, signal),
      startStream: (status, headers) => {
        // The front refuses first (in process), so a refused stream keeps its deadline.
        const writer = response.startStream(status, headers);
        exchange.streaming = true;
        exchange.deadline?.cancel();
        exchange.deadline = null;
        return writer;
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
