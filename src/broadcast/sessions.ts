/**
 * The session table: exactly-once delivery for client retries (Raft thesis §6.3, and the
 * idempotent-producer rule of a sequence per client). It is a pure function of the committed
 * entries, applied in log order on every replica, so every replica decides the same: which
 * message takes which position, which is a duplicate, which is refused.
 *
 * Per client, messages must arrive in sequence: seq == next is delivered, seq < next is a
 * duplicate (answered with its original position while remembered), seq > next is refused
 * (SEQUENCE_GAP) so a lost message can never be overtaken by a later one — that is what
 * keeps one client's messages in sending order. A new session starts at seq 1. Sessions idle
 * for `sessionTtlMs` of log time expire; a client that comes back after that must start a
 * new session (its next seq is refused as SESSION_UNKNOWN).
 */
import { assert } from '../util/assert.ts';
import type { DecodedBatch } from './batch.ts';

export interface SessionTableOptions {
  /** Idle sessions are forgotten after this much log time. */
  readonly sessionTtlMs: number;
  /** Positions remembered per client, to answer duplicates with their original position. */
  readonly recentPositionsMax: number;
}

export type RefusalCode = 'SEQUENCE_GAP' | 'SESSION_UNKNOWN';

export type MessageOutcome =
  | { readonly kind: 'delivered'; readonly position: number }
  | { readonly kind: 'duplicate'; readonly position: number | null }
  | { readonly kind: 'refused'; readonly code: RefusalCode; readonly expectedSeq: number };

interface Session {
  nextSeq: number;
  lastActiveMs: number;
  /** Positions of seqs [nextSeq - recent.length, nextSeq - 1]. */
  recent: number[];
}

interface SessionTableSnapshot {
  readonly version: 1;
  readonly position: number;
  readonly logTimeMs: number;
  readonly lastSweepMs: number;
  readonly sessions: readonly [string, number, number, readonly number[]][];
}

export class SessionTable {
  /** The position of the last delivered message; positions are dense from 1. */
  private position = 0;
  private logTimeMs = 0;
  private lastSweepMs = 0;
  private readonly sessions = new Map<string, Session>();

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

  /** Decides every message of one committed batch, in order. */
  apply(batch: DecodedBatch): MessageOutcome[] {
    // Log time only moves forward, whatever the clocks of the nodes that stamped batches.
    if (batch.logTimeMs > this.logTimeMs) this.logTimeMs = batch.logTimeMs;
    this.maybeExpire();
    const outcomes: MessageOutcome[] = [];
    for (const message of batch.messages) {
      if (message.clientId === '') {
        outcomes.push({ kind: 'delivered', position: ++this.position });
        continue;
      }
      outcomes.push(this.applyClientMessage(message.clientId, message.seq));
    }
    return outcomes;
  }

  private applyClientMessage(clientId: string, seq: number): MessageOutcome {
    let session = this.sessions.get(clientId);
    if (session === undefined) {
      if (seq !== 1) return { kind: 'refused', code: 'SESSION_UNKNOWN', expectedSeq: 1 };
      session = { nextSeq: 1, lastActiveMs: this.logTimeMs, recent: [] };
      this.sessions.set(clientId, session);
    }
    session.lastActiveMs = this.logTimeMs;
    if (seq > session.nextSeq) {
      return { kind: 'refused', code: 'SEQUENCE_GAP', expectedSeq: session.nextSeq };
    }
    if (seq < session.nextSeq) {
      const back = session.nextSeq - seq;
      const position =
        back <= session.recent.length ? session.recent[session.recent.length - back] : null;
      return { kind: 'duplicate', position: position ?? null };
    }
    const position = ++this.position;
    session.nextSeq++;
    session.recent.push(position);
    if (session.recent.length > this.options.recentPositionsMax) session.recent.shift();
    return { kind: 'delivered', position };
  }

  /** Sweeps a few times per TTL, so the cost is amortised over many batches. */
  private maybeExpire(): void {
    const ttl = this.options.sessionTtlMs;
    if (this.logTimeMs - this.lastSweepMs < ttl / 8) return;
    this.lastSweepMs = this.logTimeMs;
    for (const [clientId, session] of this.sessions) {
      if (this.logTimeMs - session.lastActiveMs > ttl) this.sessions.delete(clientId);
    }
  }

  /**
   * Whether (clientId, seq) was already delivered, and at which position if remembered;
   * undefined when it was not (yet).
   */
  deliveredPosition(clientId: string, seq: number): { position: number | null } | undefined {
    const session = this.sessions.get(clientId);
    if (session === undefined || seq >= session.nextSeq) return undefined;
    const back = session.nextSeq - seq;
    const position =
      back <= session.recent.length ? session.recent[session.recent.length - back] : null;
    return { position: position ?? null };
  }

  /** The next seq this client must send, or 1 for a client without a session. */
  expectedSeq(clientId: string): number {
    return this.sessions.get(clientId)?.nextSeq ?? 1;
  }

  toSnapshot(): Uint8Array {
    const snapshot: SessionTableSnapshot = {
      version: 1,
      position: this.position,
      logTimeMs: this.logTimeMs,
      lastSweepMs: this.lastSweepMs,
      sessions: [...this.sessions].map(([id, s]) => [id, s.nextSeq, s.lastActiveMs, s.recent]),
    };
    return new TextEncoder().encode(JSON.stringify(snapshot));
  }

  static fromSnapshot(data: Uint8Array, options: SessionTableOptions): SessionTable {
    const parsed = JSON.parse(new TextDecoder().decode(data)) as SessionTableSnapshot;
    assert(parsed.version === 1, 'session snapshots are version 1');
    const table = new SessionTable(options);
    table.position = parsed.position;
    table.logTimeMs = parsed.logTimeMs;
    table.lastSweepMs = parsed.lastSweepMs;
    for (const [id, nextSeq, lastActiveMs, recent] of parsed.sessions) {
      table.sessions.set(id, { nextSeq, lastActiveMs, recent: [...recent] });
    }
    return table;
  }
}
