/**
 * The in-process twin of `TcpTransport`: a `MemoryNetwork` hub joins `MemoryTransport`s by
 * node id. It keeps the TCP transport's promises and limits (per-link FIFO, bounded per-peer
 * buffers, handshake refusals, frame size limits, drops counted by reason) and adds what
 * tests need: cutting and healing links, and pausing a receiver to model a slow reader.
 *
 * Every frame goes through the real codec (encoded at `send`, decoded at delivery), so what
 * arrives is an independent copy, exactly as the TCP path would produce it. Delivery happens
 * on a later event-loop turn, never inside `send`.
 */
import type { NodeId } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { admitFrame } from './admission.ts';
import { decodeFrame, encodeFrame } from './codec.ts';
import { TransportError } from './errors.ts';
import { lengthPrefixBytes } from './framing.ts';
import { ThrottledLogger } from './log-throttle.ts';
import { PeerCounters, TransportCounters } from './stats.ts';
import type {
  Frame,
  FrameHandler,
  PeerLinkStats,
  Transport,
  TransportLogger,
  TransportStats,
} from './types.ts';
import { checkNodeId } from './validate.ts';

export interface MemoryTransportOptions {
  readonly nodeId: NodeId;
  readonly clusterId: string;
  readonly logger: TransportLogger;
  /** Frames larger than this are dropped ('oversize'), except snapshots (TCP streams those). */
  readonly frameBytesMax: number;
  readonly peerBufferBytesMax: number;
  readonly snapshotBytesMax: number;
}

interface QueuedFrame {
  readonly bytes: Uint8Array;
  /** A streamed snapshot in TCP: referenced there, so not counted in the buffer bytes. */
  readonly isSnapshot: boolean;
}

/** Frames from one node to another, in send order, waiting for delivery. */
class MemoryLink {
  readonly queue: QueuedFrame[] = [];
  queuedBytes = 0;
  snapshotQueued = false;
  deliveryScheduled = false;
  connectedTo: MemoryTransport | null = null;
  everConnected = false;
  readonly counters = new PeerCounters();

  constructor(
    readonly from: MemoryTransport,
    readonly to: NodeId,
  ) {}
}

function linkKey(from: NodeId, to: NodeId): string {
  return `${from}\u0000${to}`;
}

export class MemoryNetwork {
  private readonly running = new Map<NodeId, MemoryTransport>();
  private readonly cutLinks = new Set<string>();
  private readonly pausedNodes = new Set<NodeId>();
  private readonly links = new Set<MemoryLink>();

  createTransport(options: MemoryTransportOptions): MemoryTransport {
    return new MemoryTransport(this, options);
  }

  /** Cuts both directions between `a` and `b`; frames in flight between them are lost. */
  cut(a: NodeId, b: NodeId): void {
    this.cutOneWay(a, b);
    this.cutOneWay(b, a);
  }

  cutOneWay(from: NodeId, to: NodeId): void {
    this.cutLinks.add(linkKey(from, to));
  }

  heal(a: NodeId, b: NodeId): void {
    this.cutLinks.delete(linkKey(a, b));
    this.cutLinks.delete(linkKey(b, a));
  }

  healAll(): void {
    this.cutLinks.clear();
  }

  /** Holds frames addressed to `nodeId` in their links, which fill up and then drop. */
  pause(nodeId: NodeId): void {
    this.pausedNodes.add(nodeId);
  }

  resume(nodeId: NodeId): void {
    this.pausedNodes.delete(nodeId);
    for (const link of this.links) if (link.to === nodeId) this.scheduleDelivery(link);
  }

  /** @internal The transport started: frames may now reach it. */
  register(transport: MemoryTransport): void {
    const current = this.running.get(transport.nodeId);
    if (current !== undefined && current !== transport) {
      throw new TransportError('INVALID_STATE', `node ${transport.nodeId} is already running`);
    }
    this.running.set(transport.nodeId, transport);
  }

  /** @internal The transport closed: its own links go, and frames to it are lost. */
  unregister(transport: MemoryTransport): void {
    if (this.running.get(transport.nodeId) === transport) this.running.delete(transport.nodeId);
    for (const link of this.links) if (link.from === transport) this.links.delete(link);
  }

  /** @internal */
  track(link: MemoryLink): void {
    this.links.add(link);
  }

  /** @internal */
  untrack(link: MemoryLink): void {
    this.links.delete(link);
  }

  /** @internal */
  isCut(from: NodeId, to: NodeId): boolean {
    return this.cutLinks.has(linkKey(from, to));
  }

  /** @internal */
  scheduleDelivery(link: MemoryLink): void {
    if (link.deliveryScheduled || link.queue.length === 0) return;
    link.deliveryScheduled = true;
    setImmediate(() => this.deliver(link));
  }

  private deliver(link: MemoryLink): void {
    link.deliveryScheduled = false;
    if (!this.links.has(link)) return;
    const receiver = this.running.get(link.to);
    if (receiver !== undefined && this.pausedNodes.has(link.to)) return;
    if (
      receiver === undefined ||
      this.isCut(link.from.nodeId, link.to) ||
      !receiver.accepts(link.from)
    ) {
      link.connectedTo = null;
      link.from.dropLinkQueue(link, 'linkDown');
      return;
    }
    if (link.connectedTo !== receiver && link.everConnected) link.from.countReconnect();
    link.connectedTo = receiver;
    link.everConnected = true;
    // Frames sent by the handlers below join the queue and wait for the next turn.
    const frames = link.queue.splice(0, link.queue.length);
    link.queuedBytes = 0;
    link.snapshotQueued = false;
    for (const { bytes } of frames) {
      link.from.countSent(link, bytes.byteLength);
      receiver.receive(bytes);
    }
  }
}

export class MemoryTransport implements Transport {
  readonly nodeId: NodeId;
  private state: 'new' | 'running' | 'closed' = 'new';
  private peers = new Set<NodeId>();
  private readonly links = new Map<NodeId, MemoryLink>();
  private readonly counters = new TransportCounters();
  private handler: FrameHandler | null = null;
  private readonly noisyLogger: ThrottledLogger;

  constructor(
    private readonly network: MemoryNetwork,
    private readonly options: MemoryTransportOptions,
  ) {
    try {
      checkNodeId(options.nodeId, 'nodeId');
    } catch (error) {
      throw new TransportError('INVALID_OPTIONS', (error as Error).message);
    }
    for (const limit of ['frameBytesMax', 'peerBufferBytesMax', 'snapshotBytesMax'] as const) {
      if (!Number.isSafeInteger(options[limit]) || options[limit] <= 0) {
        throw new TransportError('INVALID_OPTIONS', `${limit} is a positive integer`);
      }
    }
    this.nodeId = options.nodeId;
    this.noisyLogger = new ThrottledLogger(options.logger, 1_000);
  }

  /** Memory transports are found by node id; this is what a peer map may name. */
  address(): string {
    return `memory:${this.nodeId}`;
  }

  async start(): Promise<void> {
    if (this.state !== 'new')
      throw new TransportError('INVALID_STATE', `start() on a ${this.state} transport`);
    this.network.register(this);
    this.state = 'running';
  }

  send(frames: readonly Frame[]): void {
    for (const frame of frames) this.sendOne(frame);
  }

  onFrame(handler: FrameHandler): () => void {
    this.handler = handler;
    return () => {
      if (this.handler === handler) this.handler = null;
    };
  }

  /** Addresses are not used in memory, but must be strings, as a TCP peer map's would. */
  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    const next = new Set<NodeId>();
    for (const [nodeId, address] of peers) {
      if (typeof address !== 'string' || address === '') {
        throw new TransportError('INVALID_ADDRESS', `peer ${nodeId} has no address`);
      }
      if (nodeId !== this.nodeId) next.add(nodeId);
    }
    this.peers = next;
    for (const [nodeId, link] of this.links) {
      if (next.has(nodeId)) continue;
      this.dropLinkQueue(link, 'closed');
      this.links.delete(nodeId);
      this.network.untrack(link);
    }
  }

  stats(): TransportStats {
    const peers: Record<NodeId, PeerLinkStats> = {};
    for (const nodeId of this.peers) {
      const link = this.links.get(nodeId);
      peers[nodeId] = {
        state: link?.connectedTo ? 'open' : 'idle',
        bufferedBytes: link?.queuedBytes ?? 0,
        sentFrameCount: link?.counters.sentFrameCount ?? 0,
        droppedFrameCount: link?.counters.droppedFrameCount ?? 0,
      };
    }
    return this.counters.snapshot(peers);
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasRunning = this.state === 'running';
    this.state = 'closed';
    for (const link of this.links.values()) this.dropLinkQueue(link, 'closed');
    this.links.clear();
    if (wasRunning) this.network.unregister(this);
  }

  /** @internal The receiving side of the handshake: same cluster, and a known sender. */
  accepts(sender: MemoryTransport): boolean {
    const accepted =
      sender.options.clusterId === this.options.clusterId && this.peers.has(sender.nodeId);
    if (!accepted) {
      this.counters.refusedConnectionCount++;
      const code =
        sender.options.clusterId === this.options.clusterId ? 'UNKNOWN_NODE' : 'WRONG_CLUSTER';
      this.noisyLogger.warn({ remote: sender.nodeId, code }, 'transport refused a connection');
    }
    return accepted;
  }

  /** @internal */
  receive(bytes: Uint8Array): void {
    this.counters.receivedBytes += bytes.byteLength + lengthPrefixBytes;
    const frame = decodeFrame(bytes);
    this.counters.receivedFrameCount++;
    const handler = this.handler;
    if (handler === null) {
      this.counters.drop('noHandler', 1, null);
      return;
    }
    handler(frame);
  }

  /** @internal */
  dropLinkQueue(link: MemoryLink, reason: 'linkDown' | 'closed'): void {
    if (link.queue.length > 0) this.counters.drop(reason, link.queue.length, link.counters);
    link.queue.length = 0;
    link.queuedBytes = 0;
    link.snapshotQueued = false;
  }

  /** @internal */
  countSent(link: MemoryLink, byteCount: number): void {
    this.counters.sent(1, link.counters);
    this.counters.sentBytes += byteCount + lengthPrefixBytes;
  }

  /** @internal */
  countReconnect(): void {
    this.counters.reconnectCount++;
  }

  private sendOne(frame: Frame): void {
    const admitted = admitFrame(frame, {
      running: this.state === 'running',
      nodeId: this.nodeId,
      counters: this.counters,
      logger: this.noisyLogger,
      encode: encodeFrame,
      linkTo: (nodeId) => this.linkTo(nodeId),
    });
    if (admitted === null) return;
    const { link, encoded: bytes } = admitted;
    if (!this.fitsLimits(frame, bytes.byteLength)) {
      this.counters.drop('oversize', 1, link.counters);
      return;
    }
    if (this.network.isCut(this.nodeId, frame.to)) {
      this.counters.drop('linkDown', 1, link.counters);
      return;
    }
    const isSnapshot = frame.type === 'Snapshot' && bytes.byteLength > this.options.frameBytesMax;
    if (isSnapshot) {
      if (link.snapshotQueued) {
        this.counters.drop('snapshotBusy', 1, link.counters);
        return;
      }
      link.snapshotQueued = true;
    } else if (link.queuedBytes + bytes.byteLength > this.options.peerBufferBytesMax) {
      this.counters.drop('bufferFull', 1, link.counters);
      return;
    }
    link.queue.push({ bytes, isSnapshot });
    if (!isSnapshot) link.queuedBytes += bytes.byteLength;
    this.network.scheduleDelivery(link);
  }

  private fitsLimits(frame: Frame, byteCount: number): boolean {
    if (frame.type === 'Snapshot')
      return frame.snapshot.data.byteLength <= this.options.snapshotBytesMax;
    return byteCount <= this.options.frameBytesMax;
  }

  private linkTo(nodeId: NodeId): MemoryLink | null {
    const existing = this.links.get(nodeId);
    if (existing !== undefined) return existing;
    if (!this.peers.has(nodeId)) return null;
    const link = new MemoryLink(this, nodeId);
    this.links.set(nodeId, link);
    this.network.track(link);
    assert(this.links.get(nodeId) === link, 'one link per peer');
    return link;
  }
}
