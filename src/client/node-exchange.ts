/**
 * The production HttpExchange: node:http and node:https over kept-alive connections shared
 * by every client in the process. node:http rather than fetch for broadcasts: fetch capped
 * a 64-way load at about 2k/s where node:http with kept-alive connections did about 5k/s
 * against the same node.
 *
 * With a `ca` (the cluster CA's PEM), HTTPS endpoints must present a certificate that CA
 * signed; such a client gets agents of its own, since Node's shared ones trust only the
 * public CAs. Event streams go the same way (`openStream`), not through fetch, which on
 * Node 20 cannot be given a CA.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { assert } from '../util/assert.ts';
import type { Environment } from '../util/environment.ts';
import type {
  HttpExchange,
  HttpExchangeRequest,
  HttpExchangeResponse,
  StreamAnswer,
} from './exchange.ts';

interface Agents {
  readonly 'http:': HttpAgent;
  readonly 'https:': HttpsAgent;
}

function makeAgents(ca: string | null): Agents {
  return {
    'http:': new HttpAgent({ keepAlive: true, maxSockets: 256 }),
    'https:': new HttpsAgent({ keepAlive: true, maxSockets: 256, ...(ca === null ? {} : { ca }) }),
  };
}

/** Shared by every client without a CA of its own. */
const sharedAgents = makeAgents(null);

/** How a client reaches HTTPS endpoints: the CA it trusts (PEM), or null for the system's. */
export interface NodeExchangeOptions {
  readonly ca: string | null;
}

/** Agents by the CA they trust: clients of one process that share a CA share connections. */
const agentsByCa = new Map<string, Agents>();

/** The agents for `options`: the shared ones, or those of its CA. */
export function agentsFor(options: NodeExchangeOptions): Agents {
  if (options.ca === null) return sharedAgents;
  let agents = agentsByCa.get(options.ca);
  if (agents === undefined) {
    agents = makeAgents(options.ca);
    agentsByCa.set(options.ca, agents);
  }
  return agents;
}

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
export function nodeExchange(
  environment: Environment,
  options: NodeExchangeOptions = { ca: null },
): HttpExchange {
  const agents = agentsFor(options);
  return (request) => exchangeOnce(environment, agents, request);
}

function exchangeOnce(
  environment: Environment,
  agents: Agents,
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
          resolve({
            status: response.statusCode ?? 0,
            headers: flatHeaders(response),
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

/** An answer's headers with lower-case names, a repeated header joined with ", ". */
function flatHeaders(response: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (typeof value === 'string') headers[name.toLowerCase()] = value;
    else if (Array.isArray(value)) headers[name.toLowerCase()] = value.join(', ');
  }
  return headers;
}

export type { StreamAnswer } from './exchange.ts';

/**
 * A GET whose answer is read as it arrives (an event stream). Rejects when no answer comes
 * (refused, reset, TLS refused, aborted); aborting `signal` later errors the body.
 */
export function openStream(
  options: NodeExchangeOptions,
  url: string,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal,
): Promise<StreamAnswer> {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  assert(secure || target.protocol === 'http:', 'a stream speaks http or https');
  const agents = agentsFor(options);
  return new Promise<StreamAnswer>((resolve, reject) => {
    const request = (secure ? httpsRequest : httpRequest)(
      target,
      { method: 'GET', agent: agents[secure ? 'https:' : 'http:'], headers, signal },
      (response: IncomingMessage) => {
        resolve({
          status: response.statusCode ?? 0,
          headers: flatHeaders(response),
          body: Readable.toWeb(response) as ReadableStream<Uint8Array>,
        });
      },
    );
    request.on('error', reject);
    request.end();
  });
}
