/**
 * Coalesces the first attempts of broadcasts issued in the same turn of the event loop into
 * POST /v1/broadcast/batch requests: one request per run of consecutive seqs of one session
 * to one endpoint, answered with one result per message. Each message keeps its own
 * outcome, so the client's retry loop goes on exactly as for a single POST (a retry resends
 * that `(client, seq)` alone). A node that does not know the batch route, or refuses the
 * batch as a whole, gets the same messages one by one at once.
 */
import type { Environment } from '../util/environment.ts';
import { refusal } from './errors.ts';
import type { HttpExchange } from './exchange.ts';
import { type Outcome, postJson, retryableCode } from './http.ts';

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
      if (run.length === 1) void this.sendOne(run[0]!).then(run[0]!.resolve);
      else void this.sendRun(run);
    }
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
