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
          this.fail(position, error);
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

  /**
   * A request for the cursor at `sent` failed: the acks it covered fail with it. An ack past
   * it was made while the request ran and was never sent, so it waits for a request of its
   * own instead of failing for a request it had no part in.
   */
  private fail(sent: number, error: unknown): void {
    const left: Waiter[] = [];
    let wanted = this.acked;
    for (const waiter of this.waiters) {
      if (waiter.position <= sent) waiter.reject(error);
      else {
        left.push(waiter);
        wanted = Math.max(wanted, waiter.position);
      }
    }
    this.waiters = left;
    this.wanted = wanted;
  }
}

/** POST /v1/consumers/:name/ack {member, slots}; resolves once the log holds them. */
export type SendGroupAcks = (
  name: string,
  member: string,
  slots: Readonly<Record<string, number>>,
) => Promise<unknown>;

interface SlotWaiter extends Waiter {
  readonly slot: number;
  /** Its place among the member's acks: the ones a request carries are those before it. */
  readonly order: number;
}

/**
 * The acks of one consumer group member, coalesced per slot: a slot's cursor covers every
 * earlier message of the slot, so one request in flight carries, per slot, the highest
 * position acked so far. A slot the member no longer owns (the node answers 409
 * `not_owner`) fails its waiters: those acks changed nothing, and the messages go to the
 * slot's new owner. Any other failure fails the acks the request carried, and only those:
 * an ack made while it ran waits for a request of its own (and an ack it carried that a
 * later one covers takes that one's outcome, as the later cursor moves past it too).
 */
export class GroupAcks {
  private readonly acked = new Map<number, number>();
  private readonly wanted = new Map<number, number>();
  private sending = false;
  private waiters: SlotWaiter[] = [];
  /** Acks made so far: each waiter's `order`. */
  private ackCount = 0;

  constructor(
    private readonly name: string,
    private readonly member: string,
    private readonly send: SendGroupAcks,
  ) {}

  ack(slot: number, position: number): Promise<void> {
    if (!Number.isSafeInteger(position) || position < 1) {
      return Promise.reject(new ClientError('invalid_argument', 'an ack names a position >= 1'));
    }
    if (position <= (this.acked.get(slot) ?? 0)) return Promise.resolve();
    this.wanted.set(slot, Math.max(this.wanted.get(slot) ?? 0, position));
    const done = new Promise<void>((resolve, reject) => {
      this.waiters.push({ slot, position, resolve, reject, order: ++this.ackCount });
    });
    if (!this.sending) void this.flush();
    return done;
  }

  private due(): Record<string, number> {
    const slots: Record<string, number> = {};
    for (const [slot, position] of this.wanted) {
      if (position > (this.acked.get(slot) ?? 0)) slots[String(slot)] = position;
    }
    return slots;
  }

  private async flush(): Promise<void> {
    this.sending = true;
    try {
      for (let slots = this.due(); Object.keys(slots).length > 0; slots = this.due()) {
        const carriedUpTo = this.ackCount;
        let lost = new Set<number>();
        try {
          await this.send(this.name, this.member, slots);
        } catch (error) {
          const named = (error as { code?: unknown; details?: { slots?: unknown } }).details?.slots;
          if ((error as { code?: unknown }).code !== 'not_owner' || typeof named !== 'string') {
            this.failed(slots, carriedUpTo, error);
            continue;
          }
          lost = new Set(named.split(',').map(Number));
        }
        for (const [slotText, position] of Object.entries(slots)) {
          const slot = Number(slotText);
          if (lost.has(slot)) this.wanted.set(slot, this.acked.get(slot) ?? 0);
          else this.acked.set(slot, Math.max(this.acked.get(slot) ?? 0, position));
        }
        this.settle(lost);
      }
    } finally {
      this.sending = false;
    }
  }

  /**
   * The request for `slots` failed: each slot wants only what acks made since (up to
   * `carriedUpTo` it carried them) still ask for, and the carried acks beyond that fail.
   */
  private failed(slots: Record<string, number>, carriedUpTo: number, failure: unknown): void {
    for (const slotText of Object.keys(slots)) {
      const slot = Number(slotText);
      this.wanted.set(slot, this.acked.get(slot) ?? 0);
    }
    for (const waiter of this.waiters) {
      if (waiter.order > carriedUpTo) {
        this.wanted.set(waiter.slot, Math.max(this.wanted.get(waiter.slot) ?? 0, waiter.position));
      }
    }
    const left: SlotWaiter[] = [];
    for (const waiter of this.waiters) {
      if (waiter.position > (this.wanted.get(waiter.slot) ?? 0)) waiter.reject(failure);
      else left.push(waiter);
    }
    this.waiters = left;
  }

  private settle(lost: ReadonlySet<number>): void {
    const left: SlotWaiter[] = [];
    for (const waiter of this.waiters) {
      if (lost.has(waiter.slot)) {
        waiter.reject(
          new ClientError('not_owner', `slot ${waiter.slot} moved to another member`, {
            slot: waiter.slot,
            position: waiter.position,
          }),
        );
      } else if (waiter.position <= (this.acked.get(waiter.slot) ?? 0)) waiter.resolve();
      else left.push(waiter);
    }
    this.waiters = left;
  }
}
