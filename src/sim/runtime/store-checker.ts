/**
 * The message store as readers see it (property `retained range`), checked against what the
 * nodes delivered (DeliveryChecker keeps one copy of every position):
 *
 * - every message backfill is about to keep is the one delivered at its position;
 * - every few hundred steps, a few positions each running node serves read back as
 *   delivered (payload, topic, client, seq, log time), and a node's floor never passes the
 *   highest floor the cluster reaches in the end (floors only move along the one log);
 * - once settled (after the liveness phase): every member has the same floor, holds its
 *   whole retained range (backfill done), serves every position of it as delivered, and
 *   answers a read below it `compacted` naming that same floor.
 *
 * Reads go straight to the node (BroadcastNode.read), the call GET /v1/records and
 * /v1/messages make; the sampling draws from a generator of its own, so the world's draws
 * stay as they were.
 */
import type { DeliveredMessage } from '../../broadcast/deliveries.ts';
import { BroadcastError } from '../../broadcast/errors.ts';
import type { BroadcastNode } from '../../broadcast/node.ts';
import type { NodeId } from '../../raft/types.ts';
import type { Prng } from '../../util/prng.ts';
import type { ViolationContext } from '../violation.ts';
import type { CommonMessage } from './delivery-checker.ts';

const utf8 = new TextDecoder();
/** Positions read per node at each sample. */
const sampleReadCount = 4;
/** Positions per read of the final scan. */
const scanPageCount = 256;

export interface StoreView {
  readonly id: NodeId;
  readonly node: BroadcastNode;
}

export class StoreChecker {
  /** The highest floor any node reported. */
  private floorMax = 1;
  private floorMaxNode: NodeId | null = null;

  constructor(
    private readonly context: ViolationContext,
    private readonly deliveredAt: (position: number) => CommonMessage | undefined,
    private readonly prng: Prng,
  ) {}

  /** Backfill on `node` is about to keep `messages`. */
  onFilled(node: NodeId, messages: readonly DeliveredMessage[]): void {
    for (const message of messages) this.checkMessage(node, message, 'backfill keeps');
  }

  /** A few positions of each running node, and its floor. */
  sample(views: readonly StoreView[]): void {
    for (const { id, node } of views) {
      const floor = this.floorOf(node);
      const last = node.lastPosition;
      if (last < floor) continue;
      const from = floor + this.prng.below(last - floor + 1);
      this.readChecked(id, node, from, sampleReadCount);
    }
  }

  /**
   * Why the members are not settled yet, or null once they are: the same floor everywhere,
   * and nothing of the retained range missing. The liveness phase waits for it.
   */
  unsettled(views: readonly StoreView[]): string | null {
    const floors = new Set<number>();
    const missing: string[] = [];
    for (const { id, node } of views) {
      floors.add(this.floorOf(node));
      const ranges = node.missingRanges();
      if (ranges.length > 0) {
        const described = ranges.map((range) => `${range.first}…${range.last}`).join(', ');
        missing.push(`${id} misses ${described} (from ${this.floorOf(node)})`);
      }
    }
    if (missing.length > 0)
      return `not every member holds its retained range: ${missing.join('; ')}`;
    if (floors.size > 1) {
      const described = views.map(({ id, node }) => `${id} from ${this.floorOf(node)}`);
      return `the members retain different ranges: ${described.join(', ')}`;
    }
    return null;
  }

  /** Once settled: every member's whole retained range, and a read below it. */
  checkSettled(views: readonly StoreView[]): void {
    const problem = this.unsettled(views);
    if (problem !== null) {
      this.context.fail(
        'retained range',
        problem,
        views.map((view) => view.id),
      );
      return;
    }
    for (const { id, node } of views) {
      const floor = this.floorOf(node);
      if (floor < this.floorMax) {
        this.context.fail(
          'retained range',
          `${id} retains from ${floor}, below the ${this.floorMax} ${this.floorMaxNode} retained from before`,
          [id],
        );
        return;
      }
      for (let from = floor; from <= node.lastPosition; from += scanPageCount) {
        if (!this.readChecked(id, node, from, scanPageCount)) return;
      }
      if (floor > 1) this.checkCompactedBelow(id, node, floor);
    }
  }

  private floorOf(node: BroadcastNode): number {
    const floor = node.firstRetainedPosition;
    if (floor > this.floorMax) {
      this.floorMax = floor;
      this.floorMaxNode = node.id;
    }
    return floor;
  }

  /** Reads `count` from `from`, each checked; a hole (not_held) is no answer to check. */
  private readChecked(id: NodeId, node: BroadcastNode, from: number, count: number): boolean {
    let messages: DeliveredMessage[];
    try {
      messages = node.read(from, count);
    } catch (error) {
      if (error instanceof BroadcastError && error.code === 'not_held') return true;
      this.context.fail('retained range', `${id} fails a read of ${from}: ${error}`, [id]);
      return false;
    }
    const expected = Math.min(count, node.lastPosition - from + 1);
    // A read stops short at a hole: the position after the last one read must be missing.
    const stopsAtHole = messages.length < expected && isMissing(node, from + messages.length);
    if (messages.length !== expected && !stopsAtHole) {
      this.context.fail(
        'retained range',
        `${id} answers ${messages.length} messages from ${from} where it delivered ${expected}`,
        [id],
      );
      return false;
    }
    for (const [offset, message] of messages.entries()) {
      if (message.position !== from + offset) {
        this.context.fail(
          'retained range',
          `${id} serves position ${message.position} where ${from + offset} was due`,
          [id],
        );
        return false;
      }
      if (!this.checkMessage(id, message, 'serves')) return false;
    }
    return true;
  }

  private checkCompactedBelow(id: NodeId, node: BroadcastNode, floor: number): void {
    try {
      node.read(floor - 1, 1);
    } catch (error) {
      const details = error instanceof BroadcastError ? error.details : {};
      if (
        error instanceof BroadcastError &&
        error.code === 'compacted' &&
        details.firstPosition === floor
      ) {
        return;
      }
      this.context.fail(
        'retained range',
        `${id} answers a read of ${floor - 1} with ${error}, not compacted from ${floor}`,
        [id],
      );
      return;
    }
    this.context.fail('retained range', `${id} serves ${floor - 1}, below its floor ${floor}`, [
      id,
    ]);
  }

  private checkMessage(id: NodeId, message: DeliveredMessage, verb: string): boolean {
    const known = this.deliveredAt(message.position);
    const payloadText = utf8.decode(message.payload);
    if (
      known !== undefined &&
      known.clientId === message.clientId &&
      known.seq === message.seq &&
      known.topic === message.topic &&
      known.payloadText === payloadText &&
      known.logTimeMs === message.logTimeMs
    ) {
      return true;
    }
    const was =
      known === undefined
        ? 'where nothing was delivered'
        : `where ${known.firstNode} delivered ${known.clientId}#${known.seq}`;
    this.context.fail(
      'retained range',
      `${id} ${verb} ${message.clientId}#${message.seq} (topic ${message.topic}) at ${message.position}, ${was}`,
      [id],
    );
    return false;
  }
}

function isMissing(node: BroadcastNode, position: number): boolean {
  return node.missingRanges().some((range) => range.first <= position && position <= range.last);
}
