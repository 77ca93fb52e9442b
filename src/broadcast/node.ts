/**
 * The node runtime: the one place that awaits. A thin loop over parts with one job each, as
 * etcd-io/raft's node loop sits over raft.go: it drives the pure core on the environment's
 * clock, persists each Ready before its messages leave (persister.ts), applies what is
 * committed (applier.ts), takes broadcasts in (intake.ts) and sends them to the leader in
 * batches (outbox.ts), serves linearizable reads (reads.ts), compacts (snapshots.ts) and
 * reconciles membership (membership-driver.ts).
 *
 * Every clock, timer and random draw comes from `options.environment`, so the simulator runs
 * this very code on virtual time, one event at a time.
 */
import type { RaftCore } from '../raft/core.ts';
import type { HardState, NodeId, PersistedState, Ready, Snapshot } from '../raft/types.ts';
import { sendableBeforePersist } from '../raft/types.ts';
import { StorageError } from '../storage/errors.ts';
import type { RaftStorage } from '../storage/types.ts';
import { compactedCopy } from '../store/index.ts';
import type { Frame, Transport } from '../transport/types.ts';
import { assert } from '../util/assert.ts';
import type { Timer } from '../util/environment.ts';
import type { Applier } from './applier.ts';
import type { CompactionDriver } from './compaction.ts';
import { type DeliveredMessage, isSystemCallFailure } from './deliveries.ts';
import { BroadcastError } from './errors.ts';
import type { Intake } from './intake.ts';
import { LeaderWatch, leaderlessElectionTimeoutsMax } from './leader-watch.ts';
import type { MemberRecord } from './membership.ts';
import type { MembershipDriver } from './membership-driver.ts';
import type {
  BroadcastNodeOptions,
  BroadcastOptions,
  BroadcastRun,
  NodeStatus,
} from './options.ts';
import type { Outbox } from './outbox.ts';
import { buildNodeParts } from './parts.ts';
import {
  type BroadcastResult,
  type PendingTable,
  SettledOutcomes,
  type SettledRun,
} from './pending.ts';
import type { Persister } from './persister.ts';
import type { Reads } from './reads.ts';
import { describeRepairStall, RepairWatch } from './repair-watch.ts';
import type { RetentionDriver } from './retention.ts';
import type { Snapshots } from './snapshots.ts';
import {
  type ConsumerCursor,
  consumerNameProblem,
  consumersTopic,
  decodeStreamCommand,
  encodeStreamCommand,
  type StreamCommand,
  type StreamState,
} from './stream-state.ts';

export type { NodeObserver } from './observer.ts';
export {
  type BroadcastNodeOptions,
  type BroadcastOptions,
  type BroadcastRun,
  defaultNodeTuning,
  type NodeLogger,
  type NodeStatus,
  type RunMessage,
  type UnsafeOptions,
} from './options.ts';

/**
 * How long a leader holds commit news back once its load pauses: longer than the gap between
 * a closed loop's answers and its next run (a fraction of a millisecond on loopback), so the
 * news rides on that run's Append under load; short against a tick (10 ms).
 */
const commitNewsWaitMs = 1;

/** Entry bytes up to which a Ready's Appends leave before its write starts (handleReady). */
const appendsFirstBytesMax = 1024;

function appendsGoFirst(ready: Ready): boolean {
  let byteCount = 0;
  for (const entry of ready.entriesToAppend) {
    byteCount += entry.data.length;
    if (byteCount > appendsFirstBytesMax) return false;
  }
  return true;
}

export class BroadcastNode {
  readonly id: NodeId;
  private readonly core: RaftCore;
  private readonly pending: PendingTable;
  private readonly persister: Persister;
  private readonly snapshots: Snapshots;
  private readonly applier: Applier;
  private readonly outbox: Outbox;
  private readonly intake: Intake;
  private readonly reads: Reads;
  private readonly membership: MembershipDriver;
  private readonly retention: RetentionDriver;
  private readonly compaction: CompactionDriver;
  private leaderChangeCount = 0;
  private lastLeaderId: NodeId | null = null;
  private loopRunning = false;
  private loopScheduled = false;
  /**
   * The outstanding Ready's deliveries are all done and its write is under way: entries
   * committed meanwhile that were written before it may be delivered now (`deliverDurable`).
   */
  private deliveringDuringWrite = false;
  /** A Ready is taken and not yet advanced: what callers give meanwhile waits (scheduleLoop). */
  private handlingReady = false;
  private started = false;
  private ticker: Timer | null = null;
  /** Armed while commit news is held back and the Ready loop has gone idle. */
  private commitNewsTimer: Timer | null = null;
  private stopped: BroadcastError | null = null;
  private loopIdle: Promise<void> = Promise.resolve();
  /** The storage still reports damage: it forgets it once the core's repair has ended. */
  private repairPending: boolean;
  private readonly repairWatch: RepairWatch;
  private leaderKnown = false;
  private readonly leaderWatch: LeaderWatch;

  constructor(
    private readonly options: BroadcastNodeOptions,
    private readonly storage: RaftStorage,
    private readonly transport: Transport,
    persisted: PersistedState,
  ) {
    this.id = options.id;
    this.repairPending = (persisted.damage ?? null) !== null;
    this.repairWatch = new RepairWatch(options.environment.monotonicMs());
    this.leaderWatch = new LeaderWatch(
      leaderlessElectionTimeoutsMax * options.electionTimeoutTicks,
    );
    const parts = buildNodeParts(options, storage, transport, persisted, {
      scheduleLoop: () => this.scheduleLoop(),
      stopped: () => this.stopped,
    });
    this.core = parts.core;
    this.pending = parts.pending;
    this.persister = parts.persister;
    this.snapshots = parts.snapshots;
    this.applier = parts.applier;
    this.applier.deliveryLog.onStoreFailure = (error) => this.failStop(error);
    this.outbox = parts.outbox;
    this.intake = parts.intake;
    this.reads = parts.reads;
    this.membership = parts.membership;
    this.retention = parts.retention;
    this.compaction = parts.compaction;
  }

  /** Starts the clock and the transport's frame handler. */
  start(): void {
    assert(!this.started, 'a node starts once');
    this.started = true;
    this.transport.onFrame((frame) => this.onFrame(frame));
    this.armTicker();
    this.scheduleLoop();
  }

  /** One timer at a time, re-armed by each tick, so ticks never pile up behind a slow one. */
  private armTicker(): void {
    if (this.stopped !== null) return;
    assert(this.ticker === null, 'one tick timer at a time');
    this.ticker = this.options.environment.setTimer(this.options.tickIntervalMs, () => {
      this.ticker = null;
      this.onTick();
      this.armTicker();
    });
  }

  /**
   * Resolves with the message's position once it is committed and delivered on this node.
   * Without a clientId the node's own session makes its internal retries exactly-once.
   * Every refusal, bad input included, arrives as a rejected promise with a BroadcastError.
   */
  broadcast(payload: Uint8Array, options: BroadcastOptions = {}): Promise<BroadcastResult> {
    try {
      if (this.stopped !== null) throw this.stopped;
      return this.intake.accept(payload, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * One outcome per message of the run, in order, once every one is settled (delivered or
   * refused): the same outcomes as a `broadcast` per message, taken in one step. A run
   * with an invalid message is refused whole (each message gets that error), so a refused
   * run leaves no gap in its session; a run beyond the pending bounds is taken up to the
   * first message that does not fit, the rest refused overloaded.
   */
  broadcastRun(run: BroadcastRun): Promise<PromiseSettledResult<BroadcastResult>[]> {
    try {
      if (this.stopped !== null) throw this.stopped;
      return this.intake.acceptRun(run);
    } catch (error) {
      return Promise.resolve(everyRefused(run, error));
    }
  }

  /** `broadcastRun`, its outcomes read in place (an answer on the wire makes no objects). */
  broadcastRunSettled(run: BroadcastRun): Promise<SettledRun> {
    try {
      if (this.stopped !== null) throw this.stopped;
      return this.intake.acceptRunSettled(run);
    } catch (error) {
      return Promise.resolve(new SettledOutcomes(everyRefused(run, error)));
    }
  }

  // ------------------------------------------------------------ inputs

  private onFrame(frame: Frame): void {
    if (this.stopped !== null) return;
    if (frame.type === 'Forward') this.outbox.onForward(frame.from, frame.requestId, frame.data);
    else if (frame.type === 'ForwardResult') {
      const index = 'index' in frame.result ? frame.result.index : null;
      this.outbox.onForwardResult(frame.requestId, index);
    } else this.core.step(frame);
    this.scheduleLoop();
  }

  private onTick(): void {
    if (this.stopped !== null) return;
    this.core.tick();
    this.leaderWatch.tick({
      leaderHeard: this.core.leaderHeardRecently(),
      member: this.core.isMember(),
    });
    this.membership.tick();
    this.retention.tick();
    this.compaction.tick();
    const nowMs = this.options.environment.monotonicMs();
    this.intake.expireDeadlines(nowMs);
    this.outbox.tick(nowMs);
    if (this.repairPending) this.watchRepair(nowMs);
    this.scheduleLoop();
  }

  private watchRepair(nowMs: number): void {
    const damage = this.core.repairing();
    const stall = this.repairWatch.observe({ nowMs, hasLeader: this.leaderKnown, damage });
    if (stall === null) return;
    this.options.logger.error(
      { node: this.id, ...stall.damage, leaderlessMs: stall.leaderlessMs },
      describeRepairStall(stall),
    );
  }

  // ------------------------------------------------------------ the Ready loop

  private scheduleLoop(): void {
    if (this.loopScheduled || this.stopped !== null) return;
    this.loopScheduled = true;
    // After the current callback: the frames of one socket read, or the broadcasts of one
    // burst of callers, are stepped first and leave in one Ready, one write and one fsync,
    // without waiting for the next turn of the event loop.
    queueMicrotask(() => {
      this.loopScheduled = false;
      // While a Ready is being handled, what this node was given waits for the loop, which
      // flushes before it takes the next Ready: as one batch. Flushed here, every request
      // of every callback during the write was a batch and a log entry of its own (one POST a
      // message on 128 connections: some 40 one-message entries a Ready at the leader, each
      // encoded, sent, decoded and applied apart; at a follower, a forward a message). A
      // leader gains nothing by proposing sooner, as its next Appends leave with the next
      // Ready; a follower's forwards wait for its write at most.
      if (!this.handlingReady) this.outbox.flush();
      if (!this.loopRunning) this.loopIdle = this.runLoop();
      else if (this.deliveringDuringWrite) this.deliverDuringWrite();
    });
  }

  /**
   * Delivers what committed while the outstanding Ready is being written, if this node
   * wrote it before: at 128 in flight a leader is nearly always writing its next batch when
   * the acknowledgements of the previous one arrive, and their answers waited for that write.
   */
  private deliverDuringWrite(): void {
    try {
      const entries = this.core.deliverDurable();
      if (entries.length === 0) return;
      this.applier.apply(entries);
      this.options.observer?.appliedDuringWrite(entries);
    } catch (error) {
      this.deliveringDuringWrite = false;
      this.failStop(error);
    }
  }

  private async runLoop(): Promise<void> {
    assert(!this.loopRunning, 'one Ready loop at a time');
    this.loopRunning = true;
    try {
      while (this.stopped === null && this.core.hasReady()) {
        // Not idle: the wait for commit news starts again when the loop next goes idle.
        this.commitNewsTimer?.cancel();
        this.commitNewsTimer = null;
        this.handlingReady = true;
        try {
          await this.handleReady(this.core.ready());
        } finally {
          this.handlingReady = false;
        }
        this.outbox.flush();
        await this.snapshots.maybeCompact();
        this.outbox.flush();
      }
      this.armCommitNews();
    } catch (error) {
      this.failStop(error);
    } finally {
      this.loopRunning = false;
    }
  }

  /**
   * With lazy commit news a follower hears of a commit with the next entries. When the load
   * pauses there are none: once the loop has handled no Ready for this short wait the leader
   * tells it anyway, so a follower's subscribers lag the leader's by about a millisecond, not
   * by up to a tick. Under load the next batch comes first (a closed loop of 128 sends its
   * next run within a fraction of a millisecond of its answers) and the news rides on it.
   * Each Ready cancels the wait, so under load it fires only after a real pause: a wait that
   * ran from the first idle moment instead woke the leader about once a round at 128 in
   * flight (rounds of 1-2 ms), and in one round of eight found news held and sent every
   * follower an Append of its own, which each answered.
   */
  private armCommitNews(): void {
    if (this.commitNewsTimer !== null || this.stopped !== null) return;
    if (!this.core.commitNewsHeld()) return;
    this.commitNewsTimer = this.options.environment.setTimer(commitNewsWaitMs, () => {
      this.commitNewsTimer = null;
      if (this.stopped !== null) return;
      this.core.sendCommitNews();
      this.scheduleLoop();
    });
  }

  /** One Ready, in the order its contract demands (docs: the Ready contract). */
  private async handleReady(ready: Ready): Promise<void> {
    const observer = this.options.observer;
    observer?.readyTaken(ready);
    const early = ready.messagesToSend.filter(sendableBeforePersist);
    const late =
      early.length === 0
        ? ready.messagesToSend
        : ready.messagesToSend.filter((message) => !sendableBeforePersist(message));
    // The write starts first (on a microtask of the storage's), then the early messages go
    // (on a microtask of the transport's): the leader's own disk is busy before a follower
    // wakes to compete for a core. Not for a small Ready: there the followers' round trip,
    // not the leader's write, decides when the entries commit, and its Appends should not
    // wait for the write's encoding and the wake-up of the thread that makes it.
    let persisted: Promise<HardState | null>;
    if (early.length > 0 && appendsGoFirst(ready)) {
      this.transport.send(early);
      persisted = this.persister.persist(ready);
    } else {
      persisted = this.persister.persist(ready);
      this.transport.send(early);
    }
    // Committed entries this node already holds durably need not wait for this Ready's
    // write: delivered while the disk works, a leader's answers leave while the next batch
    // is being written, and a follower's acknowledgement of the new entries waits for its
    // fsync only, not for an apply after it.
    const durableCount = ready.softState === null ? deliverableBeforeWrite(ready) : 0;
    if (durableCount > 0) {
      // One microtask first: the storage starts a write on a microtask (so that appends of
      // one turn share it), and the disk should be busy before we are.
      await Promise.resolve();
      try {
        this.applier.apply(ready.entriesToDeliver.slice(0, durableCount));
      } catch (error) {
        persisted.catch(() => undefined); // the node stops on `error`; the write's fate is moot
        throw error;
      }
    }
    // Only once every entry this Ready delivers is delivered: later ones come after them.
    this.deliveringDuringWrite =
      ready.softState === null &&
      ready.snapshot === null &&
      durableCount === ready.entriesToDeliver.length;
    let hardStateWritten: HardState | null;
    try {
      hardStateWritten = await persisted;
    } finally {
      this.deliveringDuringWrite = false;
    }
    observer?.readyDurable(ready, hardStateWritten);
    this.transport.send(late);
    if (ready.softState !== null) this.onSoftState(ready.softState);
    if (ready.snapshot !== null) this.applier.restore(ready.snapshot);
    this.applier.apply(
      durableCount === 0 ? ready.entriesToDeliver : ready.entriesToDeliver.slice(durableCount),
    );
    observer?.readyApplied(ready);
    this.reads.onReadStates(ready.readStates);
    this.core.advance(ready);
    if (this.repairPending && this.core.repairing() === null) await this.endRepair();
  }

  /** Every entry this node may have acknowledged before its disk was damaged is back. */
  private async endRepair(): Promise<void> {
    this.repairPending = false;
    await this.storage.repairDone();
    const { commitIndex, term } = this.core.status();
    this.options.logger.warn(
      { node: this.id, commitIndex, term },
      'repair done: the entries lost to the damaged log are back from the leader; voting again',
    );
  }

  private onSoftState(state: { role: string; leaderId: NodeId | null }): void {
    this.options.logger.info(
      { node: this.id, role: state.role, leader: state.leaderId, term: this.core.status().term },
      'role changed',
    );
    if (state.leaderId !== this.lastLeaderId && state.leaderId !== null) this.leaderChangeCount++;
    this.lastLeaderId = state.leaderId ?? this.lastLeaderId;
    this.leaderKnown = state.leaderId !== null;
    // A new leader may not have what the old one was given: send everything again.
    if (state.leaderId !== null) this.outbox.retryAll();
  }

  // ------------------------------------------------------------ reads and subscriptions

  /**
   * True while this node has heard from no leader for several election timeouts (cut off, or
   * removed and no longer sent the log), or once it sees itself removed: what it delivers has
   * stopped following the order, so subscriber streams end with no_leader and go elsewhere
   * (./leader-watch.ts).
   */
  get leaderLost(): boolean {
    return this.leaderWatch.leaderLost;
  }

  /** Calls `listener` each time `leaderLost` becomes true; returns the detach. */
  onLeaderLost(listener: () => void): () => void {
    return this.leaderWatch.onLeaderLost(listener);
  }

  /** The last position delivered on this node (0 before any); cheap enough to poll. */
  get lastPosition(): number {
    return this.applier.deliveryLog.lastPosition;
  }

  /**
   * Delivered messages from `from` on, read from the message store: compacted below the
   * retained range, not_held in a part this node is still backfilling; fewer than `limit`
   * at the end of what is delivered (or of what is held).
   */
  read(from: number, limit: number): DeliveredMessage[] {
    checkPosition(from, 'from');
    checkLimit(limit, 'limit');
    return this.readingStore(() => this.applier.deliveryLog.read(from, limit));
  }

  /**
   * Messages of one topic from `from` on, examining at most `positionsMax` positions; `next`
   * is the position after the last one examined.
   */
  readTopic(
    topic: string,
    from: number,
    limit: number,
    positionsMax: number,
  ): { messages: DeliveredMessage[]; next: number } {
    checkPosition(from, 'from');
    checkLimit(limit, 'limit');
    checkLimit(positionsMax, 'positionsMax');
    return this.readingStore(() =>
      this.applier.deliveryLog.readTopic(topic, from, limit, positionsMax),
    );
  }

  /**
   * A store read whose write of buffered records failed has stopped the node already (the
   * delivery log's `onStoreFailure`): the read is refused with the reason it stopped, not
   * answered as an unexplained internal error.
   */
  private readingStore<T>(read: () => T): T {
    try {
      return read();
    } catch (error) {
      if (isStorageFailure(error) && this.stopped !== null) throw this.stopped;
      throw error;
    }
  }

  /** Retention's floor: the first position served, the same on every node at one log index. */
  get firstRetainedPosition(): number {
    return this.applier.deliveryLog.firstRetainedPosition;
  }

  /** Retained positions this node does not hold yet: what backfill has left to fetch. */
  missingRanges(): { first: number; last: number }[] {
    return this.applier.deliveryLog.missingRanges();
  }

  /** Keeps messages fetched from a peer for a missing range (dense, already checked). */
  fill(messages: readonly DeliveredMessage[]): number {
    if (this.stopped !== null) return 0;
    // A peer that has not compacted yet sends what the log says is compacted here.
    const { compaction } = this.applier.streams;
    return this.applier.deliveryLog.fill(
      messages.map((message) =>
        message.compacted !== true && compaction.isSuperseded(message)
          ? compactedCopy(message)
          : message,
      ),
    );
  }

  /**
   * An ordered, resumable subscription: every position from `from` (default 1) on, exactly
   * once, waiting for new ones; it ends when `signal` aborts or the node stops, and throws
   * compacted if it falls behind what the node keeps. Resume after a restart with
   * `from: lastSeenPosition + 1`.
   */
  deliveries(
    options: { readonly from?: number; readonly signal?: AbortSignal } = {},
  ): AsyncGenerator<DeliveredMessage> {
    const from = options.from ?? 1;
    checkPosition(from, 'from');
    return this.applier.deliveryLog.follow(from, options.signal);
  }

  /**
   * `deliveries` as stored records, a batch at a time, for a reader that copies them out as bytes: `take`
   * is given each record's body (laid out as src/store/record.ts says; a view valid only
   * during the call) and answers its payload bytes; each batch's count is then yielded.
   */
  deliveryRecords(options: {
    readonly from?: number;
    readonly signal?: AbortSignal;
    readonly take: (body: Buffer) => number;
  }): AsyncGenerator<number> {
    const from = options.from ?? 1;
    checkPosition(from, 'from');
    return this.applier.deliveryLog.followRecords(from, options.take, options.signal);
  }

  // ------------------------------------------------------------ durable consumers

  /**
   * Records through the log that consumer `name` processed everything up to `position`;
   * resolves with its cursor once applied here. A cursor never moves back, nor past the
   * last delivered position; an ack of position 0 creates the consumer at the start.
   */
  async ackConsumer(name: string, position: number): Promise<ConsumerCursor> {
    checkConsumerName(name);
    if (!Number.isSafeInteger(position) || position < 0) {
      throw new BroadcastError('invalid_argument', 'position must be an integer >= 0', {
        field: 'position',
      });
    }
    if (this.stopped !== null) throw this.stopped;
    const record = encodeStreamCommand({ op: 'ack', name, position });
    await this.intake.acceptOwn(consumersTopic, record);
    return this.consumer(name) ?? { name, position: 0, ackLogTimeMs: 0 };
  }

  /** Forgets consumer `name` (through the log). */
  async deleteConsumer(name: string): Promise<void> {
    checkConsumerName(name);
    if (this.stopped !== null) throw this.stopped;
    await this.intake.acceptOwn(consumersTopic, encodeStreamCommand({ op: 'delete', name }));
  }

  /**
   * Commits one record of the durable consumers' state (a group's join, ack or release, a
   * consumer's settings) and resolves once it is applied here. The record is checked as
   * every node will decode it: one they would ignore is refused now.
   */
  async recordConsumer(command: StreamCommand): Promise<void> {
    const record = encodeStreamCommand(command);
    if (decodeStreamCommand(consumersTopic, record) === null) {
      throw new BroadcastError('invalid_argument', `a malformed ${command.op} record`, {
        field: 'name',
      });
    }
    if (this.stopped !== null) throw this.stopped;
    await this.intake.acceptOwn(consumersTopic, record);
  }

  /** The durable consumers' replicated state as applied here: read it, never change it. */
  get streamState(): StreamState {
    return this.applier.streams;
  }

  /** True once the node stopped (failed, or closed): it applies nothing more. */
  get isStopped(): boolean {
    return this.stopped !== null;
  }

  /** Resolves once the next committed entry is applied here (or `signal` aborts). */
  nextApply(signal?: AbortSignal): Promise<void> {
    return this.applier.deliveryLog.nextChange(signal);
  }

  /** The cursor of consumer `name` as applied here; undefined for an unknown consumer. */
  consumer(name: string): ConsumerCursor | undefined {
    return this.applier.streams.consumer(name);
  }

  /** Every consumer's cursor as applied here, by name. */
  consumers(): ConsumerCursor[] {
    return this.applier.streams.consumers();
  }

  /**
   * Linearizable: resolves with a position that includes every message acknowledged
   * anywhere before the call (ReadIndex, Raft thesis §6.4).
   */
  barrier(): Promise<number> {
    return this.reads.barrier();
  }

  /**
   * A backup: the application state (session table, membership) at a committed index that
   * covers every message acknowledged anywhere before the call (a barrier first), and the
   * last position it includes. Restoring it (`abcast snapshot restore`) starts a new cluster
   * whose positions continue after `position` and whose sessions still drop duplicates.
   */
  async backup(): Promise<{ readonly snapshot: Snapshot; readonly position: number }> {
    await this.barrier();
    if (this.stopped !== null) throw this.stopped;
    return { snapshot: this.applier.snapshotNow(), position: this.applier.sessions.lastPosition };
  }

  // ------------------------------------------------------------ membership and status

  /**
   * Adds a member (or changes its address or role): recorded in the log, then the leader
   * brings the configuration there. Resolves once the configuration holds it as asked.
   */
  async addMember(member: MemberRecord): Promise<NodeStatus> {
    await this.membership.addMember(member);
    return this.status();
  }

  /** Removes a member: recorded in the log; resolves once it left the configuration. */
  async removeMember(id: NodeId): Promise<NodeStatus> {
    await this.membership.removeMember(id);
    return this.status();
  }

  status(): NodeStatus {
    const core = this.core.status();
    const addressOf = (id: NodeId) => this.membership.addressOf(id);
    return {
      id: this.id,
      role: core.role,
      repairing: core.repairing,
      term: core.term,
      leaderId: core.leaderId,
      commitIndex: core.commitIndex,
      appliedIndex: this.applier.appliedIndex,
      lastPosition: this.applier.sessions.lastPosition,
      firstRetainedPosition: this.applier.deliveryLog.firstRetainedPosition,
      topicRetention: this.topicRetentionStatus(),
      store: this.storeStatus(),
      lastIndex: core.lastIndex,
      progress: core.progress,
      leaderChangeCount: this.leaderChangeCount,
      proposalCount: this.outbox.proposalCount,
      batchMessages: this.applier.batchMessages.snapshot(),
      persistSeconds: this.persister.persistSeconds.snapshot(),
      config: core.config,
      members: [
        ...core.config.voters.map((id) => ({ id, address: addressOf(id), voter: true })),
        ...core.config.learners.map((id) => ({ id, address: addressOf(id), voter: false })),
      ],
      pendingMessageCount: this.pending.size,
      storage: this.storage.counters(),
      transport: this.transport.stats(),
      stopped:
        this.stopped === null ? null : { code: this.stopped.code, message: this.stopped.message },
    };
  }

  private topicRetentionStatus(): NonNullable<NodeStatus['topicRetention']> {
    const log = this.applier.deliveryLog;
    return Object.entries(this.options.retention?.topics ?? {}).map(([topic, ageMs]) => {
      let firstPosition: number | null = null;
      try {
        firstPosition = log.topicFloor(topic) ?? log.firstRetainedPosition;
      } catch (error) {
        if (!(error instanceof BroadcastError) || error.code !== 'not_held') throw error;
      }
      return { topic, ageMs, firstPosition };
    });
  }

  private storeStatus(): NodeStatus['store'] {
    const log = this.applier.deliveryLog;
    const missingRanges = log.missingRanges();
    return {
      sizeBytes: log.store.sizeBytes,
      segmentCount: log.store.segmentCount,
      missingCount: missingRanges.reduce((sum, range) => sum + range.last - range.first + 1, 0),
      // A node has few holes (one per restart from a snapshot, at most): shown whole.
      missingRanges: missingRanges.slice(0, 16),
    };
  }

  transferLeadership(to: NodeId): { accepted: boolean; detail: string } {
    const result = this.core.transferLeadership(to);
    this.scheduleLoop();
    return result;
  }

  /** Starts an election now, as an operator may; a leader or a non-voter ignores it. */
  campaign(): void {
    if (this.stopped !== null) return;
    this.core.campaign();
    this.scheduleLoop();
  }

  // ------------------------------------------------------------ stopping

  private failStop(error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    const storage = isStorageFailure(error);
    this.options.logger.error(
      { node: this.id, reason },
      storage ? 'storage failed: the node stops' : 'internal error: the node stops',
    );
    const code = storage ? 'storage_failed' : 'internal';
    const stopped = new BroadcastError(code, `node ${this.id} stopped: ${reason}`);
    this.halt(stopped);
    this.options.observer?.stopped(stopped);
  }

  private halt(reason: BroadcastError): void {
    if (this.stopped !== null) return;
    this.stopped = reason;
    this.ticker?.cancel();
    this.ticker = null;
    this.commitNewsTimer?.cancel();
    this.commitNewsTimer = null;
    for (const entry of [...this.pending.values()]) this.pending.settle(entry, null, reason);
    assert(this.pending.size === 0, 'a stopped node holds nothing pending');
    this.reads.halt();
    try {
      this.applier.deliveryLog.close();
    } catch (error) {
      // Stopping on a failed disk: the store could not write what it buffered. Those
      // positions are in the WAL, which a restart applies again.
      this.options.logger.warn(
        { node: this.id, reason: error instanceof Error ? error.message : String(error) },
        'the message store could not write while stopping',
      );
    }
  }

  /** Stops accepting work, lets the write in flight finish, then closes links and disk. */
  async close(): Promise<void> {
    const graceful = this.stopped === null;
    this.halt(new BroadcastError('node_stopped', `node ${this.id} is stopping`));
    await this.loopIdle;
    if (graceful) await this.snapshotAtStop();
    // After the last apply: it saves the store's indexes, so the next open needs no scan.
    try {
      this.applier.deliveryLog.store.close();
    } catch (error) {
      // A full or failing disk: what the store could not write is in the WAL (the snapshot
      // at stop syncs the store before it compacts), and a missing index is rebuilt by a scan.
      this.options.logger.warn(
        { node: this.id, reason: error instanceof Error ? error.message : String(error) },
        'the message store could not write while closing',
      );
    }
    await this.transport.close();
    await this.storage.close();
  }

  /** A failed snapshot costs only a longer next start: the stop goes on. */
  private async snapshotAtStop(): Promise<void> {
    try {
      await this.applier.saveSnapshotAtStop();
    } catch (error) {
      this.options.logger.warn(
        { node: this.id, error: String(error) },
        'no snapshot at stop: the next start replays the log',
      );
    }
  }
}

/**
 * How many of `ready`'s committed entries (a prefix) to deliver before its write: those
 * durable here before it, below its first appended entry (all of them when it appends
 * none). None when it installs a snapshot, which replaces the state they would apply to,
 * and none from a configuration entry on, which changes the peers this Ready's remaining
 * messages go to, so it keeps its place after them. A leader may count a commit before its
 * own copy is durable (followers alone can make a quorum), so what it appends waits too.
 */
export function deliverableBeforeWrite(ready: Ready): number {
  if (ready.snapshot !== null) return 0;
  const deliver = ready.entriesToDeliver;
  const appendedFromIndex = ready.entriesToAppend[0]?.index ?? Number.POSITIVE_INFINITY;
  let count = 0;
  for (const entry of deliver) {
    if (entry.index >= appendedFromIndex || entry.kind === 'config') break;
    count++;
  }
  return count;
}

function checkConsumerName(name: string): void {
  const problem = consumerNameProblem(name);
  if (problem !== null) throw new BroadcastError('invalid_argument', problem, { field: 'name' });
}

function checkLimit(limit: number, field: string): void {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new BroadcastError('invalid_argument', `${field} must be an integer >= 1`, { field });
  }
}

function checkPosition(position: number, field: string): void {
  if (!Number.isSafeInteger(position) || position < 1) {
    throw new BroadcastError('invalid_argument', `${field} must be a position >= 1`, { field });
  }
}

/** A run refused whole (a stopped node, a run that is no run): every message that error. */
function everyRefused(run: BroadcastRun, error: unknown): PromiseRejectedResult[] {
  const count = Array.isArray(run?.messages) ? run.messages.length : 0;
  const outcome: PromiseRejectedResult = { status: 'rejected', reason: error };
  return Array.from({ length: count }, () => outcome);
}

/**
 * The WAL's failure, or the message store's: the store writes through node:fs itself, and a
 * failed system call there (ENOSPC, EIO) is the disk's failure as much as one of the WAL's,
 * not a bug of ours.
 */
function isStorageFailure(error: unknown): boolean {
  return error instanceof StorageError || isSystemCallFailure(error);
}
