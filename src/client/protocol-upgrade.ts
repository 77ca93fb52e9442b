/**
 * The binary protocol by default (docs/protocol.md). A client given http(s) endpoints learns
 * from each node's `GET /v1/status` (which the client asks anyway, to find the leader)
 * whether that node serves the binary port, checks once that the port answers, and from
 * then on sends that node's calls and streams over it. A node without the port, a port that
 * does not answer within `probeTimeoutMs`, or a connection that fails later (the call is
 * then sent again over HTTP at once, which sessions make safe) keeps HTTP for that node
 * until `relearnAfterMs` has passed. `connect({ protocol: 'http' })` never upgrades.
 *
 * The binary port is reached at the host the client knows the node by, with the port the
 * node gives: a node listening on every interface reports an address the client may not
 * reach, and its HTTP host is the one the client's network reaches.
 */
import type { Environment } from '../util/environment.ts';
import { BinaryConnectionError, type BinaryExchange } from './binary-exchange.ts';
import type {
  HttpExchange,
  HttpExchangeRequest,
  HttpExchangeResponse,
  RunExchangeAnswer,
  RunExchangeRequest,
} from './exchange.ts';
import type { StreamAnswer } from './node-exchange.ts';

/** How a client reaches nodes given as http(s) endpoints. */
export type ClientProtocol = 'auto' | 'http';

export const clientProtocols: readonly ClientProtocol[] = ['auto', 'http'];

const probeTimeoutMs = 1_000;
const relearnAfterMs = 60_000;

type Route =
  | { readonly kind: 'binary'; readonly base: string }
  | { readonly kind: 'probing' }
  | { readonly kind: 'http'; readonly untilMs: number };

export interface UpgradedTransport {
  readonly exchange: HttpExchange;
  openStream(
    url: string,
    headers: Readonly<Record<string, string>>,
    signal: AbortSignal,
    timeoutMs: number,
    overHttp: () => Promise<StreamAnswer>,
  ): Promise<StreamAnswer>;
}

/** The binary base URL (`abcast(s)://host:port`) a status answer offers, if any. */
export function offeredBinaryBase(origin: URL, statusBody: string): string | null {
  let offered: unknown;
  try {
    offered = (JSON.parse(statusBody) as { binary?: unknown } | null)?.binary;
  } catch {
    return null;
  }
  if (typeof offered !== 'string') return null;
  let binary: URL;
  try {
    binary = new URL(offered);
  } catch {
    return null;
  }
  // TLS stays TLS, plain stays plain: never a downgrade, never an upgrade without its CA.
  const scheme = origin.protocol === 'https:' ? 'abcasts:' : 'abcast:';
  if (binary.protocol !== scheme || binary.port === '') return null;
  return `${scheme}//${origin.host.replace(/:\d+$/, '')}:${binary.port}`;
}

export function upgradedTransport(
  environment: Environment,
  overHttp: HttpExchange,
  overBinary: BinaryExchange,
): UpgradedTransport {
  const routes = new Map<string, Route>();

  const binaryBaseOf = (origin: string): string | null => {
    const route = routes.get(origin);
    return route?.kind === 'binary' ? route.base : null;
  };

  const fellBack = (origin: string) =>
    routes.set(origin, { kind: 'http', untilMs: environment.monotonicMs() + relearnAfterMs });

  const learn = (origin: URL, request: HttpExchangeRequest, response: HttpExchangeResponse) => {
    const route = routes.get(origin.origin);
    if (route !== undefined && (route.kind !== 'http' || environment.monotonicMs() < route.untilMs))
      return;
    const base = offeredBinaryBase(origin, response.body);
    if (base === null) {
      fellBack(origin.origin);
      return;
    }
    routes.set(origin.origin, { kind: 'probing' });
    const abort = new AbortController();
    overBinary({
      ...request,
      url: `${base}/v1/status`,
      timeoutMs: probeTimeoutMs,
      signal: abort.signal,
    }).then(
      (answer) => {
        if (answer.status === 200) routes.set(origin.origin, { kind: 'binary', base });
        else fellBack(origin.origin);
      },
      () => fellBack(origin.origin),
    );
  };

  const exchange = async (request: HttpExchangeRequest): Promise<HttpExchangeResponse> => {
    const url = new URL(request.url);
    const base = binaryBaseOf(url.origin);
    if (base !== null) {
      try {
        return await overBinary({ ...request, url: `${base}${url.pathname}${url.search}` });
      } catch (error) {
        if (!(error instanceof BinaryConnectionError)) throw error;
        fellBack(url.origin);
      }
    }
    const response = await overHttp(request);
    if (url.pathname === '/v1/status' && request.method === 'GET' && response.status === 200) {
      learn(url, request, response);
    }
    return response;
  };

  /** By run URL: its origin and path, parsed once rather than once per run. */
  const runTargets = new Map<string, { readonly origin: string; readonly pathname: string }>();
  /**
   * A run in its own frame where the node is reached over binary; null otherwise. Not an
   * async function: nothing here holds the request (its messages) while the run is out.
   */
  const broadcastRun = (request: RunExchangeRequest): Promise<RunExchangeAnswer | null> => {
    let target = runTargets.get(request.url);
    if (target === undefined) {
      const { origin, pathname } = new URL(request.url);
      target = { origin, pathname };
      runTargets.set(request.url, target);
    }
    const { origin } = target;
    const base = binaryBaseOf(origin);
    if (base === null) return Promise.resolve(null);
    return overBinary
      .broadcastRun({ ...request, url: `${base}${target.pathname}` })
      .catch((error: unknown) => {
        if (!(error instanceof BinaryConnectionError)) throw error;
        // As a request: sent again over HTTP at once (as a batch request), which sessions
        // make safe.
        fellBack(origin);
        return null;
      });
  };

  return {
    exchange: Object.assign(exchange, { broadcastRun }),
    async openStream(url, headers, signal, timeoutMs, streamOverHttp) {
      const target = new URL(url);
      const base = binaryBaseOf(target.origin);
      if (base === null) return streamOverHttp();
      try {
        return await overBinary.openStream(
          `${base}${target.pathname}${target.search}`,
          headers,
          signal,
          timeoutMs,
        );
      } catch (error) {
        if (!(error instanceof BinaryConnectionError)) throw error;
        fellBack(target.origin);
        return streamOverHttp();
      }
    },
  };
}
