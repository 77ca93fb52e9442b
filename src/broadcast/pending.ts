/**
 * The messages a node has accepted and the log has not decided yet, found by session:
 * client id first, then seq, so that applying a run costs one lookup by client.
 */
import { assert } from '../util/assert.ts';
import type { ClientMessage } from './batch.ts';
import type { BroadcastError } from './errors.ts';

export interface BroadcastResult {
  /** Null only for a duplicate older than the per-client window of remembered positions. */
  readonly position: number | null;
  /** The log entry that carried the message; null for a duplicate. */
  readonly index: number | null;
  readonly term: number | null;
  /** True when this (clientId, seq) was delivered before: `position` is the original one. */
  readonly duplicate: boolean;
}

export interface Waiter {
  readonly resolve: (result: BroadcastResult) => void;
  readonly reject: (error: BroadcastError) => void;
  /** On the environment's monotonic clock. */
  readonly deadlineMs: number;
  /** Moves when our own session restarts and its messages are tracked anew. */
  entry: PendingMessage;
  settled: boolean;
}

/**
 * Where a pending message is, exactly one of: `queued` in the outbox (to be sent), `proposed`
 * (the leader placed our last copy at `proposedIndex`), `held` until its turn (gap-hold.ts),
 * or waiting for a retry (none of these: sent, place unknown). The outbox moves it between them; the table asserts it is never two.
 */
export interface PendingMessage {
  readonly message: ClientMessage;
  /** The node's own session: retried until delivered, since a gap would block the rest. */
  readonly ownSession: boolean;
  readonly waiters: Waiter[];
  /** When the last copy left, on the monotonic clock. */
  lastSentMs: number;
  /**
   * Where the leader appended the last copy we sent, once known. While it is set the
   * message is not sent again: it either commits there or that index is taken by another
   * entry (then the copy is lost and goes again), or the leader changes.
   */
  proposedIndex: number | null;
  /** Set when a copy was refused for a gap, or the message was held for one. */
  gapExpectedSeq?: number;
  queued: boolean;
  /** Waiting for its turn (gap-hold.ts): not sent until the seqs before it are on their way. */
  held: boolean;
  /** Copies handed to the leader so far: with none, nothing of it can still commit. */
  copiesSent: number;
}

/** Asserts the one-stage rule above; returns the stage, for callers that branch on it. */
export function stageOf(entry: PendingMessage): 'queued' | 'proposed' | 'waiting' | 'held' {
  assert(
    !(entry.queued && entry.proposedIndex !== null),
    'a pending message is queued or proposed, not both',
  );
  assert(
    !(entry.held && (entry.queued || entry.proposedIndex !== null)),
    'a held message is neither queued nor proposed',
  );
  if (entry.held) return 'held';
  if (entry.queued) return 'queued';
  return entry.proposedIndex === null ? 'waiting' : 'proposed';
}

/**
 * One client's pending messages by seq, with what the gap hold needs to judge a message in
 * O(1) amortized instead of a scan of every earlier seq (10,000 in flight from one client
 * made that scan quadratic): how many were ever removed, and the lowest seq.
 */
export class ClientPending extends Map<number, PendingMessage> {
  /** Bumped by every removal: a range found complete stays so while it is unchanged. */
  removals = 0;
  private lowest = Number.POSITIVE_INFINITY;
  private lowestKnown = true;

  override set(seq: number, entry: PendingMessage): this {
    if (seq < this.lowest) this.lowest = seq;
    return super.set(seq, entry);
  }

  override delete(seq: number): boolean {
    const removed = super.delete(seq);
    if (removed) {
      this.removals++;
      if (seq === this.lowest) this.lowestKnown = false;
    }
    return removed;
  }

  /** The lowest pending seq (Infinity when none). */
  lowestSeq(): number {
    if (!this.lowestKnown) {
      this.lowest = Number.POSITIVE_INFINITY;
      for (const seq of this.keys()) if (seq < this.lowest) this.lowest = seq;
      this.lowestKnown = true;
    }
    return this.lowest;
  }
}

export class PendingTable {
  private readonly byClient = new Map<string, ClientPending>();
  private count = 0;
  private payloadBytes = 0;

  get size(): number {
    return this.count;
  }

  /** Payload bytes of the pending messages: what waiting for the log holds in memory. */
  get bytes(): number {
    return this.payloadBytes;
  }

  get(clientId: string, seq: number): PendingMessage | undefined {
    return this.byClient.get(clientId)?.get(seq);
  }

  forClient(clientId: string): ClientPending | undefined {
    return this.byClient.get(clientId);
  }

  has(entry: PendingMessage): boolean {
    return this.get(entry.message.clientId, entry.message.seq) === entry;
  }

  add(entry: PendingMessage): void {
    const { clientId, seq } = entry.message;
    assert(
      entry.waiters.every((waiter) => !waiter.settled),
      'a new pending entry has live waiters',
    );
    let bySeq = this.byClient.get(clientId);
    if (bySeq === undefined) {
      bySeq = new ClientPending();
      this.byClient.set(clientId, bySeq);
    }
    assert(!bySeq.has(seq), 'one pending entry per (clientId, seq)');
    bySeq.set(seq, entry);
    this.count++;
    this.payloadBytes += entry.message.payload.byteLength;
  }

  delete(entry: PendingMessage): void {
    const { clientId, seq } = entry.message;
    const bySeq = this.byClient.get(clientId);
    if (bySeq?.get(seq) !== entry) return;
    bySeq.delete(seq);
    this.count--;
    this.payloadBytes -= entry.message.payload.byteLength;
    assert(this.count >= 0 && this.payloadBytes >= 0, 'the table never counts below zero');
    if (bySeq.size === 0) this.byClient.delete(clientId);
  }

  /**
   * Answers every caller waiting on `entry`, with the result or else the error, and forgets
   * the entry: it is decided and will not be sent again.
   */
  settle(
    entry: PendingMessage,
    result: BroadcastResult | null,
    error: BroadcastError | null,
  ): void {
    assert((result === null) !== (error === null), 'an entry settles with a result or an error');
    this.delete(entry);
    for (const waiter of entry.waiters) {
      waiter.settled = true;
      if (result !== null) waiter.resolve(result);
      else waiter.reject(error as BroadcastError);
    }
    entry.queued = false;
    entry.held = false;
    entry.proposedIndex = null;
  }

  /** Client by client, each in the order its messages were accepted. */
  *values(): Generator<PendingMessage> {
    for (const bySeq of this.byClient.values()) yield* bySeq.values();
  }
}
