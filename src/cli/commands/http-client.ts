/**
 * Calls to a node's HTTP API (docs/api.md) with Node's fetch: JSON in and out, a deadline on
 * every call, and failures turned into one-line CliErrors (unreachable, or the node's own
 * `{"error","message"}` answer).
 */
import { CliError } from './errors.ts';

export const defaultNodeUrl = 'http://127.0.0.1:8001';
const requestTimeoutMs = 15_000;

/** The base URL without a trailing slash; refuses anything but http(s). */
export function nodeUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError(`--node takes a URL like ${defaultNodeUrl}, got "${text}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(`--node takes an http:// URL, got "${text}"`);
  }
  return url.href.replace(/\/+$/, '');
}

/** Why fetch failed, in words (its TypeError hides the cause). */
export function unreachable(base: string, error: unknown): CliError {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const reason = cause?.code ?? cause?.message ?? (error as Error).message;
  return new CliError(`cannot reach the node at ${base} (${reason})`);
}

/** A non-2xx answer as one line: status, error code and message. */
export async function answerError(base: string, response: Response): Promise<CliError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: string; message?: string };
    return new CliError(
      `${base} answered ${response.status} ${body.error ?? ''}: ${body.message ?? text}`.trim(),
    );
  } catch {
    return new CliError(`${base} answered ${response.status}: ${text.slice(0, 200)}`);
  }
}

/** GET or POST JSON; resolves with the parsed body of a 2xx answer. */
export async function callJson<T>(
  base: string,
  path: string,
  body?: unknown,
  timeoutMs = requestTimeoutMs,
  method: 'GET' | 'POST' | 'DELETE' = body === undefined ? 'GET' : 'POST',
): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${base}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') {
      throw new CliError(`${base} did not answer within ${timeoutMs} ms`);
    }
    throw unreachable(base, error);
  }
  if (!response.ok) throw await answerError(base, response);
  return (await response.json()) as T;
}

/** A 503 answer worth retrying: its error code and how long the node asks us to wait. */
export class Unavailable extends CliError {
  constructor(
    message: string,
    readonly code: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

/** Like callJson, but a 503 throws `Unavailable` so that the caller can decide to retry. */
export async function postJson<T>(base: string, path: string, body: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') {
      throw new CliError(`${base} did not answer within ${requestTimeoutMs} ms`);
    }
    throw unreachable(base, error);
  }
  if (response.status === 503) {
    const failure = await answerError(base, response);
    const code = /answered 503 (\w+)/.exec(failure.message)?.[1] ?? '';
    const retryAfterSeconds = Number(response.headers.get('retry-after') ?? '1');
    const retryAfterMs = Number.isFinite(retryAfterSeconds) ? retryAfterSeconds * 1000 : 1000;
    throw new Unavailable(failure.message, code, Math.min(Math.max(retryAfterMs, 100), 5000));
  }
  if (!response.ok) throw await answerError(base, response);
  return (await response.json()) as T;
}
