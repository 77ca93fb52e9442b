/**
 * The clients of a chaos run, each a loop that records every operation in the history:
 *
 * - SDK clients (`connect({ endpoints })`): several broadcasts in flight per client, through
 *   the SDK's sessions, batching, failover and retries;
 * - raw HTTP session clients: one broadcast at a time with `(client, seq)`; after an unknown
 *   outcome (timeout, reset, 503) the same `(client, seq)` is sent again, to any node, so a
 *   retry can never deliver twice; after too many attempts the outcome stays unknown and the
 *   client starts a new session (the old one may be stuck behind the unknown seq);
 * - raw HTTP clients without a session: never retried (a retry would be a new message);
 * - barrier readers: GET /v1/barrier on any node;
 * - subscribers: SDK subscriptions pinned to one node that fail over to the others; they
 *   record what they were handed.
 *
 * Every broadcast carries a unique key in its payload (`{"k": key}`), which is how the checker
 * finds it among what the nodes delivered. Outcomes: `ok` with the answered position, `fail`
 * only when the message certainly took no place (refused as invalid; never sent), `info`
 * otherwise.
 */
import { connect } from '../client/index.ts';
import type { Prng } from '../util/prng.ts';
import { FollowingClient } from './following-client.ts';
import type { HistoryEvent, HistoryRecorder } from './history.ts';
import { errorCode, request } from './http.ts';

export interface WorkloadOptions {
  readonly history: HistoryRecorder;
  /** HTTP base URLs of the nodes clients may use (read on every pick; may grow). */
  readonly endpoints: () => readonly string[];
  readonly random: Prng;
  readonly sdkClientCount: number;
  readonly sdkInFlightPerClient: number;
  readonly httpSessionClientCount: number;
  readonly httpClientCount: number;
  readonly barrierReaderCount: number;
  readonly subscriberCount: number;
  /** Each loop waits up to this long between operations, to leave the CPUs to the nodes. */
  readonly thinkMsMax: number;
  /** Per-attempt deadline of raw HTTP requests (above the nodes' request timeout). */
  readonly attemptTimeoutMs: number;
  /** Raw HTTP session clients give up on one seq after this many attempts. */
  readonly sessionAttemptsMax: number;
}

type Completion = 'ok' | 'fail' | 'info';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Workload {
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private readonly subscriptions: AbortController[] = [];
  private readonly subscriptionsDone: Promise<void>[] = [];
  private keyCounter = 0;

  constructor(private readonly options: WorkloadOptions) {}

  start(): void {
    const { options } = this;
    for (let at = 0; at < options.sdkClientCount; at++) this.startSdkClient(`sdk-${at + 1}`);
    for (let at = 0; at < options.httpSessionClientCount; at++) {
      this.loops.push(this.httpSessionLoop(`http-session-${at + 1}`, options.random.fork()));
    }
    for (let at = 0; at < options.httpClientCount; at++) {
      this.loops.push(this.httpLoop(`http-${at + 1}`, options.random.fork()));
    }
    for (let at = 0; at < options.barrierReaderCount; at++) {
      this.loops.push(this.barrierLoop(`barrier-${at + 1}`, options.random.fork()));
    }
    for (let at = 0; at < options.subscriberCount; at++) this.startSubscriber(`sub-${at + 1}`, at);
  }

  /** Stops issuing; resolves when every operation in flight has completed. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  /** Ends the subscriptions (after the final reads, so they see everything). */
  async stopSubscribers(): Promise<void> {
    for (const controller of this.subscriptions) controller.abort();
    await Promise.all(this.subscriptionsDone);
  }

  private nextKey(process: string): string {
    return `${process}:${++this.keyCounter}`;
  }

  private pick(random: Prng): string {
    return random.pick(this.options.endpoints());
  }

  private record(event: Omit<HistoryEvent, 'timeMs'>): void {
    this.options.history.record(event);
  }

  private invokeBroadcast(
    process: string,
    key: string,
    via: 'sdk' | 'http-session' | 'http',
    client: string | null,
    seq: number | null,
    node: string | null,
  ): number {
    const opId = this.options.history.opId();
    this.record({
      process,
      opId,
      type: 'invoke',
      f: 'broadcast',
      value: { key, via, client, seq, node },
    });
    return opId;
  }

  private completeBroadcast(
    process: string,
    opId: number,
    type: Completion,
    value: { position: number; duplicate: boolean } | { error: string },
  ): void {
    this.record({ process, opId, type, f: 'broadcast', value });
  }

  private startSdkClient(process: string): void {
    const client = new FollowingClient(this.options.endpoints, {
      requestTimeoutMs: this.options.attemptTimeoutMs,
      unavailableAfterMs: 15_000,
      abandonAfterMs: 30_000,
    });
    const random = this.options.random.fork();
    const lanes: Promise<void>[] = [];
    for (let lane = 0; lane < this.options.sdkInFlightPerClient; lane++) {
      lanes.push(this.sdkLane(process, client, random.fork()));
    }
    // The client closes once its lanes are done, so no background retry outlives the run.
    this.loops.push(Promise.all(lanes).then(() => client.close()));
  }

  private async sdkLane(process: string, client: FollowingClient, random: Prng): Promise<void> {
    while (!this.stopped) {
      // Each generation is its own SDK client, whose order of issue is its own: the history
      // names it as its own process.
      const generation = client.acquire();
      const clientProcess = `${process}.${generation.number}`;
      const key = this.nextKey(process);
      const opId = this.invokeBroadcast(clientProcess, key, 'sdk', null, null, null);
      try {
        const answer = await generation.client.broadcast({ k: key });
        if (answer.position === null)
          this.completeBroadcast(clientProcess, opId, 'info', { error: 'no_index' });
        else
          this.completeBroadcast(clientProcess, opId, 'ok', {
            position: answer.position,
            duplicate: answer.duplicate,
          });
      } catch (error) {
        const code = (error as { code?: string }).code ?? 'error';
        const sent = (error as { details?: { sent?: unknown } }).details?.sent;
        const definite =
          code === 'invalid_argument' ||
          code === 'payload_too_large' ||
          (code === 'unavailable' && sent === false);
        this.completeBroadcast(clientProcess, opId, definite ? 'fail' : 'info', { error: code });
      } finally {
        client.release(generation);
      }
      await sleep(random.below(this.options.thinkMsMax + 1));
    }
  }

  private async httpSessionLoop(process: string, random: Prng): Promise<void> {
    let sessionNumber = 1;
    let seq = 1;
    while (!this.stopped) {
      const client = `${process}.${sessionNumber}`;
      const key = this.nextKey(process);
      const opId = this.invokeBroadcast(process, key, 'http-session', client, seq, null);
      const outcome = await this.sendInSession(client, seq, key, random);
      this.completeBroadcast(process, opId, outcome.type, outcome.value);
      if (outcome.type === 'ok') seq++;
      else {
        // The session may be stuck behind a seq whose fate is unknown: start a new one.
        sessionNumber++;
        seq = 1;
      }
      await sleep(random.below(this.options.thinkMsMax + 1));
    }
  }

  private async sendInSession(
    client: string,
    seq: number,
    key: string,
    random: Prng,
  ): Promise<{
    type: Completion;
    value: { position: number; duplicate: boolean } | { error: string };
  }> {
    let lastError = 'none';
    for (let attempt = 1; attempt <= this.options.sessionAttemptsMax; attempt++) {
      try {
        const { status, body } = await request(
          `${this.pick(random)}/v1/broadcast`,
          { method: 'POST', body: { payload: { k: key }, client, seq } },
          this.options.attemptTimeoutMs,
        );
        if (status === 200 && typeof body.index === 'number') {
          return {
            type: 'ok',
            value: { position: body.index, duplicate: body.duplicate === true },
          };
        }
        lastError = String(body.error ?? status);
        if (status === 400 || status === 413) return { type: 'fail', value: { error: lastError } };
        if (status === 409) return { type: 'info', value: { error: lastError } };
      } catch (error) {
        lastError = errorCode(error);
      }
      await sleep(100 * attempt + random.below(200));
    }
    return { type: 'info', value: { error: lastError } };
  }

  private async httpLoop(process: string, random: Prng): Promise<void> {
    while (!this.stopped) {
      const key = this.nextKey(process);
      const endpoint = this.pick(random);
      const opId = this.invokeBroadcast(process, key, 'http', null, null, endpoint);
      try {
        const { status, body } = await request(
          `${endpoint}/v1/broadcast`,
          { method: 'POST', body: { payload: { k: key } } },
          this.options.attemptTimeoutMs,
        );
        if (status === 200 && typeof body.index === 'number') {
          this.completeBroadcast(process, opId, 'ok', {
            position: body.index,
            duplicate: body.duplicate === true,
          });
        } else {
          const definite = status === 400 || status === 413;
          this.completeBroadcast(process, opId, definite ? 'fail' : 'info', {
            error: String(body.error ?? status),
          });
        }
      } catch (error) {
        const code = errorCode(error);
        // A refused connection carried nothing: the message certainly took no place.
        this.completeBroadcast(process, opId, code === 'ECONNREFUSED' ? 'fail' : 'info', {
          error: code,
        });
      }
      await sleep(random.below(this.options.thinkMsMax + 1));
    }
  }

  private async barrierLoop(process: string, random: Prng): Promise<void> {
    while (!this.stopped) {
      const endpoint = this.pick(random);
      const opId = this.options.history.opId();
      this.record({ process, opId, type: 'invoke', f: 'barrier', value: { node: endpoint } });
      try {
        const { status, body } = await request(
          `${endpoint}/v1/barrier`,
          { method: 'GET' },
          this.options.attemptTimeoutMs,
        );
        if (status === 200 && typeof body.index === 'number') {
          this.record({
            process,
            opId,
            type: 'ok',
            f: 'barrier',
            value: { position: body.index, node: endpoint },
          });
        } else {
          this.record({
            process,
            opId,
            type: 'fail',
            f: 'barrier',
            value: { error: String(body.error ?? status) },
          });
        }
      } catch (error) {
        this.record({
          process,
          opId,
          type: 'fail',
          f: 'barrier',
          value: { error: errorCode(error) },
        });
      }
      await sleep(50 + random.below(this.options.thinkMsMax * 4 + 1));
    }
  }

  /**
   * A subscription pinned to one member that fails over to the others (the SDK's own
   * failover). When the members change it resubscribes through a client that knows the new
   * ones, from the position after the last one it was handed.
   */
  private startSubscriber(process: string, index: number): void {
    const controller = new AbortController();
    this.subscriptions.push(controller);
    const pending: [number, string | null][] = [];
    const flush = () => {
      if (pending.length === 0) return;
      this.record({
        process,
        opId: this.options.history.opId(),
        type: 'ok',
        f: 'observe',
        value: { observed: pending.splice(0) },
      });
    };
    const timer = setInterval(flush, 500);
    const run = async () => {
      let last = 0;
      while (!controller.signal.aborted) {
        const next = await this.subscribeOnce(process, index, last, controller.signal, pending);
        if (next === null) break;
        last = next;
      }
      clearInterval(timer);
      flush();
    };
    this.subscriptionsDone.push(run());
  }

  /**
   * One subscription from `last + 1` through the members of the moment, until they change
   * (resolves with the last position handed) or it fails (null, recorded).
   */
  private async subscribeOnce(
    process: string,
    index: number,
    last: number,
    stop: AbortSignal,
    pending: [number, string | null][],
  ): Promise<number | null> {
    const endpoints = this.options.endpoints();
    if (endpoints.length === 0) {
      await sleep(1_000);
      return last;
    }
    const local = new AbortController();
    const onStop = () => local.abort();
    stop.addEventListener('abort', onStop);
    const watcher = setInterval(() => {
      if (this.options.endpoints().join(',') !== endpoints.join(',')) local.abort();
    }, 1_000);
    const client = connect({ endpoints, unavailableAfterMs: 3_600_000 });
    try {
      const subscription = client.subscribe({
        from: last + 1,
        signal: local.signal,
        endpoint: endpoints[index % endpoints.length] as string,
      });
      for await (const message of subscription) {
        const payload = message.payload as { k?: unknown } | null;
        pending.push([message.position, typeof payload?.k === 'string' ? payload.k : null]);
        last = message.position;
      }
      return last;
    } catch (error) {
      this.options.history.fault(
        'subscription-ended',
        'outcome',
        [],
        `${process}: ${String(error)}`,
      );
      return null;
    } finally {
      clearInterval(watcher);
      stop.removeEventListener('abort', onStop);
      client.close();
    }
  }
}
