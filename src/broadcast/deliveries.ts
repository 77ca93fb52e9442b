/**
 * The delivered messages a node serves, and the subscriptions that read them. The messages
 * themselves live in the message store (src/store), on disk in production; this keeps the
 * few numbers that say what may be read:
 *
 * - `lastPosition`: the last position applied here. The store may hold more after a restart
 *   (it was written before the crash); those are served once applied again.
 * - `firstRetainedPosition`: retention's floor, recorded in the log (retention.ts), the same
 *   on every node. A read below it is `compacted`.
 * - holes: positions at or above the floor that this node's store lacks (it restarted from
 *   a snapshot, or joined late, or lost unsynced writes in a crash). A read there is
 *   `not_held`, and the server forwards it to a peer while backfill fills the hole.
 *
 * A store without backfill (the in-memory twin of the runtime's tests and the simulator)
 * treats a hole as compacted instead, as a node that only keeps what it saw; and it may
 * bound what it keeps (`retainBytesMax`), dropping its oldest segments.
 */

import type { StoredMessage, StoredRun, StoreRange } from '../store/index.ts';
import { MemoryStoreFiles, MessageStore } from '../store/index.ts';
import { assert } from '../util/assert.ts';
import { BroadcastError } from './errors.ts';
import { topicFloor } from './retention.ts';

export type DeliveredMessage = StoredMessage;

export interface DeliveryLogOptions {
  readonly store: MessageStore;
  /**
   * Whether holes are filled from peers (so reads there are `not_held`) or never (so they
   * are `compacted`, and the local floor moves past them).
   */
  readonly backfill: boolean;
  /** Store bytes kept at most, oldest segments dropped first; null: no bound. */
  readonly retainBytesMax: number | null;
}

/** The in-memory twin: a store of memory files, no backfill, bounded. */
export function memoryDeliveryLogOptions(retainBytesMax: number): DeliveryLogOptions {
  const segmentBytesMax = Math.max(4096, Math.floor(retainBytesMax / 8));
  return {
    store: new MessageStore({ files: new MemoryStoreFiles(), segmentBytesMax }),
    backfill: false,
    retainBytesMax,
  };
}

const followBatchCount = 1024;
const followBatchBytesMax = 1 << 20;

export class DeliveryLog {
  readonly store: MessageStore;
  private appliedPosition = 0;
  /** Retention's floor, from the log. */
  private retainedFrom = 1;
  /** Without backfill: nothing before it is held, nor will be. */
  private localFrom = 1;
  private waiters: (() => void)[] = [];
  private closed = false;
  /** Topics with an age of their own (retention.ts), and the log's clock. */
  private topicAgesMs = new Map<string, number>();
  private logNowMs: () => number = () => 0;
  /** Each topic's floor as last found: it never moves back, so a search starts there. */
  private readonly topicFloors = new Map<string, number>();

  constructor(private readonly options: DeliveryLogOptions) {
    this.store = options.store;
    assert(
      options.retainBytesMax === null || options.retainBytesMax > 0,
      'retainBytesMax is positive',
    );
  }

  get lastPosition(): number {
    return this.appliedPosition;
  }

  /** The first position any node of the cluster may still serve (retention's floor). */
  get firstRetainedPosition(): number {
    return Math.max(this.retainedFrom, this.localFrom);
  }

  /** Per-topic retention: topic → age in log time (null: forever), and the log's clock. */
  setTopicRetention(topics: Readonly<Record<string, number | null>>, logNowMs: () => number): void {
    this.topicAgesMs = new Map();
    for (const [topic, ageMs] of Object.entries(topics)) {
      assert(ageMs === null || ageMs > 0, 'a topic age is positive');
      if (ageMs !== null) this.topicAgesMs.set(topic, ageMs);
    }
    this.logNowMs = logNowMs;
  }

  /**
   * The first position a read of `topic` may start at, when the topic has an age of its
   * own (retention.ts): null otherwise (the retained range's floor applies). Throws
   * not_held when the search meets a position this node does not hold yet.
   */
  topicFloor(topic: string): number | null {
    const ageMs = this.topicAgesMs.get(topic);
    if (ageMs === undefined) return null;
    const from = Math.max(this.topicFloors.get(topic) ?? 1, this.firstRetainedPosition);
    const found = topicFloor(this.store, {
      topic,
      from,
      lastPosition: this.appliedPosition,
      cutoffMs: this.logNowMs() - ageMs,
    });
    if ('hole' in found) {
      throw new BroadcastError('not_held', `position ${found.hole} is not on this node yet`, {
        position: found.hole,
        firstPosition: this.firstRetainedPosition,
      });
    }
    this.topicFloors.set(topic, found.floor);
    return found.floor;
  }

  append(message: DeliveredMessage): void {
    assert(message.position === this.appliedPosition + 1, 'delivered positions are dense');
    this.store.append(message);
    this.appliedPosition = message.position;
  }

  /**
   * `run`'s messages from `from` on, at positions from `firstPosition` on: what `append`
   * does message by message, without an object per message.
   */
  appendRun(run: StoredRun, from: number, firstPosition: number): void {
    assert(firstPosition === this.appliedPosition + 1, 'delivered positions are dense');
    if (from >= run.payloads.length) return;
    this.store.appendRun(run, from, firstPosition);
    this.appliedPosition = firstPosition + run.payloads.length - from - 1;
  }

  /** Writes the batch to the store and wakes subscribers; once per applied batch. */
  notify(): void {
    this.store.batchApplied();
    if (this.options.retainBytesMax !== null) this.bound(this.options.retainBytesMax);
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Positions before `nextPosition` are applied (a snapshot was installed, or the node
   * starts from one). What the store holds after them is dropped: the WAL applies it again,
   * so the store says what the log says, even where a crash left it ahead.
   */
  resetTo(nextPosition: number): void {
    assert(nextPosition >= this.appliedPosition + 1, 'a restore never moves positions back');
    this.appliedPosition = nextPosition - 1;
    this.store.truncateAfter(this.appliedPosition);
    this.store.forgetCompaction();
    if (!this.options.backfill) {
      // Without backfill, a hole is for good: only what follows the snapshot will be held.
      this.localFrom = nextPosition;
      this.store.dropBefore(nextPosition);
    }
    this.notify();
  }

  /** Retention moved its floor (a committed record): whole segments before it go. */
  retainFrom(position: number): void {
    if (position <= this.retainedFrom) return;
    this.retainedFrom = position;
    this.store.dropBefore(position);
  }

  /** Positions between the floor and the last applied that this node does not hold. */
  missingRanges(): StoreRange[] {
    const missing: StoreRange[] = [];
    let cursor = this.firstRetainedPosition;
    for (const range of this.store.ranges()) {
      if (cursor > this.appliedPosition) break;
      if (range.last < cursor) continue;
      if (range.first > cursor) {
        missing.push({ first: cursor, last: Math.min(range.first - 1, this.appliedPosition) });
      }
      cursor = range.last + 1;
    }
    if (cursor <= this.appliedPosition) missing.push({ first: cursor, last: this.appliedPosition });
    return missing;
  }

  /**
   * Messages of a hole, fetched from a peer and checked by the caller: dense, each within
   * what is retained and applied. Returns how many were new here.
   */
  fill(messages: readonly DeliveredMessage[]): number {
    let added = 0;
    let previous = 0;
    for (const message of messages) {
      assert(previous === 0 || message.position === previous + 1, 'a fill is dense');
      assert(message.position <= this.appliedPosition, 'a fill holds applied positions only');
      previous = message.position;
      if (message.position < this.firstRetainedPosition) continue;
      if (this.store.append(message)) added++;
    }
    this.store.flush();
    return added;
  }

  /**
   * Up to `limit` messages from `from` on (fewer at a hole or the end, or once their payloads
   * reach `bytesMax`).
   */
  read(from: number, limit: number, bytesMax = Number.POSITIVE_INFINITY): DeliveredMessage[] {
    assert(Number.isSafeInteger(from) && from >= 1, 'positions start at 1');
    this.checkHeld(from);
    if (from > this.appliedPosition) return [];
    return this.guarded(() =>
      this.store.read(from, Math.min(limit, this.appliedPosition - from + 1), bytesMax),
    );
  }

  /**
   * `read` for readers that copy records out as bytes: `take` gets each record's body (a
   * view valid only during the call, laid out as src/store/record.ts says) and answers the
   * payload bytes it counts against `bytesMax`. Returns how many it was given.
   */
  readRecords(
    from: number,
    limit: number,
    bytesMax: number,
    take: (body: Buffer) => number,
  ): number {
    assert(Number.isSafeInteger(from) && from >= 1, 'positions start at 1');
    this.checkHeld(from);
    if (from > this.appliedPosition) return 0;
    const count = Math.min(limit, this.appliedPosition - from + 1);
    return this.guarded(() => this.store.visit(from, count, bytesMax, take));
  }

  /** Up to `limit` messages of `topic` from `from` on, examining `positionsMax` at most. */
  readTopic(
    topic: string,
    from: number,
    limit: number,
    positionsMax: number,
  ): { messages: DeliveredMessage[]; next: number } {
    this.checkHeld(from);
    const floor = this.topicFloor(topic);
    if (floor !== null && from < floor) {
      throw new BroadcastError('compacted', `position ${from} of ${topic} is no longer kept`, {
        firstPosition: floor,
        topic,
      });
    }
    if (from > this.appliedPosition) return { messages: [], next: from };
    const scan = Math.min(positionsMax, this.appliedPosition - from + 1);
    return this.guarded(() => this.store.readTopic(topic, from, limit, scan));
  }

  /**
   * Told of a failed system call of the store met by a read (the node stops on it): a read
   * writes what the store buffered first, and a failed write leaves the store short of what
   * it counted, as a failed write while applying does.
   */
  onStoreFailure: ((error: unknown) => void) | null = null;

  /**
   * A follower's read; null when the store failed under it and the node stopped on that (the
   * log is closed): a subscriber then ends as on any stop.
   */
  private endingOnFailure<T>(read: () => T): T | null {
    try {
      return read();
    } catch (error) {
      if (this.closed && isSystemCallFailure(error)) return null;
      throw error;
    }
  }

  private guarded<T>(read: () => T): T {
    try {
      return read();
    } catch (error) {
      if (isSystemCallFailure(error)) this.onStoreFailure?.(error);
      throw error;
    }
  }

  /** Follows the log from `from`, waiting for new messages; ends when the node closes. */
  async *follow(from: number, signal?: AbortSignal): AsyncGenerator<DeliveredMessage> {
    for await (const batch of this.followBatches(from, signal)) {
      for (const message of batch) {
        if (signal?.aborted === true) return;
        yield message;
      }
    }
  }

  /**
   * `follow` a batch at a time (each dense, non-empty, at most `followBatchCount` messages
   * or about `followBatchBytesMax` of payloads): a reader that turns messages into bytes
   * pays one await per batch, not per message.
   */
  async *followBatches(from: number, signal?: AbortSignal): AsyncGenerator<DeliveredMessage[]> {
    let cursor = from;
    const aborted = () => signal?.aborted === true;
    while (!this.closed && !aborted()) {
      // Bounded in bytes too: a paused subscriber holds at most this batch.
      const batch = this.endingOnFailure(() =>
        this.read(cursor, followBatchCount, followBatchBytesMax),
      );
      if (batch === null) return;
      if (batch.length === 0) {
        this.checkStillHeld(cursor);
        await this.nextChange(signal);
        continue;
      }
      cursor += batch.length;
      yield batch;
    }
  }

  /**
   * `followBatches` for readers of records (`readRecords`): `take` is given each record of a
   * batch, then the batch's count is yielded.
   */
  async *followRecords(
    from: number,
    take: (body: Buffer) => number,
    signal?: AbortSignal,
  ): AsyncGenerator<number> {
    let cursor = from;
    while (!this.closed && signal?.aborted !== true) {
      const count = this.endingOnFailure(() =>
        this.readRecords(cursor, followBatchCount, followBatchBytesMax, take),
      );
      if (count === null) return;
      if (count === 0) {
        this.checkStillHeld(cursor);
        await this.nextChange(signal);
        continue;
      }
      cursor += count;
      yield count;
    }
  }

  /**
   * A read that came back empty at a delivered position found damage there, and the store
   * cut it (store.ts, `cutDamage`): the position is now a hole. Said at once (not_held, so a
   * stream reads it from a peer), not by waiting for the next delivery, which never comes
   * once the load stops (simulator seed 0x325b05, profile broad: a subscriber held at 34 of
   * 35 for the whole minute after the faults).
   */
  private checkStillHeld(cursor: number): void {
    if (cursor <= this.appliedPosition) this.checkHeld(cursor);
  }

  private checkHeld(from: number): void {
    const first = this.firstRetainedPosition;
    if (from < first) {
      throw new BroadcastError('compacted', `position ${from} is no longer kept`, {
        firstPosition: first,
      });
    }
    if (from <= this.appliedPosition && !this.store.has(from)) {
      throw new BroadcastError('not_held', `position ${from} is not on this node yet`, {
        position: from,
        firstPosition: first,
      });
    }
  }

  private bound(bytesMax: number): void {
    while (this.store.sizeBytes > bytesMax && this.store.segmentCount > 1) {
      const [oldest] = this.store.summaries();
      assert(oldest !== undefined, 'a store of two segments has a first one');
      this.store.dropBefore(oldest.last + 1);
      this.localFrom = Math.max(this.localFrom, oldest.last + 1);
    }
  }

  /** Resolves at the next notify (an applied batch, a restore, the close) or abort. */
  nextChange(signal?: AbortSignal): Promise<void> {
    if (this.closed || signal?.aborted === true) return Promise.resolve();
    return new Promise((resolve) => {
      const onAbort = () => resolve();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  /** Ends every subscription; the store stays open for the write in flight. */
  close(): void {
    this.closed = true;
    try {
      this.notify();
    } finally {
      // A node stopping because its disk failed may fail to write the store here too:
      // whoever waits must still hear of the close.
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    }
  }
}

/** A failed system call (ENOSPC, EIO): the disk's failure, not a bug of ours. */
export function isSystemCallFailure(error: unknown): boolean {
  return error instanceof Error && typeof (error as { syscall?: unknown }).syscall === 'string';
}
