/**
 * Plain JSON requests to the cluster with the SDK client's failover: the endpoint that last
 * answered (or the leader it found) first, the next one on a refused connection, a timeout
 * or a 503, its backoff between rounds, and `unavailable` once the call's bound has passed.
 * The MCP server reads pages (`GET /v1/messages`, `/v1/status`) and sends keyed broadcasts
 * (./keyed-broadcast.ts) through it; everything else goes through the SDK's own calls.
 */

import { getJson, type Outcome, pause, postJson } from '../client/http.ts';
import type { Client } from '../client/index.ts';
import { ClientError } from '../client/index.ts';

export interface ClusterCall {
  readonly method: 'GET' | 'POST';
  /** Path and query, e.g. `/v1/messages?from=1`. */
  readonly path: string;
  /** The JSON text of a POST body. */
  readonly body?: string;
  /** The call fails `unavailable` once it has been retried for this long. */
  readonly boundMs: number;
  readonly signal?: AbortSignal;
}

/** The answer of the first endpoint that answers 2xx; a refusal no node would answer
 * differently is thrown at once (ClientError with the node's code). */
export async function callCluster<T>(client: Client, call: ClusterCall): Promise<T> {
  const { settings } = client;
  const startedMs = settings.environment.nowMs();
  const signals = call.signal === undefined ? [client.signal] : [client.signal, call.signal];
  let lastReason = 'no attempt';
  for (let attempt = 0; ; attempt++) {
    if (signals.some((signal) => signal.aborted)) {
      throw new ClientError('closed', 'the call was cancelled', {});
    }
    const leftMs = startedMs + call.boundMs - settings.environment.nowMs();
    if (leftMs <= 0) {
      throw new ClientError(
        'unavailable',
        `no node answered within ${call.boundMs} ms (${lastReason})`,
        { lastReason, sent: attempt > 0 },
      );
    }
    const endpoint = client.endpointAt(attempt);
    const request = {
      exchange: settings.exchange,
      endpoint,
      path: call.path,
      timeoutMs: Math.min(settings.requestTimeoutMs, leftMs),
      signal: signals,
    };
    const outcome: Outcome<T> =
      call.method === 'GET'
        ? await getJson<T>(request)
        : await postJson<T>(request, call.body ?? 'null');
    if (outcome.kind === 'ok') {
      client.worked(endpoint);
      return outcome.value;
    }
    if (outcome.kind === 'fatal') throw outcome.error;
    lastReason = outcome.reason;
    client.findLeader();
    const delayMs = Math.min(client.delayMs(attempt, outcome.retryAfterMs), leftMs);
    await pause(settings.environment, delayMs, signals);
  }
}
