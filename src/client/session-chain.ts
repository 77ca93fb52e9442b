/**
 * The SDK's exactly-once machinery as a pure state machine: which (session, seq) each
 * broadcast goes out as, when it must wait, what a failure or a refusal means for it and
 * for the others, and when its caller is told what. No I/O, no timers, no randomness: the
 * clock arrives as a number on every input, and every input returns what to do next. The
 * client (./client.ts) performs those actions; the scenarios in test/client/scenarios
 * drive it step by step.
 *
 * Every broadcast carries a session id and the next seq of that session; the nodes deliver
 * a session's seqs in order, at most once each, and answer a retry of a delivered one as a
 * duplicate. A seq refused for good is a hole no later seq of its session can pass, so the
 * broadcasts behind it move to a new session (`<base>~2`, `~3`, …) in their order of issue,
 * which sends nothing while the old one still runs lower seqs that may yet be delivered.
 * A broadcast that went out is never moved (it may be delivered already: moving it could
 * deliver it twice); one that never went out is.
 */
import { assert } from '../util/assert.ts';
import { ChainSession, Flight, type FlightId, type Place } from './chain-session.ts';
import { KeyWindow } from './key-window.ts';
import type { ChainBounds } from './settings.ts';

export type { FlightId } from './chain-session.ts';

export interface ChainOptions extends ChainBounds {
  /** The first session's id; later ones are `<baseId>~2`, `~3`, … */
  readonly baseId: string;
}

/** What the caller of a broadcast is told when it fails for a reason of the chain's own. */
export interface ChainFailure {
  readonly code: 'unavailable';
  readonly message: string;
  readonly details: {
    readonly client: string;
    readonly seq: number;
    readonly sent: boolean;
    readonly lastReason?: string;
  };
}

/** How one attempt of a flight ended. */
export type AttemptResult =
  /** A node answered it delivered (first time or duplicate). */
  | { readonly kind: 'answered' }
  /** Worth another attempt: no answer, a 5xx, a retryable code. */
  | { readonly kind: 'failed'; readonly reason: string }
  /** A node refused it for good with this code (session_unknown, payload_too_large, …). */
  | { readonly kind: 'refused'; readonly code: string; readonly endpoint: string }
  /** Aborted because its session was cut (a `cut` effect) while it ran. */
  | { readonly kind: 'cut' };

/** Side effects of an input, in order, for flights and sessions other than its own step. */
export type ChainEffect =
  /** Abort every attempt in flight in this session, and every backoff of its flights. */
  | { readonly kind: 'cut'; readonly sessionId: string }
  /** Wake the flights waiting (a `wait` step) on this session: ask `next` again. */
  | { readonly kind: 'changed'; readonly sessionId: string }
  /** Reject this flight's caller now; the flight itself goes on (it is sent on). */
  | { readonly kind: 'tell'; readonly flight: FlightId; readonly failure: ChainFailure };

/** What a flight does next (the answer to `next`). */
export type NextStep =
  /** Send (or send again) this place. */
  | { readonly kind: 'send'; readonly sessionId: string; readonly seq: number }
  /** Wait for a `changed` effect on this session, then ask again (not an attempt). */
  | { readonly kind: 'wait'; readonly sessionId: string }
  /** Reject the caller (unless told already) and finish the flight. */
  | { readonly kind: 'fail'; readonly failure: ChainFailure };

/** What an attempt's result means (the answer to `attempted`). */
export type AfterAttempt =
  /** Resolve the caller with the node's answer and finish the flight. */
  | { readonly kind: 'resolve' }
  /** Reject the caller with the node's refusal and finish the flight. */
  | { readonly kind: 'refused' }
  /** Its session broke behind it while the attempt ran: ask `next` at once. */
  | { readonly kind: 'again' }
  /** Wait (at most `waitMsMax`, the rest of its bound), then ask `next`. */
  | { readonly kind: 'backoff'; readonly waitMsMax: number };

export interface ChainResult<T> {
  readonly step: T;
  readonly effects: readonly ChainEffect[];
}

// The steps without fields, and the usual answer to an answered attempt, made once: the
// client asks the chain several times per message.
const noEffects: readonly ChainEffect[] = Object.freeze([]);
const again: AfterAttempt = Object.freeze({ kind: 'again' });
const resolve: AfterAttempt = Object.freeze({ kind: 'resolve' });
const refused: AfterAttempt = Object.freeze({ kind: 'refused' });
const resolvedAlone: ChainResult<AfterAttempt> = Object.freeze({
  step: resolve,
  effects: noEffects,
});

/** `Owner`: what the caller keeps with each flight (`issue`, `ownerOf`). */
export class SessionChain<Owner = undefined> {
  private current: ChainSession;
  private sessionCount = 1;
  private flightCount = 0;
  private readonly flights = new KeyWindow<Flight>();
  private effects: ChainEffect[] = [];

  constructor(private readonly options: ChainOptions) {
    assert(options.baseId.length > 0, 'a session id is not empty');
    assert(options.abandonAfterMs >= options.unavailableAfterMs, 'abandon after unavailable');
    this.current = new ChainSession(options.baseId);
  }

  /** The session the next broadcast is issued in. */
  get currentSessionId(): string {
    return this.current.id;
  }

  /** Broadcasts issued and not finished. */
  get flightCountRunning(): number {
    return this.flights.size;
  }

  /** A new broadcast, at the next seq of the current session; then ask `next`. */
  issue(nowMs: number, owner?: Owner): FlightId {
    assert(Number.isFinite(nowMs), 'the clock is a number');
    this.flightCount += 1;
    const session = this.current;
    const seq = session.nextSeq;
    session.nextSeq += 1;
    const flight = new Flight(this.flightCount, session, seq, nowMs, owner);
    session.running.set(seq, flight);
    this.flights.set(flight.id, flight);
    return flight.id;
  }

  /**
   * What a running flight was issued with (the caller's record of it, one map for both);
   * undefined once it finished.
   */
  ownerOf(id: FlightId): Owner | undefined {
    return this.flights.get(id)?.owner as Owner | undefined;
  }

  /** The owners of the running flights, in their order of issue. */
  *owners(): IterableIterator<Owner> {
    for (const flight of this.flights.values()) yield flight.owner as Owner;
  }

  /**
   * Where the flight goes now: the place it moved to, a wait behind lower seqs of the
   * session it replaced, or a failure once a bound passed or its session can no longer
   * deliver it.
   */
  next(id: FlightId, nowMs: number): ChainResult<NextStep> {
    const flight = this.flightOf(id);
    const placeFailure = this.place(flight);
    if (placeFailure !== null) return this.result({ kind: 'fail', failure: placeFailure });
    const predecessor = flight.session.predecessor;
    if (predecessor !== null) {
      // FIFO across the break: wait for the lower seqs of the old session to settle.
      if (predecessor.runningBelowRefused) {
        return this.result({ kind: 'wait', sessionId: predecessor.id });
      }
      flight.session.predecessor = null;
    }
    const boundFailure = this.checkBounds(flight, nowMs);
    if (boundFailure !== null) return this.result({ kind: 'fail', failure: boundFailure });
    flight.sent = true;
    return this.result({ kind: 'send', sessionId: flight.session.id, seq: flight.seq });
  }

  /**
   * `next` for a flight whose place needs nothing done, the usual first step of every
   * broadcast: its session is neither broken nor behind an older one, and no bound has
   * passed. Then it is sent where it was issued: marked sent, its place returned (read it
   * at once), with no step or effect made for it. Otherwise null, nothing changed: ask
   * `next`.
   */
  sendAtOnce(id: FlightId, nowMs: number): Place | null {
    const flight = this.flightOf(id);
    const { session } = flight;
    if (
      session.broken ||
      session.expired ||
      session.predecessor !== null ||
      flight.givenUp ||
      nowMs - flight.startedMs > this.options.unavailableAfterMs
    ) {
      return null;
    }
    flight.sent = true;
    return flight;
  }

  /** How the flight's last attempt (of the place `next` gave) ended. */
  attempted(id: FlightId, nowMs: number, outcome: AttemptResult): ChainResult<AfterAttempt> {
    const flight = this.flightOf(id);
    const { session, seq } = flight;
    assert(flight.sent, 'an attempt follows a send');
    // The session broke behind this seq while the attempt ran: it moves on (no node
    // delivers a seq above a refused one, so the answer can only be a refusal).
    if (session.broken && seq > session.refusedSeq) return this.result(again);
    if (outcome.kind === 'answered') {
      session.acknowledged = true;
      return this.result(resolve);
    }
    if (outcome.kind === 'refused') {
      const refusal = this.judgeRefusal(flight, outcome.code);
      if (refusal) return this.result(refused);
      flight.lastReason = `${outcome.endpoint} has not seen the session's first message yet`;
    } else {
      // A retry, or an attempt cut short by the break of its session (this seq stays).
      flight.lastReason = outcome.kind === 'failed' ? outcome.reason : 'its session broke';
    }
    const { unavailableAfterMs, abandonAfterMs } = this.options;
    const boundMs = flight.givenUp ? abandonAfterMs : unavailableAfterMs;
    const waitMsMax = Math.max(0, flight.startedMs + boundMs - nowMs) + 1;
    return this.result({ kind: 'backoff', waitMsMax });
  }

  /** The flight is over (resolved, rejected, or the client closed): it leaves its places. */
  finish(id: FlightId): readonly ChainEffect[] {
    const flight = this.flightOf(id);
    // Also any places set aside for it that it never reached (the client closed).
    for (let at: Place | undefined = flight; at; ) {
      this.settle(at.session, at.seq);
      at = at.session.moves.get(at.seq);
    }
    this.flights.delete(id);
    return this.takeEffects();
  }

  private flightOf(id: FlightId): Flight {
    const flight = this.flights.get(id);
    assert(flight !== undefined, 'inputs name a running flight');
    return flight;
  }

  private result<T>(step: T): ChainResult<T> {
    if (this.effects.length === 0 && step === resolve) return resolvedAlone as ChainResult<T>;
    return { step, effects: this.takeEffects() };
  }

  private takeEffects(): readonly ChainEffect[] {
    // Most inputs have none: no array per input then (the client makes several per message).
    if (this.effects.length === 0) return noEffects;
    const effects = this.effects;
    this.effects = [];
    return effects;
  }

  /** The broadcast of `seq` left `session` (answered, failed or moved on). */
  private settle(session: ChainSession, seq: number): void {
    session.running.delete(seq);
    // Only flights of a successor wait on a session (a `wait` step names the predecessor):
    // while it has none, nobody is to be woken.
    if (session.successor !== null) this.effects.push({ kind: 'changed', sessionId: session.id });
  }

  /**
   * Where the message goes next: on to the place a break set aside for it; or a failure
   * when its session can no longer deliver it and it must not move.
   */
  private place(flight: Flight): ChainFailure | null {
    // Both rules hold at every session the message passes through, not only its first: a
    // move can take it to a session retired and broken since, and a fresh seq at the end of
    // the current one would then put it behind later broadcasts (simulator seed 0x39fd84,
    // figure8: #35 and #36 moved on from a retired session in the order they woke, #36
    // first, and were delivered in that order).
    for (;;) {
      const { session, seq } = flight;
      if (session.expired && flight.sent && !session.moves.has(seq)) {
        return failureOf(
          flight,
          `the nodes forgot session ${session.id} (session_unknown) while this broadcast was in flight; it may have been delivered before, so the client does not send it again, and its outcome is unknown`,
          { sent: true, withReason: false },
        );
      }
      if (
        session.retired &&
        session.broken &&
        seq > session.refusedSeq &&
        !session.moves.has(seq)
      ) {
        return failureOf(
          flight,
          `an earlier broadcast of session ${session.id} was refused after the session was retired; this one was not delivered (no seq above a refused one is)`,
          { sent: flight.sent, withReason: false },
        );
      }
      if (!session.broken || seq <= session.refusedSeq) return null;
      // An earlier seq of that session was refused, so this one can never be delivered
      // there: it goes to the seq the break set aside for it in the next session, in the
      // order of issue. A seq below the refused one stays where it is: it may be delivered
      // already, and moving it would deliver it twice.
      const move = session.moves.get(seq) ?? this.freshSeq();
      this.settle(session, seq);
      flight.session = move.session;
      flight.seq = move.seq;
      flight.session.running.set(flight.seq, flight);
      flight.sent = false;
    }
  }

  /** unavailableAfterMs, then abandonAfterMs: what passing each means for this message. */
  private checkBounds(flight: Flight, nowMs: number): ChainFailure | null {
    const { session, seq } = flight;
    const { unavailableAfterMs, abandonAfterMs } = this.options;
    const elapsedMs = nowMs - flight.startedMs;
    if (!flight.givenUp && elapsedMs > unavailableAfterMs) {
      const bound = `no endpoint accepted the broadcast within ${unavailableAfterMs} ms (${flight.lastReason})`;
      if (!flight.sent) {
        // A seq set aside for this message and never sent is a hole in its session: the
        // seqs after it move on, as after a refusal.
        this.breakSession(session, seq);
        return failureOf(flight, `${bound}; it was never sent`, { sent: false, withReason: true });
      }
      this.tellUnknown(
        flight,
        `${bound}; the client sends it on, so it may still be delivered once`,
      );
      this.retire(session);
    }
    if (flight.givenUp && elapsedMs > abandonAfterMs) {
      if (!flight.sent) {
        // It moved here (a break behind it) and never went out: a hole, as at the first
        // bound, which the seqs after it move past. It was never delivered where it was
        // sent before: no seq above a refused one is.
        this.breakSession(session, seq);
        return failureOf(
          flight,
          `no endpoint answered the broadcast within ${abandonAfterMs} ms; it was not delivered`,
          { sent: false, withReason: true },
        );
      }
      session.abandonedSentSeq = Math.min(session.abandonedSentSeq, seq);
      return failureOf(
        flight,
        `no endpoint answered the broadcast within ${abandonAfterMs} ms; the client stopped sending it, and its outcome stays unknown`,
        { sent: true, withReason: true },
      );
    }
    return null;
  }

  /** Tells its caller, unless told already, that its outcome is unknown; it is sent on. */
  private tellUnknown(flight: Flight, message: string): void {
    if (flight.givenUp) return;
    flight.givenUp = true;
    const failure = failureOf(flight, message, { sent: flight.sent, withReason: true });
    this.effects.push({ kind: 'tell', flight: flight.id, failure });
    // A successor waiting for this seq need not wait any longer.
    this.effects.push({ kind: 'changed', sessionId: flight.session.id });
  }

  /**
   * A refusal by a node: true when it is one for good (breaking the session as it
   * requires), false when it is a first message still on its way, to wait out.
   */
  private judgeRefusal(flight: Flight, code: string): boolean {
    const { session, seq } = flight;
    // Before any answer in the session, session_unknown means its first message has not
    // arrived yet; while a lower seq is still being sent, or was sent and abandoned (it may
    // land late), it is a gap to wait out.
    const firstOnItsWay =
      code === 'session_unknown' &&
      !session.acknowledged &&
      (session.runsBelow(seq) || seq > session.abandonedSentSeq);
    if (firstOnItsWay) return false;
    if (code === 'session_unknown' && session.acknowledged) {
      // Not a refusal of this message alone: every seq of the session is in doubt.
      // (Before any answer, with no lower seq left to arrive, it is a refusal of this
      // seq alone, as below.)
      session.expired = true;
      session.expiredAtSeq = seq;
      this.breakSession(session, 0);
    } else {
      this.breakSession(session, seq);
    }
    return true;
  }

  /** A new seq at the end of the current session. */
  private freshSeq(): Place {
    const session = this.current;
    const seq = session.nextSeq;
    session.nextSeq += 1;
    return { session, seq };
  }

  private cut(session: ChainSession): void {
    this.effects.push({ kind: 'cut', sessionId: session.id });
  }

  /**
   * A node refused a seq for good: the seqs above it still running move to the current
   * session (a new one if this was it), at new seqs in their order of issue, and their
   * attempts in flight here stop waiting.
   */
  private breakSession(session: ChainSession, refusedSeq: number): void {
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
      this.cut(session);
      return;
    }
    if (!session.broken) {
      session.broken = true;
      // Sessions other than the current one are broken: a session first breaks as current.
      assert(this.current === session, 'a session breaks first while it is the current one');
      this.successor(session);
    } else {
      // A lower seq refused after a higher one: the seqs between must go ahead of those
      // moved before, and those have not been sent (the successor still waits for the lower
      // seqs here, this refused one among them), so the successor starts over behind them.
      const successor = session.successor;
      assert(successor !== null && this.current === successor, 'the successor is current');
      assert(successor.predecessor === session, 'the successor has sent nothing yet');
      successor.broken = true;
      successor.refusedSeq = 0;
      this.successor(session);
      this.moveAbove(session);
      this.moveAbove(successor);
      this.cut(successor);
      this.cut(session);
      return;
    }
    this.moveAbove(session);
    this.cut(session);
  }

  /**
   * A message sent in `session` went unanswered past unavailableAfterMs, and its caller was
   * told so. If it never arrives the nodes hold every later seq of the session for good, so
   * later broadcasts go to a new session, which sends nothing while this one still runs
   * messages whose callers were told nothing: those may yet be answered as delivered, and
   * must not be overtaken. Nothing moves: what runs here may be delivered here yet.
   */
  private retire(session: ChainSession): void {
    if (this.current !== session || session.broken || session.retired) return;
    session.retired = true;
    this.successor(session);
  }

  /** A new current session after `session`, sending nothing before its lower seqs settle. */
  private successor(session: ChainSession): void {
    this.sessionCount += 1;
    this.current = new ChainSession(`${this.options.baseId}~${this.sessionCount}`);
    this.current.predecessor = session;
    session.successor = this.current;
  }

  /** Gives each seq still running above the refused one a new seq, in their order of issue. */
  private moveAbove(session: ChainSession): void {
    const behind = [...session.running.entries()]
      .filter(
        ([seq, flight]) =>
          seq > session.refusedSeq && !session.moves.has(seq) && this.movable(session, seq, flight),
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

  /** Whether a message above the refused seq may move to a new session. */
  private movable(session: ChainSession, seq: number, flight: Flight): boolean {
    if (!session.expired || !flight.sent) return true;
    // What an expired session sent may be delivered already: it never moves. The broken
    // variant moves it anyway (all but the one refused), and so may deliver it twice.
    return this.options.unsafe === 'moveSentMessage' && seq !== session.expiredAtSeq;
  }
}

/** The `unavailable` failure of `flight` at its current place. */
function failureOf(
  flight: Flight,
  message: string,
  how: { readonly sent: boolean; readonly withReason: boolean },
): ChainFailure {
  const details = how.withReason
    ? { client: flight.session.id, seq: flight.seq, lastReason: flight.lastReason, sent: how.sent }
    : { client: flight.session.id, seq: flight.seq, sent: how.sent };
  return { code: 'unavailable', message, details };
}
