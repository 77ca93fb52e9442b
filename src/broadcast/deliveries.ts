/**
 * The delivered messages a node keeps in memory, and the subscriptions that read them. Both
 * are bounded: the log keeps at most `retainBytesMax` of payload (oldest dropped first), and
 * a subscriber pulls at its own pace — one that falls behind what is kept gets compacted
 * instead of making the node buffer for it.
 */
import { assert } from '../util/assert.ts';
import { BroadcastError } from './errors.ts';

export interface DeliveredMessage {
  /** Dense from 1, identical on every node. */
  readonly position: number;
  /** The log entry (batch) that carried it. */
  readonly index: number;
  readonly term: number;
  /** Empty for anonymous messages. */
  readonly clientId: string;
  readonly seq: number;
  readonly topic: string;
  readonly payload: Uint8Array;
  /**
   * The log's clock at this message, in ms since the Unix epoch: the running maximum of the
   * `logTimeMs` stamped on batches by the leaders that built them, as the session table sees
   * it after applying this message's batch. A function of the log alone, so it is the same
   * on every node for the same position, and non-decreasing along positions.
   */
  readonly logTimeMs: number;
}

const perMessageOverheadBytes = 64;

export class DeliveryLog {
  private messages: DeliveredMessage[] = [];
  /** Position of messages[head]; positions before it are no longer kept. */
  private firstPosition = 1;
  private head = 0;
  private retainedBytes = 0;
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly retainBytesMax: number) {
    assert(retainBytesMax > 0, 'retainBytesMax is positive');
  }

  get lastPosition(): number {
    return this.firstPosition + (this.messages.length - this.head) - 1;
  }

  get firstRetainedPosition(): number {
    return this.firstPosition;
  }

  append(message: DeliveredMessage): void {
    assert(message.position === this.lastPosition + 1, 'delivered positions are dense');
    this.messages.push(message);
    this.retainedBytes += message.payload.length + perMessageOverheadBytes;
    while (this.retainedBytes > this.retainBytesMax && this.messages.length - this.head > 1) {
      const dropped = this.messages[this.head] as DeliveredMessage;
      this.retainedBytes -= dropped.payload.length + perMessageOverheadBytes;
      this.head++;
      this.firstPosition++;
    }
    // Compact the array now and then instead of shifting on every drop.
    if (this.head > 4096 && this.head * 2 > this.messages.length) {
      this.messages = this.messages.slice(this.head);
      this.head = 0;
    }
  }

  /** Wakes subscribers; called once per applied batch, not per message. */
  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Nothing before `nextPosition` is kept any more (a snapshot replaced the state). */
  resetTo(nextPosition: number): void {
    assert(nextPosition >= this.lastPosition + 1, 'a restore never moves positions back');
    this.messages = [];
    this.head = 0;
    this.retainedBytes = 0;
    this.firstPosition = nextPosition;
    this.notify();
  }

  /** Up to `limit` messages from `from` on; compacted if `from` is no longer kept. */
  read(from: number, limit: number): DeliveredMessage[] {
    assert(Number.isSafeInteger(from) && from >= 1, 'positions start at 1');
    if (from < this.firstPosition) {
      throw new BroadcastError('compacted', `position ${from} is no longer kept on this node`, {
        firstPosition: this.firstPosition,
      });
    }
    const start = this.head + (from - this.firstPosition);
    return this.messages.slice(start, start + limit);
  }

  /** Follows the log from `from`, waiting for new messages; ends when the node closes. */
  async *follow(from: number, signal?: AbortSignal): AsyncGenerator<DeliveredMessage> {
    let cursor = from;
    const aborted = () => signal?.aborted === true;
    while (!this.closed && !aborted()) {
      const batch = this.read(cursor, 1024);
      for (const message of batch) {
        if (aborted()) return;
        yield message;
        cursor++;
      }
      if (batch.length === 0) await this.nextChange(signal);
    }
  }

  private nextChange(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const onAbort = () => resolve();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  close(): void {
    this.closed = true;
    this.notify();
  }
}
