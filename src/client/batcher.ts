/**
 * Coalesces the first attempts of broadcasts issued in the same turn of the event loop into
 * POST /v1/broadcast/batch requests: one request per run of consecutive seqs of one session
 * to one endpoint, answered with one result per message. Each message keeps its own
 * outcome, so the client's retry loop goes on exactly as for a single POST (a retry resends
 * that `(client, seq)` alone). A node that does not know the batch route, or refuses the
 * batch as a whole, gets the same messages one by one at once.
 *
 * To a node reached over the binary protocol a run (a single message too) goes in the
 * protocol's broadcastRun frame instead: the payloads' JSON text written straight into the
 * frame, a compact result per message back, no JSON around either. Where that frame cannot
 * go (HTTP, an older node), the exchange says so and the run goes as the batch request.
 */
import type { RunResult } from '../transport/client-frames.ts';
import type { Environment } from '../util/environment.ts';
import { refusal } from './errors.ts';
import type { HttpExchange, HttpExchangeResponse } from './exchange.ts';
import { classify, fetchFailure, type Outcome, postJson, retryableCode } from './http.ts';

/** What the batcher sends with, all from the client's settings. */
export interface BatcherOptions {
  readonly exchange: HttpExchange;
  readonly environment: Environment;
  readonly requestTimeoutMs: number;
  /** The client's: closing it aborts every request. */
  readonly signal: AbortSignal;
}

/** What one broadcast is: its session and seq, its payload as JSON text, its topic. */
export interface QueuedBroadcast {
  readonly endpoint: string;
  readonly sessionId: string;
  readonly seq: number;
  readonly text: string;
  readonly topic: string | undefined;
  readonly key?: string | undefined;
  /** The client's session nonce, sent with every message when it has one. */
  readonly nonce?: string;
}

interface Waiting extends QueuedBroadcast {
  readonly resolve: (outcome: Outcome<unknown>) => void;
}

/** The server takes at most 1,000 messages and 4 MiB; stay well inside both. */
const batchMessagesMax = 1_000;
const batchTextBytesMax = 1 << 20;

function nonceField(message: QueuedBroadcast): string {
  return message.nonce === undefined ? '' : `,"nonce":${JSON.stringify(message.nonce)}`;
}

/** The message's own optional fields, each with its leading comma. */
function messageFields(message: QueuedBroadcast): string {
  const topic = message.topic === undefined ? '' : `,"topic":${JSON.stringify(message.topic)}`;
  const key = message.key === undefined ? '' : `,"key":${JSON.stringify(message.key)}`;
  return topic + key;
}

export function singleBody(message: QueuedBroadcast): string {
  return `{"payload":${message.text},"client":${JSON.stringify(message.sessionId)},"seq":${message.seq}${messageFields(message)}${nonceField(message)}}`;
}

export class BroadcastBatcher {
  private queue: Waiting[] = [];
  private flushScheduled = false;
  /** Endpoints that answered the batch route with 404 or 405: older nodes. */
  private readonly unsupported = new Set<string>();

  constructor(private readonly options: BatcherOptions) {}

  /** The outcome of one attempt of `message`, sent in a batch when others go with it. */
  send(message: QueuedBroadcast): Promise<Outcome<unknown>> {
    if (this.unsupported.has(message.endpoint)) return this.sendOne(message);
    return new Promise((resolve) => {
      this.queue.push({ ...message, resolve });
      if (this.flushScheduled) return;
      this.flushScheduled = true;
      // After the current turn: every broadcast issued in it is queued by then.
      this.options.environment.setTimer(0, () => this.flush());
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const queued = this.queue;
    this.queue = [];
    for (let start = 0; start < queued.length; ) {
      const run = [queued[start] as Waiting];
      let textBytes = run[0]!.text.length;
      for (let at = start + 1; at < queued.length && run.length < batchMessagesMax; at++) {
        const next = queued[at] as Waiting;
        const last = run[run.length - 1] as Waiting;
        if (
          next.endpoint !== last.endpoint ||
          next.sessionId !== last.sessionId ||
          next.seq !== last.seq + 1 ||
          textBytes + next.text.length > batchTextBytesMax
        ) {
          break;
        }
        run.push(next);
        textBytes += next.text.length;
      }
      start += run.length;
      void this.dispatch(run);
    }
  }

  private async dispatch(run: readonly Waiting[]): Promise<void> {
    if (this.options.exchange.broadcastRun !== undefined && (await this.sendNative(run))) return;
    if (run.length === 1) this.sendOne(run[0]!).then(run[0]!.resolve);
    else await this.sendRun(run);
  }

  /** Sends `run` in a broadcastRun frame; false when it cannot go that way to its endpoint. */
  private async sendNative(run: readonly Waiting[]): Promise<boolean> {
    const first = run[0] as Waiting;
    const { exchange, requestTimeoutMs, signal } = this.options;
    let answer: Awaited<ReturnType<NonNullable<HttpExchange['broadcastRun']>>>;
    try {
      answer = await exchange.broadcastRun!({
        url: `${first.endpoint}/v1/broadcast/batch`,
        headers: {},
        clientId: first.sessionId,
        firstSeq: first.seq,
        nonce: first.nonce ?? '',
        messages: run.map((message) => ({
          payload: message.text,
          topic: message.topic ?? '',
          key: message.key ?? '',
        })),
        timeoutMs: requestTimeoutMs,
        signal,
      });
    } catch (error) {
      const outcome = fetchFailure(first.endpoint, error, signal);
      for (const message of run) message.resolve(outcome);
      return true;
    }
    if (answer === null) return false;
    if (answer.kind === 'refused') this.refusedWhole(run, answer.response);
    else if (answer.results.length !== run.length) {
      // Not one result per message breaks the protocol: those messages go one by one.
      for (const message of run) void this.sendOne(message).then(message.resolve);
    } else {
      run.forEach((message, at) => {
        message.resolve(runResultOutcome(first.endpoint, answer.results[at] as RunResult));
      });
    }
    return true;
  }

  /**
   * A run refused whole: retried as a whole where another node or a later attempt may take
   * it, else sent one by one so that each message gets its own answer (as a batch request's).
   */
  private refusedWhole(run: readonly Waiting[], response: HttpExchangeResponse): void {
    const endpoint = (run[0] as Waiting).endpoint;
    const outcome =
      response.status >= 200 && response.status < 300 ? null : classify(endpoint, response);
    if (outcome?.kind === 'retry') {
      for (const message of run) message.resolve(outcome);
      return;
    }
    for (const message of run) void this.sendOne(message).then(message.resolve);
  }

  private sendOne(message: QueuedBroadcast): Promise<Outcome<unknown>> {
    return postJson(this.call(message.endpoint, '/v1/broadcast'), singleBody(message));
  }

  private call(endpoint: string, path: string) {
    const { exchange, requestTimeoutMs, signal } = this.options;
    return { exchange, endpoint, path, timeoutMs: requestTimeoutMs, signal };
  }

  private async sendRun(run: readonly Waiting[]): Promise<void> {
    const first = run[0] as Waiting;
    const messages = run
      .map((message) => `{"payload":${message.text}${messageFields(message)}}`)
      .join(',');
    const body = `{"client":${JSON.stringify(first.sessionId)},"seq":${first.seq}${nonceField(first)},"messages":[${messages}]}`;
    const outcome = await postJson<{ results?: unknown }>(
      this.call(first.endpoint, '/v1/broadcast/batch'),
      body,
    );
    if (outcome.kind === 'retry') {
      for (const message of run) message.resolve(outcome);
      return;
    }
    // Not an object (`null`, say) breaks the API: those messages go one by one, as below.
    const answer: unknown = outcome.kind === 'ok' ? outcome.value : null;
    const results =
      typeof answer === 'object' && answer !== null
        ? (answer as { results?: unknown }).results
        : null;
    if (!Array.isArray(results) || results.length !== run.length) {
      // An older node (404/405), or a batch refused as a whole (too large): one by one.
      const status = outcome.kind === 'fatal' ? outcome.error.details.status : null;
      if (status === 404 || status === 405) this.unsupported.add(first.endpoint);
      if (outcome.kind === 'fatal' && outcome.error.code === 'closed') {
        for (const message of run) message.resolve(outcome);
        return;
      }
      for (const message of run) void this.sendOne(message).then(message.resolve);
      return;
    }
    run.forEach((message, at) => {
      message.resolve(resultOutcome(first.endpoint, results[at]));
    });
  }
}

/** A result of a runAnswer frame, as the outcome a single POST would have had. */
function runResultOutcome(endpoint: string, result: RunResult): Outcome<unknown> {
  if (result.kind === 'ok') {
    return {
      kind: 'ok',
      value: { index: result.position, term: result.term, duplicate: result.duplicate },
    };
  }
  let details: unknown = null;
  try {
    details = result.details === '' ? null : JSON.parse(result.details);
  } catch {
    // not JSON: the error's code, status and message are still there
  }
  return resultOutcome(endpoint, {
    ...(typeof details === 'object' && details !== null ? details : {}),
    error: result.code,
    message: result.message,
    status: result.status,
  });
}

/** One message's result in a batch answer, as the outcome a single POST would have had. */
function resultOutcome(endpoint: string, result: unknown): Outcome<unknown> {
  const fields = (typeof result === 'object' && result !== null ? result : {}) as Record<
    string,
    unknown
  >;
  if (typeof fields.error !== 'string') return { kind: 'ok', value: result };
  const status = typeof fields.status === 'number' ? fields.status : 0;
  if (status >= 500 || retryableCode(fields.error)) {
    return { kind: 'retry', reason: `${endpoint} ${status} ${fields.error}`, retryAfterMs: null };
  }
  return {
    kind: 'fatal',
    error: refusal(fields.error, { ...fields, endpoint }),
  };
}
