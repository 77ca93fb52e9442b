/**
 * The SDK's one way to the nodes for every call that is not a stream: a request and its
 * whole answer. Production uses node:http (./node-exchange.ts); the simulator hands the
 * request to the route handlers of a simulated node over its simulated network, so the same
 * client code runs in both, and one seed replays the same run.
 */

export interface HttpExchangeRequest {
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** Absolute: the endpoint, the path and the query. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | null;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
}

export interface HttpExchangeResponse {
  readonly status: number;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** One request and its whole answer; rejects when no answer arrives (refused, reset,
 *  timed out after timeoutMs, or aborted by signal). */
export type HttpExchange = (request: HttpExchangeRequest) => Promise<HttpExchangeResponse>;
