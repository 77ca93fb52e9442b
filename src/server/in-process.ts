/**
 * The HTTP API without sockets: a request handed over as a value runs through the same
 * routing table, handlers, validation, error shapes and deadlines as one that came through
 * node:http, and its answer comes back whole. The simulator uses it to serve real SDK
 * clients from real nodes on its virtual clock: nothing here reads a clock or arms a timer
 * except through the context's Environment, and the exchange closes on a microtask, so a
 * run replays exactly.
 *
 * Event streams (GET /v1/stream) are not served in process yet: they answer 501
 * `not_implemented` once their request is found valid.
 */
import {
  type BroadcastRunFrame,
  type RunResult,
  type RunResults,
  runResultList,
} from '../transport/client-frames.ts';
import { assert } from '../util/assert.ts';
import { tooLarge } from './body.ts';
import type { ServerContext } from './context.ts';
import { Dispatcher } from './dispatcher.ts';
import { HttpError } from './errors.ts';
import type { Answer, ExchangeRequest, ExchangeResponse, Front } from './exchange.ts';
import { broadcastRunRoute } from './routes/broadcast-run.ts';
import { apiRoutes } from './routes/index.ts';

export interface InProcessRequest {
  readonly method: string;
  /** Path and query: "/v1/messages?from=3". */
  readonly url: string;
  /** Names in any case; they are matched in lower case. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body as text (sent as UTF-8), or null for none. */
  readonly body: string | null;
}

export interface InProcessResponse {
  readonly status: number;
  /** Names in lower case, as node:http would send them. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** A run's answer: a result per message, or the answer that refused it whole. */
export type InProcessRunAnswer =
  | { readonly kind: 'results'; readonly results: readonly RunResult[] }
  | { readonly kind: 'refused'; readonly response: InProcessResponse };

/** The route a run stands for. */
const runPath = '/v1/broadcast/batch';

const encoder = new TextEncoder();

function responseOf(answer: Answer): InProcessResponse {
  const { status, headers, body } = answer;
  assert(Number.isSafeInteger(status) && status >= 200 && status <= 599, 'a status');
  return { status, headers: lowerCaseNames(headers), body };
}

function lowerCaseNames(headers: Readonly<Record<string, string>>): Record<string, string> {
  const lowered: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) lowered[name.toLowerCase()] = value;
  return lowered;
}

function exchangeRequest(request: InProcessRequest): ExchangeRequest {
  const bytes = encoder.encode(request.body ?? '');
  return {
    method: request.method,
    url: request.url,
    headers: lowerCaseNames(request.headers),
    readBody: async ({ bodyBytesMax, signal }) => {
      if (signal.aborted) throw signal.reason;
      if (bytes.length > bodyBytesMax) throw tooLarge(bodyBytesMax);
      return bytes;
    },
  };
}

/**
 * One exchange: settles `settle` once, with the answer or with the signal's reason when the
 * caller gives up first, and reports the exchange closed on the next microtask, as a socket
 * reports `close` after the answer is written.
 */
type FrontOutcome =
  | { readonly answer: Answer }
  | { readonly results: readonly RunResult[] }
  | { readonly abandoned: unknown };

function inProcessFront(
  request: InProcessRequest,
  signal: AbortSignal,
  settle: (outcome: FrontOutcome) => void,
): Front & { readonly answerRun: (results: readonly RunResult[]) => void } {
  let answer: Answer | null = null;
  let runAnswered = false;
  let abandoned = false;
  let closeListener: (() => void) | null = null;
  const closeSoon = () => {
    signal.removeEventListener('abort', onAbort);
    queueMicrotask(() => closeListener?.());
  };
  const onAbort = () => {
    if (answer !== null || runAnswered || abandoned) return;
    abandoned = true;
    settle({ abandoned: signal.reason });
    closeSoon();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  const response: ExchangeResponse = {
    get answerable() {
      return answer === null && !runAnswered && !abandoned;
    },
    get status() {
      return answer?.status ?? 200;
    },
    send: (whole) => {
      assert(answer === null && !runAnswered && !abandoned, 'answered once, while awaited');
      answer = whole;
      settle({ answer: whole });
      closeSoon();
    },
    startStream: () => {
      throw new HttpError(
        501,
        'not_implemented',
        `${request.url.split('?')[0]} streams, and streams are not served in process`,
      );
    },
  };
  return {
    request: exchangeRequest(request),
    response,
    onClose: (listener) => {
      assert(closeListener === null, 'one close listener per exchange');
      closeListener = listener;
    },
    afterErrorAnswer: () => undefined, // the whole body is at hand: nothing to discard
    answerRun: (results) => {
      assert(answer === null && !runAnswered && !abandoned, 'answered once, while awaited');
      runAnswered = true;
      settle({ results });
      closeSoon();
    },
  };
}

export class InProcessServer {
  /** The routes' dispatcher, which a binary port of the same node shares. */
  readonly dispatcher: Dispatcher;

  constructor(context: ServerContext) {
    this.dispatcher = new Dispatcher(context, apiRoutes);
  }

  /**
   * One non-streaming request, answered whole; aborting `signal` abandons it (the client
   * went away) exactly as a closed socket does: the promise rejects with the signal's reason
   * and the handler is told to stop.
   */
  handle(request: InProcessRequest, signal: AbortSignal): Promise<InProcessResponse> {
    assert(request.method !== '', 'a request has a method');
    assert(request.url.startsWith('/'), 'a request url is a path and query');
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<InProcessResponse>((resolve, reject) => {
      const front = inProcessFront(request, signal, (outcome) => {
        if ('abandoned' in outcome) return reject(outcome.abandoned);
        assert('answer' in outcome, 'a request is answered as a request');
        resolve(responseOf(outcome.answer));
      });
      this.dispatcher.dispatch(front);
    });
  }

  /**
   * A broadcastRun frame (docs/protocol.md), as the binary port serves it: through the batch
   * route's deadline, authorization and refusals, answered with a result per message, or
   * refused whole with an ordinary answer.
   */
  handleRun(frame: BroadcastRunFrame, signal: AbortSignal): Promise<InProcessRunAnswer> {
    if (signal.aborted) return Promise.reject(signal.reason);
    const request = { method: 'POST', url: runPath, headers: frame.headers, body: null };
    return new Promise<InProcessRunAnswer>((resolve, reject) => {
      const front = inProcessFront(request, signal, (outcome) => {
        if ('abandoned' in outcome) reject(outcome.abandoned);
        else if ('results' in outcome) resolve({ kind: 'results', results: outcome.results });
        else resolve({ kind: 'refused', response: responseOf(outcome.answer) });
      });
      const answerRun = (results: RunResults) => front.answerRun(runResultList(results));
      this.dispatcher.dispatch(front, broadcastRunRoute(frame, answerRun));
    });
  }

  /** Requests in progress: ended by their deadline or abandoned by their caller. */
  get openRequestCount(): number {
    return this.dispatcher.openExchangeCount;
  }

  /** New requests get 503 `node_stopped`; resolves once those in progress have ended. */
  close(): Promise<void> {
    return this.dispatcher.close();
  }
}
