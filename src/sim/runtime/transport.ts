/**
 * The nodes' network in a simulated run: a `Transport` per node incarnation over the
 * simulator's SimNetwork, which decides each frame's fate (lost, late, twice) and cuts links
 * for partitions. Frames cross it encoded and decoded by the real codec, as over TCP, so no
 * node ever shares an object with another. Unlike TCP, one link may reorder and duplicate:
 * the runtime must not depend on a link's order, since a reconnect can reorder too.
 */
import type { NodeId } from '../../raft/types.ts';
import { decodeFrame, encodeFrame } from '../../transport/codec.ts';
import {
  type DropReason,
  dropReasons,
  type Frame,
  type FrameHandler,
  type Transport,
  type TransportStats,
} from '../../transport/types.ts';
import { assert } from '../../util/assert.ts';
import type { SimNetwork } from '../network.ts';
import { Life, type SimScheduler } from './scheduler.ts';

export interface FrameEvent {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly frame: Frame;
  /** 'sent' as it leaves (with the copies planned), 'delivered' or 'lost' on arrival. */
  readonly kind: 'sent' | 'delivered' | 'lost';
  readonly copies?: number;
}

/**
 * A say in a frame's fate beyond the network's own plan: true takes charge of the frame, and
 * each call of `deliver` then sends one copy on its way, arriving after `delayMs`.
 */
export type FrameHoldBack = (frame: Frame, deliver: (delayMs: number) => void) => boolean;

/** Routes frames between the node incarnations that are up. */
export class RuntimeNetwork {
  private readonly endpoints = new Map<NodeId, SimTransport>();
  /** Frames held back in the network outlive their sender, as in a switch's queue. */
  private readonly wire = new Life('network');
  holdBack: FrameHoldBack = () => false;

  constructor(
    private readonly scheduler: SimScheduler,
    readonly network: SimNetwork,
    private readonly indexOf: (id: NodeId) => number | null,
    /** Virtual milliseconds per network latency unit of the fault mix. */
    private readonly msPerTick: number,
    private readonly observe: (event: FrameEvent) => void,
  ) {}

  attach(transport: SimTransport): void {
    this.endpoints.set(transport.nodeId, transport);
  }

  detach(transport: SimTransport): void {
    if (this.endpoints.get(transport.nodeId) === transport) this.endpoints.delete(transport.nodeId);
  }

  send(sender: SimTransport, frame: Frame): DropReason | null {
    // A killed process sends nothing, though its last awaits may still resume.
    if (!sender.life.isAlive) return 'closed';
    const from = this.indexOf(sender.nodeId);
    const to = this.indexOf(frame.to);
    if (from === null || to === null) return 'unknownPeer';
    const bytes = encodeFrame(frame);
    const delays = this.network.plan(from, to);
    this.observe({ from: sender.nodeId, to: frame.to, frame, kind: 'sent', copies: delays.length });
    const deliver = (delayMs: number) => {
      this.scheduler.schedule(delayMs, this.wire, () => this.arrive(from, to, frame, bytes));
    };
    if (delays.length > 0 && this.holdBack(frame, deliver)) return null;
    for (const delayTicks of delays) {
      this.scheduler.schedule(delayTicks * this.msPerTick, sender.life, () => {
        this.arrive(from, to, frame, bytes);
      });
    }
    return null;
  }

  private arrive(from: number, to: number, frame: Frame, bytes: Uint8Array): void {
    const receiver = this.endpoints.get(frame.to);
    if (receiver === undefined || !this.network.linkUp(from, to)) {
      this.observe({ from: frame.from, to: frame.to, frame, kind: 'lost' });
      return;
    }
    if (receiver.life.pausedUntilMs > this.scheduler.nowMs) {
      // The frame reached the paused machine's socket; the process reads it when it resumes.
      this.scheduler.schedule(0, receiver.life, () => this.arrive(from, to, frame, bytes));
      return;
    }
    this.observe({ from: frame.from, to: frame.to, frame, kind: 'delivered' });
    receiver.receive(decodeFrame(bytes));
  }
}

const zeroDrops = (): Record<DropReason, number> =>
  Object.fromEntries(dropReasons.map((reason) => [reason, 0])) as Record<DropReason, number>;

export class SimTransport implements Transport {
  private handler: FrameHandler | null = null;
  private closed = false;
  private sentFrameCount = 0;
  private receivedFrameCount = 0;
  private readonly droppedByReason = zeroDrops();

  constructor(
    readonly nodeId: NodeId,
    readonly life: Life,
    private readonly network: RuntimeNetwork,
  ) {}

  start(): Promise<void> {
    this.network.attach(this);
    return Promise.resolve();
  }

  send(frames: readonly Frame[]): void {
    for (const frame of frames) {
      assert(frame.from === this.nodeId, 'a node sends frames in its own name');
      const dropped = this.closed ? 'closed' : this.network.send(this, frame);
      if (dropped === null) this.sentFrameCount++;
      else this.droppedByReason[dropped]++;
    }
  }

  receive(frame: Frame): void {
    if (this.closed || !this.life.isAlive) return;
    if (this.handler === null) {
      this.droppedByReason.noHandler++;
      return;
    }
    this.receivedFrameCount++;
    this.handler(frame);
  }

  onFrame(handler: FrameHandler): () => void {
    this.handler = handler;
    return () => {
      if (this.handler === handler) this.handler = null;
    };
  }

  setPeers(_peers: ReadonlyMap<NodeId, string>): void {
    // Every simulated node is reachable by id; partitions, not the peer map, cut links.
  }

  stats(): TransportStats {
    const dropped = Object.values(this.droppedByReason).reduce((sum, count) => sum + count, 0);
    return {
      sentFrameCount: this.sentFrameCount,
      sentBytes: 0,
      receivedFrameCount: this.receivedFrameCount,
      receivedBytes: 0,
      droppedFrameCount: dropped,
      droppedFrameCountByReason: { ...this.droppedByReason },
      reconnectCount: 0,
      refusedConnectionCount: 0,
      protocolErrorCount: 0,
      peers: {},
    };
  }

  close(): Promise<void> {
    this.closed = true;
    this.network.detach(this);
    return Promise.resolve();
  }
}
