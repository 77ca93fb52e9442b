import type {
  ConfigChange,
  Configuration,
  CoreStatus,
  Entry,
  Message,
  NodeId,
  PersistedState,
  ProposalResult,
  Ready,
  Snapshot,
} from './types.ts';

/**
 * Deliberately broken behaviours, for tests that prove the simulator's checkers can fail.
 * Never set outside tests.
 */
export type UnsafeVariant =
  /** Commit an entry of an earlier term by counting replicas (the Raft paper's Figure 8). */
  | 'commitPreviousTermByCounting'
  /** Grant a vote to every candidate of a term, not only the first. */
  | 'grantTwoVotesPerTerm'
  /** Leave the vote out of the persisted hard state, so a restart forgets it. */
  | 'forgetVoteOnRestart';

export interface CoreOptions {
  readonly nodeId: NodeId;
  /** Followers wait a random number of ticks in [n, 2n) without a leader before campaigning. */
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  /** Uniform in [0, 1): seeded in src/sim, crypto-backed in production. */
  readonly random: () => number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Bytes of entry data in one Append; a single larger entry still goes alone. */
  readonly appendBytesMax: number;
  /** Appends sent to a follower in replicate state and not yet acknowledged. */
  readonly inflightAppendsMax: number;
  /** The initial configuration when the persisted state is empty; null for a joining node. */
  readonly bootstrap: Configuration | null;
  readonly unsafe?: UnsafeVariant | null;
}

export interface LogView {
  readonly snapshotIndex: number;
  readonly snapshotTerm: number;
  /** Contiguous from snapshotIndex + 1. */
  readonly entries: readonly Entry[];
}

export class RaftCore {
  constructor(options: CoreOptions, persisted: PersistedState) {
    void options;
    void persisted;
    throw new Error('RaftCore is being written');
  }
  tick(): void {}
  step(message: Message): void {
    void message;
  }
  propose(data: Uint8Array): ProposalResult {
    void data;
    throw new Error('todo');
  }
  proposeConfigChange(change: ConfigChange): ProposalResult {
    void change;
    throw new Error('todo');
  }
  /** Starts a leadership transfer; refused unless this node leads and `to` is a voter. */
  transferLeadership(to: NodeId): { readonly accepted: boolean; readonly detail: string } {
    void to;
    throw new Error('todo');
  }
  /** The answer arrives as a ReadState in a later Ready. */
  readIndex(requestId: string): void {
    void requestId;
  }
  /** The runtime has durably saved `snapshot` (index <= applied); the log before it may go. */
  compact(snapshot: Snapshot): void {
    void snapshot;
  }
  /** Starts an election now (tests and operators). */
  campaign(): void {}
  hasReady(): boolean {
    return false;
  }
  ready(): Ready {
    throw new Error('todo');
  }
  advance(ready: Ready): void {
    void ready;
  }
  status(): CoreStatus {
    throw new Error('todo');
  }
  log(): LogView {
    throw new Error('todo');
  }
}
