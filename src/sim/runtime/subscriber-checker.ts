/**
 * What each subscriber yields (`client.subscribe()`), checked against the order the nodes
 * agree on (DeliveryChecker's common sequence) as it is yielded:
 * - order: positions strictly increase from the subscriber's `from`; without a topic they
 *   are dense (each the last one plus one), across failovers and resubscriptions alike;
 * - with a topic: exactly that topic's messages, in log order: every position passed over
 *   (between two messages, or up to a progress mark) holds another topic's message;
 * - integrity: a yielded message, or a progress mark, never goes beyond what some node has
 *   delivered, and a message is the one delivered there (payload text, client id, seq,
 *   topic);
 * - a subscriber told its next position is compacted resumes at the floor it is given,
 *   which must lie past that position and within the order;
 * - liveness, once faults stop: every subscriber reaches the last position.
 */

import type { Message } from '../../client/subscribe.ts';
import type { NodeId } from '../../raft/types.ts';
import type { ViolationContext } from '../violation.ts';
import type { CommonMessage } from './delivery-checker.ts';

const utf8 = new TextDecoder();

export interface SubscriberView {
  readonly name: string;
  /** The first position asked for. */
  readonly from: number;
  readonly topic: string | null;
}

interface SubscriberState extends SubscriberView {
  /** The last position yielded or passed over (from − 1 before any). */
  lastPosition: number;
}

export class SubscriberChecker {
  private readonly subscribers = new Map<string, SubscriberState>();
  /** Messages yielded and progress marks passed, over every subscriber. */
  readonly counts = { messages: 0, progressMarks: 0, compactedRestarts: 0 };

  constructor(
    private readonly context: ViolationContext,
    /** What the nodes delivered at `position`, as the first to deliver it saw it. */
    private readonly deliveredAt: (position: number) => CommonMessage | undefined,
    /** How many positions some node has delivered. */
    private readonly deliveredCount: () => number,
  ) {}

  onSubscribed(view: SubscriberView): void {
    const known = this.subscribers.get(view.name);
    if (known !== undefined) return;
    this.subscribers.set(view.name, { ...view, lastPosition: view.from - 1 });
  }

  /** Where a resubscription must start: right after what `name` yielded or passed. */
  resumeFrom(name: string): number {
    return this.stateOf(name).lastPosition + 1;
  }

  onMessage(name: string, message: Message): void {
    const state = this.stateOf(name);
    const { position } = message;
    if (!this.advances(state, position, `yields position ${position}`)) return;
    const known = this.deliveredAt(position);
    if (known === undefined) {
      this.fail(state, `yields position ${position}, which no node has delivered`);
      return;
    }
    const problem = difference(message, known);
    if (problem !== null) {
      this.fail(
        state,
        `yields at position ${position} ${problem} (delivered by ${known.firstNode})`,
      );
      return;
    }
    if (state.topic !== null && known.topic !== state.topic) {
      this.fail(state, `yields position ${position} of topic "${known.topic}"`);
      return;
    }
    this.counts.messages++;
  }

  onProgress(name: string, position: number): void {
    const state = this.stateOf(name);
    if (state.topic === null) {
      this.fail(state, `is told progress to ${position} without a topic`);
      return;
    }
    // Each mark passes something new: a mark at or below the last position says nothing.
    if (!Number.isSafeInteger(position) || position <= state.lastPosition) {
      this.fail(state, `passes up to ${position} after ${state.lastPosition} again`);
      return;
    }
    if (!this.advances(state, position + 1, `passes up to ${position}`)) return;
    state.lastPosition = position;
    this.counts.progressMarks++;
  }

  /**
   * The subscriber's next position is no longer kept (`compacted`): retention's floor, the
   * same on every node, is now `firstPosition`, and it resubscribes from there, as an
   * application would. The floor must lie past what it asked for and within the order.
   */
  onCompacted(name: string, firstPosition: number): void {
    const state = this.stateOf(name);
    const asked = state.lastPosition + 1;
    if (!Number.isSafeInteger(firstPosition) || firstPosition <= asked) {
      this.fail(state, `is told ${asked} is compacted, the first kept being ${firstPosition}`);
      return;
    }
    if (firstPosition > this.deliveredCount() + 1) {
      this.fail(state, `is told ${firstPosition} is kept first, past ${this.deliveredCount()}`);
      return;
    }
    state.lastPosition = firstPosition - 1;
    this.counts.compactedRestarts++;
  }

  /** A subscription failed with what no fault explains. */
  onFailed(name: string, reason: string): void {
    this.fail(this.stateOf(name), `fails: ${reason}`);
  }

  /** The subscribers behind the last delivered position, described; empty when none. */
  lagging(): string[] {
    const last = this.deliveredCount();
    const behind: string[] = [];
    for (const state of this.subscribers.values()) {
      if (state.lastPosition < last) {
        behind.push(`${state.name} at ${state.lastPosition} of ${last}`);
      }
    }
    return behind;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /**
   * Moves `state` to `position` (a message there, or a progress mark up to position − 1):
   * checks that it goes forward, densely without a topic, that nothing of the topic was
   * passed over, and that it stays within what was delivered.
   */
  private advances(state: SubscriberState, position: number, what: string): boolean {
    const last = state.lastPosition;
    if (!Number.isSafeInteger(position) || position <= last) {
      this.fail(state, `${what} after ${last}: positions must increase`);
      return false;
    }
    if (state.topic === null && position !== last + 1) {
      this.fail(state, `${what} after ${last}: positions ${last + 1}..${position - 1} are missing`);
      return false;
    }
    const delivered = this.deliveredCount();
    for (let skipped = last + 1; skipped < position; skipped++) {
      const known = this.deliveredAt(skipped);
      if (known === undefined) {
        this.fail(state, `${what} after ${last}, past ${delivered} delivered`);
        return false;
      }
      if (known.topic === state.topic) {
        this.fail(state, `${what} after ${last}, skipping ${skipped} of its topic`);
        return false;
      }
    }
    state.lastPosition = position;
    return true;
  }

  private stateOf(name: string): SubscriberState {
    const state = this.subscribers.get(name);
    if (state === undefined) throw new Error(`${name} never subscribed`);
    return state;
  }

  private fail(state: SubscriberState, detail: string): void {
    const from = `from ${state.from}${state.topic === null ? '' : ` topic ${state.topic}`}`;
    const nodes: NodeId[] = [];
    this.context.fail('subscriber order', `${state.name} (${from}) ${detail}`, nodes);
  }
}

/** How a yielded message differs from the one delivered there; null when it does not. */
function difference(message: Message, known: CommonMessage): string | null {
  const clientId = known.clientId === '' ? null : known.clientId;
  if (message.client !== clientId) return `client ${message.client} where ${clientId} was`;
  if (clientId !== null && message.seq !== known.seq) {
    return `seq ${message.seq} where ${known.seq} was`;
  }
  const topic = known.topic === '' ? null : known.topic;
  if (message.topic !== topic) return `topic ${message.topic} where ${topic} was`;
  const payloadText = payloadTextOf(message);
  if (payloadText !== known.payloadText) {
    return `payload ${payloadText.slice(0, 80)} where ${known.payloadText.slice(0, 80)} was`;
  }
  return null;
}

/**
 * The payload's text as broadcast: its bytes when the stream sent them as base64, else the
 * JSON the SDK parsed, written again (the workload's payloads are JSON.stringify's own text,
 * which survives the round trip unchanged).
 */
function payloadTextOf(message: Message): string {
  if (message.payloadBase64 !== undefined) {
    return utf8.decode(Buffer.from(message.payloadBase64, 'base64'));
  }
  return JSON.stringify(message.payload);
}
