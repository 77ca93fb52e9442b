/**
 * Writing answers. Every answer is JSON (except /metrics and the event stream), and a
 * response is written once: a late second attempt (say, a handler finishing after the
 * request deadline already answered) is dropped, not thrown.
 */
import type { HttpError } from './errors.ts';
import type { ExchangeResponse } from './exchange.ts';

export function sendJson(
  response: ExchangeResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (!response.answerable) return;
  const text = JSON.stringify(body);
  response.send({
    status,
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(text)),
      'cache-control': 'no-store',
      ...headers,
    },
    body: text,
  });
}

export interface ErrorAnswerOptions {
  readonly retryAfterSeconds: number;
  /** Close the connection after the answer: the request body was not read to its end. */
  readonly closeConnection: boolean;
  readonly headers?: Readonly<Record<string, string>>;
}

export function sendError(
  response: ExchangeResponse,
  error: HttpError,
  options: ErrorAnswerOptions,
): void {
  const headers: Record<string, string> = { ...options.headers };
  if (error.retryable) headers['retry-after'] = String(options.retryAfterSeconds);
  if (options.closeConnection) headers.connection = 'close';
  // Details go first so that `error` and `message` can never be overwritten by one.
  sendJson(
    response,
    error.status,
    { ...error.details, error: error.code, message: error.message },
    headers,
  );
}
