/**
 * One HTTP exchange with one node, classified for the retry loops: a JSON answer, a refusal
 * that no other node would answer differently (`fatal`), or a failure worth retrying
 * elsewhere (`retry`, with the node's Retry-After when it gave one).
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { ClientError } from './errors.ts';

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
export async function answerFields(response: Response): Promise<Record<string, unknown>> {
  const text = await response.text().catch(() => '');
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null) return parsed as Record<string, unknown>;
  } catch {
    // not JSON: a proxy's page, say; keep the start of its text
  }
  return { message: text.slice(0, 200) };
}

function retryAfterMs(response: Response): number | null {
  const seconds = Number(response.headers.get('retry-after'));
  return response.headers.has('retry-after') && Number.isFinite(seconds) && seconds >= 0
    ? seconds * 1000
    : null;
}

/** A non-2xx answer as an outcome: 503 and 5xx are retried elsewhere, the rest are final. */
export async function classify(endpoint: string, response: Response): Promise<Outcome<never>> {
  const fields = await answerFields(response);
  const code = typeof fields.error === 'string' ? fields.error : `http_${response.status}`;
  if (response.status >= 500 || retryableCode(code)) {
    return {
      kind: 'retry',
      reason: `${endpoint} ${response.status} ${code}`,
      retryAfterMs: retryAfterMs(response),
    };
  }
  const details = { ...fields, status: response.status, endpoint };
  return { kind: 'fatal', error: new ClientError(code, details) };
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

/** A failed fetch (refused, reset, timed out) as a retry outcome, unless we aborted it. */
export function fetchFailure(endpoint: string, error: unknown, signal: Signals): Outcome<never> {
  if (anyAborted(signal))
    return {
      kind: 'fatal',
      error: new ClientError('closed', { endpoint }, 'the request was aborted'),
    };
  // fetch hides the reason in `cause`; node:http puts it on the error itself.
  const cause =
    (error as { cause?: { code?: string; message?: string } }).cause ??
    (error as { code?: string; message?: string });
  const reason = cause?.code ?? cause?.message ?? (error as Error).name;
  return { kind: 'retry', reason: `${endpoint} ${reason}`, retryAfterMs: null };
}

/**
 * Kept-alive connections per protocol, shared by every client in the process. node:http
 * rather than fetch for broadcasts: fetch capped a 64-way load at about 2k/s where
 * node:http with kept-alive connections did about 5k/s against the same node.
 */
const agents = {
  'http:': new HttpAgent({ keepAlive: true, maxSockets: 256 }),
  'https:': new HttpsAgent({ keepAlive: true, maxSockets: 256 }),
};

/** POSTs JSON with a deadline; `signal` is the caller's (client closed, subscription ended). */
export function postJson<T>(
  endpoint: string,
  path: string,
  body: string,
  timeoutMs: number,
  signal: Signals,
): Promise<Outcome<T>> {
  return requestJson('POST', endpoint, path, body, timeoutMs, signal);
}

/** GETs a JSON answer with a deadline, over the same kept-alive connections. */
export function getJson<T>(
  endpoint: string,
  path: string,
  timeoutMs: number,
  signal: Signals,
): Promise<Outcome<T>> {
  return requestJson('GET', endpoint, path, null, timeoutMs, signal);
}

function requestJson<T>(
  method: 'GET' | 'POST',
  endpoint: string,
  path: string,
  body: string | null,
  timeoutMs: number,
  signal: Signals,
): Promise<Outcome<T>> {
  const url = new URL(`${endpoint}${path}`);
  const secure = url.protocol === 'https:';
  const cancel = new AbortController();
  const timer = setTimeout(() => cancel.abort(), timeoutMs);
  timer.unref();
  const detach = onAnyAbort(signal, () => cancel.abort());
  return new Promise<Outcome<T>>((settle) => {
    const resolve = (outcome: Outcome<T>) => {
      clearTimeout(timer);
      detach();
      settle(outcome);
    };
    const request = (secure ? httpsRequest : httpRequest)(
      url,
      {
        method,
        agent: agents[secure ? 'https:' : 'http:'],
        headers:
          body === null
            ? { accept: 'application/json' }
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        signal: cancel.signal,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', (error) => resolve(fetchFailure(endpoint, error, signal)));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = response.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            const headers = new Headers();
            for (const [name, value] of Object.entries(response.headers)) {
              if (typeof value === 'string') headers.set(name, value);
            }
            classify(endpoint, new Response(text, { status, headers })).then(resolve, (error) =>
              resolve(fetchFailure(endpoint, error, signal)),
            );
            return;
          }
          try {
            resolve({ kind: 'ok', value: JSON.parse(text) as T });
          } catch (error) {
            resolve(fetchFailure(endpoint, error, signal));
          }
        });
      },
    );
    request.on('error', (error) => resolve(fetchFailure(endpoint, error, signal)));
    if (body === null) request.end();
    else request.end(body);
  });
}

/** Waits `ms`, or less when a signal aborts (then resolves; callers check the signals). */
export function pause(ms: number, signal: Signals): Promise<void> {
  return new Promise((resolve) => {
    if (anyAborted(signal)) return resolve();
    const done = () => {
      clearTimeout(timer);
      detach();
      resolve();
    };
    const timer = setTimeout(done, ms);
    const detach = onAnyAbort(signal, done);
  });
}

/** Full-jitter exponential backoff: a random wait in [0, min(max, base·2^attempt)). */
export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.random() * Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
}
