/**
 * The session table: exactly-once delivery for client retries (Raft thesis §6.3, and the
 * idempotent-producer rule of a sequence per client). It is a pure function of the committed
 * entries, applied in log order on every replica, so every replica decides the same: which
 * message takes which position, which is a duplicate, which is refused.
 *
 * Per client, messages must arrive in sequence: seq == next is delivered, seq < next is a
 * duplicate (answered with its original position while remembered), seq > next is refused
 * (sequence_gap) so a lost message can never be overtaken by a later one — that is what
 * keeps one client's messages in sending order. A new session starts at seq 1. Sessions idle
 * for `sessionTtlMs` of log time expire; a client that comes back after that must start a
 * new session (its next seq is refused as session_unknown).
 *
 * Decisions are per run (consecutive seqs of one client, see batch.ts): one lookup and one
 * comparison however many messages the run holds.
 *
 * A session belongs to whoever sent its first message: its owner (the identity the node
 * authenticated, empty without authentication) and its nonce (the random value the client
 * sent with every message, empty when it sent none) are recorded when seq 1 is applied. A
 * later run with another owner is refused (session_forbidden), one with the same owner and
 * another nonce too (session_conflict: two clients picked one id), before anything else is
 * looked at, so neither is delivered, answered as a duplicate, or keeps the session alive.
 * Owner and nonce are in the log, so every replica binds the session to the same sender.
 */
import { assert } from '../util/assert.ts';
import type { DecodedBatch, MessageRun } from './batch.ts';
import { reservedTopicPrefix } from './message-rules.ts';

export interface SessionTableOptions {
  /** Idle sessions are forgotten after this much log time. */
  readonly sessionTtlMs: number;
  /** Positions remembered per client, to answer duplicates with their original position. */
  readonly recentPositionsMax: number;
  /**
   * Unsafe, never set outside tests: a seq that skips ahead of its session is delivered (the
   * session jumps past it) instead of refused with sequence_gap, breaking per-client FIFO.
   */
  readonly unsafeDeliverSeqGapAtOnce?: boolean;
  /**
   * Unsafe, never set outside tests: a table restored from a snapshot forgets every session
   * (positions and log time stay), so retries of delivered messages are delivered again.
   */
  readonly unsafeDropSessionsOnRestore?: boolean;
  /**
   * Unsafe, never set outside tests: a session takes messages of any identity (only the
   * nonce is compared), so whoever copies a client's nonce writes in its session.
   */
  readonly unsafeIgnoreSessionOwner?: boolean;
}

export type RefusalCode =
  | 'sequence_gap'
  | 'session_unknown'
  | 'session_forbidden'
  | 'session_conflict';

/**
 * For an accepted run, its first `duplicateCount` messages were delivered before; the rest
 * take positions `firstPosition`, `firstPosition + 1`, … (none when all are duplicates).
 */
export type RunOutcome =
  | { readonly kind: 'accepted'; readonly duplicateCount: number; readonly firstPosition: number }
  /** A control run (a reserved `$` topic): deduplicated like any other, but takes no position. */
  | { readonly kind: 'control'; readonly duplicateCount: number }
  /** `expectedSeq` is 0 for session_forbidden and session_conflict: not the sender's business. */
  | { readonly kind: 'refused'; readonly code: RefusalCode; readonly expectedSeq: number };

/** One message's fate, for callers that look at messages one by one. */
export type MessageOutcome =
  | { readonly kind: 'delivered'; readonly position: number }
  | { readonly kind: 'control'; readonly duplicate: boolean }
  | { readonly kind: 'duplicate'; readonly position: number | null }
  | { readonly kind: 'refused'; readonly code: RefusalCode; readonly expectedSeq: number };

/** Positions of seqs [firstSeq, firstSeq + count). */
type Segment = [firstSeq: number, firstPosition: number, count: number];

interface Session {
  /** Who sent seq 1 (empty: nobody authenticated), and their nonce (empty: none). */
  readonly owner: string;
  readonly nonce: string;
  nextSeq: number;
  lastActiveMs: number;
  /** Recent delivered seqs and their positions, oldest first, at most recentPositionsMax. */
  recent: Segment[];
  recentCount: number;
}

/**
 * Version 1 has no owners or nonces (every session's are empty); version 2 adds them to
 * each session. A table where every owner and nonce is empty is written as version 1, so a
 * cluster that does not use them keeps snapshots an older node can read.
 */
type SessionTableSnapshot =
  | {
      readonly version: 1;
      readonly position: number;
      readonly logTimeMs: number;
      readonly lastSweepMs: number;
      readonly sessions: readonly [string, number, number, readonly Segment[]][];
    }
  | {
      readonly version: 2;
      readonly position: number;
      readonly logTimeMs: number;
      readonly lastSweepMs: number;
      readonly sessions: readonly [string, number, number, readonly Segment[], string, string][];
    };

export class SessionTable {
  /** The position of the last delivered message; positions are dense from 1. */
  private position = 0;
  private logTimeMsMax = 0;

  /** The log's clock: the largest batch time applied, so it never goes back. */
  get logTimeMs(): number {
    return this.logTimeMsMax;
  }
  private lastSweepMs = 0;
  private readonly sessions = new Map<string, Session>();
  /** Derived from `sessions` (never written to a snapshot): sessions per owner. */
  private readonly ownerCounts = new Map<string, number>();

  constructor(private readonly options: SessionTableOptions) {
    assert(options.sessionTtlMs > 0, 'sessionTtlMs is positive');
    assert(options.recentPositionsMax >= 1, 'recentPositionsMax is at least 1');
  }

  get lastPosition(): number {
    return this.position;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Sessions started by `owner` (an identity; '' without authentication) and not expired. */
  sessionCountOf(owner: string): number {
    return this.ownerCounts.get(owner) ?? 0;
  }

  private countOwner(owner: string, change: 1 | -1): void {
    const count = (this.ownerCounts.get(owner) ?? 0) + change;
    assert(count >= 0, 'an owner never has fewer than no sessions');
    if (count === 0) this.ownerCounts.delete(owner);
    else this.ownerCounts.set(owner, count);
  }

  /** Decides every message of one committed batch, in order, one outcome per message. */
  apply(batch: DecodedBatch): MessageOutcome[] {
    const outcomes: MessageOutcome[] = [];
    this.applyRuns(batch).forEach((outcome, offset) => {
      const run = batch.runs[offset] as MessageRun;
      for (let position = 0; position < run.payloads.length; position++) {
        outcomes.push(this.messageOutcome(run, outcome, position));
      }
    });
    return outcomes;
  }

  private messageOutcome(run: MessageRun, outcome: RunOutcome, offset: number): MessageOutcome {
    if (outcome.kind === 'refused') return outcome;
    if (outcome.kind === 'control')
      return { kind: 'control', duplicate: offset < outcome.duplicateCount };
    if (offset >= outcome.duplicateCount) {
      return {
        kind: 'delivered',
        position: outcome.firstPosition + offset - outcome.duplicateCount,
      };
    }
    const known = this.deliveredPosition(run.clientId, run.firstSeq + offset);
    return { kind: 'duplicate', position: known?.position ?? null };
  }

  /** Decides every run of one committed batch, in order: the hot path. */
  applyRuns(batch: DecodedBatch): RunOutcome[] {
    // Log time only moves forward, whatever the clocks of the nodes that stamped batches.
    if (batch.logTimeMs > this.logTimeMsMax) this.logTimeMsMax = batch.logTimeMs;
    this.maybeExpire();
    return batch.runs.map((run) => this.applyRun(run));
  }

  private applyRun(run: MessageRun): RunOutcome {
    const count = run.payloads.length;
    assert(count > 0, 'runs are not empty');
    const control = run.topic.startsWith(reservedTopicPrefix);
    if (run.clientId === '' && control) return { kind: 'control', duplicateCount: 0 };
    if (run.clientId === '') {
      const firstPosition = this.position + 1;
      this.position += count;
      return { kind: 'accepted', duplicateCount: 0, firstPosition };
    }
    let session = this.sessions.get(run.clientId);
    if (session === undefined) {
      if (run.firstSeq !== 1) return { kind: 'refused', code: 'session_unknown', expectedSeq: 1 };
      session = {
        owner: run.owner,
        nonce: run.nonce,
        nextSeq: 1,
        lastActiveMs: this.logTimeMsMax,
        recent: [],
        recentCount: 0,
      };
      this.sessions.set(run.clientId, session);
      this.countOwner(run.owner, 1);
    }
    const foreign = foreignRefusal(session, run.owner, run.nonce, this.ownerChecked);
    if (foreign !== null) return { kind: 'refused', code: foreign, expectedSeq: 0 };
    session.lastActiveMs = this.logTimeMsMax;
    if (run.firstSeq > session.nextSeq) {
      if (this.options.unsafeDeliverSeqGapAtOnce !== true) {
        return { kind: 'refused', code: 'sequence_gap', expectedSeq: session.nextSeq };
      }
      session.nextSeq = run.firstSeq; // unsafe: the skipped seqs are never delivered in order
    }
    const duplicateCount = Math.min(count, session.nextSeq - run.firstSeq);
    const deliveredCount = count - duplicateCount;
    if (control) {
      // The session moves on, so a retried control record stays exactly-once, but no
      // position is taken and nothing is remembered for positions.
      session.nextSeq += deliveredCount;
      return { kind: 'control', duplicateCount };
    }
    const firstPosition = this.position + 1;
    if (deliveredCount > 0) {
      this.remember(session, session.nextSeq, firstPosition, deliveredCount);
      session.nextSeq += deliveredCount;
      this.position += deliveredCount;
    }
    return { kind: 'accepted', duplicateCount, firstPosition };
  }

  private remember(session: Session, firstSeq: number, firstPosition: number, count: number): void {
    const last = session.recent[session.recent.length - 1];
    // Consecutive seqs at consecutive positions extend the last segment.
    if (
      last !== undefined &&
      last[0] + last[2] === firstSeq &&
      last[1] + last[2] === firstPosition
    ) {
      last[2] += count;
    } else {
      session.recent.push([firstSeq, firstPosition, count]);
    }
    session.recentCount += count;
    let excess = session.recentCount - this.options.recentPositionsMax;
    while (excess > 0) {
      const oldest = session.recent[0] as Segment;
      const dropped = Math.min(excess, oldest[2]);
      oldest[0] += dropped;
      oldest[1] += dropped;
      oldest[2] -= dropped;
      if (oldest[2] === 0) session.recent.shift();
      session.recentCount -= dropped;
      excess -= dropped;
    }
  }

  /** Sweeps a few times per TTL, so the cost is amortised over many batches. */
  private maybeExpire(): void {
    const ttl = this.options.sessionTtlMs;
    if (this.logTimeMsMax - this.lastSweepMs < ttl / 8) return;
    this.lastSweepMs = this.logTimeMsMax;
    for (const [clientId, session] of this.sessions) {
      if (this.logTimeMsMax - session.lastActiveMs > ttl) {
        this.sessions.delete(clientId);
        this.countOwner(session.owner, -1);
      }
    }
  }

  /**
   * Whether (clientId, seq) was already delivered, and at which position if remembered;
   * undefined when it was not (yet).
   */
  deliveredPosition(clientId: string, seq: number): { position: number | null } | undefined {
    const session = this.sessions.get(clientId);
    if (session === undefined || seq >= session.nextSeq) return undefined;
    for (const [firstSeq, firstPosition, count] of session.recent) {
      if (seq >= firstSeq && seq < firstSeq + count)
        return { position: firstPosition + (seq - firstSeq) };
    }
    return { position: null };
  }

  /**
   * Whether a message of `owner` with `nonce` would be refused in this client's session as
   * it stands (session_forbidden, session_conflict), or null: a session not started yet
   * belongs to whoever's seq 1 is applied first.
   */
  foreignRefusal(
    clientId: string,
    owner: string,
    nonce: string,
  ): 'session_forbidden' | 'session_conflict' | null {
    const session = this.sessions.get(clientId);
    return session === undefined ? null : foreignRefusal(session, owner, nonce, this.ownerChecked);
  }

  private get ownerChecked(): boolean {
    return this.options.unsafeIgnoreSessionOwner !== true;
  }

  /** Whether the client has a session (started and not expired). */
  knows(clientId: string): boolean {
    return this.sessions.has(clientId);
  }

  /** The next seq this client must send, or 1 for a client without a session. */
  expectedSeq(clientId: string): number {
    return this.sessions.get(clientId)?.nextSeq ?? 1;
  }

  toSnapshot(): Uint8Array {
    const sessions = [...this.sessions];
    const owned = sessions.some(([, s]) => s.owner !== '' || s.nonce !== '');
    const common = {
      position: this.position,
      logTimeMs: this.logTimeMsMax,
      lastSweepMs: this.lastSweepMs,
    };
    const snapshot: SessionTableSnapshot = owned
      ? {
          version: 2,
          ...common,
          sessions: sessions.map(([id, s]) => [
            id,
            s.nextSeq,
            s.lastActiveMs,
            s.recent,
            s.owner,
            s.nonce,
          ]),
        }
      : {
          version: 1,
          ...common,
          sessions: sessions.map(([id, s]) => [id, s.nextSeq, s.lastActiveMs, s.recent]),
        };
    return new TextEncoder().encode(JSON.stringify(snapshot));
  }

  static fromSnapshot(data: Uint8Array, options: SessionTableOptions): SessionTable {
    const parsed = JSON.parse(new TextDecoder().decode(data)) as SessionTableSnapshot;
    assert(parsed.version === 1 || parsed.version === 2, 'session snapshots are version 1 or 2');
    const table = new SessionTable(options);
    table.position = parsed.position;
    table.logTimeMsMax = parsed.logTimeMs;
    table.lastSweepMs = parsed.lastSweepMs;
    if (options.unsafeDropSessionsOnRestore === true) return table;
    for (const [id, nextSeq, lastActiveMs, recent, owner, nonce] of parsed.sessions) {
      const segments = recent.map((segment) => [...segment] as Segment);
      const recentCount = segments.reduce((sum, segment) => sum + segment[2], 0);
      table.countOwner(owner ?? '', 1);
      table.sessions.set(id, {
        owner: owner ?? '',
        nonce: nonce ?? '',
        nextSeq,
        lastActiveMs,
        recent: segments,
        recentCount,
      });
    }
    return table;
  }
}

/** The refusal a message of `owner` with `nonce` meets in `session`, or null when it is theirs. */
function foreignRefusal(
  session: Session,
  owner: string,
  nonce: string,
  ownerChecked: boolean,
): 'session_forbidden' | 'session_conflict' | null {
  if (ownerChecked && owner !== session.owner) return 'session_forbidden';
  if (nonce !== session.nonce) return 'session_conflict';
  return null;
}
