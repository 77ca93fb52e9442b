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
import { type RunErrorResult, type RunResults, runResultsOf } from '../transport/client-frames.ts';
import type { Environment } from '../util/environment.ts';
import { refusal } from './errors.ts';
import type { HttpExchange, HttpExchangeResponse } from './exchange.ts';
import { classify, fetchFailure, type Outcome, postJson, retryableCode } from './http.ts';

/** What the batcher sends with, all from the client's settings, and where outcomes go. */
export interface BatcherOptions<M extends BatchedBroadcast> {
  readonly exchange: HttpExchange;
  readonly environment: Environment;
  readonly requestTimeoutMs: number;
  /** The client's: closing it aborts every request. */
  readonly signal: AbortSignal;
  /** Where a message's outcome goes, once, unless `delivered` takes it. */
  readonly answered: (message: M, outcome: Outcome<unknown>) => void;
  /**
   * Where a message's place in the order goes when a runAnswer gives it: the result's
   * fields as read from the frame, with no result or outcome object made for it, and the
   * clock as read once for the whole run.
   */
  readonly delivered: (
    message: M,
    position: number | null,
    term: number | null,
    duplicate: boolean,
    nowMs: number,
  ) => void;
}

/** What one broadcast is: its session and seq, its payload as JSON text, its topic. */
export interface QueuedBroadcast {
  readonly endpoint: string;
  readonly sessionId: string;
  readonly seq: number;
  /**
   * The payload's JSON text; or, when `payloadQuoted`, a string with nothing to escape,
   * whose JSON text is itself in quotes. The quotes are written where the text goes (a
   * frame, a request body): a quoted copy of every string payload, held as long as its
   * message is in flight, was a third of what the client allocated per message.
   */
  readonly payload: string;
  readonly payloadQuoted?: boolean;
  /** `payloadQuoted`, and all of it ASCII: one byte per character in a frame. */
  readonly payloadAscii?: boolean;
  readonly topic: string | undefined;
  readonly key?: string | undefined;
  /** The client's session nonce, sent with every message when it has one. */
  readonly nonce?: string;
}

/**
 * A broadcast the batcher holds: the caller's own record, queued as it is (no copy), so
 * its fields must stay as they were sent while `batched` holds.
 */
export interface BatchedBroadcast extends QueuedBroadcast {
  /** Its batched attempt still awaits an outcome; false once cut (then it is left out). */
  readonly batched: boolean;
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

/** The message's payload as JSON text. */
export function payloadText(message: QueuedBroadcast): string {
  return message.payloadQuoted === true ? `"${message.payload}"` : message.payload;
}

/** The UTF-16 length of `payloadText(message)`, without making it. */
function payloadTextLength(message: QueuedBroadcast): number {
  return message.payload.length + (message.payloadQuoted === true ? 2 : 0);
}

export function singleBody(message: QueuedBroadcast): string {
  return `{"payload":${payloadText(message)},"client":${JSON.stringify(message.sessionId)},"seq":${message.seq}${messageFields(message)}${nonceField(message)}}`;
}

export class BroadcastBatcher<M extends BatchedBroadcast> {
  /**
   * Messages of this turn, `queueCount` of them from the front; the array is kept from
   * turn to turn (emptied at each flush) rather than grown anew every turn.
   */
  private queue: (M | undefined)[] = [];
  private queueCount = 0;
  private flushScheduled = false;
  /** The clock as read once this turn (see `nowMsOfTurn`); null before it is read. */
  private turnNowMs: number | null = null;
  /** Endpoints that answered the batch route with 404 or 405: older nodes. */
  private readonly unsupported = new Set<string>();

  constructor(private readonly options: BatcherOptions<M>) {}

  /**
   * Sends one attempt of `message`, in a batch when others go with it; its outcome goes to
   * `answered` (or `delivered`). With 10,000 messages in flight each lives for hundreds of
   * milliseconds: the queue holds the record itself, and no promise or closure per message.
   */
  send(message: M): void {
    if (this.unsupported.has(message.endpoint)) {
      this.sendOne(message).then((outcome) => this.options.answered(message, outcome));
      return;
    }
    this.queue[this.queueCount++] = message;
    this.scheduleFlush();
  }

  /**
   * The clock, read once per turn: every broadcast issued in a turn starts at the same
   * time, the one the flush at its end forgets. Each reading is a call into Node and a
   * heap number, a twentieth of the client's time per message when it read it for each.
   */
  nowMsOfTurn(): number {
    if (this.turnNowMs === null) {
      this.turnNowMs = this.options.environment.nowMs();
      this.scheduleFlush();
    }
    return this.turnNowMs;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // After the current turn: every broadcast issued in it is queued by then.
    this.options.environment.setTimer(0, () => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    this.turnNowMs = null;
    const queued = this.queue;
    const count = this.queueCount;
    const runs = this.runsOf(queued, count);
    // Emptied before the runs go: a message sent meanwhile (a wait that ended) is queued
    // for the next flush.
    queued.fill(undefined, 0, count);
    this.queueCount = 0;
    for (const run of runs) void this.dispatch(run);
  }

  /**
   * The first `count` of `queued` cut into runs of consecutive seqs of one session to one
   * endpoint, leaving out messages cut while they waited: those have had their outcome and
   * go no further.
   */
  private runsOf(queued: readonly (M | undefined)[], count = queued.length): M[][] {
    const runs: M[][] = [];
    for (let start = 0; start < count; ) {
      const first = queued[start] as M;
      if (!first.batched) {
        start += 1;
        continue;
      }
      let last = first;
      let textBytes = payloadTextLength(first);
      let end = start + 1;
      for (; end < count && end - start < batchMessagesMax; end++) {
        const next = queued[end] as M;
        if (
          !next.batched ||
          next.endpoint !== last.endpoint ||
          next.sessionId !== last.sessionId ||
          next.seq !== last.seq + 1 ||
          textBytes + payloadTextLength(next) > batchTextBytesMax
        ) {
          break;
        }
        last = next;
        textBytes += payloadTextLength(next);
      }
      // Made at its size: the run is held until its answer.
      runs.push(queued.slice(start, end) as M[]);
      start = end;
    }
    return runs;
  }

  private answerAll(run: readonly M[], outcome: Outcome<unknown>): void {
    for (const message of run) this.options.answered(message, outcome);
  }

  /** Each message of `run` alone, as a single POST. */
  private sendEach(run: readonly M[]): void {
    for (const message of run) {
      void this.sendOne(message).then((outcome) => this.options.answered(message, outcome));
    }
  }

  private async dispatch(run: readonly M[]): Promise<void> {
    let runs: readonly (readonly M[])[] = [run];
    if (this.options.exchange.broadcastRun !== undefined) {
      if (await this.sendNative(run)) return;
      // The frame's refusal may come long after it was sent, and a session cut meanwhile
      // aims its messages at new seqs: a batch built from the run as it was would file one
      // message under another's (client, seq). Only what is still batched goes, regrouped.
      runs = this.runsOf(run);
    }
    for (const each of runs) {
      if (each.length === 1) this.sendEach(each);
      else await this.sendRun(each);
    }
  }

  /** Sends `run` in a broadcastRun frame; false when it cannot go that way to its endpoint. */
  private async sendNative(run: readonly M[]): Promise<boolean> {
    const first = run[0] as M;
    // Read before the wait: a message cut meanwhile may be aimed elsewhere by its answer.
    const { endpoint } = first;
    const { exchange, requestTimeoutMs, signal } = this.options;
    let answer: Awaited<ReturnType<NonNullable<HttpExchange['broadcastRun']>>>;
    try {
      answer = await exchange.broadcastRun!({
        url: `${endpoint}/v1/broadcast/batch`,
        headers: {},
        clientId: first.sessionId,
        firstSeq: first.seq,
        nonce: first.nonce ?? '',
        // The records themselves: the frame reads each one's payload, topic and key.
        messages: run,
        timeoutMs: requestTimeoutMs,
        signal,
        onResults: (results) => this.deliver(run, endpoint, results),
      });
    } catch (error) {
      this.answerAll(run, fetchFailure(endpoint, error, signal));
      return true;
    }
    if (answer === null) return false;
    if (answer.kind === 'refused') this.refusedWhole(run, endpoint, answer.response);
    else if (answer.kind === 'results') this.deliver(run, endpoint, runResultsOf(answer.results));
    return true;
  }

  /** A runAnswer's results to the messages of its run, in order. */
  private deliver(run: readonly M[], endpoint: string, results: RunResults): void {
    if (results.count !== run.length) {
      // Not one result per message breaks the protocol: those messages go one by one.
      this.sendEach(run);
      return;
    }
    const { answered, delivered, environment } = this.options;
    const nowMs = environment.nowMs();
    for (let at = 0; at < run.length; at++) {
      const message = run[at] as M;
      if (results.ok(at)) {
        delivered(message, results.position(at), results.term(at), results.duplicate(at), nowMs);
      } else answered(message, runErrorOutcome(endpoint, results.error(at)));
    }
  }

  /**
   * A run refused whole: retried as a whole where another node or a later attempt may take
   * it, else sent one by one so that each message gets its own answer (as a batch request's).
   */
  private refusedWhole(run: readonly M[], endpoint: string, response: HttpExchangeResponse): void {
    const outcome =
      response.status >= 200 && response.status < 300 ? null : classify(endpoint, response);
    if (outcome?.kind === 'retry') this.answerAll(run, outcome);
    else this.sendEach(run);
  }

  private sendOne(message: QueuedBroadcast): Promise<Outcome<unknown>> {
    return postJson(this.call(message.endpoint, '/v1/broadcast'), singleBody(message));
  }

  private call(endpoint: string, path: string) {
    const { exchange, requestTimeoutMs, signal } = this.options;
    return { exchange, endpoint, path, timeoutMs: requestTimeoutMs, signal };
  }

  private async sendRun(run: readonly M[]): Promise<void> {
    const first = run[0] as M;
    const { endpoint } = first;
    const messages = run
      .map((message) => `{"payload":${payloadText(message)}${messageFields(message)}}`)
      .join(',');
    const body = `{"client":${JSON.stringify(first.sessionId)},"seq":${first.seq}${nonceField(first)},"messages":[${messages}]}`;
    const outcome = await postJson<{ results?: unknown }>(
      this.call(endpoint, '/v1/broadcast/batch'),
      body,
    );
    if (outcome.kind === 'retry') {
      this.answerAll(run, outcome);
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
      if (status === 404 || status === 405) this.unsupported.add(endpoint);
      if (outcome.kind === 'fatal' && outcome.error.code === 'closed') this.answerAll(run, outcome);
      else this.sendEach(run);
      return;
    }
    for (let at = 0; at < run.length; at++) {
      this.options.answered(run[at] as M, resultOutcome(endpoint, results[at]));
    }
  }
}

/** An error result of a runAnswer frame, as the outcome a single POST would have had. */
function runErrorOutcome(endpoint: string, result: RunErrorResult): Outcome<unknown> {
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
