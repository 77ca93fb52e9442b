/**
 * What route handlers see: the node (through the few methods the API needs), the server's
 * settings, metrics and environment, and one request with its deadline.
 */
import type { DeliveredMessage } from '../broadcast/deliveries.ts';
import type { BroadcastOptions, BroadcastRun, NodeLogger, NodeStatus } from '../broadcast/node.ts';
import type { BroadcastResult, SettledRun } from '../broadcast/pending.ts';
import type { ConsumerCursor, StreamCommand, StreamState } from '../broadcast/stream-state.ts';
import type { HttpExchange } from '../client/exchange.ts';
import type { FollowerProgress, NodeId, Snapshot } from '../raft/types.ts';
import type { Environment } from '../util/environment.ts';
import type { AuthSource } from './access.ts';
import type { Identity } from './auth.ts';
import type { ExchangeRequest, ExchangeResponse, StreamWriter } from './exchange.ts';
import type { HttpMetrics } from './http-metrics.ts';
import type { PeerReads } from './peers.ts';

/** A member of the configuration and the address its peers reach it at. */
export interface ServedMember {
  readonly id: NodeId;
  readonly address: string | null;
  readonly voter: boolean;
}

/**
 * The node status the server reads. Two parts are optional, used when the runtime reports
 * them: `progress` (the leader's view of each follower: leadership transfer then picks the
 * most caught-up follower, and /metrics shows per-follower lag) and `members` (addresses as
 * recorded in the log, over the `peers` the server was given).
 */
export type ServedStatus = NodeStatus & {
  readonly progress?: readonly FollowerProgress[];
  readonly members?: readonly ServedMember[];
};

/** The part of `BroadcastNode` the HTTP API uses; a `BroadcastNode` fits it as is. */
export interface ServedNode {
  readonly id: NodeId;
  broadcast(payload: Uint8Array, options: BroadcastOptions): Promise<BroadcastResult>;
  /** One outcome per message of the run, in order (BroadcastNode.broadcastRun). */
  broadcastRun(run: BroadcastRun): Promise<PromiseSettledResult<BroadcastResult>[]>;
  /** `broadcastRun` read in place (BroadcastNode.broadcastRunSettled); optional in doubles. */
  broadcastRunSettled?(run: BroadcastRun): Promise<SettledRun>;
  /** The last position delivered on this node (0 before any); polled per streamed event. */
  readonly lastPosition: number;
  read(from: number, limit: number): DeliveredMessage[];
  /** Messages of `topic` from `from` on, examining `positionsMax` positions at most. */
  readTopic(
    topic: string,
    from: number,
    limit: number,
    positionsMax: number,
  ): { messages: DeliveredMessage[]; next: number };
  deliveries(options: {
    readonly from?: number;
    readonly signal?: AbortSignal;
  }): AsyncGenerator<DeliveredMessage>;
  /** `deliveries` as stored records, a batch at a time (BroadcastNode.deliveryRecords). */
  deliveryRecords(options: {
    readonly from?: number;
    readonly signal?: AbortSignal;
    readonly take: (body: Buffer) => number;
  }): AsyncGenerator<number>;
  ackConsumer(name: string, position: number): Promise<ConsumerCursor>;
  deleteConsumer(name: string): Promise<void>;
  consumer(name: string): ConsumerCursor | undefined;
  consumers(): ConsumerCursor[];
  /** Commits a consumers' record (groups, settings); resolves once applied here. */
  recordConsumer(command: StreamCommand): Promise<void>;
  /** The consumers' replicated state as applied here (cursors, groups, settings). */
  readonly streamState: StreamState;
  /** Resolves once the next committed entry is applied here, or `signal` aborts. */
  nextApply(signal?: AbortSignal): Promise<void>;
  /**
   * True while the node has heard from no leader for several election timeouts
   * (BroadcastNode.leaderLost): subscriber streams end with no_leader and new ones are
   * refused. Absent in doubles: never.
   */
  readonly leaderLost?: boolean;
  /** Calls `listener` each time `leaderLost` becomes true; returns the detach. */
  onLeaderLost?(listener: () => void): () => void;
  /** True once the node stopped (for good): waiting for it is over. */
  readonly isStopped: boolean;
  /** Keeps messages fetched from a peer for positions this node lacks (backfill). */
  fill(messages: readonly DeliveredMessage[]): number;
  missingRanges(): { first: number; last: number }[];
  /** ReadIndex: a position covering every message acknowledged before the call, delivered here. */
  barrier(): Promise<number>;
  status(): ServedStatus;
  transferLeadership(to: NodeId): { accepted: boolean; detail: string };
  addMember(member: { id: NodeId; address: string; voter: boolean }): Promise<ServedStatus>;
  removeMember(id: NodeId): Promise<ServedStatus>;
  /** A consistent backup at a committed index (BroadcastNode.backup); absent: not offered. */
  backup?(): Promise<{ readonly snapshot: Snapshot; readonly position: number }>;
}

export interface ServerSettings {
  /** Largest payload, as its JSON text in UTF-8 bytes. */
  readonly payloadBytesMax: number;
  /** Largest request body: the payload plus room for the envelope around it. */
  readonly bodyBytesMax: number;
  readonly requestTimeoutMs: number;
  readonly retryAfterSeconds: number;
  /** Comment lines on an idle event stream, so proxies and clients see it alive. */
  readonly keepAliveIntervalMs: number;
  readonly streamsMax: number;
  readonly streamsPerIdentityMax: number;
  readonly messagesLimitDefault: number;
  readonly messagesLimitMax: number;
  /** Positions a topic-filtered read examines at most per page. */
  readonly messagesScanMax: number;
  /** Payload bytes in one page of messages; a page holds one message at least. */
  readonly messagesPageBytesMax: number;
  readonly connectionsMax: number;
  /** A binary-port connection with nothing in flight and no bytes for this long is closed. */
  readonly binaryIdleTimeoutMs: number;
  /** An event stream whose reader takes nothing this long while events wait is cut. */
  readonly streamStallTimeoutMs: number;
  /** Node id → address, for the members list of /v1/status. */
  readonly peers: ReadonlyMap<NodeId, string>;
}

/** A process's memory, in bytes, as `process.memoryUsage()` reports it. */
export interface ProcessMemory {
  readonly rss: number;
  readonly heapTotal: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

export interface ServerContext {
  readonly node: ServedNode;
  readonly settings: ServerSettings;
  readonly metrics: HttpMetrics;
  readonly logger: NodeLogger;
  /**
   * Every clock and timer of the server: request deadlines, stream keep-alives, the linger
   * after an early answer, latencies. The simulator passes its virtual one.
   */
  readonly environment: Environment;
  /** The identities and their rights; null: no authentication, every request may do all. */
  readonly auth?: AuthSource | null;
  /** Node id → base URL of its HTTP API, for the dashboard's view of every member. */
  readonly httpPeers?: ReadonlyMap<NodeId, string>;
  /**
   * How this server calls its peers' HTTP APIs (the dashboard's status of every member): the
   * exchange that trusts the cluster CA, and the headers to send (the `--backfill-token` of
   * a cluster with `--auth`). Absent: node:http(s) with the system's CAs, no headers.
   */
  readonly peerCalls?: {
    readonly exchange: HttpExchange;
    readonly headers: Readonly<Record<string, string>>;
  };
  /**
   * Where this node serves the binary client protocol (`abcast://host:port`), set once it
   * listens: /v1/status shows it, so a client can find a port that was picked for it.
   */
  readonly binaryEndpoint?: { url: string | null };
  /** The process's memory for /metrics (settings.ts, `processMemory`); absent: not shown. */
  readonly processMemory?: () => ProcessMemory;
  /**
   * The other nodes' HTTP APIs, to answer a read of a retained position this node does not
   * hold yet (it is backfilling); null: such a read answers 503 not_held.
   */
  readonly peerReads?: PeerReads | null;
}

export interface RouteContext {
  readonly server: ServerContext;
  readonly request: ExchangeRequest;
  readonly response: ExchangeResponse;
  readonly url: URL;
  readonly params: Readonly<Record<string, string>>;
  /** Who sent the request, checked against the route's role; null without authentication. */
  readonly identity: Identity | null;
  /** Aborts at the request deadline, when the client goes away, or when the server closes. */
  readonly signal: AbortSignal;
  /** The body as one JSON object (`{}` when empty and `emptyAllowed`), within the limits. */
  readJson(options: {
    readonly emptyAllowed: boolean;
    /** A larger limit than `settings.bodyBytesMax`, for routes that take many payloads. */
    readonly bodyBytesMax?: number;
  }): Promise<Record<string, unknown>>;
  /** `promise`, or a rejection as soon as `signal` aborts. */
  within<T>(promise: Promise<T>): Promise<T>;
  /**
   * Begins a streaming answer with this head; from then on the request deadline no longer
   * applies. Throws an HttpError where the front cannot stream (in process, for now).
   */
  startStream(status: number, headers: Readonly<Record<string, string>>): StreamWriter;
}
