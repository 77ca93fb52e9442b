/**
 * The simulated application on each node: it applies committed entries in log order through
 * the real batch decoder and session table of src/broadcast, so duplicates take no position,
 * and it keeps a hash chain over the messages it delivered. Its whole state (session table,
 * position counter, hash chain, configuration) goes into snapshots, and the checkers compare
 * it against the common state at every index.
 */
import { type ClientMessage, decodeBatch } from '../broadcast/batch.ts';
import { type MessageOutcome, SessionTable } from '../broadcast/sessions.ts';
import { decodeConfiguration, emptyConfiguration } from '../raft/config.ts';
import type { Configuration, Entry, Snapshot } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { hashBytes, hashString, mix32, mixNumber } from './hash.ts';

/** Sessions never expire inside one simulated run: retries must always be recognised. */
export const simSessionOptions = {
  sessionTtlMs: Number.MAX_SAFE_INTEGER,
  recentPositionsMax: 4,
} as const;

export interface AppliedMessage {
  readonly message: ClientMessage;
  readonly outcome: MessageOutcome;
}

export class SnapshotDataError extends Error {
  readonly code = 'SNAPSHOT_DATA_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotDataError';
  }
}

/** The chain over delivered messages: one step per message that took a position. */
export function chainStep(chainHash: number, position: number, message: ClientMessage): number {
  let hash = mixNumber(chainHash, position);
  hash = mix32(hash, hashString(message.clientId));
  hash = mixNumber(hash, message.seq);
  hash = mix32(hash, hashString(message.topic));
  return mix32(hash, hashBytes(message.payload));
}

const SNAPSHOT_FORMAT = 1;
const SNAPSHOT_HEADER_BYTES = 1 + 4 + 8 + 8;

export class SimApp {
  private constructor(
    private sessions: SessionTable,
    public appliedIndex: number,
    public appliedTerm: number,
    public chainHash: number,
    public config: Configuration,
  ) {}

  static empty(): SimApp {
    return new SimApp(new SessionTable(simSessionOptions), 0, 0, 0, emptyConfiguration);
  }

  /** Throws SnapshotDataError when the data is not a snapshot this application wrote. */
  static fromSnapshot(snapshot: Snapshot): SimApp {
    const { data, meta } = snapshot;
    if (data.length < SNAPSHOT_HEADER_BYTES) throw new SnapshotDataError('snapshot data too short');
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (view.getUint8(0) !== SNAPSHOT_FORMAT)
      throw new SnapshotDataError('unknown snapshot format');
    const chainHash = view.getUint32(1);
    const appliedIndex = view.getFloat64(5);
    const appliedTerm = view.getFloat64(13);
    if (appliedIndex !== meta.index || appliedTerm !== meta.term) {
      throw new SnapshotDataError(
        `snapshot data is of ${appliedIndex}/${appliedTerm}, its meta says ${meta.index}/${meta.term}`,
      );
    }
    let sessions: SessionTable;
    try {
      sessions = SessionTable.fromSnapshot(data.subarray(SNAPSHOT_HEADER_BYTES), simSessionOptions);
    } catch (error) {
      throw new SnapshotDataError(`session table does not decode: ${String(error)}`);
    }
    return new SimApp(sessions, appliedIndex, appliedTerm, chainHash, meta.config);
  }

  get lastPosition(): number {
    return this.sessions.lastPosition;
  }

  get sessionCount(): number {
    return this.sessions.sessionCount;
  }

  expectedSeq(clientId: string): number {
    return this.sessions.expectedSeq(clientId);
  }

  /**
   * Applies the next committed entry. The caller has checked that it decodes (the checkers
   * see every entry first), so a decode error here is the simulator's own bug.
   */
  apply(entry: Entry): AppliedMessage[] {
    assert(entry.index === this.appliedIndex + 1, 'entries are applied in log order');
    this.appliedIndex = entry.index;
    this.appliedTerm = entry.term;
    if (entry.kind === 'config') {
      this.config = decodeConfiguration(entry.data);
      return [];
    }
    if (entry.kind === 'noop') return [];
    const batch = decodeBatch(entry.data);
    const outcomes = this.sessions.apply(batch);
    assert(outcomes.length === batch.messages.length, 'one outcome per message');
    const applied: AppliedMessage[] = [];
    for (let offset = 0; offset < outcomes.length; offset++) {
      const message = batch.messages[offset] as ClientMessage;
      const outcome = outcomes[offset] as MessageOutcome;
      if (outcome.kind === 'delivered') {
        this.chainHash = chainStep(this.chainHash, outcome.position, message);
      }
      applied.push({ message, outcome });
    }
    return applied;
  }

  /** The application's whole state as a snapshot at its applied index. */
  snapshot(): Snapshot {
    const sessions = this.sessions.toSnapshot();
    const data = new Uint8Array(SNAPSHOT_HEADER_BYTES + sessions.length);
    const view = new DataView(data.buffer);
    view.setUint8(0, SNAPSHOT_FORMAT);
    view.setUint32(1, this.chainHash);
    view.setFloat64(5, this.appliedIndex);
    view.setFloat64(13, this.appliedTerm);
    data.set(sessions, SNAPSHOT_HEADER_BYTES);
    return {
      meta: { index: this.appliedIndex, term: this.appliedTerm, config: this.config },
      data,
    };
  }
}
