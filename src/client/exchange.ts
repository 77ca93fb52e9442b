/**
 * The SDK's one way to the nodes for every call that is not a stream: a request and its
 * whole answer. Production uses node:http (./node-exchange.ts); the simulator hands the
 * request to the route handlers of a simulated node over its simulated network, so the same
 * client code runs in both, and one seed replays the same run.
 */
import type { BroadcastRunSource, RunResult, RunResults } from '../transport/client-frames.ts';

export interface HttpExchangeRequest {
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** Absolute: the endpoint, the path and the query. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | null;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
}

/** A streamed answer: its status and headers, and the body as it arrives. */
export interface StreamAnswer {
  readonly status: number;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: ReadableStream<Uint8Array>;
}

export interface HttpExchangeResponse {
  readonly status: number;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/**
 * One request and its whole answer; rejects when no answer arrives (refused, reset,
 * timed out after timeoutMs, or aborted by signal). An exchange that may reach nodes over
 * the binary protocol also carries runs of broadcasts in its own frame (`broadcastRun`).
 */
export type HttpExchange = ((request: HttpExchangeRequest) => Promise<HttpExchangeResponse>) & {
  /**
   * Sends a run of one session's broadcasts as one broadcastRun frame (docs/protocol.md).
   * Resolves null when it cannot go that way to this endpoint (HTTP, a node that does not
   * know the frame, a binary connection that failed): send POST /v1/broadcast/batch then.
   * Rejects, as a request does, when no answer arrives.
   */
  readonly broadcastRun?: (request: RunExchangeRequest) => Promise<RunExchangeAnswer | null>;
  /**
   * Opens a stream (GET /v1/stream: answer read as it arrives) the exchange's own way; a
   * given exchange without it leaves streams to node:http and the binary port. The
   * simulator's exchanges carry it, so that a subscription runs on simulated connections.
   */
  readonly openStream?: (
    url: string,
    headers: Readonly<Record<string, string>>,
    signal: AbortSignal,
    timeoutMs: number,
  ) => Promise<StreamAnswer>;
};

/** A run for `HttpExchange.broadcastRun`: the frame's fields (each payload its JSON text). */
export interface RunExchangeRequest
  extends Pick<BroadcastRunSource, 'clientId' | 'firstSeq' | 'nonce' | 'messages'> {
  /** The endpoint and the batch route the run stands for: `<endpoint>/v1/broadcast/batch`. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  /**
   * Takes the runAnswer's results as the exchange reads them (then it answers `taken`), so
   * that they go straight to the broadcasts that wait on them; valid during the call only.
   * An exchange may instead answer them as `results`.
   */
  readonly onResults: (results: RunResults) => void;
}

/**
 * A run's answer: a result per message (handed to `onResults` already: `taken`), or the
 * answer that refused the run whole.
 */
export type RunExchangeAnswer =
  | { readonly kind: 'results'; readonly results: readonly RunResult[] }
  | { readonly kind: 'taken' }
  | { readonly kind: 'refused'; readonly response: HttpExchangeResponse };
