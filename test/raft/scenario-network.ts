/**
 * The scenario runner's manual network: messages wait in one FIFO queue until a command
 * delivers, drops, delays (reorders) or duplicates them. A partition splits nodes into groups; a message that crosses groups
 * is lost, whether it is sent across or was already queued when the partition came.
 */
import type { Message, MessageType, NodeId } from '../../src/raft/types.ts';
import { assert } from '../../src/util/assert.ts';

/** A scenario that queues more than this is runaway, not a test: the runner stops it. */
export const queuedMessagesMax = 100_000;

export interface MessageFilter {
  readonly from: readonly NodeId[] | null;
  readonly to: readonly NodeId[] | null;
  readonly types: readonly MessageType[] | null;
  /** Both ends within these nodes (`stabilize 1 2`); null for any. */
  readonly within: readonly NodeId[] | null;
}

export const anyMessage: MessageFilter = { from: null, to: null, types: null, within: null };

export function matches(filter: MessageFilter, message: Message): boolean {
  if (filter.from !== null && !filter.from.includes(message.from)) return false;
  if (filter.to !== null && !filter.to.includes(message.to)) return false;
  if (filter.types !== null && !filter.types.includes(message.type)) return false;
  if (filter.within !== null) {
    if (!filter.within.includes(message.from) || !filter.within.includes(message.to)) return false;
  }
  return true;
}

export class ScenarioNetwork {
  private queue: Message[] = [];
  /** Node to group number; nodes not named share group 0. Null when fully connected. */
  private groups: Map<NodeId, number> | null = null;

  get queuedCount(): number {
    return this.queue.length;
  }

  enqueue(message: Message): void {
    assert(this.queue.length < queuedMessagesMax, 'the scenario network queue stays bounded');
    this.queue.push(message);
  }

  /** Removes and returns the matching queued messages, oldest first, at most `countMax`. */
  take(filter: MessageFilter, countMax: number): Message[] {
    assert(countMax >= 0, 'a message count is non-negative');
    const taken: Message[] = [];
    const kept: Message[] = [];
    for (const message of this.queue) {
      if (taken.length < countMax && matches(filter, message)) taken.push(message);
      else kept.push(message);
    }
    this.queue = kept;
    return taken;
  }

  /** Moves the matching messages behind everything queued now: a reordering network. */
  delay(filter: MessageFilter, countMax: number): Message[] {
    const moved = this.take(filter, countMax);
    for (const message of moved) this.enqueue(message);
    return moved;
  }

  /** Queues a second copy of each matching message, behind everything queued now. */
  duplicate(filter: MessageFilter, countMax: number): Message[] {
    const copies = this.peek(filter).slice(0, countMax);
    for (const message of copies) this.enqueue(message);
    return copies;
  }

  peek(filter: MessageFilter): readonly Message[] {
    return this.queue.filter((message) => matches(filter, message));
  }

  /** A crashed node loses what was on its way to it. */
  discardTo(node: NodeId): void {
    this.queue = this.queue.filter((message) => message.to !== node);
  }

  partition(groups: readonly (readonly NodeId[])[]): void {
    assert(groups.length > 0, 'a partition names at least one group');
    const map = new Map<NodeId, number>();
    groups.forEach((group, position) => {
      for (const node of group) {
        assert(!map.has(node), 'a node is in one partition group');
        map.set(node, position + 1);
      }
    });
    this.groups = map;
  }

  heal(): void {
    this.groups = null;
  }

  connected(from: NodeId, to: NodeId): boolean {
    if (this.groups === null) return true;
    return (this.groups.get(from) ?? 0) === (this.groups.get(to) ?? 0);
  }
}
