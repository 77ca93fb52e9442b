/**
 * What travels between nodes, and the narrow interface the node runtime sends it through.
 *
 * A `Frame` is either a Raft `Message` from the core, or one of the two runtime frames that
 * forward client proposals from a follower to the leader. Both implementations of
 * `Transport` (TCP in `tcp.ts`, in-process in `memory.ts`) pass the same conformance suite.
 */
import type { Message, NodeId } from '../raft/types.ts';

/**
 * A follower hands a batch of client messages to the leader. `data` is one opaque batch,
 * exactly as it would become one `Entry.data`; nothing on the way looks inside it.
 */
export interface ForwardFrame {
  readonly type: 'Forward';
  readonly from: NodeId;
  readonly to: NodeId;
  /** Chosen by the follower, unique among its pending forwards; echoed in the result. */
  readonly requestId: number;
  readonly data: Uint8Array;
}

/** Accepted at (index, term), or refused with a stable code and the leader the sender knows. */
export type ForwardOutcome =
  | { readonly index: number; readonly term: number }
  | { readonly code: string; readonly leaderId: NodeId | null };

export interface ForwardResultFrame {
  readonly type: 'ForwardResult';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly requestId: number;
  readonly result: ForwardOutcome;
}

export type Frame = Message | ForwardFrame | ForwardResultFrame;
export type FrameType = Frame['type'];

/** Why a frame handed to `send` never left, or a received one was not delivered. */
export type DropReason =
  /** The peer's buffer (queue plus socket) had no room: the receiver is slow or gone. */
  | 'bufferFull'
  /** The frame is addressed to a node that is not in the peer map. */
  | 'unknownPeer'
  /** The link was down: a connection attempt failed or the link was cut. */
  | 'linkDown'
  /** Encoded, the frame is larger than `frameBytesMax` (snapshots are streamed instead). */
  | 'oversize'
  /** The frame breaks a codec rule, or its `from` is not this node. */
  | 'invalidFrame'
  /** A snapshot is already streaming to this peer; Raft sends another when it needs one. */
  | 'snapshotBusy'
  /** The transport is closed or not started. */
  | 'closed'
  /** A frame arrived but no handler is registered. */
  | 'noHandler';

export const dropReasons: readonly DropReason[] = [
  'bufferFull',
  'unknownPeer',
  'linkDown',
  'oversize',
  'invalidFrame',
  'snapshotBusy',
  'closed',
  'noHandler',
];

export type LinkState = 'idle' | 'connecting' | 'open' | 'backoff' | 'closed';

export interface PeerLinkStats {
  readonly state: LinkState;
  /** Encoded bytes waiting for this peer: our queue plus what the socket still holds. */
  readonly bufferedBytes: number;
  readonly sentFrameCount: number;
  readonly droppedFrameCount: number;
}

/** Counters since the transport was created; all monotonic except `peers[].state/buffered`. */
export interface TransportStats {
  readonly sentFrameCount: number;
  /** Bytes handed to the network, framing and handshakes included. */
  readonly sentBytes: number;
  readonly receivedFrameCount: number;
  readonly receivedBytes: number;
  readonly droppedFrameCount: number;
  readonly droppedFrameCountByReason: Readonly<Record<DropReason, number>>;
  /** Outbound connections established after the first one to the same peer. */
  readonly reconnectCount: number;
  /** Inbound handshakes this node refused (wrong cluster, unknown node, bad version). */
  readonly refusedConnectionCount: number;
  /** Connections closed because the other side broke the protocol (garbage, oversize). */
  readonly protocolErrorCount: number;
  readonly peers: Readonly<Record<NodeId, PeerLinkStats>>;
}

/** Structured logging, shaped so that a pino logger fits as is. */
export interface TransportLogger {
  info(fields: Readonly<Record<string, unknown>>, message: string): void;
  warn(fields: Readonly<Record<string, unknown>>, message: string): void;
  error(fields: Readonly<Record<string, unknown>>, message: string): void;
}

export const silentLogger: TransportLogger = {
  info() {},
  warn() {},
  error() {},
};

export type FrameHandler = (frame: Frame) => void;

/**
 * Moves frames between the nodes of one cluster. Delivery is best effort: frames may be
 * dropped (Raft retries), but a frame that arrives is intact, arrives once, comes from the
 * node named in its `from`, and frames on one link (sender → receiver) arrive in send order.
 */
export interface Transport {
  readonly nodeId: NodeId;
  /** Begins accepting connections; resolves once it does. Call once. */
  start(): Promise<void>;
  /**
   * Queues frames for their `to` peers and returns at once. Never throws and never blocks:
   * a frame that cannot be queued is dropped and counted in `stats()`.
   */
  send(frames: readonly Frame[]): void;
  /**
   * Registers the one consumer of received frames, replacing any earlier one; returns a
   * function that unregisters it. Frames are handed over one at a time, in arrival order;
   * an exception thrown by the handler is not caught here.
   */
  onFrame(handler: FrameHandler): () => void;
  /**
   * The full peer map, NodeId → "host:port", replacing the previous one (membership
   * changes). This node's own id may appear and is ignored. Links to removed peers close;
   * connections from nodes outside the map are refused. Throws `TransportError`
   * ('INVALID_ADDRESS') on a malformed address, leaving the old map in force.
   */
  setPeers(peers: ReadonlyMap<NodeId, string>): void;
  stats(): TransportStats;
  /** Closes every link and stops listening; later sends are dropped. Idempotent. */
  close(): Promise<void>;
}
