/**
 * The client: broadcasts with exactly-once retries across endpoints, and subscriptions
 * that fail over (./subscribe.ts). Every broadcast carries this client's session id and the
 * next `seq`; a retry — after a timeout, a refused connection or a 503, on any endpoint —
 * resends the same `(client, seq)`, which the cluster delivers at most once and answers
 * with the original index. Broadcasts issued concurrently are sent concurrently: the node
 * holds a later `seq` back until the earlier ones arrive, so order of issue is kept.
 */
import { setMaxListeners } from 'node:events';
import { assert } from '../util/assert.ts';
import { BroadcastBatcher, type QueuedBroadcast, singleBody } from './batcher.ts';
import { ClientError } from './errors.ts';
import { backoffMs, getJson, type Outcome, onAnyAbort, pause, postJson } from './http.ts';
import {
  type BroadcastAnswer,
  type BroadcastOptions,
  type ConnectOptions,
  type Settings,
  settingsOf,
} from './settings.ts';
import { type SubscribeOptions, type Subscription, subscribe } from './subscribe.ts';

/** Retry-After is honoured up to this long; a node asking for more is tried again sooner. */
const retryAfterMsMax = 2_000;
const topicBytesMax = 255;

/** A (session, seq) place. */
interface Place {
  readonly session: Session;
  readonly seq: number;
}

/** One broadcast on its way: where it is now, and what its caller has been told. */
class Flight implements Place {
  /** Its caller was told its outcome is unknown: later broadcasts need not wait for it. */
  givenUp = false;
  /** Whether its current (session, seq) went out at least once: one never sent is a hole. */
  sent = false;
  lastReason = 'no attempt';

  constructor(
    public session: Session,
    public seq: number,
    readonly startedMs: number,
    private readonly giveUp: (error: ClientError) => void,
  ) {}

  /** Tells its caller, unless told already, that its outcome is unknown; it is sent on. */
  tellUnknown(reason: string): void {
    if (this.givenUp) return;
    this.givenUp = true;
    this.giveUp(this.failure(this.sent, reason));
    this.session.wake(); // a successor waiting for this seq need not wait any longer
  }

  failure(sent: boolean, message: string): ClientError {
    const details = { client: this.session.id, seq: this.seq, lastReason: this.lastReason, sent };
    return new ClientError('unavailable', details, message);
  }
}

/** One session: its id and the next seq. Broken once a node refused one of its seqs. */
class Session {
  nextSeq = 1;
  broken = false;
  /**
   * The nodes answered `session_unknown`: they forgot this session (idle past their
   * sessionTtlMs, or a log time that jumped). Whatever was sent in it may have been
   * delivered before, so none of it is sent again or moved; what was never sent moves on.
   */
  expired = false;
  /**
   * A node answered one of its seqs as delivered: the session existed, so a later
   * `session_unknown` means the nodes forgot it, not that its first message is missing.
   */
  acknowledged = false;
  /** The lowest seq a node refused for good: no seq above it is ever delivered here. */
  refusedSeq = Number.POSITIVE_INFINITY;
  /**
   * The lowest seq the client stopped sending (abandonAfterMs) after it went out
   * unanswered: it may still land (a slow commit), so `session_unknown` above it before
   * any answer is its absence, a gap to wait out, never a refusal for good.
   */
  abandonedSentSeq = Number.POSITIVE_INFINITY;
  /** Seqs whose broadcasts are still running in this session. */
  readonly running = new Map<number, Flight>();
  /** Once broken: where each seq above the refused one goes, in the order they were issued. */
  readonly moves = new Map<number, { readonly session: Session; readonly seq: number }>();
  /**
   * Aborted (and replaced) whenever the refused seq drops, so that attempts of the seqs
   * that must move stop waiting; the seqs that stay merely send again.
   */
  breaker = newBreaker();
  /**
   * The session this one replaced after a refusal, while seqs below the refused one still
   * run there: nothing is sent here before they settle, or it could overtake them.
   */
  predecessor: Session | null = null;
  /** The session that took over when this one broke. */
  successor: Session | null = null;
  /**
   * No longer the current session although no seq of it was refused: a message sent in it
   * went unanswered past unavailableAfterMs (the nodes hold its later seqs until that one
   * arrives, which may be never), or its successor started sending while seqs here whose
   * callers were told their outcome is unknown still ran. Its messages still running finish
   * there; none moves out (see breakSession).
   */
  retired = false;
  private changeWaiters: (() => void)[] = [];

  constructor(readonly id: string) {}

  /** Cuts the attempts in flight here; later attempts listen on a fresh signal. */
  cut(): void {
    const old = this.breaker;
    this.breaker = newBreaker();
    old.abort();
  }

  /** The broadcast of `seq` left this session (answered, failed or moved on). */
  settle(seq: number): void {
    this.running.delete(seq);
    this.wake();
  }

  /** Wakes those waiting for this session to change (a seq settled or was given up). */
  wake(): void {
    const waiters = this.changeWaiters;
    this.changeWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Whether a seq below `seq` still runs here: one that may yet arrive. */
  runsBelow(seq: number): boolean {
    for (const running of this.running.keys()) if (running < seq) return true;
    return false;
  }

  /**
   * Whether a seq below the refused one still runs, one that may yet be delivered, and its
   * caller has not been told its outcome is unknown: a later broadcast must not overtake it.
   * One already told may run on in the background for up to abandonAfterMs; the successor
   * does not wait for it, or its callers would wait past their own unavailableAfterMs.
   */
  get runningBelowRefused(): boolean {
    for (const [seq, flight] of this.running) {
      if (seq < this.refusedSeq && !flight.givenUp) return true;
    }
    return false;
  }

  /** Resolves at the next settle or give-up, or when `signal` aborts. */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const wake = () => {
        signal.removeEventListener('abort', wake);
        resolve();
      };
      this.changeWaiters.push(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }
}

function newBreaker(): AbortController {
  const breaker = new AbortController();
  // Every attempt in flight in the session listens on it: bounded by inFlightMax.
  setMaxListeners(0, breaker.signal);
  return breaker;
}

/** How often the client may look for the leader, and how long one look may take. */
const leaderSearchIntervalMs = 1_000;
const leaderSearchTimeoutMs = 1_000;
/** While all goes well, the client checks who leads this often. */
const leaderRefreshMs = 2_000;

export class Client {
  readonly settings: Settings;
  private readonly baseId: string;
  private session: Session;
  private sessionCount = 1;
  /** Index into endpoints of the one that last answered; tried first. */
  private preferred = 0;
  private readonly closer = new AbortController();
  private inFlightCount = 0;
  private readonly waiting: (() => void)[] = [];
  private leaderSearch: Promise<void> | null = null;
  /** Index into endpoints of the node that said it leads, until a call to it fails. */
  private leaderAt: number | null = null;
  private lastLeaderSearchMs = 0;
  private readonly batcher: BroadcastBatcher;

  constructor(options: ConnectOptions) {
    this.settings = settingsOf(options);
    this.baseId = options.clientId ?? `sdk.${this.settings.environment.randomHex(8)}`;
    if (Buffer.byteLength(this.baseId) < 1 || Buffer.byteLength(this.baseId) > 240) {
      throw new ClientError(
        'invalid_argument',
        { field: 'clientId' },
        'clientId takes 1–240 bytes',
      );
    }
    this.session = new Session(this.baseId);
    this.batcher = new BroadcastBatcher({
      exchange: this.settings.exchange,
      environment: this.settings.environment,
      requestTimeoutMs: this.settings.requestTimeoutMs,
      signal: this.closer.signal,
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
    return this.session.id;
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
  async broadcast(payload: unknown, options: BroadcastOptions = {}): Promise<BroadcastAnswer> {
    const text = payloadText(payload, options.topic);
    this.throwIfClosed();
    await this.acquire();
    return new Promise((resolve, reject) => {
      // The slot stays taken until the message is answered, also after its caller was told
      // `unavailable`: that bounds the messages still being sent to inFlightMax.
      this.send(text, options.topic, reject)
        .then(resolve, reject)
        .finally(() => this.release());
    });
  }

  /**
   * A linearizable read index (GET /v1/barrier, ReadIndex): an index n such that every
   * message acknowledged anywhere before this call is at or below n. It promises nothing
   * else — other messages may sit at or below n too, and n is not where any subscription
   * is. To read linearizably, wait until your own subscription (on any node) has passed n:
   * yielded it, or yielded something beyond it, or reported it through `onProgress`. Retried
   * across endpoints like broadcasts (a 503 or a connection failure goes to the next one);
   * fails with `unavailable` after `unavailableAfterMs`.
   */
  async barrier(): Promise<number> {
    this.throwIfClosed();
    const startedMs = this.nowMs();
    let lastReason = 'no attempt';
    for (let attempt = 0; ; attempt++) {
      this.throwIfClosed();
      if (this.nowMs() - startedMs > this.settings.unavailableAfterMs) {
        throw new ClientError(
          'unavailable',
          { lastReason },
          `no endpoint answered the barrier within ${this.settings.unavailableAfterMs} ms (${lastReason})`,
        );
      }
      const endpoint = this.endpointAt(attempt);
      const outcome: Outcome<{ index?: unknown }> = await getJson({
        exchange: this.settings.exchange,
        endpoint,
        path: '/v1/barrier',
        timeoutMs: this.settings.requestTimeoutMs,
        signal: this.closer.signal,
      });
      if (outcome.kind === 'ok') {
        this.worked(endpoint);
        return barrierIndexOf(outcome.value);
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
    if (this.closer.signal.aborted) throw new ClientError('closed', {}, 'the client is closed');
  }

  /**
   * Sends one message until it is answered or refused. Once the bound passes, a message
   * never sent fails (its seq is a hole the later seqs move past, as after a refusal); a
   * message sent at least once may sit in a node already, or arrive there late, so it is
   * reported to its caller through `giveUp` and sent on until `abandonAfterMs`, while its
   * session retires (the nodes hold every later seq of it until this one arrives).
   */
  private async send(
    text: string,
    topic: string | undefined,
    giveUp: (error: ClientError) => void,
  ): Promise<BroadcastAnswer> {
    const flight = new Flight(this.session, this.session.nextSeq++, this.nowMs(), giveUp);
    flight.session.running.set(flight.seq, flight);
    try {
      for (let attempt = 0; ; attempt++) {
        this.throwIfClosed();
        this.place(flight);
        const predecessor = flight.session.predecessor;
        if (predecessor !== null) {
          if (predecessor.runningBelowRefused) {
            // FIFO across the break: wait for the lower seqs of the old session to settle.
            await predecessor.changed(this.closer.signal);
            attempt -= 1; // not an attempt: look again
            continue;
          }
          flight.session.predecessor = null;
        }
        this.checkBounds(flight);
        const endpoint = this.endpointAt(attempt);
        flight.sent = true;
        const { session, seq } = flight;
        const outcome = await this.attempt(
          { endpoint, sessionId: session.id, seq, text, topic },
          attempt,
          session.breaker.signal,
        );
        // The session broke behind this seq while the attempt ran: it moves on (no node
        // delivers a seq above a refused one, so the answer can only be a refusal).
        if (session.broken && seq > session.refusedSeq) continue;
        if (outcome.kind === 'ok') {
          session.acknowledged = true;
          this.worked(endpoint);
          // Leadership moves (transfers, elections) without any call failing: look again
          // now and then.
          if (this.nowMs() - this.lastLeaderSearchMs > leaderRefreshMs) this.findLeader();
          return answerOf(outcome.value);
        }
        this.judgeFailure(flight, outcome, endpoint);
        await this.backOff(flight, outcome, attempt, endpoint);
      }
    } finally {
      // Also any places set aside for it that it never reached (the client closed).
      for (let at: Place | undefined = flight; at; ) {
        at.session.settle(at.seq);
        at = at.session.moves.get(at.seq);
      }
    }
  }

  /**
   * Where the message goes next: on to the place a break set aside for it, or nowhere
   * (throws) when its session can no longer deliver it and it must not move.
   */
  private place(flight: Flight): void {
    const { session, seq } = flight;
    if (session.expired && flight.sent && !session.moves.has(seq)) {
      throw new ClientError(
        'unavailable',
        { client: session.id, seq, sent: true },
        `the nodes forgot session ${session.id} (session_unknown) while this broadcast was in flight; it may have been delivered before, so the client does not send it again, and its outcome is unknown`,
      );
    }
    if (session.retired && session.broken && seq > session.refusedSeq && !session.moves.has(seq)) {
      throw new ClientError(
        'unavailable',
        { client: session.id, seq, sent: flight.sent },
        `an earlier broadcast of session ${session.id} was refused after the session was retired; this one was not delivered (no seq above a refused one is)`,
      );
    }
    while (flight.session.broken && flight.seq > flight.session.refusedSeq) {
      // An earlier seq of that session was refused, so this one can never be delivered
      // there: it goes to the seq the break set aside for it in the next session, in the
      // order of issue. A seq below the refused one stays where it is: it may be delivered
      // already, and moving it would deliver it twice.
      const move = flight.session.moves.get(flight.seq) ?? this.freshSeq();
      flight.session.settle(flight.seq);
      flight.session = move.session;
      flight.seq = move.seq;
      flight.session.running.set(flight.seq, flight);
      flight.sent = false;
    }
  }

  /** unavailableAfterMs, then abandonAfterMs: what passing each means for this message. */
  private checkBounds(flight: Flight): void {
    const { session, seq } = flight;
    const { unavailableAfterMs, abandonAfterMs } = this.settings;
    const elapsedMs = this.nowMs() - flight.startedMs;
    if (!flight.givenUp && elapsedMs > unavailableAfterMs) {
      const bound = `no endpoint accepted the broadcast within ${unavailableAfterMs} ms (${flight.lastReason})`;
      if (!flight.sent) {
        // A seq set aside for this message and never sent is a hole in its session: the
        // seqs after it move on, as after a refusal.
        this.breakSession(session, seq);
        throw flight.failure(false, `${bound}; it was never sent`);
      }
      flight.tellUnknown(`${bound}; the client sends it on, so it may still be delivered once`);
      this.retire(session);
    }
    if (flight.givenUp && elapsedMs > abandonAfterMs) {
      if (!flight.sent) {
        // It moved here (a break behind it) and never went out: a hole, as at the first
        // bound, which the seqs after it move past. It was never delivered where it was
        // sent before: no seq above a refused one is.
        this.breakSession(session, seq);
        throw flight.failure(
          false,
          `no endpoint answered the broadcast within ${abandonAfterMs} ms; it was not delivered`,
        );
      }
      session.abandonedSentSeq = Math.min(session.abandonedSentSeq, seq);
      throw flight.failure(
        true,
        `no endpoint answered the broadcast within ${abandonAfterMs} ms; the client stopped sending it, and its outcome stays unknown`,
      );
    }
  }

  /**
   * A failed attempt: throws a refusal (breaking the session as it requires); returns for
   * one worth another attempt, with `flight.lastReason` saying why.
   */
  private judgeFailure(
    flight: Flight,
    outcome: Exclude<Outcome<BroadcastAnswer>, { kind: 'ok' }>,
    endpoint: string,
  ): void {
    const { session, seq } = flight;
    // Before any answer in the session, session_unknown means its first message has not
    // arrived yet; while a lower seq is still being sent, or was sent and abandoned (it may
    // land late), it is a gap to wait out.
    const firstOnItsWay =
      outcome.kind === 'fatal' &&
      outcome.error.code === 'session_unknown' &&
      !session.acknowledged &&
      (session.runsBelow(seq) || seq > session.abandonedSentSeq);
    if (
      outcome.kind === 'fatal' &&
      !firstOnItsWay &&
      !(outcome.error.code === 'closed' && !this.closed)
    ) {
      if (outcome.error.code === 'session_unknown' && session.acknowledged) {
        // Not a refusal of this message alone: every seq of the session is in doubt.
        // (Before any answer, with no lower seq left to arrive, it is a refusal of this
        // seq alone, as below.)
        session.expired = true;
        this.breakSession(session, 0);
      } else if (outcome.error.code !== 'closed') {
        this.breakSession(session, seq);
      }
      throw outcome.error;
    }
    // A retry, a first message still on its way, or an attempt cut short by the break of
    // its session (this seq stays).
    flight.lastReason =
      outcome.kind === 'retry'
        ? outcome.reason
        : firstOnItsWay
          ? `${endpoint} has not seen the session's first message yet`
          : 'its session broke';
  }

  /** Waits before the next attempt, never past the bound this message is under. */
  private async backOff(
    flight: Flight,
    outcome: Exclude<Outcome<BroadcastAnswer>, { kind: 'ok' }>,
    attempt: number,
    endpoint: string,
  ): Promise<void> {
    // The leader may have moved: look for it while this broadcast retries elsewhere.
    if (this.leaderAt !== null && this.settings.endpoints[this.leaderAt] === endpoint) {
      this.leaderAt = null;
    }
    this.findLeader();
    const retryAfterMs = outcome.kind === 'retry' ? outcome.retryAfterMs : null;
    const { unavailableAfterMs, abandonAfterMs } = this.settings;
    const boundMs = flight.givenUp ? abandonAfterMs : unavailableAfterMs;
    const delayMs = this.delayWithinMs(attempt, retryAfterMs, flight.startedMs, boundMs);
    await pause(this.settings.environment, delayMs, [
      this.closer.signal,
      flight.session.breaker.signal,
    ]);
  }

  /** The client's clock (its Environment's). */
  nowMs(): number {
    return this.settings.environment.nowMs();
  }

  private get closed(): boolean {
    return this.closer.signal.aborted;
  }

  /**
   * One attempt. First attempts of broadcasts issued together travel in one request; a
   * retry goes alone, so that it never waits for others. Either stops waiting when
   * `breaker` aborts (the session broke).
   */
  private attempt(
    message: QueuedBroadcast,
    attempt: number,
    breaker: AbortSignal,
  ): Promise<Outcome<BroadcastAnswer>> {
    if (attempt > 0 || !this.settings.batching) {
      return postJson(
        {
          exchange: this.settings.exchange,
          endpoint: message.endpoint,
          path: '/v1/broadcast',
          timeoutMs: this.settings.requestTimeoutMs,
          signal: [this.closer.signal, breaker],
        },
        singleBody(message),
      );
    }
    return new Promise((resolve) => {
      const cut = () =>
        resolve({ kind: 'fatal', error: new ClientError('closed', {}, 'the session broke') });
      if (breaker.aborted) return cut();
      breaker.addEventListener('abort', cut, { once: true });
      (this.batcher.send(message) as Promise<Outcome<BroadcastAnswer>>).then((outcome) => {
        // The session lives long: its signal must not collect a listener per broadcast.
        breaker.removeEventListener('abort', cut);
        resolve(outcome);
      });
    });
  }

  /** A new seq at the end of the current session. */
  private freshSeq(): { session: Session; seq: number } {
    return { session: this.session, seq: this.session.nextSeq++ };
  }

  /**
   * A node refused a seq for good: the seqs above it still running move to the current
   * session (a new one if this was it), at new seqs in their order of issue, and their
   * attempts in flight here stop waiting.
   */
  private breakSession(session: Session, refusedSeq: number): void {
    if (refusedSeq >= session.refusedSeq) return; // the seqs above it moved already
    session.refusedSeq = refusedSeq;
    // A lower seq refused after its successor started sending: that seq's caller had been
    // told its outcome is unknown (the successor waits for no other), and so had those of
    // the seqs above it here, which now can never be delivered. They are treated as in a
    // retired session.
    if (session.broken && session.successor?.predecessor !== session) session.retired = true;
    if (session.retired) {
      // Its seqs above the refused one fail rather than move: later broadcasts already
      // have their places in newer sessions, so moved ones would land behind them, and
      // this keeps a retired session's messages under one (session, seq) each. (Seqs the
      // break before had set aside a place for in the successor still move there.)
      session.broken = true;
      session.cut();
      return;
    }
    if (!session.broken) {
      session.broken = true;
      // Sessions other than the current one are broken: a session first breaks as current.
      assert(this.session === session, 'a session breaks first while it is the current one');
      this.successor(session);
    } else {
      // A lower seq refused after a higher one: the seqs between must go ahead of those
      // moved before, and those have not been sent (the successor still waits for the lower
      // seqs here, this refused one among them), so the successor starts over behind them.
      const successor = session.successor;
      assert(successor !== null && this.session === successor, 'the successor is current');
      assert(successor.predecessor === session, 'the successor has sent nothing yet');
      successor.broken = true;
      successor.refusedSeq = 0;
      this.successor(session);
      this.moveAbove(session);
      this.moveAbove(successor);
      successor.cut();
      session.cut();
      return;
    }
    this.moveAbove(session);
    session.cut();
  }

  /**
   * A message sent in `session` went unanswered past unavailableAfterMs, and its caller was
   * told so. If it never arrives the nodes hold every later seq of the session for good, so
   * later broadcasts go to a new session, which sends nothing while this one still runs
   * messages whose callers were told nothing: those may yet be answered as delivered, and
   * must not be overtaken. Nothing moves: what runs here may be delivered here yet.
   */
  private retire(session: Session): void {
    if (this.session !== session || session.broken || session.retired) return;
    session.retired = true;
    this.successor(session);
  }

  /** A new current session after `session`, sending nothing before its lower seqs settle. */
  private successor(session: Session): void {
    this.sessionCount += 1;
    this.session = new Session(`${this.baseId}~${this.sessionCount}`);
    this.session.predecessor = session;
    session.successor = this.session;
  }

  /** Gives each seq still running above the refused one a new seq, in their order of issue. */
  private moveAbove(session: Session): void {
    const behind = [...session.running.entries()]
      .filter(
        ([seq, flight]) =>
          seq > session.refusedSeq &&
          !session.moves.has(seq) &&
          // What an expired session sent may be delivered already: it never moves.
          !(session.expired && flight.sent),
      )
      .map(([seq]) => seq)
      .sort((a, b) => a - b);
    for (const seq of behind) {
      const move = this.freshSeq();
      session.moves.set(seq, move);
      // The message belongs to its new place at once, before it wakes to go there: a break
      // there in between must see it, or its reserved seq would be a hole, and a place it
      // then took at the end would put it behind later broadcasts.
      move.session.running.set(move.seq, session.running.get(seq) as Flight);
    }
  }

  /**
   * In-flight bound, granted in issue order so that earlier seqs are never starved. Fails
   * with `unavailable` (nothing sent, no seq taken) when no slot frees within
   * `unavailableAfterMs`: the slots are held by messages no node has answered.
   */
  private async acquire(): Promise<void> {
    if (this.inFlightCount < this.settings.inFlightMax && this.waiting.length === 0) {
      this.inFlightCount += 1;
      return;
    }
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
        { inFlight: this.inFlightCount, sent: false },
        `all ${inFlightMax} in-flight slots stayed taken for ${unavailableAfterMs} ms by broadcasts no node answered; this one was never sent`,
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

/** Refuses before sending what every node would refuse, so no seq is spent on it. */
function payloadText(payload: unknown, topic: string | undefined): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (error) {
    throw new ClientError(
      'invalid_argument',
      { field: 'payload' },
      `the payload is not JSON: ${(error as Error).message}`,
    );
  }
  if (text === undefined) {
    throw new ClientError(
      'invalid_argument',
      { field: 'payload' },
      'the payload is not a JSON value',
    );
  }
  if (
    topic !== undefined &&
    (typeof topic !== 'string' || Buffer.byteLength(topic) > topicBytesMax || topic.startsWith('$'))
  ) {
    throw new ClientError(
      'invalid_argument',
      { field: 'topic' },
      'a topic is a string of at most 255 bytes, not starting with $',
    );
  }
  return text;
}

function answerOf(value: BroadcastAnswer): BroadcastAnswer {
  if (typeof value !== 'object' || value === null || typeof value.duplicate !== 'boolean') {
    throw new ClientError(
      'protocol',
      { answer: value },
      'the node answered a broadcast without index and duplicate',
    );
  }
  return { index: value.index ?? null, term: value.term ?? null, duplicate: value.duplicate };
}

function barrierIndexOf(value: { index?: unknown }): number {
  const index = typeof value === 'object' && value !== null ? value.index : undefined;
  if (!Number.isSafeInteger(index) || (index as number) < 0) {
    throw new ClientError(
      'protocol',
      { answer: value },
      'the node answered a barrier without an index',
    );
  }
  return index as number;
}
