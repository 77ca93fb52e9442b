/**
 * The contract between a node's runtime and its durable storage. The core decides; storage
 * remembers: nothing whose `append` resolved may be lost, whatever the crash (`kill -9`,
 * power cut mid-write). Two implementations pass one conformance suite: `FileStorage` (disk)
 * and `MemoryStorage` (an in-memory twin for tests of the runtime and the simulator).
 */
import type { Entry, HardState, NodeId, PersistedState, Snapshot } from '../raft/types.ts';

export type { StorageErrorCode, StorageErrorDetails } from './errors.ts';
export { StorageError } from './errors.ts';

/**
 * The on-disk format this release writes; a directory with a higher version is refused.
 * 1: segments grow record by record. 2: segments are preallocated with zeros, and zeros after
 * a segment's last record are its clean end (format 1 reads them as damage). 3: records are
 * seeded with their segment's number, and a segment may be a recycled file whose earlier
 * records follow its own (format 2 would read them as damage). This release reads all
 * three, and marks an older directory as 3 when it opens it.
 */
export const STORAGE_FORMAT_VERSION = 3;

/**
 * One step of a Ready, in the order Ready prescribes (src/raft/types.ts): the snapshot (if
 * any) replaces the whole log, then the log is truncated from `entries[0].index` and the
 * entries appended, then the hard state recorded. The three become durable together.
 */
export interface AppendRequest {
  readonly hardState: HardState | null;
  /** A snapshot received from the leader: it replaces the log and the previous snapshot. */
  readonly snapshot: Snapshot | null;
  /**
   * Dense and in index order; `entries[0].index` is at most the last index + 1 and after the
   * snapshot. Entry data must not be mutated by the caller after `append` is called.
   */
  readonly entries: readonly Entry[];
}

/**
 * Monotonic counters since `open`, for benchmarks and metrics. One group commit is one WAL
 * record written with one `fdatasync`; `appendCount / recordCount` is the batching factor.
 */
export interface StorageCounters {
  /** `append` calls that resolved. */
  readonly appendCount: number;
  readonly entryCount: number;
  /** WAL records written: one per group commit (plus one header per new segment). */
  readonly recordCount: number;
  /**
   * `fdatasync`/`fsync` calls on WAL records, snapshot files and directories; the syncs of
   * zero-filling (preallocation) are not counted here (see `walPreallocatedBytes`).
   */
  readonly fsyncCount: number;
  /** Bytes written to WAL segments (record framing included). */
  readonly walWrittenBytes: number;
  readonly snapshotWrittenBytes: number;
  readonly segmentCreatedCount: number;
  readonly segmentDeletedCount: number;
  /** Rotations that had to wait for the next segment to be zero-filled: append stalls. */
  readonly segmentSpareMissCount: number;
  /** New segments made from a deleted segment's file instead of from zeros. */
  readonly segmentRecycledCount: number;
  /** Zeros written to preallocate segments (1 fdatasync per 4 MiB of them). */
  readonly walPreallocatedBytes: number;
}

/** Noteworthy things that happened without failing; give them to a logger. */
export type StorageEvent =
  | {
      readonly type: 'tornTailTruncated';
      readonly file: string;
      /** Where the last valid record ends: what follows was discarded (overwritten with
       * zeros, so that the segment keeps its preallocated size). */
      readonly offsetBytes: number;
      /** The damaged bytes: from `offsetBytes` up to the last nonzero byte of the file. */
      readonly droppedBytes: number;
    }
  | {
      readonly type: 'staleLockRemoved';
      readonly file: string;
      readonly pid: number | null;
    }
  | {
      /** The log after the snapshot disagreed with it (a crash while a leader's snapshot was
       * being installed, before its log reset was durable): the stale suffix is dropped. */
      readonly type: 'staleLogDiscarded';
      readonly snapshotIndex: number;
      readonly firstIndex: number;
      readonly lastIndex: number;
    }
  | {
      /**
       * A WAL record failed verification where a crash cannot explain it: the log keeps the
       * intact prefix, the damaged records are cut, and the node repairs the lost entries
       * from a leader before it votes again (LogDamage in src/raft/types.ts).
       */
      readonly type: 'walDamaged';
      readonly file: string;
      readonly offsetBytes: number;
      readonly reason: string;
      readonly firstLostIndex: number;
      readonly lastIndexSeen: number | null;
      readonly termBound: number;
    }
  | {
      /** A damage found at an earlier start is not repaired yet (see damage.json). */
      readonly type: 'repairPending';
      readonly firstLostIndex: number;
      readonly lastIndexSeen: number | null;
      readonly termBound: number;
    }
  | {
      /**
       * The snapshot file failed verification: the log's base is gone with it, so the node
       * drops its whole log (keeping term and vote) and repairs from a leader; the file is
       * kept as snapshot.bin.damaged.
       */
      readonly type: 'snapshotDamaged';
      readonly file: string;
      readonly reason: string;
      readonly firstLostIndex: number;
      readonly lastIndexSeen: number | null;
      readonly termBound: number;
    }
  | {
      /** meta.json was unreadable or missing beside data: rewritten with this node's identity. */
      readonly type: 'metadataRebuilt';
      readonly file: string;
      readonly reason: string;
    }
  | { readonly type: 'repairDone' }
  | { readonly type: 'segmentDeleted'; readonly file: string; readonly reason: string }
  | { readonly type: 'temporaryFileRemoved'; readonly file: string };

export type StorageLogger = (event: StorageEvent) => void;

/** What identifies a data directory; checked on every open. */
export interface StorageMetadata {
  readonly formatVersion: number;
  readonly clusterId: string;
  readonly nodeId: NodeId;
}

export interface OpenedStorage<S extends RaftStorage> {
  readonly storage: S;
  /** Everything acknowledged before the last crash or close; give it to `new RaftCore`. */
  readonly persisted: PersistedState;
  readonly metadata: StorageMetadata;
  /** True when this open created the data directory's identity (first use). */
  readonly created: boolean;
}

export interface RaftStorage {
  /**
   * Makes `request` durable. Resolves only after the `fdatasync` that covers it (and every
   * earlier request) has returned; rejects with a StorageError, never partially: an
   * `INVALID_ARGUMENT` or `OVERLOADED` request wrote nothing and the storage stays usable,
   * an `IO` failure stops the storage for good. Requests are applied in call order, and a
   * request is validated when called, against the state all earlier calls will leave.
   * Calls that arrive while a write is in flight are coalesced into the next single write
   * and single `fdatasync` (group commit).
   */
  append(request: AppendRequest): Promise<void>;
  /**
   * Durably records a snapshot the application took of its own state (index <= last
   * index, with the term the log has there), atomically replacing the previous one, then
   * forgets the log up to its index. Ordered with appends. Resolves after the fsyncs.
   */
  saveSnapshot(snapshot: Snapshot): Promise<void>;
  counters(): StorageCounters;
  /**
   * The core's repair ended (`PersistedState.damage`): the node holds again every entry it may
   * have acknowledged, so later opens need not report the damage. Storage that never reports
   * damage does nothing.
   */
  repairDone(): Promise<void>;
  /** Waits for queued requests to become durable, then releases the directory. Idempotent. */
  close(): Promise<void>;
}
