import { assert, assertSafeNatural } from '../util/assert.ts';
import {
  applyConfigChange,
  assertConfiguration,
  encodeConfiguration,
  isMember,
  isVoter,
  members,
} from './config.ts';
import { RaftLog } from './log.ts';
import { Progress } from './progress.ts';
import { quorumValue, voteOutcome } from './quorum.ts';
import type {
  AppendMessage,
  AppendResponseMessage,
  ConfigChange,
  Configuration,
  CoreStatus,
  Entry,
  HardState,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  LogDamage,
  Message,
  NodeId,
  PersistedState,
  PreVoteMessage,
  ProposalRefusal,
  ProposalResult,
  ReadIndexMessage,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SnapshotMessage,
  SoftState,
  VoteMessage,
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
  | 'forgetVoteOnRestart'
  /**
   * Count a granted VoteResponse or PreVoteResponse from an earlier round as a vote in the
   * current one: a grant for term T, delayed until the candidate campaigns in T + 1, counts
   * although its sender may have voted for someone else in T + 1.
   */
  | 'countStaleVotes';

export const unsafeVariants: readonly UnsafeVariant[] = [
  'commitPreviousTermByCounting',
  'grantTwoVotesPerTerm',
  'forgetVoteOnRestart',
  'countStaleVotes',
];

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
  /**
   * Leader: when the commit index is all a follower lacks, tell it with the next entries or
   * at the first tick after a whole tick of holding it, not in an Append of its own at once.
   * Under load the next entries come first, saving an Append and its response per follower
   * per round; when idle, followers learn of a commit (and deliver) up to two ticks later
   * (the runtime asks sooner: `commitNewsHeld`, `sendCommitNews`), except of one they wait on
   * (`commitAwaited`: an entry they forwarded, a read index they asked for), which goes
   * with the next Ready. Off by default.
   */
  readonly lazyCommitNews?: boolean;
  /**
   * Leader: a tick's heartbeat round skips a follower in replicate state that was sent an
   * Append and answered one since the last round (broadcastHeartbeat says why that is safe).
   * Under load no heartbeat goes; a follower that falls silent is sent one a round later at
   * most. Off by default: the scenarios (test/scenarios) step without ticks between events, so
   * what a follower did before a partition or a restart would still count there.
   */
  readonly quietHeartbeats?: boolean;
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

/** A linearizable read waiting for a quorum of heartbeats to confirm leadership. */
interface PendingRead {
  readonly requestId: string;
  readonly index: number;
  readonly round: number;
  /** The follower that forwarded it, or null when it is this node's own. */
  readonly requester: NodeId | null;
}

const emptyBytes = new Uint8Array(0);

/**
 * The pure Raft core: no I/O, timers, randomness or clock of its own. Inputs are `tick`,
 * `step`, `propose` and friends; every output is collected into the next `Ready`.
 * See docs/design.md for the Ready contract and where this departs from the Raft paper.
 */
export class RaftCore {
  readonly id: NodeId;
  private readonly options: CoreOptions;
  private readonly raftLog = new RaftLog();
  private term = 0;
  private vote: NodeId | null = null;
  private role: Role = 'follower';
  private leaderId: NodeId | null = null;
  private electionElapsedTicks = 0;
  private heartbeatElapsedTicks = 0;
  private randomizedElectionTimeoutTicks = 0;
  private readonly votes = new Map<NodeId, boolean>();
  private readonly progress = new Map<NodeId, Progress>();
  private transferTarget: NodeId | null = null;
  /** Leader only: followers that lost entries acknowledged in this term (handOverAfterLoss). */
  private readonly followersWithLoss = new Set<NodeId>();
  /**
   * Leader only: voters handed leadership after a loss that did not take it within an
   * election timeout. Such a voter may be repairing itself (a loss this leader never saw:
   * it was refilled before this term), so it ignores TimeoutNow; offered again at every
   * heartbeat, it would hold proposals back for good (runtime seed 0x2284).
   */
  private readonly handOverDeclinedBy = new Set<NodeId>();
  /** The transfer in progress was started by handOverAfterLoss, not asked for. */
  private transferIsHandOver = false;
  private transferElapsedTicks = 0;
  /** Leader: ticks since the newest configuration committed while former members remain. */
  private formerMembersElapsedTicks = 0;
  private readRound = 0;
  private pendingReads: PendingRead[] = [];
  private messages: Message[] = [];
  private readStates: ReadState[] = [];
  /** Leader: new entries or a new commit index wait for the next Ready to go out together. */
  private broadcastEntriesPending = false;
  private broadcastCommitPending = false;
  private persistedHardState: HardState;
  private emittedSoftState: SoftState;
  private readyOutstanding = false;
  /**
   * The last index given to the application for the outstanding Ready: its own
   * entriesToDeliver, then any `deliverDurable` gave while its write was under way.
   */
  private deliveredThrough = 0;
  /** Entries lost to a corrupted disk that this node has not yet had back (see LogDamage). */
  private repair: LogDamage | null = null;

  constructor(options: CoreOptions, persisted: PersistedState) {
    validateOptions(options);
    this.options = options;
    this.id = options.nodeId;
    const hardState = persisted.hardState ?? { term: 0, vote: null, commit: 0 };
    assertSafeNatural(hardState.term, 'persisted term');
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.raftLog.load(persisted.snapshot, persisted.entries);
    this.persistedHardState = hardState;
    const empty = persisted.snapshot === null && persisted.entries.length === 0;
    if (empty && persisted.hardState === null && options.bootstrap !== null) {
      this.bootstrap(options.bootstrap);
    } else {
      const applied = Math.max(persisted.appliedIndex, this.raftLog.snapshotIndex);
      assert(applied <= this.raftLog.lastIndex(), 'the application never ran ahead of the log');
      this.raftLog.commitTo(
        Math.min(Math.max(hardState.commit, applied), this.raftLog.lastIndex()),
      );
      this.raftLog.appliedTo(applied);
    }
    this.emittedSoftState = { role: this.role, leaderId: this.leaderId };
    this.resetElectionTimer();
    const damage = persisted.damage ?? null;
    if (damage !== null) {
      assertSafeNatural(damage.termBound, 'damage term bound');
      assert(damage.firstLostIndex >= 1, 'a lost index is a log index');
      assert(hardState.term >= damage.termBound, 'the term bound is the hard state term or less');
      this.repair = damage;
      this.endRepairIfRecovered();
    }
  }

  /**
   * Every initial member writes the same configuration entry at index 1, term 1, so their
   * logs agree from the start and a node added later learns the configuration from the log.
   */
  private bootstrap(config: Configuration): void {
    assertConfiguration(config);
    assert(config.voters.length > 0, 'a bootstrap configuration has voters');
    this.term = 1;
    this.raftLog.append({ index: 1, term: 1, kind: 'config', data: encodeConfiguration(config) });
    this.raftLog.commitTo(1);
  }

  // ---------------------------------------------------------------- inputs

  tick(): void {
    if (this.role === 'leader') this.tickLeader();
    else this.tickFollower();
  }

  private tickFollower(): void {
    this.electionElapsedTicks++;
    if (this.promotable() && this.electionElapsedTicks >= this.randomizedElectionTimeoutTicks) {
      this.startElection(false);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsedTicks++;
    this.electionElapsedTicks++;
    if (this.electionElapsedTicks >= this.options.electionTimeoutTicks) {
      this.electionElapsedTicks = 0;
      if (this.options.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.term, null, 'restart');
        return;
      }
    }
    if (this.transferTarget !== null) {
      this.transferElapsedTicks++;
      if (this.transferElapsedTicks >= this.options.electionTimeoutTicks) {
        if (this.transferIsHandOver) this.handOverDeclinedBy.add(this.transferTarget);
        this.abortTransfer();
      }
    }
    for (const progress of this.progress.values()) {
      if (progress.state !== 'snapshot') continue;
      // A lost snapshot would otherwise stall the follower forever: try again later.
      progress.snapshotElapsedTicks++;
      if (progress.snapshotElapsedTicks >= 2 * this.options.electionTimeoutTicks) {
        progress.becomeProbe();
      }
    }
    this.tickFormerMembers();
    if (this.heartbeatElapsedTicks >= this.options.heartbeatIntervalTicks) {
      this.heartbeatElapsedTicks = 0;
      this.broadcastHeartbeat(true);
      // No voter could take over when the loss was found: try again as they come back.
      for (const follower of this.followersWithLoss) this.handOverAfterLoss(follower);
    }
    if (this.options.lazyCommitNews === true) {
      // A heartbeat just now carried the commit index already; this is for the other ticks.
      // Only news held since the previous tick goes: under load the next Append carries a
      // commit within a round, and a tick that caught one between its commit and that
      // Append (at 128 in flight about one tick in five) sent an Append of its own to each
      // follower, each answered. The runtime sends news a short idle wait after its loop
      // stops (sendCommitNews), well before a tick.
      for (const progress of this.progress.values()) {
        if (!this.commitBehind(progress)) progress.commitHeldAtTick = -1;
        else if (progress.commitHeldAtTick === progress.commitSent) this.sendAppend(progress, true);
        else progress.commitHeldAtTick = progress.commitSent;
      }
    }
  }

  /** Drops servers a committed configuration left out, an election timeout after the fact. */
  private tickFormerMembers(): void {
    if (this.raftLog.committed < this.raftLog.lastConfigIndex()) return;
    const config = this.raftLog.config();
    let former = false;
    for (const id of this.progress.keys()) if (!isMember(config, id)) former = true;
    if (!former) return;
    this.formerMembersElapsedTicks++;
    if (this.formerMembersElapsedTicks >= this.options.electionTimeoutTicks) this.rebuildProgress();
  }

  /** CheckQuorum (Raft thesis §6.2): a leader that has not heard from a quorum steps down. */
  private quorumActive(): boolean {
    const config = this.raftLog.config();
    if (!isVoter(config, this.id)) return true;
    const active = quorumValue(config.voters, (id) =>
      id === this.id || this.progress.get(id)?.recentlyActive === true ? 1 : 0,
    );
    for (const progress of this.progress.values()) progress.recentlyActive = false;
    return active === 1;
  }

  step(message: Message): void {
    assert(message.to === this.id, 'messages reach their addressee');
    assertSafeNatural(message.term, 'message term');
    if (!this.stepTerm(message)) return;
    switch (message.type) {
      case 'PreVote':
        this.handlePreVote(message);
        break;
      case 'Vote':
        this.handleVote(message);
        break;
      case 'PreVoteResponse':
        if (
          this.role === 'preCandidate' &&
          message.term === this.term + (message.granted ? 1 : 0)
        ) {
          this.tallyVote(message.from, message.granted);
        } else if (this.countsStaleVote(message)) {
          this.tallyVote(message.from, true);
        }
        break;
      case 'VoteResponse':
        if (this.role === 'candidate' && message.term === this.term) {
          this.tallyVote(message.from, message.granted);
        }
        break;
      case 'Append':
        this.followLeader(message.from);
        this.handleAppend(message);
        break;
      case 'Heartbeat':
        this.followLeader(message.from);
        this.handleHeartbeat(message);
        break;
      case 'Snapshot':
        this.followLeader(message.from);
        this.handleSnapshot(message);
        break;
      case 'AppendResponse':
        this.handleAppendResponse(message);
        break;
      case 'HeartbeatResponse':
        this.handleHeartbeatResponse(message);
        break;
      case 'TimeoutNow':
        if (this.promotable() && message.from === this.leaderId) this.startElection(true);
        break;
      case 'ReadIndex':
        this.handleReadIndex(message);
        break;
      case 'ReadIndexResponse':
        this.readStates.push({ requestId: message.requestId, index: message.index });
        break;
    }
  }

  /** Applies the term rules of Raft §5.1 with PreVote and CheckQuorum; false drops it. */
  private stepTerm(message: Message): boolean {
    if (message.term > this.term) {
      if (message.type === 'PreVote' || message.type === 'Vote') {
        const forced = message.type === 'Vote' && message.transfer;
        // Leader lease (Raft thesis §4.2.3): while we hear from a leader, a candidate cannot
        // disrupt it; a node returning from a partition is ignored instead of deposing it.
        if (this.options.checkQuorum && !forced && this.inLease()) return false;
      }
      if (message.type === 'PreVote') return true;
      if (message.type === 'PreVoteResponse' && message.granted) return true;
      const fromLeader =
        message.type === 'Append' || message.type === 'Heartbeat' || message.type === 'Snapshot';
      // Raft §5.2, Figure 2: the election clock restarts on hearing from a leader or granting
      // a vote (handleVote), not because a candidate's term passed ours. A candidate whose log
      // we refuse, campaigning again and again (a faster clock, no PreVote), would otherwise
      // keep the node with the better log from ever timing out (runtime seed 0x657, figure8).
      const electionClock = message.type === 'Vote' ? 'keep' : 'restart';
      this.becomeFollower(message.term, fromLeader ? message.from : null, electionClock);
      return true;
    }
    if (message.term < this.term) {
      if (this.countsStaleVote(message)) {
        this.tallyVote(message.from, true);
      } else if (
        message.type === 'Append' ||
        message.type === 'Heartbeat' ||
        message.type === 'Snapshot'
      ) {
        // Tell a stale leader about the newer term; with PreVote it would otherwise never
        // learn of it, since our own campaigns no longer raise terms on their own.
        this.send({
          type: 'AppendResponse',
          to: message.from,
          success: false,
          index: 0,
          hintIndex: 0,
          hintTerm: 0,
        });
      } else if (message.type === 'PreVote') {
        this.send({ type: 'PreVoteResponse', to: message.from, granted: false });
      } else if (message.type === 'Vote') {
        // Raft §5.1: the refusal carries our term, so a candidate stuck below it catches up.
        // Ignoring it instead can livelock: a candidate with the better log but a lower term
        // never learns the term it must exceed (simulator seed 0x63d).
        this.send({ type: 'VoteResponse', to: message.from, granted: false });
      }
      return false;
    }
    return true;
  }

  /**
   * Only the unsafe variant: a grant answers the request of one term and says nothing about
   * the voter's choice in any later term (Raft §5.2: each server votes at most once per
   * term), so the correct core drops it with every other message of an older term.
   */
  private countsStaleVote(message: Message): boolean {
    if (this.options.unsafe !== 'countStaleVotes') return false;
    // A candidate's round is its term; a pre-candidate's is the term it would campaign in.
    if (message.type === 'VoteResponse') {
      return message.granted && this.role === 'candidate' && message.term < this.term;
    }
    if (message.type === 'PreVoteResponse') {
      return message.granted && this.role === 'preCandidate' && message.term < this.term + 1;
    }
    return false;
  }

  /**
   * Whether this node heard from a leader within the last election timeout, or leads. A node
   * that may not campaign (a learner, or one that knows it was removed) keeps naming the last
   * leader it heard from, so leader() alone does not tell it from a follower in touch.
   */
  leaderHeardRecently(): boolean {
    return this.role === 'leader' || this.inLease();
  }

  private inLease(): boolean {
    return this.leaderId !== null && this.electionElapsedTicks < this.options.electionTimeoutTicks;
  }

  private logUpToDate(lastLogIndex: number, lastLogTerm: number): boolean {
    const ourTerm = this.raftLog.lastTerm();
    return (
      lastLogTerm > ourTerm || (lastLogTerm === ourTerm && lastLogIndex >= this.raftLog.lastIndex())
    );
  }

  /**
   * The election restriction (Raft §5.4.1). A repairing node's log is no measure of what it
   * acknowledged: the lost records may have ended anywhere after the intact ones (a write the
   * disk lost leaves no trace), but every entry it acknowledged has a term of at most
   * `termBound`. It therefore grants only a candidate whose last entry has a later term: that
   * entry's leader held every entry committed in earlier terms, before its own (Leader
   * Completeness), and the candidate holds that leader's log up to there (Log Matching).
   * docs/design.md, "Repair of a corrupted log", gives the whole argument (Alagappan et al.,
   * FAST 2018, §5: a node votes only on what it can vouch for).
   */
  private candidateUpToDate(lastLogIndex: number, lastLogTerm: number): boolean {
    if (!this.logUpToDate(lastLogIndex, lastLogTerm)) return false;
    return this.repair === null || lastLogTerm > this.repair.termBound;
  }

  private handlePreVote(message: PreVoteMessage): void {
    const granted =
      message.term > this.term && this.candidateUpToDate(message.lastLogIndex, message.lastLogTerm);
    this.send({
      type: 'PreVoteResponse',
      to: message.from,
      term: granted ? message.term : this.term,
      granted,
    });
  }

  private handleVote(message: VoteMessage): void {
    const canVote =
      this.vote === message.from ||
      (this.vote === null && this.leaderId === null) ||
      (this.options.unsafe === 'grantTwoVotesPerTerm' && this.role !== 'leader');
    const granted = canVote && this.candidateUpToDate(message.lastLogIndex, message.lastLogTerm);
    if (granted) {
      this.vote = message.from;
      this.electionElapsedTicks = 0;
    }
    this.send({ type: 'VoteResponse', to: message.from, granted });
  }

  private followLeader(leader: NodeId): void {
    if (this.role !== 'follower') this.becomeFollower(this.term, leader, 'restart');
    this.leaderId = leader;
    this.electionElapsedTicks = 0;
  }

  // ---------------------------------------------------------------- elections

  /**
   * A server campaigns while it may still be needed for a quorum: it is a voter in its latest
   * configuration, or in one the cluster may still be using because nothing newer is known to
   * be committed (Raft thesis §4.2.2, Figure 4.6). A leader that removes itself and steps down
   * before the removal commits, or a voter demoted by an uncommitted entry, is otherwise lost
   * to the old majority, which may need its vote and its longer log (simulator seeds
   * 0xb2d09396, 0xb2d0fc62, 0xb2d0bfda). It never counts its own vote where it is not a voter
   * of its latest configuration: voteOutcome counts only that configuration's voters.
   */
  private promotable(): boolean {
    if (this.raftLog.pendingSnapshot !== null) return false;
    // A repairing node must not lead: it may lack entries it helped commit.
    if (this.repair !== null) return false;
    return this.raftLog.configsSinceCommit().some((config) => isVoter(config, this.id));
  }

  /** Starts an election now (tests and operators); ignored on a leader or a non-voter. */
  campaign(): void {
    if (this.role !== 'leader' && this.promotable()) this.startElection(false);
  }

  private startElection(transfer: boolean): void {
    if (this.options.preVote && !transfer) this.becomePreCandidate();
    else this.becomeCandidate(transfer);
  }

  private becomePreCandidate(): void {
    // PreVote (Raft thesis §9.6): ask first whether we could win, without raising our term,
    // so that a node that cannot win never forces the cluster into a new term.
    this.role = 'preCandidate';
    this.leaderId = null;
    this.votes.clear();
    this.resetElectionTimer();
    this.tallyVote(this.id, true);
    if (this.role !== 'preCandidate') return;
    for (const voter of this.raftLog.config().voters) {
      if (voter === this.id) continue;
      this.send({
        type: 'PreVote',
        to: voter,
        term: this.term + 1,
        lastLogIndex: this.raftLog.lastIndex(),
        lastLogTerm: this.raftLog.lastTerm(),
      });
    }
  }

  private becomeCandidate(transfer: boolean): void {
    this.term++;
    this.vote = this.id;
    this.role = 'candidate';
    this.leaderId = null;
    this.votes.clear();
    this.resetElectionTimer();
    this.clearLeaderState();
    this.tallyVote(this.id, true);
    if (this.role !== 'candidate') return;
    for (const voter of this.raftLog.config().voters) {
      if (voter === this.id) continue;
      this.send({
        type: 'Vote',
        to: voter,
        lastLogIndex: this.raftLog.lastIndex(),
        lastLogTerm: this.raftLog.lastTerm(),
        transfer,
      });
    }
  }

  private tallyVote(from: NodeId, granted: boolean): void {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    const outcome = voteOutcome(this.raftLog.config().voters, this.votes);
    if (outcome === 'lost') this.becomeFollower(this.term, null, 'restart');
    else if (outcome === 'won' && this.role === 'preCandidate') this.becomeCandidate(false);
    else if (outcome === 'won' && this.role === 'candidate') this.becomeLeader();
  }

  private becomeFollower(
    term: number,
    leader: NodeId | null,
    electionClock: 'restart' | 'keep',
  ): void {
    assert(term >= this.term, 'terms never go back');
    if (term > this.term) {
      this.term = term;
      this.vote = null;
    }
    this.role = 'follower';
    this.leaderId = leader;
    this.clearLeaderState();
    const elapsedTicks = this.electionElapsedTicks;
    // The timeout is drawn afresh either way, so the random stream does not depend on which.
    this.resetElectionTimer();
    if (electionClock === 'keep') this.electionElapsedTicks = elapsedTicks;
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', 'only a candidate becomes leader');
    this.role = 'leader';
    this.leaderId = this.id;
    this.heartbeatElapsedTicks = 0;
    this.electionElapsedTicks = 0;
    this.rebuildProgress();
    // A no-op of our own term lets us commit what earlier leaders left (Raft §5.4.2, §8).
    this.appendEntry('noop', emptyBytes);
  }

  private clearLeaderState(): void {
    this.progress.clear();
    this.followersWithLoss.clear();
    this.handOverDeclinedBy.clear();
    this.transferTarget = null;
    this.transferIsHandOver = false;
    this.transferElapsedTicks = 0;
    this.broadcastEntriesPending = false;
    this.broadcastCommitPending = false;
    for (const read of this.pendingReads) this.answerRead(read, null);
    this.pendingReads = [];
  }

  private resetElectionTimer(): void {
    this.electionElapsedTicks = 0;
    const timeout = this.options.electionTimeoutTicks;
    const jitter = Math.floor(this.options.random() * timeout);
    assert(jitter >= 0 && jitter < timeout, 'random() is uniform in [0, 1)');
    this.randomizedElectionTimeoutTicks = timeout + jitter;
  }

  // ---------------------------------------------------------------- follower side

  private handleAppend(message: AppendMessage): void {
    const log = this.raftLog;
    if (message.prevLogIndex < log.committed) {
      // Everything up to our commit index already agrees with any leader (Raft §5.4).
      this.replyAppend(message.from, true, log.committed);
      return;
    }
    if (!log.matchTerm(message.prevLogIndex, message.prevLogTerm)) {
      this.rejectAppend(message);
      return;
    }
    const conflict = log.findConflict(message.entries);
    if (conflict !== 0) {
      const first = message.entries[0] as Entry;
      log.truncateAndAppend(message.entries.slice(conflict - first.index));
    }
    const lastNewIndex = message.prevLogIndex + message.entries.length;
    log.commitTo(Math.min(message.commit, lastNewIndex));
    this.replyAppend(message.from, true, lastNewIndex);
  }

  private rejectAppend(message: AppendMessage): void {
    const log = this.raftLog;
    if (message.prevLogIndex > log.lastIndex()) {
      this.send({
        type: 'AppendResponse',
        to: message.from,
        success: false,
        index: message.prevLogIndex,
        hintIndex: log.lastIndex() + 1,
        hintTerm: 0,
      });
      return;
    }
    // Fast backtracking (Raft §5.3, last paragraph): name the conflicting term and where it
    // starts, so the leader skips all of it in one round trip.
    const hintTerm = log.termAt(message.prevLogIndex) as number;
    this.send({
      type: 'AppendResponse',
      to: message.from,
      success: false,
      index: message.prevLogIndex,
      hintIndex: log.firstIndexOfTermRun(message.prevLogIndex),
      hintTerm,
    });
  }

  private replyAppend(to: NodeId, success: boolean, index: number): void {
    this.send({ type: 'AppendResponse', to, success, index, hintIndex: 0, hintTerm: 0 });
  }

  private handleHeartbeat(message: HeartbeatMessage): void {
    if (this.repair === null) {
      // The leader sends min(commit, our match), so this never passes what we hold in
      // agreement.
      this.raftLog.commitTo(Math.min(message.commit, this.raftLog.lastIndex()));
    } else if (message.commit > this.raftLog.committed) {
      // Repairing, our match at the leader may describe the log we lost, and what we hold
      // after our commit index may be entries that log had overwritten: commit only through
      // appends, whose previous entry is checked (Raft §5.3). Ask for everything after our
      // commit index, so the leader stops counting us for entries we lost and sends them
      // again; an idle leader would otherwise never probe us.
      this.send({
        type: 'AppendResponse',
        to: message.from,
        success: false,
        index: message.commit,
        hintIndex: this.raftLog.committed + 1,
        hintTerm: 0,
      });
    }
    this.send({ type: 'HeartbeatResponse', to: message.from, readRound: message.readRound });
  }

  private handleSnapshot(message: SnapshotMessage): void {
    const { index, term } = message.snapshot.meta;
    const log = this.raftLog;
    if (index <= log.committed) {
      this.replyAppend(message.from, true, log.committed);
      return;
    }
    if (log.matchTerm(index, term)) {
      // We hold the snapshot's last entry, hence everything before it: just commit.
      log.commitTo(index);
      this.replyAppend(message.from, true, index);
      return;
    }
    log.restore(message.snapshot);
    this.replyAppend(message.from, true, index);
  }

  // ---------------------------------------------------------------- leader side

  private handleAppendResponse(message: AppendResponseMessage): void {
    const progress = this.role === 'leader' ? this.progress.get(message.from) : undefined;
    if (progress === undefined) return;
    progress.recentlyActive = true;
    progress.answeredSinceHeartbeat = true;
    if (!message.success) {
      if (
        message.hintTerm === 0 &&
        message.hintIndex > 0 &&
        message.hintIndex - 1 < progress.matchIndex
      ) {
        progress.lostEntries(message.hintIndex - 1);
        this.sendAppend(progress, true);
        this.handOverAfterLoss(message.from);
      } else if (progress.rejected(message.index, this.probeIndexAfterRejection(message))) {
        this.sendAppend(progress, true);
      }
      return;
    }
    const wasPaused = progress.isPaused();
    if (progress.acknowledge(message.index)) {
      if (progress.state === 'probe') progress.becomeReplicate();
      else if (
        progress.state === 'snapshot' &&
        progress.matchIndex >= progress.pendingSnapshotIndex
      ) {
        progress.becomeProbe();
        progress.becomeReplicate();
      }
      if (this.maybeCommit()) this.broadcastCommitPending = true;
      if (
        message.from === this.transferTarget &&
        progress.matchIndex === this.raftLog.lastIndex()
      ) {
        this.sendTimeoutNow(progress);
      }
    }
    // More entries if the window opened; an empty append if only the commit index is news.
    // Both wait for this Ready (ready() sends what each follower lacks), so the
    // acknowledgements and proposals stepped before it leave as one Append per follower
    // carrying entries and commit index together, instead of one per acknowledgement plus one
    // for the proposals. No later: ready() runs right after these steps.
    if (wasPaused || progress.nextIndex <= this.raftLog.lastIndex()) {
      this.broadcastEntriesPending = true;
    }
    // Only news that goes out now: with lazyCommitNews a commit index held back would make
    // an empty Ready, a loop turn for nothing, after every late acknowledgement.
    if (this.commitNewsDue(progress)) this.broadcastCommitPending = true;
  }

  /**
   * `follower` lost entries it acknowledged in this term: its disk was damaged, and it votes
   * again only once an entry of a later term commits (endRepairIfRecovered). While this
   * leader stays, no such entry comes, and one more failure could then leave too few voters
   * to elect anyone. So leadership goes to another active voter that already holds this
   * leader's whole log (the transfer is then one TimeoutNow, and proposals are held back for
   * no longer), and that did not lose entries itself (it could not campaign). With none,
   * this leader stays (availability first: the follower still receives and stores entries,
   * it only cannot vote) and looks again at every heartbeat. A rejection can also look like a
   * loss when it is stale (sent before later acknowledgements): the handover is then one
   * leader change too many, never a stall, since a target that does not take over is given
   * up after an election timeout and by then no longer holds the whole log.
   */
  private handOverAfterLoss(follower: NodeId): void {
    this.followersWithLoss.add(follower);
    if (this.transferTarget === follower) this.abortTransfer();
    if (this.transferTarget !== null) return;
    const config = this.raftLog.config();
    const lastIndex = this.raftLog.lastIndex();
    for (const progress of this.progress.values()) {
      if (this.followersWithLoss.has(progress.id) || !progress.recentlyActive) continue;
      if (this.handOverDeclinedBy.has(progress.id)) continue;
      if (!isVoter(config, progress.id) || progress.matchIndex !== lastIndex) continue;
      this.transferLeadership(progress.id);
      this.transferIsHandOver = true;
      return;
    }
  }

  /** Where to probe after a rejection, from the follower's hint (see AppendResponseMessage). */
  private probeIndexAfterRejection(message: AppendResponseMessage): number {
    if (message.hintTerm === 0) return message.hintIndex;
    const ours = this.raftLog.lastIndexOfTerm(message.hintTerm, message.index);
    return ours > 0 ? ours + 1 : message.hintIndex;
  }

  private handleHeartbeatResponse(message: HeartbeatResponseMessage): void {
    const progress = this.role === 'leader' ? this.progress.get(message.from) : undefined;
    if (progress === undefined) return;
    progress.recentlyActive = true;
    progress.probeSent = false;
    if (progress.matchIndex < this.raftLog.lastIndex()) {
      // An append may have been lost: let one more out, so the follower can say where it is.
      if (progress.state === 'replicate' && progress.inflightFull()) progress.freeOldestInflight();
      this.sendAppend(progress, true);
    }
    if (message.readRound > progress.readRoundAcked) {
      progress.readRoundAcked = message.readRound;
      this.releaseConfirmedReads();
    }
  }

  /** Sends what `progress` needs next, if it is not paused; a snapshot if it is compacted. */
  private sendAppend(progress: Progress, evenIfEmpty: boolean): void {
    if (progress.isPaused()) return;
    const previousIndex = progress.nextIndex - 1;
    const previousTerm = this.raftLog.termAt(previousIndex);
    if (previousTerm === null) {
      this.sendSnapshot(progress);
      return;
    }
    const entries =
      progress.nextIndex <= this.raftLog.lastIndex()
        ? this.raftLog.slice(progress.nextIndex, this.options.appendBytesMax)
        : [];
    if (entries.length === 0 && !evenIfEmpty) return;
    this.send({
      type: 'Append',
      to: progress.id,
      prevLogIndex: previousIndex,
      prevLogTerm: previousTerm,
      entries,
      commit: this.raftLog.committed,
    });
    const last = entries[entries.length - 1];
    progress.sentAppend(last === undefined ? null : last.index);
    progress.appendedSinceHeartbeat = true;
    progress.commitSent = Math.max(progress.commitSent, this.raftLog.committed);
  }

  /** Whether a commit index that is `progress`'s only news goes out in this Ready. */
  private commitNewsDue(progress: Progress): boolean {
    if (!this.commitBehind(progress)) return false;
    return this.options.lazyCommitNews !== true || progress.commitAwaited > progress.commitSent;
  }

  /**
   * Leader: `follower` waits for `index` to commit (a client's entry it forwarded here, or a
   * read index it asked for), so with `lazyCommitNews` it hears of the commit in the Ready
   * after it, not a tick later.
   */
  commitAwaited(follower: NodeId, index: number): void {
    const progress = this.role === 'leader' ? this.progress.get(follower) : undefined;
    if (progress === undefined) return;
    progress.commitAwaited = Math.max(progress.commitAwaited, index);
    if (this.commitNewsDue(progress)) this.broadcastCommitPending = true;
  }

  /**
   * Leader with `lazyCommitNews`: some follower holds entries it may not know are committed,
   * news held back for the next Append or tick. The runtime asks after a Ready loop goes idle,
   * so that a pause in the load delays followers' deliveries by a short wait of its own
   * choosing (`sendCommitNews`), not by up to a tick.
   */
  commitNewsHeld(): boolean {
    if (this.role !== 'leader') return false;
    for (const progress of this.progress.values()) {
      // A paused follower (a snapshot on its way, a probe or a full window unanswered) gets
      // nothing from `sendCommitNews`: counted, it would have the runtime wait and ask again
      // for as long as it stays paused. It hears the commit when its answer reopens it.
      if (this.commitBehind(progress) && !progress.isPaused()) return true;
    }
    return false;
  }

  /** Leader: every follower that may not know what is committed hears it now. */
  sendCommitNews(): void {
    if (this.role !== 'leader') return;
    for (const progress of this.progress.values()) {
      if (this.commitBehind(progress)) this.sendAppend(progress, true);
    }
  }

  /** The follower holds entries we know are committed but may not know it yet. */
  private commitBehind(progress: Progress): boolean {
    return progress.commitSent < Math.min(this.raftLog.committed, progress.matchIndex);
  }

  private sendSnapshot(progress: Progress): void {
    const snapshot = this.raftLog.snapshot;
    assert(snapshot !== null, 'a compacted log has a snapshot to send');
    progress.becomeSnapshot(snapshot.meta.index);
    this.send({ type: 'Snapshot', to: progress.id, snapshot });
  }

  /**
   * Each follower gets what it lacks: as many Appends as its window lets out, since the
   * acknowledgements stepped before this Ready may each have opened it by one (a follower
   * catching up keeps its window full, as when each acknowledgement sent its own Append).
   */
  private broadcastAppends(commitChanged: boolean): void {
    for (const progress of this.progress.values()) {
      this.sendAppend(progress, commitChanged && this.commitNewsDue(progress));
      while (progress.state === 'replicate' && progress.nextIndex <= this.raftLog.lastIndex()) {
        const nextIndex = progress.nextIndex;
        this.sendAppend(progress, false);
        if (progress.nextIndex === nextIndex) break;
      }
    }
  }

  /**
   * With quietHeartbeats, on a tick (`periodic`), a follower in replicate state that was sent
   * an Append and answered one since the last heartbeat round is skipped: that Append told it
   * of this leader as a heartbeat would (its election clock restarts on either; Raft §5.2)
   * and carried the commit index, and its answer showed it alive, for CheckQuorum as well.
   * Under load every heartbeat was such a repeat: at 128 in flight some 65 a second from a
   * leader of three, each answered, each a frame, a wake-up and a Ready on both sides. Not
   * skipped: a follower that did not answer (cut off, restarted, its Appends lost: the
   * heartbeat's answer is how the leader finds out where it is), one in probe state (that
   * answer lets its next probe out), and any round while reads wait for confirmation (the
   * heartbeat carries their round, which Appends do not).
   */
  private broadcastHeartbeat(periodic = false): void {
    for (const progress of this.progress.values()) {
      const repeat =
        periodic &&
        this.options.quietHeartbeats === true &&
        progress.appendedSinceHeartbeat &&
        progress.answeredSinceHeartbeat &&
        progress.state === 'replicate' &&
        this.pendingReads.length === 0;
      progress.appendedSinceHeartbeat = false;
      progress.answeredSinceHeartbeat = false;
      if (repeat) continue;
      const commit = Math.min(progress.matchIndex, this.raftLog.committed);
      this.send({ type: 'Heartbeat', to: progress.id, commit, readRound: this.readRound });
      progress.commitSent = Math.max(progress.commitSent, commit);
    }
  }

  /**
   * Commits the highest index stored on a quorum, if it is of the current term: entries of
   * earlier terms are committed only indirectly (Raft §5.4.2, Figure 8).
   */
  private maybeCommit(): boolean {
    const config = this.raftLog.config();
    const index = quorumValue(config.voters, (id) => this.matchIndexOf(id));
    if (index <= this.raftLog.committed) return false;
    const currentTermOnly = this.options.unsafe !== 'commitPreviousTermByCounting';
    if (currentTermOnly && this.raftLog.termAt(index) !== this.term) return false;
    this.raftLog.commitTo(index);
    this.afterCommit();
    return true;
  }

  private matchIndexOf(id: NodeId): number {
    // Our own entries count once they are durable, like everyone else's.
    if (id === this.id) return this.raftLog.stableIndex;
    return this.progress.get(id)?.matchIndex ?? 0;
  }

  /** A leader removed or demoted by a committed configuration steps down (thesis §4.2.2). */
  private afterCommit(): void {
    if (this.role !== 'leader') return;
    const config = this.raftLog.config();
    if (this.raftLog.committed >= this.raftLog.lastConfigIndex() && !isVoter(config, this.id)) {
      // Tell the others the change is committed before going, so they need not wait for
      // the next leader to learn it.
      for (const progress of this.progress.values()) {
        this.sendAppend(progress, this.commitBehind(progress));
      }
      this.becomeFollower(this.term, null, 'restart');
    }
  }

  private appendEntry(kind: Entry['kind'], data: Uint8Array): Entry {
    const entry: Entry = { index: this.raftLog.lastIndex() + 1, term: this.term, kind, data };
    this.raftLog.append(entry);
    if (kind === 'config') this.rebuildProgress();
    this.broadcastEntriesPending = true;
    return entry;
  }

  /**
   * Keeps one Progress per member other than us, creating new ones in probe state. Members of
   * configurations not yet known to be superseded (see promotable) stay until the newest
   * configuration has committed and one more election timeout has passed (tickLeader): they
   * hear of the commit that removes them, so they stop campaigning instead of disrupting the
   * cluster that no longer includes them (Raft thesis §4.2.3). They never count in a quorum.
   */
  private rebuildProgress(): void {
    this.formerMembersElapsedTicks = 0;
    const config = this.raftLog.config();
    const wanted = new Set<NodeId>();
    for (const candidate of this.raftLog.configsSinceCommit()) {
      for (const id of members(candidate)) if (id !== this.id) wanted.add(id);
    }
    for (const id of this.progress.keys()) if (!wanted.has(id)) this.progress.delete(id);
    for (const id of wanted) {
      if (this.progress.has(id)) continue;
      const progress = new Progress(
        id,
        this.raftLog.lastIndex() + 1,
        this.options.inflightAppendsMax,
      );
      progress.recentlyActive = true;
      this.progress.set(id, progress);
    }
    if (this.transferTarget !== null && !isVoter(config, this.transferTarget)) this.abortTransfer();
  }

  // ---------------------------------------------------------------- client requests

  propose(data: Uint8Array): ProposalResult {
    assert(data instanceof Uint8Array, 'proposals are byte arrays');
    const refusal = this.proposalRefusal();
    if (refusal !== null) return refusal;
    const entry = this.appendEntry('normal', data);
    return { accepted: true, index: entry.index, term: entry.term };
  }

  proposeConfigChange(change: ConfigChange): ProposalResult {
    const refusal = this.proposalRefusal();
    if (refusal !== null) return refusal;
    // One change at a time, and only once this term has committed an entry: otherwise two
    // leaders could each add one server to different old configurations (Ongaro, 2015).
    if (this.raftLog.lastConfigIndex() > this.raftLog.committed) {
      return this.refuse('CONFIG_CHANGE_PENDING', 'a configuration change is not committed yet');
    }
    if (this.raftLog.termAt(this.raftLog.committed) !== this.term) {
      return this.refuse('NO_COMMIT_IN_TERM', 'the leader has not committed an entry in its term');
    }
    const next = applyConfigChange(this.raftLog.config(), change);
    if (typeof next === 'string') return this.refuse('INVALID_CONFIG_CHANGE', next);
    const entry = this.appendEntry('config', encodeConfiguration(next));
    return { accepted: true, index: entry.index, term: entry.term };
  }

  private proposalRefusal(): ProposalResult | null {
    if (this.role !== 'leader') {
      return this.refuse('NOT_LEADER', `node ${this.id} is a ${this.role}`);
    }
    if (this.transferTarget !== null) {
      return this.refuse('LEADERSHIP_TRANSFER', `leadership is moving to ${this.transferTarget}`);
    }
    return null;
  }

  private refuse(reason: ProposalRefusal, detail: string): ProposalResult {
    return { accepted: false, reason, leaderId: this.leaderId, detail };
  }

  /** Starts a leadership transfer (Raft thesis §3.10); refused unless `to` is another voter. */
  transferLeadership(to: NodeId): { readonly accepted: boolean; readonly detail: string } {
    if (this.role !== 'leader') return { accepted: false, detail: `node ${this.id} is not leader` };
    if (to === this.id) return { accepted: false, detail: `node ${to} already leads` };
    const progress = this.progress.get(to);
    if (progress === undefined || !isVoter(this.raftLog.config(), to)) {
      return { accepted: false, detail: `node ${to} is not a voter` };
    }
    this.transferTarget = to;
    this.transferIsHandOver = false;
    this.transferElapsedTicks = 0;
    // Proposals stop while the target catches up, so that it can become fully up to date.
    if (progress.matchIndex === this.raftLog.lastIndex()) this.sendTimeoutNow(progress);
    else this.sendAppend(progress, true);
    return { accepted: true, detail: `transferring leadership to ${to}` };
  }

  /**
   * Tells a transfer's target to campaign. With lazyCommitNews it may not know yet what is
   * committed: it hears that first (same link, so before the TimeoutNow), and takes over
   * having applied what this leader answered for.
   */
  private sendTimeoutNow(progress: Progress): void {
    if (this.options.lazyCommitNews === true && this.commitBehind(progress)) {
      this.sendAppend(progress, true);
    }
    this.send({ type: 'TimeoutNow', to: progress.id });
  }

  private abortTransfer(): void {
    this.transferTarget = null;
    this.transferIsHandOver = false;
    this.transferElapsedTicks = 0;
  }

  /**
   * ReadIndex (Raft thesis §6.4): the read may be served at the current commit index once a
   * quorum confirms we are still leader. The answer comes as a ReadState in a later Ready.
   */
  readIndex(requestId: string): void {
    if (this.role === 'leader') {
      this.registerRead(requestId, null);
    } else if (this.leaderId !== null && this.role === 'follower') {
      this.send({ type: 'ReadIndex', to: this.leaderId, requestId });
    } else {
      this.readStates.push({ requestId, index: null });
    }
  }

  private handleReadIndex(message: ReadIndexMessage): void {
    if (this.role !== 'leader') {
      this.send({
        type: 'ReadIndexResponse',
        to: message.from,
        requestId: message.requestId,
        index: null,
      });
      return;
    }
    this.registerRead(message.requestId, message.from);
  }

  private registerRead(requestId: string, requester: NodeId | null): void {
    // Until it commits in its own term, a new leader does not know the commit index.
    if (this.raftLog.termAt(this.raftLog.committed) !== this.term) {
      this.answerRead({ requestId, index: 0, round: 0, requester }, null);
      return;
    }
    this.readRound++;
    this.pendingReads.push({
      requestId,
      index: this.raftLog.committed,
      round: this.readRound,
      requester,
    });
    this.releaseConfirmedReads();
    if (this.pendingReads.length > 0) this.broadcastHeartbeat();
  }

  private releaseConfirmedReads(): void {
    const config = this.raftLog.config();
    if (!isVoter(config, this.id)) return;
    const confirmedRound = quorumValue(config.voters, (id) =>
      id === this.id ? this.readRound : (this.progress.get(id)?.readRoundAcked ?? 0),
    );
    while (
      this.pendingReads.length > 0 &&
      (this.pendingReads[0] as PendingRead).round <= confirmedRound
    ) {
      const read = this.pendingReads.shift() as PendingRead;
      this.answerRead(read, read.index);
    }
  }

  private answerRead(read: PendingRead, index: number | null): void {
    if (read.requester === null) this.readStates.push({ requestId: read.requestId, index });
    else {
      if (index !== null) this.commitAwaited(read.requester, index);
      this.send({
        type: 'ReadIndexResponse',
        to: read.requester,
        requestId: read.requestId,
        index,
      });
    }
  }

  /** The runtime has durably saved `snapshot` (index <= applied); the log before it may go. */
  compact(snapshot: Snapshot): void {
    assert(!this.readyOutstanding, 'compaction waits for the outstanding Ready');
    this.raftLog.compact(snapshot);
  }

  // ---------------------------------------------------------------- outputs

  private send(message: DistributiveOmit<Message, 'from' | 'term'> & { term?: number }): void {
    this.messages.push({ ...message, from: this.id, term: message.term ?? this.term } as Message);
  }

  private hardState(): HardState {
    const vote = this.options.unsafe === 'forgetVoteOnRestart' ? null : this.vote;
    return { term: this.term, vote, commit: this.raftLog.committed };
  }

  hasReady(): boolean {
    if (this.readyOutstanding) return false;
    const hardState = this.hardState();
    const persisted = this.persistedHardState;
    return (
      this.messages.length > 0 ||
      this.readStates.length > 0 ||
      this.raftLog.pendingSnapshot !== null ||
      this.raftLog.lastIndex() > this.raftLog.stableIndex ||
      this.raftLog.committed > this.raftLog.applied ||
      (this.role === 'leader' && (this.broadcastEntriesPending || this.broadcastCommitPending)) ||
      hardState.term !== persisted.term ||
      hardState.vote !== persisted.vote ||
      hardState.commit !== persisted.commit ||
      this.role !== this.emittedSoftState.role ||
      this.leaderId !== this.emittedSoftState.leaderId
    );
  }

  /** Everything to do next; call `advance(ready)` once it is done. One at a time. */
  ready(): Ready {
    assert(!this.readyOutstanding, 'one Ready at a time: advance() the previous one first');
    if (this.role === 'leader' && (this.broadcastEntriesPending || this.broadcastCommitPending)) {
      this.broadcastAppends(this.broadcastCommitPending);
    }
    this.broadcastEntriesPending = false;
    this.broadcastCommitPending = false;
    const hardState = this.hardState();
    const persisted = this.persistedHardState;
    const hardStateChanged =
      hardState.term !== persisted.term ||
      hardState.vote !== persisted.vote ||
      hardState.commit !== persisted.commit;
    const softChanged =
      this.role !== this.emittedSoftState.role || this.leaderId !== this.emittedSoftState.leaderId;
    const ready: Ready = {
      softState: softChanged ? { role: this.role, leaderId: this.leaderId } : null,
      hardState: hardStateChanged ? hardState : null,
      snapshot: this.raftLog.pendingSnapshot,
      entriesToAppend: this.raftLog.unstableEntries(),
      messagesToSend: this.messages,
      entriesToDeliver: this.raftLog.deliverable(),
      readStates: this.readStates,
    };
    this.messages = [];
    this.readStates = [];
    if (ready.softState !== null) this.emittedSoftState = ready.softState;
    this.readyOutstanding = true;
    const lastToDeliver = ready.entriesToDeliver[ready.entriesToDeliver.length - 1];
    this.deliveredThrough = lastToDeliver?.index ?? this.raftLog.applied;
    return ready;
  }

  /**
   * Entries committed since the outstanding Ready was taken that this node already holds
   * durably (appended by an earlier Ready), for the application now, while that Ready's
   * write is still under way. Why: a leader writes its next batch while acknowledgements of
   * the previous one come in, and without this their commit waited for the whole write
   * before it was delivered and answered. Entries are given in order, each once, and
   * `advance` counts them applied. Raft lets a node apply any committed entry (§5.3); what
   * this adds is only that the entry is in this node's own durable log, as every delivery
   * here is (the message store never runs ahead of the WAL). None while a snapshot is
   * pending, and none from a configuration entry on: those are applied with their Ready.
   * The caller must first have applied every entry of the outstanding Ready's
   * entriesToDeliver (these follow them).
   */
  deliverDurable(): Entry[] {
    const log = this.raftLog;
    if (!this.readyOutstanding || log.pendingSnapshot !== null) return [];
    const from = Math.max(this.deliveredThrough, log.applied, log.snapshotIndex) + 1;
    const to = Math.min(log.committed, log.stableIndex);
    if (to < from) return [];
    const entries = log.range(from, to);
    const configAt = entries.findIndex((entry) => entry.kind === 'config');
    if (configAt !== -1) entries.length = configAt;
    const last = entries[entries.length - 1];
    if (last !== undefined) this.deliveredThrough = last.index;
    return entries;
  }

  advance(ready: Ready): void {
    assert(this.readyOutstanding, 'advance() follows ready()');
    this.readyOutstanding = false;
    if (ready.hardState !== null) this.persistedHardState = ready.hardState;
    if (ready.snapshot !== null) this.raftLog.snapshotPersisted(ready.snapshot);
    const lastAppended = ready.entriesToAppend[ready.entriesToAppend.length - 1];
    if (lastAppended !== undefined) this.raftLog.stableTo(lastAppended.index, lastAppended.term);
    if (this.deliveredThrough > this.raftLog.applied) this.raftLog.appliedTo(this.deliveredThrough);
    if (this.role === 'leader' && this.maybeCommit()) this.broadcastCommitPending = true;
    if (this.repair !== null) this.endRepairIfRecovered();
  }

  /**
   * A repairing node votes again once its durable log holds, up to a commit index a leader
   * gave it through a checked append, an entry of a term above `termBound`. That entry's
   * leader held every entry committed in earlier terms before its own (Raft §5.4.1, Leader
   * Completeness), so every entry this node may have acknowledged and a leader committed is
   * back here, equal to the leader's (Log Matching). The index the damaged log reached is no
   * help: a lost write leaves no trace, so no index proves the lost entries are all back
   * (runtime seed 0x3481e). While its term is `termBound`, a leader whose follower lost
   * entries hands leadership on (handleAppendResponse), so that a later term comes.
   */
  private endRepairIfRecovered(): void {
    const damage = this.repair;
    assert(damage !== null, 'only a repairing node ends its repair');
    const log = this.raftLog;
    const vouchedIndex = Math.min(log.committed, log.stableIndex);
    const vouchedTerm = log.termAt(vouchedIndex) ?? 0;
    if (vouchedTerm > damage.termBound) this.repair = null;
  }

  /** The damage still being repaired, or null: cheaper than status() for a runtime's loop. */
  repairing(): LogDamage | null {
    return this.repair;
  }

  // ---------------------------------------------------------------- introspection

  status(): CoreStatus {
    const log = this.raftLog;
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leaderId: this.leaderId,
      commitIndex: log.committed,
      appliedIndex: log.applied,
      firstIndex: log.firstIndex(),
      lastIndex: log.lastIndex(),
      lastTerm: log.lastTerm(),
      snapshotIndex: log.snapshotIndex,
      config: log.config(),
      progress: [...this.progress.values()].map((progress) => progress.view()),
      transferTarget: this.transferTarget,
      repairing: this.repair,
    };
  }

  /** The leader this node knows of, or null: cheaper than status() on hot paths. */
  leader(): NodeId | null {
    return this.leaderId;
  }

  log(): LogView {
    return this.raftLog.view();
  }

  isMember(): boolean {
    return isMember(this.raftLog.config(), this.id);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function validateOptions(options: CoreOptions): void {
  assert(typeof options.nodeId === 'string' && options.nodeId.length > 0, 'node ids are non-empty');
  assert(
    Number.isSafeInteger(options.heartbeatIntervalTicks) && options.heartbeatIntervalTicks > 0,
    'heartbeatIntervalTicks is a positive integer',
  );
  assert(
    Number.isSafeInteger(options.electionTimeoutTicks) &&
      options.electionTimeoutTicks > options.heartbeatIntervalTicks,
    'electionTimeoutTicks is an integer above heartbeatIntervalTicks',
  );
  assert(options.appendBytesMax > 0, 'appendBytesMax is positive');
  assert(
    Number.isSafeInteger(options.inflightAppendsMax) && options.inflightAppendsMax > 0,
    'inflightAppendsMax is a positive integer',
  );
}
