/**
 * The runtime's options and the shapes of its public answers: what a caller of
 * `BroadcastNode` configures and reads, apart from the parts that do the work.
 */
import type { UnsafeVariant } from '../raft/core.ts';
import type { Configuration, CoreStatus, NodeId } from '../raft/types.ts';
import type { StorageCounters } from '../storage/types.ts';
import type { TransportStats } from '../transport/types.ts';
import type { Environment } from '../util/environment.ts';
import type { HistogramSnapshot } from '../util/histogram.ts';
import type { DeliveryLogOptions } from './deliveries.ts';
import type { GapHoldLimits } from './gap-hold.ts';
import type { NodeObserver } from './observer.ts';
import type { RetentionPolicy } from './retention.ts';

/** Structured logging, shaped so that a pino logger fits as is. */
export interface NodeLogger {
  info(fields: Readonly<Record<string, unknown>>, message: string): void;
  warn(fields: Readonly<Record<string, unknown>>, message: string): void;
  error(fields: Readonly<Record<string, unknown>>, message: string): void;
}

export interface BroadcastNodeOptions {
  readonly id: NodeId;
  readonly tickIntervalMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  /** A batch is cut once it holds this many bytes; one batch is one log entry. */
  readonly batchBytesMax: number;
  readonly payloadBytesMax: number;
  /** Messages accepted and not yet delivered; beyond it broadcasts fail with overloaded. */
  readonly pendingMessagesMax: number;
  /** Payload bytes accepted and not yet delivered; beyond it broadcasts fail with overloaded. */
  readonly pendingBytesMax?: number;
  /**
   * Client sessions this node lets start while the applied table holds this many; a first
   * message of a new session then fails with overloaded (sessions expire after sessionTtlMs).
   */
  readonly sessionsMax?: number;
  /** Of those, started by one identity (with authentication); beyond it, overloaded too. */
  readonly sessionsPerIdentityMax?: number;
  /** A broadcast that is not delivered by then fails with timeout (outcome unknown). */
  readonly requestTimeoutMs: number;
  /** An undelivered message is sent again after this long (the leader may have changed). */
  readonly retryIntervalMs: number;
  /** Applied batch bytes between two snapshots; the log keeps one to two intervals. */
  readonly snapshotIntervalBytes: number;
  /**
   * Delivered payload bytes the in-memory message store keeps (oldest dropped first); used
   * only without `deliveries`.
   */
  readonly retainBytesMax: number;
  /** Where delivered messages are kept: `startNode` gives a store on disk. Default: memory. */
  readonly deliveries?: DeliveryLogOptions;
  /**
   * What the leader lets go of (retention.ts); default: forever. Give every node the same:
   * whichever leads decides.
   */
  readonly retention?: RetentionPolicy;
  /**
   * Topics compacted by key (compaction.ts): the newest message per key stays, older ones
   * are compacted as segments are sealed. Give every node the same: whichever leads decides.
   */
  readonly compactTopics?: readonly string[];
  readonly sessionTtlMs: number;
  readonly inflightAppendsMax: number;
  readonly appendBytesMax: number;
  /**
   * Raft thesis §9.6 (Pre-Vote) and §6.2 (CheckQuorum); both on unless set false, which only
   * the simulator does, to reach the elections they prevent.
   */
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  readonly bootstrap: Configuration | null;
  /** The initial members' addresses, recorded in the log by the first leader. */
  readonly initialPeers?: ReadonlyMap<NodeId, string>;
  readonly logger: NodeLogger;
  /** Every clock, timer and random draw the runtime uses: the system's, or the simulator's. */
  readonly environment: Environment;
  /** Bounds on messages that wait for an earlier seq of their session (gap-hold.ts). */
  readonly gapHoldLimits?: GapHoldLimits;
  /** Sees each stage of the Ready loop as it happens (the simulator's checkers); optional. */
  readonly observer?: NodeObserver;
  /** Deliberately broken behaviours for the simulator to catch. Never set outside tests. */
  readonly unsafe?: UnsafeOptions;
}

/**
 * Broken variants of the runtime, each off by default, so that the simulator's checkers can
 * show they catch the bug each one plants. Never set outside tests.
 */
export interface UnsafeOptions {
  /** The leader answers a broadcast once `propose` accepted it, before it is committed. */
  readonly answerBeforeCommit?: boolean;
  /** A snapshot restore, and a restart from a snapshot, start with an empty session table. */
  readonly dropSessionsOnRestore?: boolean;
  /** A seq that skips ahead of its session is delivered instead of refused (sequence_gap). */
  readonly deliverSeqGapAtOnce?: boolean;
  /** A session takes messages of any identity with its nonce: the owner check is skipped. */
  readonly ignoreSessionOwner?: boolean;
  /** Retention cut by each node from its own store and wall clock, not through the log. */
  readonly retainLocally?: boolean;
  /** A deliberately broken consensus core (src/raft/core.ts UnsafeVariant). */
  readonly core?: UnsafeVariant | null;
}

export const defaultNodeTuning = {
  tickIntervalMs: 10,
  electionTimeoutTicks: 30,
  heartbeatIntervalTicks: 3,
  batchBytesMax: 256 << 10,
  payloadBytesMax: 1 << 20,
  pendingMessagesMax: 100_000,
  pendingBytesMax: 256 << 20,
  sessionsMax: 100_000,
  sessionsPerIdentityMax: 10_000,
  requestTimeoutMs: 10_000,
  retryIntervalMs: 1_000,
  snapshotIntervalBytes: 64 << 20,
  retainBytesMax: 128 << 20,
  sessionTtlMs: 3_600_000,
  inflightAppendsMax: 256,
  appendBytesMax: 1 << 20,
} as const;

export interface BroadcastOptions {
  readonly topic?: string;
  /** With `seq`: the caller's own session, for exactly-once retries across nodes. */
  readonly clientId?: string;
  readonly seq?: number;
  /**
   * The identity the caller was authenticated as (the HTTP server passes its identity's
   * name). A session belongs to the owner of its seq 1; a message of another owner in it is
   * refused with session_forbidden. Default: empty, nobody.
   */
  readonly owner?: string;
  /**
   * The client's random session nonce, sent with every message of the session. Another
   * nonce in a started session is refused with session_conflict. Default: none.
   */
  readonly nonce?: string;
  /**
   * The message's key (1–255 bytes of UTF-8, no control characters): consumer groups give
   * one key's messages to one member in order; a compacted topic keeps the newest per key.
   * It is stored and delivered with the message. Default: none.
   */
  readonly key?: string;
}

/**
 * A run of one session's messages, seqs `firstSeq`, `firstSeq + 1`, …: what one batch
 * request carries. Each message is still exactly once by its own `(clientId, seq)`; the run
 * only lets the node check the session once and answer the run at once.
 */
export interface BroadcastRun {
  readonly clientId: string;
  readonly firstSeq: number;
  /** As in BroadcastOptions: the same for every message of the run. */
  readonly owner?: string;
  readonly nonce?: string;
  readonly messages: readonly RunMessage[];
  /**
   * The caller hands the message objects over, each shaped as the log's message of its
   * session (a ClientMessage: clientId and seq written in, no empty key) and never touched
   * again: a message with no owner or nonce is then kept as it is instead of copied, one
   * object less per message on the node that takes it. Without it they are copied.
   */
  readonly messagesKept?: boolean;
}

export interface RunMessage {
  /** The payload's stored form (JSON text as UTF-8). */
  readonly payload: Uint8Array;
  readonly topic?: string;
  readonly key?: string;
}

export interface NodeStatus {
  readonly id: NodeId;
  readonly role: CoreStatus['role'];
  /**
   * Entries this node lost to a corrupted disk and has not yet had back from a leader; it
   * neither votes nor campaigns until then (docs/design.md, "Repair of a corrupted log").
   */
  readonly repairing: CoreStatus['repairing'];
  readonly term: number;
  readonly leaderId: NodeId | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastPosition: number;
  readonly firstRetainedPosition: number;
  /**
   * Topics with a retention of their own (`--retention-topic`): age in log time (null:
   * forever), and the first position a read of the topic may start at (null: the retained
   * range's floor; or not known here while backfill fills the positions it lies among).
   */
  readonly topicRetention?: readonly {
    readonly topic: string;
    readonly ageMs: number | null;
    readonly firstPosition: number | null;
  }[];
  /** The message store: what this node holds, and what it still has to fetch from peers. */
  readonly store: {
    readonly sizeBytes: number;
    readonly segmentCount: number;
    /** Retained positions not on this node yet (backfill fills them). */
    readonly missingCount: number;
    readonly missingRanges: readonly { readonly first: number; readonly last: number }[];
  };
  readonly lastIndex: number;
  /** Leader only: how far each follower's log agrees with ours. */
  readonly progress: CoreStatus['progress'];
  /** Times this node saw a new leader (itself included) since it started. */
  readonly leaderChangeCount: number;
  /** Batches this node appended as leader (its own and forwarded ones). */
  readonly proposalCount: number;
  /** Messages per applied batch. */
  readonly batchMessages: HistogramSnapshot;
  /** Seconds per durable write (write plus fsync) on the Ready path. */
  readonly persistSeconds: HistogramSnapshot;
  readonly config: Configuration;
  /** Every member in the configuration, with its address as recorded in the log. */
  readonly members: readonly {
    readonly id: NodeId;
    readonly address: string | null;
    readonly voter: boolean;
  }[];
  readonly pendingMessageCount: number;
  readonly storage: StorageCounters;
  readonly transport: TransportStats;
  /**
   * Why the node stopped (`storage_failed`, `internal`, `node_stopped` once closed), or null
   * while it runs. A stopped node keeps the role and leader it last had: this says they are
   * stale.
   */
  readonly stopped: { readonly code: string; readonly message: string } | null;
}
