/**
 * The records of the session chain (./session-chain.ts): one session (an id and its seqs)
 * and one broadcast on its way (a flight). Plain state, no I/O; the chain changes them.
 */
import { KeyWindow } from './key-window.ts';

export type FlightId = number;

/** A (session, seq) place. */
export interface Place {
  readonly session: ChainSession;
  readonly seq: number;
}

/** One broadcast on its way: where it is now, and what its caller has been told. */
export class Flight implements Place {
  /** Its caller was told its outcome is unknown: later broadcasts need not wait for it. */
  givenUp = false;
  /** Whether its current (session, seq) went out at least once: one never sent is a hole. */
  sent = false;
  lastReason = 'no attempt';

  constructor(
    readonly id: FlightId,
    public session: ChainSession,
    public seq: number,
    /** The chain's clock when it was issued: its bounds run from here. */
    readonly startedMs: number,
    /** The caller's record of the broadcast (the client's), kept here instead of in a map. */
    readonly owner: unknown,
  ) {}
}

/** One session: its id and the next seq. Broken once a node refused one of its seqs. */
export class ChainSession {
  nextSeq = 1;
  broken = false;
  /**
   * The nodes answered `session_unknown`: they forgot this session (idle past their
   * sessionTtlMs, or a log time that jumped). Whatever was sent in it may have been
   * delivered before, so none of it is sent again or moved; what was never sent moves on.
   */
  expired = false;
  /** The seq whose answer said the session expired (the broken variant keeps it alone). */
  expiredAtSeq = 0;
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
  readonly running = new KeyWindow<Flight>();
  /** Once broken: where each seq above the refused one goes, in the order they were issued. */
  readonly moves = new Map<number, Place>();
  /**
   * The session this one replaced after a refusal, while seqs below the refused one still
   * run there: nothing is sent here before they settle, or it could overtake them.
   */
  predecessor: ChainSession | null = null;
  /** The session that took over when this one broke. */
  successor: ChainSession | null = null;
  /**
   * No longer the current session although no seq of it was refused: a message sent in it
   * went unanswered past unavailableAfterMs (the nodes hold its later seqs until that one
   * arrives, which may be never), or its successor started sending while seqs here whose
   * callers were told their outcome is unknown still ran. Its messages still running finish
   * there; none moves out (see SessionChain.breakSession).
   */
  retired = false;

  constructor(readonly id: string) {}

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
}
