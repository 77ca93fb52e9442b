/**
 * The vocabulary of the pure consensus core: log entries, durable state, messages between
 * nodes, and the Ready batch that tells the runtime what to persist, send and deliver.
 *
 * Everything here is plain data: it crosses the wire (src/transport), lands on disk
 * (src/storage) and is compared by the simulator's checkers (src/sim).
 */

/** A node's stable name within one cluster, such as "n1". Never empty. */
export type NodeId = string;

/**
 * - `normal`: an opaque batch of client messages; the core never looks inside.
 * - `noop`: appended by every new leader, so that it can commit earlier entries (Raft §5.4.2)
 *   and answer ReadIndex requests (Raft thesis §6.4).
 * - `config`: the full cluster configuration in force once this entry is appended
 *   (encoded by `encodeConfiguration`).
 */
export type EntryKind = 'normal' | 'noop' | 'config';

export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly kind: EntryKind;
  readonly data: Uint8Array;
}

/** Written and fsynced before any message that depends on it leaves the node. */
export interface HardState {
  readonly term: number;
  /** The candidate this node voted for in `term`, or null. */
  readonly vote: NodeId | null;
  /** A hint only: commit is recomputed after a restart, but never below this. */
  readonly commit: number;
}

/** Voters decide; learners receive the log but neither vote nor count towards a quorum. */
export interface Configuration {
  /** Sorted, no duplicates, disjoint from learners. */
  readonly voters: readonly NodeId[];
  /** Sorted, no duplicates. */
  readonly learners: readonly NodeId[];
}

/** One server at a time (Raft thesis §4.1): each change moves one node by one step. */
export type ConfigChange =
  | { readonly type: 'addLearner'; readonly node: NodeId }
  | { readonly type: 'addVoter'; readonly node: NodeId }
  | { readonly type: 'promoteLearner'; readonly node: NodeId }
  | { readonly type: 'demoteVoter'; readonly node: NodeId }
  | { readonly type: 'remove'; readonly node: NodeId };

export interface SnapshotMeta {
  /** The last log index the snapshot covers. */
  readonly index: number;
  readonly term: number;
  /** The configuration in force at `index`. */
  readonly config: Configuration;
}

/** `data` is the application's state after applying every entry up to `meta.index`. */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sender's term; for PreVote, the term it would campaign in. */
  readonly term: number;
}

export interface PreVoteMessage extends MessageBase {
  readonly type: 'PreVote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
}

export interface PreVoteResponseMessage extends MessageBase {
  readonly type: 'PreVoteResponse';
  readonly granted: boolean;
}

export interface VoteMessage extends MessageBase {
  readonly type: 'Vote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Set by a leadership transfer: the voter ignores its leader lease (CheckQuorum). */
  readonly transfer: boolean;
}

export interface VoteResponseMessage extends MessageBase {
  readonly type: 'VoteResponse';
  readonly granted: boolean;
}

export interface AppendMessage extends MessageBase {
  readonly type: 'Append';
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

export interface AppendResponseMessage extends MessageBase {
  readonly type: 'AppendResponse';
  readonly success: boolean;
  /**
   * On success, the last index the follower now holds in agreement with this append.
   * On rejection, the `prevLogIndex` that did not match.
   */
  readonly index: number;
  /**
   * On rejection, where the leader should probe next (fast backtracking, Raft §5.3):
   * `hintTerm` is the follower's term at `hintIndex`, the first index of that term in its
   * log, or 0 with `hintIndex` = follower's last index + 1 when its log is too short.
   */
  readonly hintIndex: number;
  readonly hintTerm: number;
}

export interface HeartbeatMessage extends MessageBase {
  readonly type: 'Heartbeat';
  /** min(leader commit, follower match): never beyond what the follower holds in agreement. */
  readonly commit: number;
  /** The newest ReadIndex round this heartbeat confirms leadership for; 0 when none. */
  readonly readRound: number;
}

export interface HeartbeatResponseMessage extends MessageBase {
  readonly type: 'HeartbeatResponse';
  readonly readRound: number;
}

export interface SnapshotMessage extends MessageBase {
  readonly type: 'Snapshot';
  readonly snapshot: Snapshot;
}

/** Leadership transfer: the target campaigns at once, skipping PreVote (Raft thesis §3.10). */
export interface TimeoutNowMessage extends MessageBase {
  readonly type: 'TimeoutNow';
}

/** A follower asks the leader for a read index on behalf of its own client. */
export interface ReadIndexMessage extends MessageBase {
  readonly type: 'ReadIndex';
  readonly requestId: string;
}

export interface ReadIndexResponseMessage extends MessageBase {
  readonly type: 'ReadIndexResponse';
  readonly requestId: string;
  /** null: the leader could not serve it now (not leader, or no commit in its term yet). */
  readonly index: number | null;
}

export type Message =
  | PreVoteMessage
  | PreVoteResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | AppendMessage
  | AppendResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | SnapshotMessage
  | TimeoutNowMessage
  | ReadIndexMessage
  | ReadIndexResponseMessage;

export type MessageType = Message['type'];

/**
 * A stable number per message type: the wire codec writes it, the simulator's trace hashes
 * it. Never renumber; add new types at the end.
 */
/**
 * The highest term a node accepts from the wire. An election a millisecond would take
 * 142,000 years to get here, and staying 2^52 below the largest safe integer means no term
 * a peer sends can push a node to a term it cannot increment exactly (which would leave it
 * unable ever to campaign again).
 */
export const termMax = 2 ** 52;

export const messageTypeCodes: Readonly<Record<MessageType, number>> = {
  PreVote: 1,
  PreVoteResponse: 2,
  Vote: 3,
  VoteResponse: 4,
  Append: 5,
  AppendResponse: 6,
  Heartbeat: 7,
  HeartbeatResponse: 8,
  Snapshot: 9,
  TimeoutNow: 10,
  ReadIndex: 11,
  ReadIndexResponse: 12,
};

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state the runtime may show or act on; never persisted. */
export interface SoftState {
  readonly role: Role;
  readonly leaderId: NodeId | null;
}

/**
 * A linearizable read may be served once this node has delivered every entry up to `index`
 * (Raft thesis §6.4). `index` null means the read was refused; the caller may retry.
 */
export interface ReadState {
  readonly requestId: string;
  readonly index: number | null;
}

/**
 * What the runtime must do next, in field order, before calling `core.advance(ready)`:
 * 1. persist `snapshot` (if any), then truncate the log from `entriesToAppend[0].index` and
 *    append `entriesToAppend`, then write `hardState`; all fsynced together;
 * 2. only then send `messagesToSend` — except the leader's replication messages (see
 *    `sendableBeforePersist`), which may leave while the write is in flight;
 * 3. deliver `entriesToDeliver` in index order (a `snapshot` first replaces the application
 *    state); they are committed and durable here;
 * 4. serve `readStates` once the delivered index reaches each one's index.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly snapshot: Snapshot | null;
  readonly entriesToAppend: readonly Entry[];
  readonly messagesToSend: readonly Message[];
  readonly entriesToDeliver: readonly Entry[];
  readonly readStates: readonly ReadState[];
}

/**
 * Entries a node once held and lost to a corrupted disk, as its storage found them at start.
 * The node keeps the intact prefix and repairs the rest from a leader (Alagappan et al.,
 * "Protocol-Aware Recovery for Consensus-Based Storage", FAST 2018, §5): until then it must
 * not vote for a log it cannot vouch for, since its acknowledgements may have counted towards
 * committing the lost entries and its vote would then help elect a leader without them
 * (Raft §5.4.1 assumes voters keep what they acknowledged).
 */
export interface LogDamage {
  /** The first index whose entry may be lost: the intact prefix ends just before it. */
  readonly firstLostIndex: number;
  /**
   * The highest index an intact record after the damage showed, or null when none did. A
   * floor, never a ceiling: a write the disk lost after those records leaves no trace, so the
   * log may have held more. Shown to operators; no decision rests on it.
   */
  readonly lastIndexSeen: number | null;
  /**
   * The hard state's term when the damage was found: no entry the node acknowledged, and no
   * vote it cast, has a higher term. Storage repairs a log only when it read the latest hard
   * state intact (every WAL record repeats it).
   */
  readonly termBound: number;
}

/** What a node found on its disk at start. */
export interface PersistedState {
  readonly hardState: HardState | null;
  readonly snapshot: Snapshot | null;
  /** Contiguous, starting right after the snapshot (or at index 1 when there is none). */
  readonly entries: readonly Entry[];
  /**
   * The application already holds the effect of every entry up to here (at least the
   * snapshot's index); delivery resumes after it. 0 or the snapshot index when unknown.
   */
  readonly appliedIndex: number;
  /** Set when storage lost entries to corruption: the node starts repairing (see LogDamage). */
  readonly damage?: LogDamage | null;
}

export type ProposalRefusal =
  | 'NOT_LEADER'
  | 'LEADERSHIP_TRANSFER'
  | 'CONFIG_CHANGE_PENDING'
  | 'NO_COMMIT_IN_TERM'
  | 'INVALID_CONFIG_CHANGE';

/**
 * An accepted proposal is committed if and when the entry delivered at `index` has `term`;
 * a different term there means it was overwritten by a new leader and never will be.
 */
export type ProposalResult =
  | { readonly accepted: true; readonly index: number; readonly term: number }
  | {
      readonly accepted: false;
      readonly reason: ProposalRefusal;
      readonly leaderId: NodeId | null;
      readonly detail: string;
    };

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export interface FollowerProgress {
  readonly id: NodeId;
  readonly state: ProgressState;
  readonly matchIndex: number;
  readonly nextIndex: number;
  readonly inflightAppends: number;
  readonly recentlyActive: boolean;
}

export interface CoreStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly leaderId: NodeId | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly snapshotIndex: number;
  readonly config: Configuration;
  /** Leader only; empty elsewhere. */
  readonly progress: readonly FollowerProgress[];
  readonly transferTarget: NodeId | null;
  /** The damage this node is still repairing; null once it may vote again (see LogDamage). */
  readonly repairing: LogDamage | null;
}

/**
 * A leader may send its Append, Heartbeat, Snapshot and TimeoutNow messages before its own
 * write is durable, so its fsync and its followers' overlap (Raft thesis §10.2.1). This is
 * safe because the leader counts its own log towards a commit only up to its durable index,
 * and because its term was durable before any vote for it could arrive. Every other message
 * (votes, acknowledgements) promises state that must be on disk first.
 */
export function sendableBeforePersist(message: Message): boolean {
  return (
    message.type === 'Append' ||
    message.type === 'Heartbeat' ||
    message.type === 'Snapshot' ||
    message.type === 'TimeoutNow'
  );
}
