/**
 * The acks of one durable consumer's subscription, coalesced: one request in flight at a
 * time, carrying the highest position acked so far. A cursor covers everything before it,
 * so a burst of `message.ack()` calls costs one or two log entries, not one each; every
 * call resolves once the log's cursor is at or past its position.
 */
import { ClientError } from './errors.ts';

export type SendAck = (name: string, position: number) => Promise<unknown>;

interface Waiter {
  readonly position: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class ConsumerAcks {
  private acked = 0;
  private wanted = 0;
  private sending = false;
  private waiters: Waiter[] = [];

  constructor(
    private readonly name: string,
    private readonly send: SendAck,
  ) {}

  ack(position: number): Promise<void> {
    if (!Number.isSafeInteger(position) || position < 1) {
      return Promise.reject(new ClientError('invalid_argument', 'an ack names a position >= 1'));
    }
    if (position <= this.acked) return Promise.resolve();
    this.wanted = Math.max(this.wanted, position);
    const done = new Promise<void>((resolve, reject) => {
      this.waiters.push({ position, resolve, reject });
    });
    if (!this.sending) void this.flush();
    return done;
  }

  private async flush(): Promise<void> {
    this.sending = true;
    try {
      while (this.wanted > this.acked) {
        const position = this.wanted;
        try {
          // The answer is the cursor after the ack: at or past `position` (a cursor never
          // moves back), or capped at what is delivered, which the acked message is.
          await this.send(this.name, position);
          this.acked = Math.max(this.acked, position);
          this.settle(null);
        } catch (error) {
          this.wanted = this.acked;
          this.settle(error);
        }
      }
    } finally {
      this.sending = false;
    }
  }

  private settle(error: unknown): void {
    const left: Waiter[] = [];
    for (const waiter of this.waiters) {
      if (error !== null) waiter.reject(error);
      else if (waiter.position <= this.acked) waiter.resolve();
      else left.push(waiter);
    }
    this.waiters = left;
  }
}
