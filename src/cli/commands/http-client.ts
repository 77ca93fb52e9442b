/**
 * Calls to a node's HTTP API (docs/api.md) through the SDK's node:http(s) exchange: JSON in
 * and out, a deadline on every call, and failures turned into one-line CliErrors
 * (unreachable, or the node's own `{"error","message"}` answer). HTTPS endpoints are
 * checked against the CA of `--ca FILE` or ABCAST_CA when one is given (`useCaFile`), the
 * system's CAs otherwise. A token (`--token` or ABCAST_TOKEN, `useToken`) goes with every
 * call as `Authorization: Bearer`.
 */
import { readFile } from 'node:fs/promises';
import type { HttpExchangeResponse } from '../../client/exchange.ts';
import {
  ExchangeTimeoutError,
  type NodeExchangeOptions,
  nodeExchange,
  openStream,
  type StreamAnswer,
} from '../../client/node-exchange.ts';
import { systemEnvironment } from '../../util/system-environment.ts';
import { CliError } from './errors.ts';

export const defaultNodeUrl = 'http://127.0.0.1:8001';
const requestTimeoutMs = 15_000;

/** One CA per command run, set before the first call. */
let tls: NodeExchangeOptions = { ca: null };
/** The Authorization header of every call, when a token was given. */
let authorization: Record<string, string> = {};

/** What a token `abcast token create` prints looks like: it goes in an HTTP header as it is. */
export const tokenPattern = /^[A-Za-z0-9._~+/=-]{1,512}$/;

/** Present `token` to the nodes from now on. */
export function useToken(token: string): void {
  if (!tokenPattern.test(token)) {
    throw new CliError('--token (or ABCAST_TOKEN) must be the token `abcast token create` printed');
  }
  authorization = { authorization: `Bearer ${token}` };
}

/** Trust the CA in `path` (PEM) for https:// nodes from now on. */
export async function useCaFile(path: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read the CA file ${path}: ${(error as Error).message}`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new CliError(`${path} holds no PEM certificate`);
  }
  tls = { ca: text };
}

/** The base URL without a trailing slash; refuses anything but http(s), naming `flag`. */
export function nodeUrl(text: string, flag = 'node'): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError(`--${flag} takes a URL like ${defaultNodeUrl}, got "${text}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(`--${flag} takes an http:// URL, got "${text}"`);
  }
  return url.href.replace(/\/+$/, '');
}

/** Why a request got no answer, in words; a certificate problem says to give the CA. */
export function unreachable(base: string, error: unknown): CliError {
  const reason = (error as { code?: string }).code ?? (error as Error).message;
  const hint =
    /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(reason) && tls.ca === null
      ? '; give the cluster CA with --ca FILE or ABCAST_CA'
      : '';
  return new CliError(`cannot reach the node at ${base} (${reason})${hint}`);
}

/** A non-2xx answer as one line: status, error code and message. */
export async function answerError(
  base: string,
  response: { readonly status: number; readonly body: string },
): Promise<CliError> {
  const text = response.body;
  try {
    const body = JSON.parse(text) as { error?: string; message?: string };
    const hint =
      body.error === 'unauthorized' && authorization.authorization === undefined
        ? '; give a token with --token or ABCAST_TOKEN'
        : '';
    return new CliError(
      `${base} answered ${response.status} ${body.error ?? ''}: ${body.message ?? text}${hint}`.trim(),
    );
  } catch {
    return new CliError(`${base} answered ${response.status}: ${text.slice(0, 200)}`);
  }
}

/** One request and its whole answer; a CliError when none comes. */
async function exchange(
  base: string,
  path: string,
  method: 'GET' | 'POST' | 'DELETE',
  body: unknown,
  timeoutMs: number,
): Promise<HttpExchangeResponse> {
  try {
    return await nodeExchange(
      systemEnvironment,
      tls,
    )({
      method,
      url: `${base}${path}`,
      headers:
        body === undefined
          ? { accept: 'application/json', ...authorization }
          : { accept: 'application/json', 'content-type': 'application/json', ...authorization },
      body: body === undefined ? null : JSON.stringify(body),
      timeoutMs,
      signal: new AbortController().signal,
    });
  } catch (error) {
    if (error instanceof ExchangeTimeoutError) {
      throw new CliError(`${base} did not answer within ${timeoutMs} ms`);
    }
    throw unreachable(base, error);
  }
}

function parsed<T>(base: string, response: HttpExchangeResponse): T {
  try {
    return JSON.parse(response.body) as T;
  } catch {
    throw new CliError(`${base} answered ${response.status} with something other than JSON`);
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
  const response = await exchange(base, path, method, body, timeoutMs);
  if (response.status < 200 || response.status >= 300) throw await answerError(base, response);
  return parsed<T>(base, response);
}

/**
 * GET an event stream, its answer read as it arrives; a CliError when none comes. Aborting
 * `signal` gives up on the head, or errors the body once it flows.
 */
export async function streamFrom(
  base: string,
  url: string,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal = new AbortController().signal,
): Promise<StreamAnswer> {
  try {
    return await openStream(tls, url, { ...headers, ...authorization }, signal);
  } catch (error) {
    throw unreachable(base, error);
  }
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

/** A non-2xx answer as its CliError: `Unavailable` for a 503, with the pause it asks for. */
async function failureOf(base: string, response: HttpExchangeResponse): Promise<CliError> {
  const failure = await answerError(base, response);
  if (response.status !== 503) return failure;
  const code = /answered 503 (\w+)/.exec(failure.message)?.[1] ?? '';
  const retryAfterSeconds = Number(response.headers['retry-after'] ?? '1');
  const retryAfterMs = Number.isFinite(retryAfterSeconds) ? retryAfterSeconds * 1000 : 1000;
  return new Unavailable(failure.message, code, Math.min(Math.max(retryAfterMs, 100), 5000));
}

/** Like callJson, but a 503 throws `Unavailable` so that the caller can decide to retry. */
export async function postJson<T>(base: string, path: string, body: unknown): Promise<T> {
  const response = await exchange(base, path, 'POST', body, requestTimeoutMs);
  if (response.status < 200 || response.status >= 300) throw await failureOf(base, response);
  return parsed<T>(base, response);
}

const askAgainMinimumMs = 1000;

/**
 * GET JSON, asked again after a 503 (no leader yet, an election under way, a read that timed
 * out on a busy node) until `waitMs` is spent: a read changes nothing, so a second ask is
 * always safe, and a node that is merely slow should not fail the command.
 */
export async function getJsonWhileUnavailable<T>(
  base: string,
  path: string,
  waitMs: number,
): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const response = await exchange(
      base,
      path,
      'GET',
      undefined,
      Math.max(deadline - Date.now(), 1),
    );
    if (response.status >= 200 && response.status < 300) return parsed<T>(base, response);
    const failure = await failureOf(base, response);
    // Asked again only with a second left for the answer: a last ask given a few
    // milliseconds would fail with a timeout that hides the node's own answer.
    if (
      !(failure instanceof Unavailable) ||
      Date.now() + failure.retryAfterMs + askAgainMinimumMs > deadline
    ) {
      throw failure;
    }
    await new Promise((resume) => setTimeout(resume, failure.retryAfterMs));
  }
}

/**
 * GET an answer to read as it arrives (a backup), asked again after a 503 as
 * `getJsonWhileUnavailable` does until `waitMs` is spent; resolves with a 2xx answer whose
 * body is still to read. Aborting `signal` gives up.
 */
export async function getStreamWhileUnavailable(
  base: string,
  path: string,
  options: {
    readonly waitMs: number;
    readonly headers: Readonly<Record<string, string>>;
    readonly signal: AbortSignal;
  },
): Promise<StreamAnswer> {
  const deadline = Date.now() + options.waitMs;
  for (;;) {
    const answer = await streamFrom(base, `${base}${path}`, options.headers, options.signal);
    if (answer.status >= 200 && answer.status < 300) return answer;
    // An error answer is one small JSON object.
    const body = await new Response(answer.body).text().catch(() => '');
    const failure = await failureOf(base, { status: answer.status, headers: answer.headers, body });
    if (
      !(failure instanceof Unavailable) ||
      Date.now() + failure.retryAfterMs + askAgainMinimumMs > deadline
    ) {
      throw failure;
    }
    await new Promise((resume) => setTimeout(resume, failure.retryAfterMs));
  }
}
