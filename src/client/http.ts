/**
 * One HTTP exchange with one node (through the client's HttpExchange), classified for the retry loops: a JSON answer, a refusal
 * that no other node would answer differently (`fatal`), or a failure worth retrying
 * elsewhere (`retry`, with the node's Retry-After when it gave one).
 */
import { assert } from '../util/assert.ts';
import type { Environment } from '../util/environment.ts';
import { ClientError, refusal } from './errors.ts';
import type { HttpExchange, HttpExchangeResponse } from './exchange.ts';

export type Outcome<T> =
  | { readonly kind: 'ok'; readonly value: T }
  | { readonly kind: 'fatal'; readonly error: ClientError }
  | { readonly kind: 'retry'; readonly reason: string; readonly retryAfterMs: number | null };

/** Codes another node, or a later attempt, may answer differently. */
const retryableCodes = new Set([
  'no_leader',
  'timeout',
  'overloaded',
  'node_stopped',
  'storage_failed',
  'internal',
  'sequence_gap',
  'request_timeout',
]);

/** Whether another node, or a later attempt, may answer a refusal with `code` differently. */
export function retryableCode(code: string): boolean {
  return retryableCodes.has(code);
}

/** Reads a non-2xx answer into its `{"error", "message", …}` fields. */
export function answerFields(response: HttpExchangeResponse): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(response.body);
    if (typeof parsed === 'object' && parsed !== null) return parsed as Record<string, unknown>;
  } catch {
    // not JSON: a proxy's page, say; keep the start of its text
  }
  return { message: response.body.slice(0, 200) };
}

function retryAfterMs(response: HttpExchangeResponse): number | null {
  const header = response.headers['retry-after'];
  const seconds = Number(header);
  return header !== undefined && Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : null;
}

/** A non-2xx answer as an outcome: 503 and 5xx are retried elsewhere, the rest are final. */
export function classify(endpoint: string, response: HttpExchangeResponse): Outcome<never> {
  assert(response.status < 200 || response.status >= 300, 'only a non-2xx answer is classified');
  const fields = answerFields(response);
  const code = typeof fields.error === 'string' ? fields.error : `http_${response.status}`;
  if (response.status >= 500 || retryableCode(code)) {
    return {
      kind: 'retry',
      reason: `${endpoint} ${response.status} ${code}`,
      retryAfterMs: retryAfterMs(response),
    };
  }
  const details = { ...fields, status: response.status, endpoint };
  return { kind: 'fatal', error: refusal(code, details) };
}

/**
 * The caller's signals: one, or several any of which cancels. Several are watched with
 * listeners taken off when the call ends, not joined with AbortSignal.any — on Node 20 that
 * leaves an entry in every source signal per call, so a client's long-lived close signal
 * would grow with every request.
 */
export type Signals = AbortSignal | readonly AbortSignal[];

function signalList(signals: Signals): readonly AbortSignal[] {
  return signals instanceof AbortSignal ? [signals] : signals;
}

export function anyAborted(signals: Signals): boolean {
  return signalList(signals).some((signal) => signal.aborted);
}

/** Calls `onAbort` once, when any of `signals` aborts (at once if one has); returns the detach. */
export function onAnyAbort(signals: Signals, onAbort: () => void): () => void {
  const list = signalList(signals);
  const detach = () => {
    for (const signal of list) signal.removeEventListener('abort', fire);
  };
  const fire = () => {
    detach();
    onAbort();
  };
  if (anyAborted(list)) {
    onAbort();
    return () => {};
  }
  for (const signal of list) signal.addEventListener('abort', fire, { once: true });
  return detach;
}

/** A failed exchange (refused, reset, timed out) as a retry outcome, unless we aborted it. */
export function fetchFailure(endpoint: string, error: unknown, signal: Signals): Outcome<never> {
  if (anyAborted(signal))
    return {
      kind: 'fatal',
      error: new ClientError('closed', 'the request was aborted', { endpoint }),
    };
  // fetch hides the reason in `cause`; node:http puts it on the error itself.
  const cause =
    (error as { cause?: { code?: string; message?: string } }).cause ??
    (error as { code?: string; message?: string });
  const reason = cause?.code ?? cause?.message ?? (error as Error).name;
  return { kind: 'retry', reason: `${endpoint} ${reason}`, retryAfterMs: null };
}

/** What a JSON call needs besides its own arguments: the way to the nodes. */
export interface JsonCall {
  readonly exchange: HttpExchange;
  readonly endpoint: string;
  /** The path and query, e.g. `/v1/barrier`. */
  readonly path: string;
  readonly timeoutMs: number;
  /** The caller's: client closed, session broke, subscription ended. */
  readonly signal: Signals;
}

/** POSTs JSON with a deadline. */
export function postJson<T>(call: JsonCall, body: string): Promise<Outcome<T>> {
  return requestJson('POST', call, body);
}

/** GETs a JSON answer with a deadline, over the same exchange. */
export function getJson<T>(call: JsonCall): Promise<Outcome<T>> {
  return requestJson('GET', call, null);
}

async function requestJson<T>(
  method: 'GET' | 'POST',
  call: JsonCall,
  body: string | null,
): Promise<Outcome<T>> {
  const { endpoint, signal } = call;
  // One signal per request, listening on the caller's and let go at the end: joining them
  // with AbortSignal.any would leave an entry in the client's long-lived signal per call.
  const cancel = new AbortController();
  const detach = onAnyAbort(signal, () => cancel.abort());
  let response: HttpExchangeResponse;
  try {
    response = await call.exchange({
      method,
      url: `${endpoint}${call.path}`,
      headers:
        body === null
          ? { accept: 'application/json' }
          : { accept: 'application/json', 'content-type': 'application/json' },
      body,
      timeoutMs: call.timeoutMs,
      signal: cancel.signal,
    });
  } catch (error) {
    return fetchFailure(endpoint, error, signal);
  } finally {
    detach();
  }
  if (response.status < 200 || response.status >= 300) return classify(endpoint, response);
  try {
    return { kind: 'ok', value: JSON.parse(response.body) as T };
  } catch (error) {
    return fetchFailure(endpoint, error, signal);
  }
}

/**
 * Waits `ms` on `environment`'s timers, or less when a signal aborts (then resolves;
 * callers check the signals).
 */
export function pause(environment: Environment, ms: number, signal: Signals): Promise<void> {
  return new Promise((resolve) => {
    if (anyAborted(signal)) return resolve();
    const done = () => {
      timer.cancel();
      detach();
      resolve();
    };
    const timer = environment.setTimer(Math.max(0, ms), done);
    const detach = onAnyAbort(signal, done);
  });
}

/**
 * Full-jitter exponential backoff: a wait in [0, min(max, base·2^attempt)), `random` in
 * [0, 1) drawing it.
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: number): number {
  assert(random >= 0 && random < 1, 'a jitter draw is in [0, 1)');
  return random * Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
}
