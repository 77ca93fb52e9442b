/**
 * The production HttpExchange: node:http and node:https over kept-alive connections shared
 * by every client in the process. node:http rather than fetch for broadcasts: fetch capped
 * a 64-way load at about 2k/s where node:http with kept-alive connections did about 5k/s
 * against the same node.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { assert } from '../util/assert.ts';
import type { Environment } from '../util/environment.ts';
import type { HttpExchange, HttpExchangeRequest, HttpExchangeResponse } from './exchange.ts';

const agents = {
  'http:': new HttpAgent({ keepAlive: true, maxSockets: 256 }),
  'https:': new HttpsAgent({ keepAlive: true, maxSockets: 256 }),
};

/** Why an exchange got no answer: its deadline passed (the message says after how long). */
export class ExchangeTimeoutError extends Error {
  readonly code = 'request_timeout';
  constructor(timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
    this.name = 'ExchangeTimeoutError';
  }
}

/** An exchange whose deadlines run on `environment`'s timers (background: they never keep
 *  a process alive by themselves). */
export function nodeExchange(environment: Environment): HttpExchange {
  return (request) => exchangeOnce(environment, request);
}

function exchangeOnce(
  environment: Environment,
  exchange: HttpExchangeRequest,
): Promise<HttpExchangeResponse> {
  assert(Number.isFinite(exchange.timeoutMs) && exchange.timeoutMs > 0, 'a deadline is > 0');
  const url = new URL(exchange.url);
  const secure = url.protocol === 'https:';
  assert(secure || url.protocol === 'http:', 'an exchange speaks http or https');
  const cancel = new AbortController();
  let timedOut = false;
  const timer = environment.setTimer(
    exchange.timeoutMs,
    () => {
      timedOut = true;
      cancel.abort();
    },
    { background: true },
  );
  const onAbort = () => cancel.abort();
  if (exchange.signal.aborted) cancel.abort();
  else exchange.signal.addEventListener('abort', onAbort, { once: true });
  return new Promise<HttpExchangeResponse>((resolve, reject) => {
    const finish = () => {
      timer.cancel();
      exchange.signal.removeEventListener('abort', onAbort);
    };
    const fail = (error: unknown) => {
      finish();
      reject(timedOut ? new ExchangeTimeoutError(exchange.timeoutMs) : error);
    };
    const headers: Record<string, string | number> = { ...exchange.headers };
    if (exchange.body !== null) headers['content-length'] = Buffer.byteLength(exchange.body);
    const request = (secure ? httpsRequest : httpRequest)(
      url,
      {
        method: exchange.method,
        agent: agents[secure ? 'https:' : 'http:'],
        headers,
        signal: cancel.signal,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', fail);
        response.on('end', () => {
          finish();
          const answerHeaders: Record<string, string> = {};
          for (const [name, value] of Object.entries(response.headers)) {
            if (typeof value === 'string') answerHeaders[name.toLowerCase()] = value;
            else if (Array.isArray(value)) answerHeaders[name.toLowerCase()] = value.join(', ');
          }
          resolve({
            status: response.statusCode ?? 0,
            headers: answerHeaders,
            body: Buffer.concat(chunks).toString('utf8'),
          });
        });
      },
    );
    request.on('error', fail);
    if (exchange.body === null) request.end();
    else request.end(exchange.body);
  });
}
