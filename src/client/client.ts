/**
 * The client: broadcasts with exactly-once retries across endpoints, and subscriptions
 * that fail over (./subscribe.ts). Every broadcast carries this client's session id and the
 * next `seq`; a retry — after a timeout, a refused connection or a 503, on any endpoint —
 * resends the same `(client, seq)`, which the cluster delivers at most once and answers
 * with the original position. Broadcasts issued concurrently are sent concurrently: the node
 * holds a later `seq` back until the earlier ones arrive, so order of issue is kept.
 */
import { setMaxListeners } from 'node:events';
import { assert } from '../util/assert.ts';
import { BroadcastBatcher, singleBody } from './batcher.ts';
import { ClientError } from './errors.ts';
import { backoffMs, getJson, type Outcome, onAnyAbort, pause, postJson } from './http.ts';
import { PendingBroadcast } from './pending-broadcast.ts';
import {
  type AfterAttempt,
  type AttemptResult,
  type ChainEffect,
  type ChainFailure,
  type ChainResult,
  type NextStep,
  SessionChain,
} from './session-chain.ts';
import {
  type BroadcastAnswer,
  type BroadcastOptions,
  type ConnectOptions,
  type Settings,
  settingsOf,
} from './settings.ts';
import { type SubscribeOptions, type Subscription, subscribe } from './subscribe.ts';
import { checkTopic } from './topics.ts';

/** Retry-After is honoured up to this long; a node asking for more is tried again sooner. */
const retryAfterMsMax = 2_000;
const keyBytesMax = 255;

/** C0 and C1 control characters and DEL, which the nodes refuse in a key. */
function hasControlCharacter(text: string): boolean {
  for (let at = 0; at < text.length; at++) {
    const code = text.charCodeAt(at);
    if (code <= 0x1f || (code >= 0x7f && code <= 0x9f)) return true;
  }
  return false;
}

/**
 * A session's breaker: its signal aborts when the chain cuts the session. Retries and
 * backoffs listen on it; batched first attempts do not (the client ends their wait itself,
 * see Client.cutBatched), so it holds no listener per message in flight.
 */
class SessionBreaker extends AbortController {
  constructor() {
    super();
    // Retries and backoffs listen on it: bounded by inFlightMax.
    setMaxListeners(0, this.signal);
  }
}

/** How often the client may look for the leader, and how long one look may take. */
const leaderSearchIntervalMs = 1_000;
const leaderSearchTimeoutMs = 1_000;
/** While all goes well, the client checks who leads this often. */
const leaderRefreshMs = 2_000;

export class Client {
  readonly settings: Settings;
  private readonly baseId: string;
  /** Which (session, seq) each broadcast goes out as: the exactly-once rules. */
  private readonly chain: SessionChain<PendingBroadcast>;
  /** Per session: the signal its attempts listen on (see perform's `cut`). */
  private readonly breakers = new Map<string, SessionBreaker>();
  /** Per session: broadcasts waiting for it to change (a `wait` step). */
  private readonly changeWaiters = new Map<string, (() => void)[]>();
  /** Index into endpoints of the one that last answered; tried first. */
  private preferred = 0;
  private readonly closer = new AbortController();
  private inFlightCount = 0;
  private readonly waiting: (() => void)[] = [];
  private leaderSearch: Promise<void> | null = null;
  /** Index into endpoints of the node that said it leads, until a call to it fails. */
  private leaderAt: number | null = null;
  private lastLeaderSearchMs = 0;
  private readonly batcher: BroadcastBatcher<PendingBroadcast>;
  /** This client's session nonce, when its client id was given (not random). */
  private readonly nonce: string | undefined;

  constructor(options: ConnectOptions) {
    this.settings = settingsOf(options);
    this.baseId = options.clientId ?? `sdk.${this.settings.environment.randomHex(8)}`;
    // A client id the caller picked may be picked by another client too: a random nonce in
    // every message tells the two apart (the second is refused, session_conflict, instead of
    // answered duplicate). A default id is random already and needs none.
    this.nonce =
      options.clientId === undefined ? undefined : this.settings.environment.randomHex(16);
    if (
      typeof this.baseId !== 'string' ||
      Buffer.byteLength(this.baseId) < 1 ||
      Buffer.byteLength(this.baseId) > 240
    ) {
      throw new ClientError('invalid_argument', 'clientId takes a string of 1–240 bytes', {
        field: 'clientId',
      });
    }
    this.chain = new SessionChain<PendingBroadcast>({
      baseId: this.baseId,
      unavailableAfterMs: this.settings.unavailableAfterMs,
      abandonAfterMs: this.settings.abandonAfterMs,
      unsafe: this.settings.unsafe,
    });
    this.batcher = new BroadcastBatcher({
      exchange: this.settings.exchange,
      environment: this.settings.environment,
      requestTimeoutMs: this.settings.requestTimeoutMs,
      signal: this.closer.signal,
      answered: (pending, outcome) => this.batchedAnswered(pending, outcome),
      delivered: (pending, position, term, duplicate, nowMs) =>
        this.batchDelivered(pending, position, term, duplicate, nowMs),
    });
    // Each broadcast and subscription listens on this signal while in flight; inFlightMax
    // bounds the broadcasts, so the listener count is bounded, not a leak.
    setMaxListeners(0, this.closer.signal);
    this.findLeader();
  }

  /**
   * Asks every endpoint who it is and prefers the leader, so broadcasts skip the follower's
   * forward hop. At most once a second; any node still accepts a broadcast if this is wrong.
   */
  findLeader(): void {
    const now = this.nowMs();
    if (this.leaderSearch !== null || now - this.lastLeaderSearchMs < leaderSearchIntervalMs)
      return;
    this.lastLeaderSearchMs = now;
    this.leaderSearch = this.searchLeader().finally(() => {
      this.leaderSearch = null;
    });
  }

  private async searchLeader(): Promise<void> {
    const search = new AbortController();
    const detach = onAnyAbort(this.closer.signal, () => search.abort());
    const { signal } = search;
    const roles = await Promise.all(
      this.settings.endpoints.map(async (endpoint) => {
        const outcome = await getJson<{ role?: unknown } | null>({
          exchange: this.settings.exchange,
          endpoint,
          path: '/v1/status',
          timeoutMs: leaderSearchTimeoutMs,
          signal,
        });
        return outcome.kind === 'ok' ? (outcome.value?.role ?? null) : null;
      }),
    ).finally(detach);
    const leader = roles.indexOf('leader');
    if (!this.closer.signal.aborted) this.leaderAt = leader >= 0 ? leader : null;
  }

  /**
   * The session id the client started with; after a refused seq it continues in
   * `<baseClientId>~2`, `~3`, … (see broadcast). Every session it ever uses starts so.
   */
  get baseClientId(): string {
    return this.baseId;
  }

  /** The session id the next broadcast is sent in. */
  get clientId(): string {
    return this.chain.currentSessionId;
  }

  get signal(): AbortSignal {
    return this.closer.signal;
  }

  /**
   * Puts `payload` (any JSON value) into the total order, exactly once. Fails with
   * `unavailable` once no node answered for `unavailableAfterMs`; a message that was sent by
   * then is still sent again in the background until a node answers or the client closes,
   * so it may yet be delivered, once, and always before this client's later broadcasts.
   */
  broadcast(payload: unknown, options: BroadcastOptions = noOptions): Promise<BroadcastAnswer> {
    let pending: PendingBroadcast;
    try {
      // A string with nothing to escape is kept as it is (see QueuedBroadcast.payload).
      const ascii = asciiAsItIs(payload);
      const quoted = ascii || quotesAsItIs(payload);
      const text = quoted ? payload : payloadText(payload);
      checkOptions(options);
      checkTopic(options.topic);
      this.checkKey(options.key);
      this.throwIfClosed();
      pending = new PendingBroadcast(text, quoted, ascii, options.topic, options.key, this.nonce);
    } catch (error) {
      return Promise.reject(error);
    }
    const answer = pending.answerPromise();
    // The slot stays taken until the message is answered, also after its caller was told
    // `unavailable`: that bounds the messages still being sent to inFlightMax.
    if (this.takeSlot()) this.start(pending);
    else {
      this.acquire().then(
        () => this.start(pending),
        (error: unknown) => pending.fail(error),
      );
    }
    return answer;
  }

  /**
   * A linearizable read point (GET /v1/barrier, ReadIndex): a position n such that every
   * message acknowledged anywhere before this call is at or below n. It promises nothing
   * else — other messages may sit at or below n too, and n is not where any subscription
   * is. To read linearizably, wait until your own subscription (on any node) has passed n:
   * yielded it, or yielded something beyond it, or reported it through `onProgress`. Retried
   * across endpoints like broadcasts (a 503 or a connection failure goes to the next one);
   * fails with `unavailable` after `unavailableAfterMs`.
   */
  async barrier(): Promise<number> {
    const answer = await this.retried<{ index?: unknown }>('the barrier', '/v1/barrier', null);
    return barrierPositionOf(answer);
  }

  /**
   * Records that durable consumer `name` processed everything up to `position`
   * (POST /v1/consumers/:name/ack, committed through the log); resolves with the cursor the
   * log holds then, which never moves back. Retried across endpoints like a barrier.
   */
  async ackConsumer(name: string, position: number): Promise<number> {
    if (typeof name !== 'string' || name === '') {
      throw new ClientError('invalid_argument', 'a consumer name is a non-empty string', {
        field: 'name',
      });
    }
    // NaN would go as null, -1 as itself: refused here, where the caller is.
    if (!Number.isSafeInteger(position) || position < 0) {
      throw new ClientError('invalid_argument', `position takes an integer >= 0, got ${position}`, {
        field: 'position',
      });
    }
    const path = `/v1/consumers/${encodeURIComponent(name)}/ack`;
    const answer = await this.retried<{ index?: unknown }>(
      'the ack',
      path,
      JSON.stringify({ index: position }),
    );
    return barrierPositionOf(answer);
  }

  /**
   * A consumer group member's acks, per slot (POST /v1/consumers/:name/ack); fails with
   * `not_owner` (details.slots) for slots the member no longer owns.
   */
  async ackGroup(
    name: string,
    member: string,
    slots: Readonly<Record<string, number>>,
  ): Promise<void> {
    const path = `/v1/consumers/${encodeURIComponent(name)}/ack`;
    await this.retried<unknown>('the acks', path, JSON.stringify({ member, slots }));
  }

  /** GET (`body` null) or POST `path`, retried across endpoints until `unavailableAfterMs`. */
  private async retried<T>(what: string, path: string, body: string | null): Promise<T> {
    this.throwIfClosed();
    const startedMs = this.nowMs();
    let lastReason = 'no attempt';
    for (let attempt = 0; ; attempt++) {
      this.throwIfClosed();
      if (this.nowMs() - startedMs > this.settings.unavailableAfterMs) {
        throw new ClientError(
          'unavailable',
          `no endpoint answered ${what} within ${this.settings.unavailableAfterMs} ms (${lastReason})`,
          { lastReason },
        );
      }
      const endpoint = this.endpointAt(attempt);
      const call = {
        exchange: this.settings.exchange,
        endpoint,
        path,
        timeoutMs: this.settings.requestTimeoutMs,
        signal: this.closer.signal,
      };
      const outcome: Outcome<T> =
        body === null ? await getJson<T>(call) : await postJson<T>(call, body);
      if (outcome.kind === 'ok') {
        this.worked(endpoint);
        return outcome.value;
      }
      if (outcome.kind === 'fatal') throw outcome.error;
      lastReason = outcome.reason;
      if (this.leaderAt !== null && this.settings.endpoints[this.leaderAt] === endpoint) {
        this.leaderAt = null;
      }
      this.findLeader();
      const delayMs = this.delayWithinMs(
        attempt,
        outcome.retryAfterMs,
        startedMs,
        this.settings.unavailableAfterMs,
      );
      await pause(this.settings.environment, delayMs, this.closer.signal);
    }
  }

  subscribe(options: SubscribeOptions = {}): Subscription {
    return subscribe(this, options);
  }

  /** Aborts every broadcast and subscription in flight; they fail with `closed`. */
  close(): void {
    this.closer.abort();
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** Endpoints in the order to try them: the one that last worked first. */
  endpointAt(attempt: number): string {
    const { endpoints } = this.settings;
    return endpoints[((this.leaderAt ?? this.preferred) + attempt) % endpoints.length]!;
  }

  worked(endpoint: string): void {
    const at = this.settings.endpoints.indexOf(endpoint);
    if (at >= 0) this.preferred = at;
  }

  /** How long to wait after a failed attempt before the next one. */
  delayMs(attempt: number, retryAfterMs: number | null): number {
    const { endpoints, backoffBaseMs, backoffMaxMs } = this.settings;
    const roundDone = (attempt + 1) % endpoints.length === 0;
    const round = Math.floor(attempt / endpoints.length);
    const backoff = roundDone
      ? backoffMs(round, backoffBaseMs, backoffMaxMs, this.settings.environment.random())
      : 0;
    return Math.max(Math.min(retryAfterMs ?? 0, retryAfterMsMax), backoff);
  }

  /**
   * `delayMs`, but never past the call's bound (`boundMs` from `startedMs`): a node's
   * Retry-After longer than what is left must not hold the call past it.
   */
  delayWithinMs(
    attempt: number,
    retryAfterMs: number | null,
    startedMs: number,
    boundMs: number,
  ): number {
    const leftMs = Math.max(0, startedMs + boundMs - this.nowMs()) + 1;
    return Math.min(this.delayMs(attempt, retryAfterMs), leftMs);
  }

  throwIfClosed(): void {
    if (this.closer.signal.aborted) throw new ClientError('closed', 'the client is closed', {});
  }

  /**
   * Sends one message until it is answered or refused, doing what the session chain
   * (./session-chain.ts) says. Once the bound passes, a message never sent fails (its seq
   * is a hole the later seqs move past, as after a refusal); a message sent at least once
   * may sit in a node already, or arrive there late, so it is reported to its caller
   * through a `tell` effect and sent on until `abandonAfterMs`, while its session retires
   * (the nodes hold every later seq of it until this one arrives).
   *
   * A first attempt that goes out at once, in a batch, is followed without an async
   * function of its own (see PendingBroadcast): only a message that must wait or try again
   * enters the loop in `attempts`.
   */
  private start(pending: PendingBroadcast): void {
    // The chain keeps the record with its flight: every running broadcast, by its flight.
    // One reading of the clock for both inputs, and for every broadcast of this turn.
    const nowMs = this.batcher.nowMsOfTurn();
    pending.flight = this.chain.issue(nowMs, pending);
    if (this.closed || !this.settings.batching) {
      void this.attempts(pending, 0);
      return;
    }
    const place = this.chain.sendAtOnce(pending.flight, nowMs);
    if (place !== null) {
      this.sendBatched(pending, place.session.id, place.seq);
      return;
    }
    let step: NextStep;
    try {
      step = this.perform(this.chain.next(pending.flight, nowMs));
    } catch (error) {
      this.end(pending, error);
      return;
    }
    if (step.kind === 'fail') {
      this.end(pending, chainError(step.failure));
    } else if (step.kind === 'wait') {
      // The loop asks again, which here only says to wait once more.
      void this.attempts(pending, 0);
    } else {
      this.sendBatched(pending, step.sessionId, step.seq);
    }
  }

  /** A first attempt that goes out at once: in the batch of this turn. */
  private sendBatched(pending: PendingBroadcast, sessionId: string, seq: number): void {
    pending.aim(this.endpointAt(0), sessionId, seq);
    pending.batched = true;
    this.batcher.send(pending);
  }

  /** The batch of a first attempt answered (or the attempt was cut before it did). */
  private batchedAnswered(pending: PendingBroadcast, outcome: Outcome<unknown>): void {
    if (!pending.batched) return; // cut already: that outcome was taken
    pending.batched = false;
    const waiter = pending.batchedWaiter;
    if (waiter !== null) {
      // The loop in `attempts` sent it (a first attempt after a wait) and awaits it.
      pending.batchedWaiter = null;
      waiter(outcome);
      return;
    }
    let judged: BroadcastAnswer | Retry;
    try {
      judged = this.judge(pending, outcome as Outcome<WireAnswer>);
    } catch (error) {
      this.end(pending, error);
      return;
    }
    if (isRetry(judged)) void this.retry(pending, retryAfterOf(outcome), judged);
    else this.end(pending, null, judged);
  }

  /**
   * A runAnswer put the batched first attempt in the order: what `batchedAnswered` does for
   * an `ok` outcome, without making one.
   */
  private batchDelivered(
    pending: PendingBroadcast,
    position: number | null,
    term: number | null,
    duplicate: boolean,
    nowMs: number,
  ): void {
    if (!pending.batched || pending.batchedWaiter !== null) {
      // Cut already, or the loop in `attempts` awaits it as an outcome.
      this.batchedAnswered(pending, { kind: 'ok', value: { index: position, term, duplicate } });
      return;
    }
    pending.batched = false;
    let after: AfterAttempt;
    try {
      after = this.perform(this.chain.attempted(pending.flight, nowMs, answered));
      if (after.kind !== 'again') this.acknowledged(pending, after, nowMs);
    } catch (error) {
      this.end(pending, error);
      return;
    }
    if (after.kind === 'again') void this.retry(pending, null, after);
    else this.end(pending, null, { position, term, duplicate });
  }

  /** After a first attempt that needs another: backs off as it says, then the loop. */
  private async retry(
    pending: PendingBroadcast,
    retryAfterMs: number | null,
    after: Retry,
  ): Promise<void> {
    try {
      if (after.kind === 'backoff') await this.backOff(pending, retryAfterMs, 0, after.waitMsMax);
    } catch (error) {
      this.end(pending, error);
      return;
    }
    await this.attempts(pending, 1);
  }

  /** Attempts from `firstAttempt` on, until the message is answered or fails; never rejects. */
  private async attempts(pending: PendingBroadcast, firstAttempt: number): Promise<void> {
    let answer: BroadcastAnswer | undefined;
    let failure: unknown = null;
    try {
      answer = await this.attemptsUntilSettled(pending, firstAttempt);
    } catch (error) {
      failure = error;
    }
    this.end(pending, failure, answer);
  }

  private async attemptsUntilSettled(
    pending: PendingBroadcast,
    firstAttempt: number,
  ): Promise<BroadcastAnswer> {
    for (let attempt = firstAttempt; ; attempt++) {
      const place = await this.placeToSend(pending);
      pending.aim(this.endpointAt(attempt), place.sessionId, place.seq);
      const outcome = await this.attempt(pending, attempt);
      const judged = this.judge(pending, outcome);
      if (!isRetry(judged)) return judged;
      if (judged.kind === 'backoff') {
        await this.backOff(pending, retryAfterOf(outcome), attempt, judged.waitMsMax);
      }
    }
  }

  /** Where the next attempt goes, once the chain lets it go; throws its failure. */
  private async placeToSend(
    pending: PendingBroadcast,
  ): Promise<Extract<NextStep, { kind: 'send' }>> {
    for (;;) {
      this.throwIfClosed();
      const next = this.perform(this.chain.next(pending.flight, this.nowMs()));
      if (next.kind === 'send') return next;
      if (next.kind === 'fail') throw chainError(next.failure);
      await this.changed(next.sessionId);
    }
  }

  /**
   * What an attempt's outcome means for the message: its answer, or the way to the next
   * attempt (`again` at once, or a `backoff`); throws the failure its caller gets.
   */
  private judge(pending: PendingBroadcast, outcome: Outcome<WireAnswer>): BroadcastAnswer | Retry {
    const { endpoint } = pending;
    const nowMs = this.nowMs();
    const after = this.perform(
      this.chain.attempted(pending.flight, nowMs, this.attemptResult(outcome, endpoint)),
    );
    if (after.kind === 'again') return after;
    if (outcome.kind === 'ok') {
      this.acknowledged(pending, after, nowMs);
      return answerOf(outcome.value);
    }
    if (outcome.kind === 'fatal' && (after.kind === 'refused' || this.closed)) {
      throw outcome.error;
    }
    assert(after.kind === 'backoff', 'a failure that is not final backs off');
    return after;
  }

  /** An attempt of `pending` was answered and the chain took it (`after`). */
  private acknowledged(pending: PendingBroadcast, after: AfterAttempt, nowMs: number): void {
    assert(after.kind === 'resolve', 'an answer in a session that holds it resolves');
    this.worked(pending.endpoint);
    // Leadership moves (transfers, elections) without any call failing: look again now and
    // then.
    if (nowMs - this.lastLeaderSearchMs > leaderRefreshMs) this.findLeader();
  }

  /**
   * The message is over: it leaves the chain, its slot frees, and its caller hears
   * `answer`, or `error` (unless told something already).
   */
  private end(pending: PendingBroadcast, error: unknown, answer?: BroadcastAnswer): void {
    assert(!pending.batched, 'a message ends after its batched attempt was answered or cut');
    try {
      this.performEffects(this.chain.finish(pending.flight));
    } finally {
      if (answer === undefined) pending.fail(error);
      else pending.answer(answer);
      this.release();
    }
  }

  /** An attempt's outcome as the chain's input. */
  private attemptResult(outcome: Outcome<WireAnswer>, endpoint: string): AttemptResult {
    if (outcome.kind === 'ok') return answered;
    if (outcome.kind === 'retry') return { kind: 'failed', reason: outcome.reason };
    // `closed` is the client's own: the client closed, or the attempt's session was cut.
    if (outcome.error.code === 'closed') return { kind: 'cut' };
    return { kind: 'refused', code: outcome.error.code, endpoint };
  }

  /** Performs the effects of a chain input; returns its step. */
  private perform<T>(result: ChainResult<T>): T {
    this.performEffects(result.effects);
    return result.step;
  }

  private performEffects(effects: readonly ChainEffect[]): void {
    for (let at = 0; at < effects.length; at++) {
      const effect = effects[at] as ChainEffect;
      if (effect.kind === 'cut') {
        // Attempts in flight there, and backoffs of its flights, stop waiting; later ones
        // listen on a fresh signal.
        const old = this.breakers.get(effect.sessionId);
        this.breakers.delete(effect.sessionId);
        old?.abort();
        this.cutBatched(effect.sessionId);
      } else if (effect.kind === 'changed') {
        const waiters = this.changeWaiters.get(effect.sessionId);
        if (waiters === undefined) continue;
        this.changeWaiters.delete(effect.sessionId);
        for (const wake of waiters) wake();
      } else {
        this.chain.ownerOf(effect.flight)?.fail(chainError(effect.failure));
      }
    }
  }

  /**
   * Ends the wait of every batched first attempt in `sessionId`, as aborting the session's
   * signal ends its retries: each goes on as after an attempt that was cut. A cut is rare
   * (a refusal, a forgotten session), so it looks through the messages in flight rather
   * than have each keep a listener. The outcome arrives on a later microtask, as an
   * aborted request's would, not inside the chain input that cut the session.
   */
  private cutBatched(sessionId: string): void {
    for (const pending of this.chain.owners()) {
      if (!pending.batched || pending.sessionId !== sessionId) continue;
      const outcome: Outcome<never> = {
        kind: 'fatal',
        error: new ClientError('closed', 'the session broke', {}),
      };
      void Promise.resolve(outcome).then((cut) => this.batchedAnswered(pending, cut));
    }
  }

  /** The signal the attempts of a session listen on, cut when the chain says so. */
  private breakerOf(sessionId: string): SessionBreaker {
    let breaker = this.breakers.get(sessionId);
    if (breaker === undefined) {
      breaker = new SessionBreaker();
      this.breakers.set(sessionId, breaker);
    }
    return breaker;
  }

  /** Resolves at the next `changed` effect of the session, or when the client closes. */
  private changed(sessionId: string): Promise<void> {
    const signal = this.closer.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const wake = () => {
        signal.removeEventListener('abort', wake);
        resolve();
      };
      const waiters = this.changeWaiters.get(sessionId) ?? [];
      waiters.push(wake);
      this.changeWaiters.set(sessionId, waiters);
      signal.addEventListener('abort', wake, { once: true });
    });
  }

  /** Waits before the next attempt, never past the bound this message is under. */
  private async backOff(
    pending: PendingBroadcast,
    retryAfterMs: number | null,
    attempt: number,
    waitMsMax: number,
  ): Promise<void> {
    const { sessionId, endpoint } = pending;
    // The leader may have moved: look for it while this broadcast retries elsewhere.
    if (this.leaderAt !== null && this.settings.endpoints[this.leaderAt] === endpoint) {
      this.leaderAt = null;
    }
    this.findLeader();
    const delayMs = Math.min(this.delayMs(attempt, retryAfterMs), waitMsMax);
    await pause(this.settings.environment, delayMs, [
      this.closer.signal,
      this.breakerOf(sessionId).signal,
    ]);
  }

  /** Refuses a key the nodes would refuse, before anything is sent. */
  private checkKey(key: unknown): void {
    if (key === undefined) return;
    if (
      typeof key !== 'string' ||
      key === '' ||
      Buffer.byteLength(key) > keyBytesMax ||
      hasControlCharacter(key)
    ) {
      throw new ClientError(
        'invalid_argument',
        `a key is a string of 1 to ${keyBytesMax} bytes of UTF-8 without control characters`,
        { field: 'key' },
      );
    }
  }

  /** The client's clock (its Environment's). */
  nowMs(): number {
    return this.settings.environment.nowMs();
  }

  private get closed(): boolean {
    return this.closer.signal.aborted;
  }

  /**
   * One attempt of the loop in `attempts`. A first attempt (one that waited for its turn)
   * goes in a batch as in `start`; a retry goes alone, so that it never waits for others.
   * Either stops waiting when the client closes or the session of the attempt breaks.
   */
  private attempt(pending: PendingBroadcast, attempt: number): Promise<Outcome<WireAnswer>> {
    if (attempt === 0 && this.settings.batching) {
      // A first attempt after a wait: batched as any first attempt, and cut the same way.
      return new Promise<Outcome<unknown>>((resolve) => {
        pending.batched = true;
        pending.batchedWaiter = resolve;
        this.batcher.send(pending);
      }) as Promise<Outcome<WireAnswer>>;
    }
    return postJson(
      {
        exchange: this.settings.exchange,
        endpoint: pending.endpoint,
        path: '/v1/broadcast',
        timeoutMs: this.settings.requestTimeoutMs,
        signal: [this.closer.signal, this.breakerOf(pending.sessionId).signal],
      },
      singleBody(pending),
    );
  }

  /** Takes a free slot when one is free and no earlier call waits for one. */
  private takeSlot(): boolean {
    if (this.inFlightCount >= this.settings.inFlightMax || this.waiting.length > 0) return false;
    this.inFlightCount += 1;
    return true;
  }

  /**
   * In-flight bound, granted in issue order so that earlier seqs are never starved. Fails
   * with `unavailable` (nothing sent, no seq taken) when no slot frees within
   * `unavailableAfterMs`: the slots are held by messages no node has answered.
   */
  private async acquire(): Promise<void> {
    if (this.takeSlot()) return;
    const { unavailableAfterMs, inFlightMax } = this.settings;
    const granted = await new Promise<boolean>((resolve) => {
      const grant = () => {
        timer.cancel();
        resolve(true);
      };
      const timer = this.settings.environment.setTimer(unavailableAfterMs, () => {
        const at = this.waiting.indexOf(grant);
        if (at >= 0) this.waiting.splice(at, 1);
        resolve(false);
      });
      this.waiting.push(grant);
    });
    this.throwIfClosed();
    if (!granted) {
      throw new ClientError(
        'unavailable',
        `all ${inFlightMax} in-flight slots stayed taken for ${unavailableAfterMs} ms by broadcasts no node answered; this one was never sent`,
        { inFlight: this.inFlightCount, sent: false },
      );
    }
  }

  /** Frees a slot, or hands it straight to the longest waiter (the count stays). */
  private release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) {
      next();
      return;
    }
    this.inFlightCount -= 1;
    assert(this.inFlightCount >= 0, 'in-flight broadcasts are never negative');
  }
}

/**
 * A string none of whose characters JSON.stringify escapes (quotes, backslashes, controls,
 * surrogates). Anchored, so that it is one pass over the string: searching for any one of
 * those characters instead took half as long again per 256-byte payload.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the controls JSON escapes are what it looks for
const unescapedInJson = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

/**
 * The same for a string of ASCII alone, tried first: most string payloads are, and for
 * them the frame takes the string's length as its byte count and copies it byte for byte
 * (Buffer's UTF-8 measure and encoder cost more than this pass). A string that is not
 * stops it at its first other character.
 */
const asciiUnescapedInJson = /^[\u0020\u0021\u0023-\u005b\u005d-\u007f]*$/;

/** `quotesAsItIs`, for a string of ASCII alone: its UTF-8 is its Latin-1, a byte a character. */
export function asciiAsItIs(payload: unknown): payload is string {
  return typeof payload === 'string' && asciiUnescapedInJson.test(payload);
}

/** Whether `payload` is a string whose JSON text is itself in quotes. */
function quotesAsItIs(payload: unknown): payload is string {
  return typeof payload === 'string' && unescapedInJson.test(payload);
}

/**
 * `JSON.stringify(payload)`, with a string that has nothing to escape quoted as it is: the
 * stringifier's scratch for a 256-byte string is over 300 bytes per message, and with
 * 10,000 messages in flight every byte made per message costs its share of collection.
 * (A string with a surrogate, paired or not, takes the stringifier's way.)
 */
export function jsonText(payload: unknown): string | undefined {
  if (quotesAsItIs(payload)) return `"${payload}"`;
  return JSON.stringify(payload);
}

/** A payload's JSON text; refuses what every node would refuse, so no seq is spent on it. */
function payloadText(payload: unknown): string {
  let text: string | undefined;
  try {
    text = jsonText(payload);
  } catch (error) {
    throw new ClientError(
      'invalid_argument',
      `the payload is not JSON: ${(error as Error).message}`,
      { field: 'payload' },
    );
  }
  if (text === undefined) {
    throw new ClientError('invalid_argument', 'the payload is not a JSON value', {
      field: 'payload',
    });
  }
  return text;
}

/** Refuses options that are not an object (null, a topic string), before anything is sent. */
function checkOptions(options: unknown): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ClientError('invalid_argument', 'broadcast options are an object: { topic, key }', {
      field: 'options',
    });
  }
}

const answered: AttemptResult = Object.freeze({ kind: 'answered' });
/** A broadcast's options when none are given: not an object per call. */
const noOptions: BroadcastOptions = Object.freeze({});

/** After an attempt that did not settle the message: try again at once, or after a wait. */
type Retry = Extract<AfterAttempt, { kind: 'again' | 'backoff' }>;

function retryAfterOf(outcome: Outcome<unknown>): number | null {
  return outcome.kind === 'retry' ? outcome.retryAfterMs : null;
}

function isRetry(judged: BroadcastAnswer | Retry): judged is Retry {
  return 'kind' in judged;
}

/** A broadcast's answer as docs/api.md gives it: the wire calls the position `index`. */
interface WireAnswer {
  readonly index?: number | null;
  readonly term?: number | null;
  readonly duplicate: boolean;
}

function answerOf(value: WireAnswer): BroadcastAnswer {
  if (typeof value !== 'object' || value === null || typeof value.duplicate !== 'boolean') {
    throw new ClientError('protocol', 'the node answered a broadcast without index and duplicate', {
      answer: value,
    });
  }
  return { position: value.index ?? null, term: value.term ?? null, duplicate: value.duplicate };
}

/** The position a barrier answered: `{"index": n}` on the wire. */
function barrierPositionOf(value: { index?: unknown }): number {
  const position = typeof value === 'object' && value !== null ? value.index : undefined;
  if (!Number.isSafeInteger(position) || (position as number) < 0) {
    throw new ClientError('protocol', 'the node answered a barrier without an index', {
      answer: value,
    });
  }
  return position as number;
}

function chainError(failure: ChainFailure): ClientError {
  return new ClientError(failure.code, failure.message, failure.details);
}
