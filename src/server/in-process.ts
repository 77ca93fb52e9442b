/**
 * The HTTP API without sockets: a request handed over as a value runs through the same
 * routing table, handlers, validation, error shapes and deadlines as one that came through
 * node:http, and its answer comes back whole. The simulator uses it to serve real SDK
 * clients from real nodes on its virtual clock: nothing here reads a clock or arms a timer
 * except through the context's Environment, and the exchange closes on a microtask, so a
 * run replays exactly.
 *
 * Event streams (GET /v1/stream) are served by `handleStream` only: its head settles the
 * call, and the body's bytes go to the caller's `InProcessStreamBody` as the route writes
 * them. Through `handle`, a stream answers 501 `not_implemented` once found valid.
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
import type { Answer, ExchangeRequest, ExchangeResponse, Front, StreamWriter } from './exchange.ts';
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

/** A stream's answer: refused whole, or its head (the body follows). */
export type InProcessStreamAnswer =
  | { readonly kind: 'whole'; readonly response: InProcessResponse }
  | {
      readonly kind: 'stream';
      readonly status: number;
      readonly headers: Readonly<Record<string, string>>;
    };

/**
 * Where a streamed answer's body goes, as the route writes it. The consumer takes every
 * byte at once (never behind): the caller models the way there.
 */
export interface InProcessStreamBody {
  data(bytes: Uint8Array): void;
  /** The stream is over: `clean` after what was written, or cut off. */
  end(clean: boolean): void;
}

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
  | {
      readonly streamHead: {
        readonly status: number;
        readonly headers: Readonly<Record<string, string>>;
      };
    }
  | { readonly results: readonly RunResult[] }
  | { readonly abandoned: unknown };

function inProcessFront(
  request: InProcessRequest,
  signal: AbortSignal,
  settle: (outcome: FrontOutcome) => void,
  body: InProcessStreamBody | null = null,
): Front & { readonly answerRun: (results: readonly RunResult[]) => void } {
  let answer: Answer | null = null;
  let runAnswered = false;
  let abandoned = false;
  let streaming = false;
  let closeListener: (() => void) | null = null;
  let closing = false;
  const closeSoon = () => {
    if (closing) return;
    closing = true;
    signal.removeEventListener('abort', onAbort);
    queueMicrotask(() => closeListener?.());
  };
  const onAbort = () => {
    if (answer !== null || runAnswered || abandoned) return;
    abandoned = true;
    // A stream's consumer went away: the route's writer is gone, and its close listener runs.
    if (!streaming) settle({ abandoned: signal.reason });
    closeSoon();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  const response: ExchangeResponse = {
    get answerable() {
      return answer === null && !runAnswered && !abandoned && !streaming;
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
    startStream: (status, headers) => {
      if (body === null) {
        throw new HttpError(
          501,
          'not_implemented',
          `${request.url.split('?')[0]} streams: ask handleStream`,
        );
      }
      assert(answer === null && !streaming && !abandoned, 'a stream starts once, while awaited');
      streaming = true;
      settle({ streamHead: { status, headers: lowerCaseNames(headers) } });
      return new InProcessStreamWriter(
        body,
        () => abandoned,
        () => {
          abandoned = true;
          closeSoon();
        },
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
        else if ('answer' in outcome) {
          resolve({ kind: 'refused', response: responseOf(outcome.answer) });
        } else assert(false, 'a run is not answered with a stream');
      });
      const answerRun = (results: RunResults) => front.answerRun(runResultList(results));
      this.dispatcher.dispatch(front, broadcastRunRoute(frame, answerRun));
    });
  }

  /**
   * A request that may answer with a stream (GET /v1/stream): resolves with its head, the
   * body's bytes then going to `body`, or with a whole answer (a refusal). Aborting
   * `signal` is the consumer going away, before or during the stream.
   */
  handleStream(
    request: InProcessRequest,
    signal: AbortSignal,
    body: InProcessStreamBody,
  ): Promise<InProcessStreamAnswer> {
    assert(request.method === 'GET', 'a stream is asked for with GET');
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<InProcessStreamAnswer>((resolve, reject) => {
      const front = inProcessFront(
        request,
        signal,
        (outcome) => {
          if ('abandoned' in outcome) reject(outcome.abandoned);
          else if ('streamHead' in outcome) resolve({ kind: 'stream', ...outcome.streamHead });
          else if ('answer' in outcome) {
            resolve({ kind: 'whole', response: responseOf(outcome.answer) });
          } else assert(false, 'a stream is not answered as a run');
        },
        body,
      );
      this.dispatcher.dispatch(front);
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

const utf8 = new TextEncoder();

/** A streamed answer's body handed straight to its consumer, which is never behind. */
class InProcessStreamWriter implements StreamWriter {
  private over = false;

  constructor(
    private readonly body: InProcessStreamBody,
    private readonly consumerGone: () => boolean,
    private readonly onOver: () => void,
  ) {}

  get gone(): boolean {
    return this.over || this.consumerGone();
  }

  readonly behind = false;
  readonly bufferedBytes = 0;

  write(data: string | Uint8Array): boolean {
    if (this.gone) return false;
    this.body.data(typeof data === 'string' ? utf8.encode(data) : data.slice());
    return true;
  }

  drained(_signal: AbortSignal): Promise<void> {
    return Promise.resolve();
  }

  end(): void {
    this.finish(true);
  }

  destroy(): void {
    this.finish(false);
  }

  private finish(clean: boolean): void {
    if (this.over) return;
    this.over = true;
    if (!this.consumerGone()) this.body.end(clean);
    this.onOver();
  }
}
