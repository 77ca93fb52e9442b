/**
 * Snapshots of the application state (the session table and the membership table) and when
 * the log is compacted to them. A candidate is taken every `snapshotIntervalBytes` of applied
 * batches; the log is compacted to the previous candidate, not the newest, so one to two
 * intervals of entries stay for followers that are a little behind: sending such a follower
 * a whole snapshot instead of a few entries costs far more. A graceful stop saves one more,
 * at the applied index, so that the next start has nothing to replay.
 */
import type { RaftCore } from '../raft/core.ts';
import type { NodeId, Snapshot, SnapshotMeta } from '../raft/types.ts';
import type { RaftStorage } from '../storage/types.ts';
import { assert } from '../util/assert.ts';
import { MembershipTable } from './membership.ts';
import type { NodeObserver } from './observer.ts';
import type { NodeLogger } from './options.ts';
import { SessionTable, type SessionTableOptions } from './sessions.ts';
import { StreamState } from './stream-state.ts';

/** What a snapshot restores: every table is a function of the applied entries. */
export interface AppState {
  readonly sessions: SessionTable;
  readonly membership: MembershipTable;
  readonly streams: StreamState;
}

/**
 * The application state a snapshot holds: u32 length of the session table's bytes, those
 * bytes, then the membership table as JSON (one line), then, once retention or a consumer
 * recorded anything, a newline and the stream state as JSON. Without the last part the bytes
 * are the older layout's, so a cluster that uses neither can still be read by an older node.
 */
export function encodeAppState(state: AppState): Uint8Array {
  const sessionBytes = state.sessions.toSnapshot();
  const membershipText = JSON.stringify(state.membership.toJSON());
  assert(!membershipText.includes('\n'), 'compact JSON is one line');
  const streamsText = state.streams.isInitial ? '' : `\n${JSON.stringify(state.streams)}`;
  const header = Buffer.alloc(4);
  header.writeUInt32LE(sessionBytes.length, 0);
  return Buffer.concat([header, sessionBytes, Buffer.from(membershipText + streamsText)]);
}

export function decodeAppState(data: Uint8Array, sessionOptions: SessionTableOptions): AppState {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  assert(view.length >= 4, 'an application snapshot has a header');
  const sessionBytes = view.readUInt32LE(0);
  assert(4 + sessionBytes <= view.length, 'the session table fits in the snapshot');
  const sessionData = view.subarray(4, 4 + sessionBytes);
  const [membershipJson, streamsJson] = view
    .subarray(4 + sessionBytes)
    .toString('utf8')
    .split('\n');
  return {
    sessions: SessionTable.fromSnapshot(sessionData, sessionOptions),
    membership: MembershipTable.fromJSON(JSON.parse(membershipJson as string)),
    streams:
      streamsJson === undefined ? new StreamState() : StreamState.fromJSON(JSON.parse(streamsJson)),
  };
}

export interface SnapshotsOptions {
  readonly id: NodeId;
  readonly core: RaftCore;
  readonly storage: RaftStorage;
  readonly logger: NodeLogger;
  readonly observer: NodeObserver | undefined;
  /** Applied batch bytes between two candidates. */
  readonly snapshotIntervalBytes: number;
  /**
   * Makes the message store durable: called before the log is compacted, after which the
   * store holds this node's only copy of the messages before the snapshot.
   */
  readonly syncStore: () => Promise<void>;
}

/** At most this many candidates wait; the loop compacts one per Ready, so two is the norm. */
const candidatesMax = 8;

export class Snapshots {
  private bytesSinceCandidate = 0;
  private candidates: Snapshot[] = [];

  constructor(private readonly options: SnapshotsOptions) {
    assert(options.snapshotIntervalBytes > 0, 'snapshotIntervalBytes is positive');
  }

  /** Counts applied bytes; true once a candidate is due. */
  noteApplied(bytes: number): boolean {
    assert(bytes >= 0, 'applied byte counts are not negative');
    this.bytesSinceCandidate += bytes;
    return this.bytesSinceCandidate >= this.options.snapshotIntervalBytes;
  }

  /** Serialises the state at the applied index now; compacted to later (see above). */
  takeCandidate(meta: SnapshotMeta, state: AppState): void {
    const last = this.candidates[this.candidates.length - 1];
    assert(last === undefined || last.meta.index < meta.index, 'candidates move forward');
    this.bytesSinceCandidate = 0;
    this.candidates.push({ meta, data: encodeAppState(state) });
    // Bounded: a disk slower than the applier would otherwise pile up serialised tables.
    if (this.candidates.length > candidatesMax) this.candidates.splice(0, 1);
  }

  /**
   * At a graceful stop: saves the state at the applied index and compacts the log on disk to
   * it, so the next start restores it instead of replaying every entry since the last
   * compaction (up to two intervals, 128 MiB by default). False when there is nothing newer
   * than the snapshot held. The core is not compacted: the node is stopping.
   */
  async saveAtStop(meta: SnapshotMeta, state: AppState): Promise<boolean> {
    assert(Number.isSafeInteger(meta.index) && meta.index >= 0, 'an applied index');
    if (meta.index <= this.options.core.status().snapshotIndex) return false;
    // The log below the snapshot goes: the store must hold those messages durably first.
    await this.options.syncStore();
    await this.options.storage.saveSnapshot({ meta, data: encodeAppState(state) });
    this.candidates = [];
    return true;
  }

  /** A leader's snapshot replaced the state: our candidates describe a superseded past. */
  reset(): void {
    this.candidates = [];
    this.bytesSinceCandidate = 0;
  }

  /** Saves the older candidate and compacts the core's log to it, once two are waiting. */
  async maybeCompact(): Promise<void> {
    if (this.candidates.length < 2) return;
    const snapshot = this.candidates.shift() as Snapshot;
    const { core } = this.options;
    if (snapshot.meta.index <= core.status().snapshotIndex) return;
    await this.options.syncStore();
    await this.options.storage.saveSnapshot(snapshot);
    // A leader's snapshot may have replaced the log while ours was being written: then ours
    // is already covered, and the core must not be asked to compact to it.
    if (snapshot.meta.index <= core.status().snapshotIndex) return;
    core.compact(snapshot);
    assert(core.status().snapshotIndex === snapshot.meta.index, 'the core compacted to it');
    this.options.observer?.compacted(snapshot);
    this.options.logger.info(
      { node: this.options.id, index: snapshot.meta.index },
      'compacted the log',
    );
  }
}
