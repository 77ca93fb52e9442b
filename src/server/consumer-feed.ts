/**
 * What a durable consumer's stream hands out when the consumer waits for acks: a member of
 * a consumer group (its slots' messages, consumer-groups.ts), or a consumer with an ack
 * deadline (messages not acknowledged in time are handed out again). Both decide from the
 * replicated state (src/broadcast/stream-state.ts) as applied on this node, and keep here
 * only what this one stream handed out and when.
 *
 * A group member's feed, per slot it owns:
 * - `examined`: every position up to it was looked at for the slot (handed out, or not the
 *   slot's). A slot gained starts at its cursor, so its messages after the last ack come
 *   first, in order, whoever had them before;
 * - `pending`: messages handed out and not acknowledged yet, oldest first; at most
 *   `inFlightMax` over all slots, then the feed waits for acks;
 * - a slot the state says should move to another member is handed nothing more; once its
 *   pending messages are all acknowledged the feed releases it (a record).
 * After `ackDeadlineMs` without the ack of a slot's oldest pending message, the slot starts
 * again from its cursor: its unacknowledged messages come again, in order, with a higher
 * `deliveryCount`.
 *
 * The heartbeat (a `join` record every third of the lease, on a timer of its own) keeps the
 * member alive and moves
 * the cursor of slots that have nothing pending to where the feed examined them, so an idle
 * slot does not hold a later start back.
 */
import {
  type ConsumerGroup,
  groupMembersMax,
  groupSlotCount,
  slotOf,
} from '../broadcast/consumer-groups.ts';
import type { DeliveredMessage } from '../broadcast/deliveries.ts';
import { BroadcastError } from '../broadcast/errors.ts';
import type { Timer } from '../util/environment.ts';
import type { ServerContext } from './context.ts';

/** One message handed out by a feed. */
export interface Handed {
  readonly message: DeliveredMessage;
  /** The slot of a group member's message; null for a consumer without a group. */
  readonly slot: number | null;
  /** How many times this stream (or, by `redelivered`, an earlier owner) handed it out. */
  readonly deliveryCount: number;
  /** It may have been handed out before: by this stream, or to an owner that is gone. */
  readonly redelivered: boolean;
}

interface PendingMessage {
  readonly position: number;
  readonly handedAtMs: number;
}

/** Messages handed out and not acknowledged, per stream, at most. */
export const inFlightMax = 1_000;
const readPageCount = 512;

interface SlotFeed {
  examined: number;
  pending: PendingMessage[];
  releasing: boolean;
}

export interface GroupFeedOptions {
  readonly name: string;
  readonly member: string;
  readonly leaseMs: number;
  readonly topic: string | undefined;
  readonly signal: AbortSignal;
}

/** Waits for the next applied entry, or `delayMs`, or the abort: whichever comes first. */
async function nextWake(server: ServerContext, delayMs: number, signal: AbortSignal) {
  let timer: Timer | null = null;
  await Promise.race([
    server.node.nextApply(signal),
    new Promise<void>((resolve) => {
      timer = server.environment.setTimer(Math.max(1, delayMs), resolve);
    }),
  ]);
  (timer as Timer | null)?.cancel();
  if (server.node.isStopped) throw new BroadcastError('node_stopped', 'the node stopped');
}

/** Counts of deliveries this stream made, per position, for positions still pending. */
class DeliveryCounts {
  private readonly counts = new Map<number, number>();

  next(position: number): number {
    const count = (this.counts.get(position) ?? 0) + 1;
    this.counts.set(position, count);
    return count;
  }

  forget(position: number): void {
    this.counts.delete(position);
  }

  forgetThrough(position: number): void {
    for (const known of this.counts.keys()) if (known <= position) this.counts.delete(known);
  }
}

/** A consumer group member's messages, until `signal` aborts. */
export async function* groupFeed(
  server: ServerContext,
  options: GroupFeedOptions,
): AsyncGenerator<Handed> {
  const { node, environment } = server;
  const { name, member, signal } = options;
  const slots = new Map<number, SlotFeed>();
  const counts = new DeliveryCounts();
  const heartbeats = new Heartbeats(server, options, slots);
  await heartbeats.beat();
  heartbeats.start();
  try {
    while (!signal.aborted) {
      const group = node.streamState.group(name);
      if (group === undefined || !group.hasMember(member)) {
        // The lease ran out (or the group was deleted): the slots are gone; join again.
        slots.clear();
        await heartbeats.beat();
        if (node.streamState.group(name)?.hasMember(member) !== true) {
          throw new BroadcastError(
            'overloaded',
            `consumer group ${name} has ${groupMembersMax} members (or too many groups exist)`,
            { groupMembersMax },
          );
        }
        continue;
      }
      const deadlineMs = node.streamState.settings(name).ackDeadlineMs;
      followOwnership(group, member, slots, counts);
      releaseDrained(server, group, options, slots);
      if (deadlineMs !== null) expirePending(group, slots, environment.monotonicMs(), deadlineMs);
      let handedAny = false;
      for (const handed of examinePage(server, group, options, slots, counts)) {
        handedAny = true;
        yield handed;
        if (signal.aborted) return;
      }
      if (handedAny) continue;
      await nextWake(server, wakeDelayMs(slots, deadlineMs, environment.monotonicMs()), signal);
    }
  } finally {
    heartbeats.stop();
  }
}

/**
 * The member's heartbeat, on its own timer: it must not wait for the feed, which waits for
 * the client to read, or a member busy with a long message would lose its lease. Each one
 * also carries the progress of the slots with nothing pending (see above).
 */
class Heartbeats {
  private timer: Timer | null = null;
  private stopped = false;

  constructor(
    private readonly server: ServerContext,
    private readonly options: GroupFeedOptions,
    private readonly slots: ReadonlyMap<number, SlotFeed>,
  ) {}

  get intervalMs(): number {
    return Math.max(100, Math.floor(this.options.leaseMs / 3));
  }

  /** One join record, committed. */
  async beat(): Promise<void> {
    const { name, member, leaseMs } = this.options;
    const group = this.server.node.streamState.group(name);
    const progress: Record<string, number> = {};
    for (const [slot, feed] of this.slots) {
      const doneThrough = group?.slots[slot]?.doneThrough ?? 0;
      if (feed.pending.length === 0 && feed.examined > doneThrough) {
        progress[String(slot)] = feed.examined;
      }
    }
    await this.server.node.recordConsumer({ op: 'join', name, member, leaseMs, slots: progress });
  }

  start(): void {
    if (this.stopped) return;
    this.timer = this.server.environment.setTimer(this.intervalMs, () => {
      this.beat()
        .catch((error: unknown) => {
          // The next one tries again; a lease that runs out meanwhile moves the slots.
          this.server.logger.warn(
            { consumer: this.options.name, member: this.options.member, reason: String(error) },
            'consumer group heartbeat failed',
          );
        })
        .finally(() => this.start());
    });
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }
}

/**
 * Until the next pending message's deadline, or a while: every applied record (a heartbeat
 * of any member, an ack) wakes the feed anyway.
 */
function wakeDelayMs(
  slots: ReadonlyMap<number, SlotFeed>,
  deadlineMs: number | null,
  nowMs: number,
): number {
  let delayMs = 1_000;
  if (deadlineMs !== null) {
    for (const feed of slots.values()) {
      const oldest = feed.pending[0];
      if (oldest !== undefined) delayMs = Math.min(delayMs, oldest.handedAtMs + deadlineMs - nowMs);
    }
  }
  return delayMs;
}

/** Slots gained start at their cursor; slots lost are forgotten; acks prune pending. */
function followOwnership(
  group: ConsumerGroup,
  member: string,
  slots: Map<number, SlotFeed>,
  counts: DeliveryCounts,
): void {
  for (let slot = 0; slot < groupSlotCount; slot++) {
    const state = group.slots[slot];
    if (state === undefined) continue;
    const feed = slots.get(slot);
    if (state.owner !== member) {
      slots.delete(slot);
      continue;
    }
    if (feed === undefined) {
      slots.set(slot, { examined: state.doneThrough, pending: [], releasing: false });
      continue;
    }
    feed.examined = Math.max(feed.examined, state.doneThrough);
    while (
      feed.pending.length > 0 &&
      (feed.pending[0] as PendingMessage).position <= state.doneThrough
    ) {
      feed.pending.shift();
    }
  }
  counts.forgetThrough(group.cursor);
}

/** A slot that should move and has nothing pending is released, once. */
function releaseDrained(
  server: ServerContext,
  group: ConsumerGroup,
  options: GroupFeedOptions,
  slots: ReadonlyMap<number, SlotFeed>,
): void {
  for (const [slot, feed] of slots) {
    if (feed.releasing || feed.pending.length > 0 || group.target(slot) === options.member) {
      continue;
    }
    feed.releasing = true;
    server.node
      .recordConsumer({ op: 'release', name: options.name, member: options.member, slot })
      .catch((error: unknown) => {
        feed.releasing = false; // tried again at the next turn
        server.logger.warn(
          { consumer: options.name, slot, reason: String(error) },
          'release failed',
        );
      });
  }
}

/** A slot whose oldest pending message waited past the deadline starts again at its cursor. */
function expirePending(
  group: ConsumerGroup,
  slots: ReadonlyMap<number, SlotFeed>,
  nowMs: number,
  deadlineMs: number,
): void {
  for (const [slot, feed] of slots) {
    const oldest = feed.pending[0];
    if (oldest === undefined || oldest.handedAtMs + deadlineMs > nowMs) continue;
    feed.pending = [];
    feed.examined = group.slots[slot]?.doneThrough ?? 0;
  }
}

/**
 * One page of the order from the lowest position a handing slot has not examined: the
 * messages to hand out, in position order, within the in-flight bound.
 */
function* examinePage(
  server: ServerContext,
  group: ConsumerGroup,
  options: GroupFeedOptions,
  slots: ReadonlyMap<number, SlotFeed>,
  counts: DeliveryCounts,
): Generator<Handed> {
  const { node } = server;
  const handing = [...slots].filter(
    ([slot, feed]) => !feed.releasing && group.target(slot) === options.member,
  );
  if (handing.length === 0) return;
  let inFlight = 0;
  for (const feed of slots.values()) inFlight += feed.pending.length;
  // Below retention's floor nothing is left to hand out.
  const from = Math.max(
    Math.min(...handing.map(([, feed]) => feed.examined)) + 1,
    node.streamState.retainedFrom,
  );
  if (from > node.lastPosition || inFlight >= inFlightMax) return;
  const page = node.read(from, readPageCount);
  for (const message of page) {
    const slot = slotOf(message);
    const feed = slots.get(slot);
    const wanted =
      feed !== undefined &&
      !feed.releasing &&
      // Read live: the state may have moved on while the previous message was written out.
      group.slots[slot]?.owner === options.member &&
      group.target(slot) === options.member &&
      message.position > feed.examined &&
      message.compacted !== true &&
      (options.topic === undefined || message.topic === options.topic);
    if (wanted) {
      if (inFlight >= inFlightMax) return;
      inFlight++;
      feed.pending.push({
        position: message.position,
        handedAtMs: server.environment.monotonicMs(),
      });
      const deliveryCount = counts.next(message.position);
      const state = group.slots[slot];
      const redelivered = deliveryCount > 1 || message.position <= (state?.redeliverThrough ?? 0);
      yield { message, slot, deliveryCount, redelivered };
    }
    // Every handing slot has now looked at this position.
    for (const [, other] of handing) {
      if (other.examined < message.position) other.examined = message.position;
    }
  }
}

/**
 * A consumer without a group whose stream waits for acks: from `from`, and once the oldest
 * message handed out waited `ackDeadlineMs` past the consumer's cursor, again from the
 * cursor. Until `signal` aborts.
 */
export async function* deadlineFeed(
  server: ServerContext,
  options: {
    readonly name: string;
    readonly from: number;
    readonly topic: string | undefined;
    readonly signal: AbortSignal;
  },
): AsyncGenerator<Handed> {
  const { node, environment } = server;
  const { name, signal } = options;
  const counts = new DeliveryCounts();
  let pending: PendingMessage[] = [];
  let examined = options.from - 1;
  while (!signal.aborted) {
    const cursor = node.consumer(name)?.position ?? 0;
    const deadlineMs = node.streamState.settings(name).ackDeadlineMs;
    while (pending.length > 0 && (pending[0] as PendingMessage).position <= cursor) pending.shift();
    counts.forgetThrough(cursor);
    const oldest = pending[0];
    const nowMs = environment.monotonicMs();
    if (oldest !== undefined && deadlineMs !== null && oldest.handedAtMs + deadlineMs <= nowMs) {
      pending = [];
      examined = cursor;
    }
    let handedAny = false;
    examined = Math.max(examined, node.streamState.retainedFrom - 1);
    if (examined < node.lastPosition && pending.length < inFlightMax) {
      for (const message of node.read(examined + 1, readPageCount)) {
        if (pending.length >= inFlightMax) break;
        examined = message.position;
        if (message.compacted === true) continue;
        if (options.topic !== undefined && message.topic !== options.topic) continue;
        pending.push({ position: message.position, handedAtMs: environment.monotonicMs() });
        const deliveryCount = counts.next(message.position);
        handedAny = true;
        yield { message, slot: null, deliveryCount, redelivered: deliveryCount > 1 };
        if (signal.aborted) return;
      }
    }
    if (handedAny) continue;
    const first = pending[0];
    const delayMs =
      first === undefined || deadlineMs === null ? 60_000 : first.handedAtMs + deadlineMs - nowMs;
    await nextWake(server, delayMs, signal);
  }
}

/** Refuses a member stream for a name that is a plain consumer, and the other way round. */
export function checkConsumerKind(server: ServerContext, name: string, member: boolean): void {
  const state = server.node.streamState;
  if (member && state.group(name) === undefined && server.node.consumer(name) !== undefined) {
    throw new BroadcastError('invalid_argument', `${name} is a consumer without a group`, {
      field: 'member',
    });
  }
  if (!member && state.group(name) !== undefined) {
    throw new BroadcastError('invalid_argument', `${name} is a consumer group: give member`, {
      field: 'member',
    });
  }
}
