/**
 * The node runtime: the one place that awaits. It drives the pure core with a real clock,
 * persists each Ready before its messages leave, delivers committed batches through the
 * session table, and turns many concurrent broadcasts into one batch, one log entry and one
 * fsync.
 */
import { decodeConfiguration } from '../raft/config.ts';
import { RaftCore, type UnsafeVariant } from '../raft/core.ts';
import type {
  Configuration,
  CoreStatus,
  Entry,
  HardState,
  NodeId,
  PersistedState,
  Ready,
  Snapshot,
} from '../raft/types.ts';
import { sendableBeforePersist } from '../raft/types.ts';
import { StorageError } from '../storage/errors.ts';
import type { RaftStorage, StorageCounters } from '../storage/types.ts';
import type { Frame, Transport, TransportStats } from '../transport/types.ts';
import { assert } from '../util/assert.ts';
import type { Environment, Timer } from '../util/environment.ts';
import { FixedHistogram, type HistogramSnapshot } from '../util/histogram.ts';
import {
  BatchBuilder,
  BatchFormatError,
  type ClientMessage,
  clientMessageProblem,
  decodeBatch,
  type MessageRun,
} from './batch.ts';
import { type DeliveredMessage, DeliveryLog } from './deliveries.ts';
import { BroadcastError } from './errors.ts';
import {
  decodeMembershipCommand,
  encodeMembershipCommand,
  type MemberRecord,
  type MembershipCommand,
  MembershipTable,
  memberProblem,
  membershipTopic,
  nextConfigChange,
  reservedTopicPrefix,
} from './membership.ts';
import { type BroadcastResult, type PendingMessage, PendingTable, type Waiter } from './pending.ts';
import { type RunOutcome, SessionTable, type SessionTableOptions } from './sessions.ts';

/** Structured logging, shaped so that a pino logger fits as is. */
export interface NodeLogger {
  info(fields: Readonly<Record<string, unknown>>, message: string): void;
  warn(fields: Readonly<Record<string, unknown>>, message: string): void;
  error(fields: Readonly<Record<string, unknown>>, message: string): void;
}

/**
 * Sees each stage of the Ready loop as it happens, synchronously: the simulator's checkers
 * use it to judge the real runtime. Absent in production.
 */
export interface NodeObserver {
  /** The core produced `ready`; nothing of it has been done yet. */
  readyTaken(ready: Ready): void;
  /**
   * What `ready` had to persist is durable (storage.append resolved) or nothing had to be
   * written; called before any message that waited for it leaves. `hardStateWritten` is the
   * hard state written with it, if any.
   */
  readyDurable(ready: Ready, hardStateWritten: HardState | null): void;
  /** The committed entries of `ready` were applied. */
  readyApplied(ready: Ready): void;
  /** A snapshot of our own was saved and the core's log compacted to it. */
  compacted(snapshot: Snapshot): void;
  /** A message was delivered at its position (in order; again after a restart). */
  delivered(message: DeliveredMessage): void;
  /** The node stopped itself: its storage failed (STORAGE_FAILED) or it hit a bug (INTERNAL). */
  stopped(reason: BroadcastError): void;
}

/**
 * Deliberately broken runtimes, for tests that prove the simulator's checkers can fail;
 * never set outside tests.
 * - 'answerBeforeCommit': the leader answers a broadcast once `propose` accepts it, at the
 *   position it expects, before a quorum has it;
 * - 'dropSessionsOnRestore': a snapshot restore, or a restart from a snapshot, forgets every
 *   client session (positions kept), so retries of delivered messages are delivered again;
 * - 'deliverSeqGapAtOnce': the session table delivers a seq that skips ahead at once.
 */
export type NodeUnsafeVariant =
  | 'answerBeforeCommit'
  | 'dropSessionsOnRestore'
  | 'deliverSeqGapAtOnce';

export interface BroadcastNodeOptions {
  readonly id: NodeId;
  readonly tickIntervalMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  /** A batch is cut once it holds this many bytes; one batch is one log entry. */
  readonly batchBytesMax: number;
  readonly payloadBytesMax: number;
  /** Messages accepted and not yet delivered; beyond it broadcasts fail with OVERLOADED. */
  readonly pendingMessagesMax: number;
  /** A broadcast that is not delivered by then fails with TIMEOUT (outcome unknown). */
  readonly requestTimeoutMs: number;
  /** An undelivered message is sent again after this long (the leader may have changed). */
  readonly retryIntervalMs: number;
  /** Applied batch bytes between two snapshots; the log keeps one to two intervals. */
  readonly snapshotIntervalBytes: number;
  /** Delivered payload bytes kept in memory for readers and subscriptions. */
  readonly retainBytesMax: number;
  readonly sessionTtlMs: number;
  readonly inflightAppendsMax: number;
  readonly appendBytesMax: number;
  readonly bootstrap: Configuration | null;
  /** The initial members' addresses, recorded in the log by the first leader. */
  readonly initialPeers?: ReadonlyMap<NodeId, string>;
  readonly logger: NodeLogger;
  /** Every clock, timer and random draw the runtime uses: the system's, or the simulator's. */
  readonly environment: Environment;
  readonly observer?: NodeObserver;
  readonly unsafe?: NodeUnsafeVariant | null;
  /** A deliberately broken consensus core (src/raft/core.ts), for the simulator's tests only. */
  readonly coreUnsafe?: UnsafeVariant | null;
}

export const defaultNodeTuning = {
  tickIntervalMs: 10,
  electionTimeoutTicks: 30,
  heartbeatIntervalTicks: 3,
  batchBytesMax: 256 << 10,
  payloadBytesMax: 1 << 20,
  pendingMessagesMax: 100_000,
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
}

export interface NodeStatus {
  readonly id: NodeId;
  readonly role: CoreStatus['role'];
  readonly term: number;
  readonly leaderId: NodeId | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastPosition: number;
  readonly firstRetainedPosition: number;
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
}

export class BroadcastNode {
  readonly id: NodeId;
  private readonly core: RaftCore;
  private sessions: SessionTable;
  private membership: MembershipTable;
  private readonly initialPeers: ReadonlyMap<NodeId, string>;
  private readonly deliveryLog: DeliveryLog;
  private readonly pending = new PendingTable();
  private deadlines: Waiter[] = [];
  /** Forwarded batches waiting for the leader's answer, by request id. */
  private readonly forwards = new Map<number, PendingMessage[]>();
  /** Messages whose last copy the leader appended at an index not yet applied here. */
  private readonly proposedAt = new Map<number, PendingMessage[]>();
  private ticksSinceReconcile = 0;
  private leaderChangeCount = 0;
  private proposalCount = 0;
  private readonly batchMessages = new FixedHistogram([1, 4, 16, 64, 256, 1024, 4096]);
  private readonly persistSeconds = new FixedHistogram([
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1,
  ]);
  private lastLeaderId: NodeId | null = null;
  private seedRequested = false;
  private lastRetryScanMs = 0;
  private outgoing: PendingMessage[] = [];
  private ownClientId: string;
  private ownSeq = 0;
  private nextForwardId = 1;
  private nextReadId = 1;
  private readonly readWaiters = new Map<string, (index: number | null) => void>();
  private appliedWaiters: { index: number; resolve: () => void; cancel: () => void }[] = [];
  private appliedIndex: number;
  private appliedTerm = 0;
  private appliedConfig: Configuration;
  private lazyHardState: HardState | null = null;
  private lastDurableHardState: HardState | null;
  private bytesSinceCandidate = 0;
  private snapshotCandidates: Snapshot[] = [];
  private unsafePredictedPosition = 0;
  private loopRunning = false;
  private loopScheduled = false;
  private ticker: Timer | null = null;
  private started = false;
  private stopped: BroadcastError | null = null;
  private loopIdle: Promise<void> = Promise.resolve();

  constructor(
    private readonly options: BroadcastNodeOptions,
    private readonly storage: RaftStorage,
    private readonly transport: Transport,
    persisted: PersistedState,
  ) {
    this.id = options.id;
    const sessionOptions = this.sessionOptions();
    this.initialPeers = options.initialPeers ?? new Map();
    const state =
      persisted.snapshot === null
        ? { sessions: new SessionTable(sessionOptions), membership: new MembershipTable() }
        : decodeAppState(persisted.snapshot.data, sessionOptions);
    this.sessions =
      options.unsafe === 'dropSessionsOnRestore'
        ? state.sessions.withoutSessions()
        : state.sessions;
    this.membership = state.membership;
    this.deliveryLog = new DeliveryLog(options.retainBytesMax);
    this.deliveryLog.resetTo(this.sessions.lastPosition + 1);
    this.appliedIndex = persisted.snapshot?.meta.index ?? 0;
    this.appliedConfig = persisted.snapshot?.meta.config ?? { voters: [], learners: [] };
    this.lastDurableHardState = persisted.hardState;
    this.ownClientId = `${options.id}.${options.environment.randomHex(8)}`;
    this.core = new RaftCore(
      {
        nodeId: options.id,
        electionTimeoutTicks: options.electionTimeoutTicks,
        heartbeatIntervalTicks: options.heartbeatIntervalTicks,
        random: options.environment.random,
        preVote: true,
        checkQuorum: true,
        appendBytesMax: options.appendBytesMax,
        inflightAppendsMax: options.inflightAppendsMax,
        bootstrap: options.bootstrap,
        unsafe: options.coreUnsafe ?? null,
      },
      { ...persisted, appliedIndex: this.appliedIndex },
    );
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
    this.ticker = this.options.environment.setTimer(this.options.tickIntervalMs, () => {
      this.ticker = null;
      this.onTick();
      this.armTicker();
    });
  }

  // ------------------------------------------------------------ broadcast

  /**
   * Resolves with the message's position once it is committed and delivered on this node.
   * Without a clientId the node's own session makes its internal retries exactly-once.
   * Every refusal, bad input included, arrives as a rejected promise with a BroadcastError.
   */
  broadcast(payload: Uint8Array, options: BroadcastOptions = {}): Promise<BroadcastResult> {
    try {
      return this.accept(payload, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private accept(payload: Uint8Array, options: BroadcastOptions): Promise<BroadcastResult> {
    if (this.stopped !== null) throw this.stopped;
    const ownSession = options.clientId === undefined;
    const checked = this.validate(payload, options);
    if (!ownSession) {
      // A retry of something this node has already applied is answered at once.
      const known = this.sessions.deliveredPosition(checked.clientId, checked.seq);
      if (known !== undefined) {
        return Promise.resolve({
          position: known.position,
          index: null,
          term: null,
          duplicate: true,
        });
      }
    }
    const existing = ownSession ? undefined : this.pending.get(checked.clientId, checked.seq);
    if (existing === undefined && this.pending.size >= this.options.pendingMessagesMax) {
      throw new BroadcastError('OVERLOADED', 'too many messages are waiting for the log', {
        pendingMessagesMax: this.options.pendingMessagesMax,
      });
    }
    // Our own seq is taken only now that nothing can refuse the message: a seq taken and
    // never sent would be a gap that blocks every later message of the session.
    const message = ownSession ? { ...checked, seq: ++this.ownSeq } : checked;
    const entry = existing ?? this.track(message, ownSession);
    return new Promise<BroadcastResult>((resolve, reject) => {
      const deadlineMs = this.options.environment.monotonicMs() + this.options.requestTimeoutMs;
      const waiter: Waiter = { resolve, reject, deadlineMs, entry, settled: false };
      entry.waiters.push(waiter);
      // One timeout for all: the timeout is the same for every request, so deadlines are
      // queued in order and the tick expires them from the front, with no timer each.
      this.deadlines.push(waiter);
    });
  }

  /** The message as it would be sent (own-session messages get their seq later), or throws. */
  private validate(payload: Uint8Array, options: BroadcastOptions): ClientMessage {
    const invalid = (field: string, message: string) =>
      new BroadcastError('INVALID_ARGUMENT', message, { field });
    if (!(payload instanceof Uint8Array)) throw invalid('payload', 'payload must be bytes');
    if (options === null || typeof options !== 'object')
      throw invalid('options', 'options must be an object');
    const { clientId, seq, topic } = options;
    if (clientId !== undefined && typeof clientId !== 'string')
      throw invalid('clientId', 'clientId must be a string');
    if (seq !== undefined && typeof seq !== 'number') throw invalid('seq', 'seq must be a number');
    if (topic !== undefined && typeof topic !== 'string')
      throw invalid('topic', 'topic must be a string');
    if (payload.length > this.options.payloadBytesMax) {
      throw new BroadcastError('PAYLOAD_TOO_LARGE', 'payload is over the limit', {
        payloadBytes: payload.length,
        payloadBytesMax: this.options.payloadBytesMax,
      });
    }
    if (topic?.startsWith(reservedTopicPrefix) === true) {
      throw invalid('topic', `topics starting with ${reservedTopicPrefix} are reserved`);
    }
    const ownSession = clientId === undefined;
    if (ownSession && seq !== undefined) throw invalid('seq', 'seq needs a clientId');
    if (!ownSession && seq === undefined) throw invalid('seq', 'a clientId needs a seq');
    if (clientId === '') throw invalid('clientId', 'clientId must not be empty');
    const message: ClientMessage = {
      clientId: ownSession ? this.ownClientId : clientId,
      seq: ownSession ? this.ownSeq + 1 : (seq as number),
      topic: topic ?? '',
      payload,
    };
    const problem = clientMessageProblem(message);
    if (problem !== null) {
      throw invalid(
        problem.startsWith('topic') ? 'topic' : problem.startsWith('seq') ? 'seq' : 'clientId',
        problem,
      );
    }
    return message;
  }

  private track(message: ClientMessage, ownSession: boolean): PendingMessage {
    const entry: PendingMessage = {
      proposedIndex: null,
      message,
      ownSession,
      waiters: [],
      lastSentMs: 0,
      queued: false,
    };
    this.pending.add(entry);
    this.enqueue(entry);
    return entry;
  }

  private enqueue(entry: PendingMessage): void {
    if (entry.queued) return;
    entry.queued = true;
    this.outgoing.push(entry);
    this.scheduleLoop();
  }

  private expireDeadlines(now: number): void {
    let head = 0;
    // Settled waiters leave from the front too, so the queue holds about what is in flight.
    while (head < this.deadlines.length) {
      const waiter = this.deadlines[head] as Waiter;
      if (!waiter.settled && waiter.deadlineMs > now) break;
      head++;
      if (!waiter.settled) this.expire(waiter.entry, waiter);
    }
    if (head > 0) this.deadlines.splice(0, head);
  }

  private expire(entry: PendingMessage, waiter: Waiter): void {
    waiter.settled = true;
    const at = entry.waiters.indexOf(waiter);
    if (at >= 0) entry.waiters.splice(at, 1);
    // A message the log refused for a gap is not in doubt: say what is missing instead.
    const gap = entry.gapExpectedSeq;
    waiter.reject(
      gap !== undefined && !entry.ownSession
        ? new BroadcastError(
            'SEQUENCE_GAP',
            `seq ${entry.message.seq} waits for seq ${gap} of its client`,
            {
              expectedSeq: gap,
            },
          )
        : new BroadcastError('TIMEOUT', 'the message was not delivered in time; it may still be', {
            timeoutMs: this.options.requestTimeoutMs,
          }),
    );
    // A caller's own session retries on its own; ours must go on, or later seqs would wait.
    if (!entry.ownSession && entry.waiters.length === 0) this.pending.delete(entry);
  }

  /** Cuts the queued messages into batches and hands them to the leader. */
  private flushOutgoing(): void {
    if (this.outgoing.length === 0) return;
    const leaderId = this.core.leader();
    if (leaderId === null) return; // kept queued; sent once a leader is known
    const queue = this.outgoing;
    this.outgoing = [];
    const now = this.options.environment.monotonicMs();
    const logTimeMs = this.options.environment.nowMs();
    const builder = new BatchBuilder();
    let batch: PendingMessage[] = [];
    for (const entry of queue) {
      entry.queued = false;
      if (!this.pending.has(entry)) continue;
      entry.lastSentMs = now;
      entry.proposedIndex = null;
      builder.add(entry.message);
      batch.push(entry);
      if (builder.byteLength >= this.options.batchBytesMax) {
        this.sendBatch(builder.finish(logTimeMs), batch, leaderId);
        batch = [];
      }
    }
    if (builder.messageCount > 0) this.sendBatch(builder.finish(logTimeMs), batch, leaderId);
  }

  private sendBatch(data: Uint8Array, batch: PendingMessage[], leaderId: NodeId): void {
    if (leaderId === this.id) {
      // A refusal (a transfer in progress, or we just lost leadership) leaves the messages
      // to the retry timer or the next leader change, never to a tight loop.
      const result = this.core.propose(data);
      if (!result.accepted) return;
      this.proposalCount++;
      if (this.options.unsafe === 'answerBeforeCommit') {
        this.answerAtProposal(batch, result.index, result.term);
        return;
      }
      this.noteProposed(batch, result.index);
      return;
    }
    const requestId = this.nextForwardId++;
    // Bounded: answers that never come are forgotten with the next leader change, and the
    // map never holds more than the forwards of one retry interval.
    if (this.forwards.size >= forwardsInFlightMax) this.forwards.clear();
    this.forwards.set(requestId, batch);
    this.transport.send([{ type: 'Forward', from: this.id, to: leaderId, requestId, data }]);
  }

  /** The 'answerBeforeCommit' variant: answers at the positions the leader expects. */
  private answerAtProposal(batch: readonly PendingMessage[], index: number, term: number): void {
    this.unsafePredictedPosition = Math.max(
      this.unsafePredictedPosition,
      this.sessions.lastPosition,
    );
    for (const entry of batch) {
      if (!this.pending.has(entry)) continue;
      const position = ++this.unsafePredictedPosition;
      this.finish(entry, { position, index, term, duplicate: false }, null);
    }
  }

  private noteProposed(batch: readonly PendingMessage[], index: number): void {
    if (index <= this.appliedIndex) {
      // The answer came after the entry was applied here: what is still waiting was lost.
      for (const entry of batch) if (this.pending.has(entry)) this.enqueue(entry);
      return;
    }
    let atIndex = this.proposedAt.get(index);
    if (atIndex === undefined) {
      atIndex = [];
      this.proposedAt.set(index, atIndex);
    }
    for (const entry of batch) {
      entry.proposedIndex = index;
      atIndex.push(entry);
    }
  }

  /** The entry at `index` is applied: copies we placed there and still wait on were lost. */
  private resendLostAt(index: number): void {
    const placed = this.proposedAt.get(index);
    if (placed === undefined) return;
    this.proposedAt.delete(index);
    for (const entry of placed) {
      if (entry.proposedIndex !== index || !this.pending.has(entry)) continue;
      entry.proposedIndex = null;
      this.enqueue(entry);
    }
  }

  /** Queues every undelivered message again, each client's in seq order. */
  private retrySoon(): void {
    this.forwards.clear();
    this.proposedAt.clear();
    const entries = [...this.pending.values()];
    for (const entry of entries) entry.proposedIndex = null;
    for (const entry of sortedBySeq(entries)) this.enqueue(entry);
  }

  /**
   * Sends again what has waited a retry interval without a known place in the leader's log,
   * or four intervals with one (a safety net for a leader change this node never saw).
   */
  private retryStale(now: number): void {
    const due = [...this.pending.values()].filter((entry) => {
      if (entry.queued) return false;
      const waitedMs = now - entry.lastSentMs;
      const intervalMs = this.options.retryIntervalMs * (entry.proposedIndex === null ? 1 : 4);
      return waitedMs >= intervalMs;
    });
    for (const entry of sortedBySeq(due)) this.enqueue(entry);
  }

  // ------------------------------------------------------------ inputs

  private onFrame(frame: Frame): void {
    if (this.stopped !== null) return;
    if (frame.type === 'Forward') this.onForward(frame.from, frame.requestId, frame.data);
    else if (frame.type === 'ForwardResult') {
      // Success: the messages wait for that index. A refusal is left to the retry timer and
      // to the leader change that usually follows it.
      const batch = this.forwards.get(frame.requestId);
      this.forwards.delete(frame.requestId);
      if (batch !== undefined && 'index' in frame.result)
        this.noteProposed(batch, frame.result.index);
    } else {
      this.core.step(frame);
    }
    this.scheduleLoop();
  }

  private onForward(from: NodeId, requestId: number, data: Uint8Array): void {
    // The batch stays opaque: a peer that passed the handshake builds valid batches, and a
    // committed batch that does not decode is skipped the same way on every replica.
    const result = this.core.propose(data);
    if (result.accepted) this.proposalCount++;
    const outcome = result.accepted
      ? { index: result.index, term: result.term }
      : { code: result.reason, leaderId: result.leaderId };
    this.transport.send([
      { type: 'ForwardResult', from: this.id, to: from, requestId, result: outcome },
    ]);
  }

  private onTick(): void {
    if (this.stopped !== null) return;
    this.core.tick();
    if (++this.ticksSinceReconcile >= this.options.heartbeatIntervalTicks) {
      this.ticksSinceReconcile = 0;
      this.reconcileMembership();
    }
    const now = this.options.environment.monotonicMs();
    this.expireDeadlines(now);
    if (this.pending.size > 0 && now - this.lastRetryScanMs >= this.options.retryIntervalMs / 4) {
      this.lastRetryScanMs = now;
      this.retryStale(now);
    }
    this.scheduleLoop();
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
      this.flushOutgoing();
      if (!this.loopRunning) this.loopIdle = this.runLoop();
    });
  }

  private async runLoop(): Promise<void> {
    this.loopRunning = true;
    try {
      while (this.stopped === null && this.core.hasReady()) {
        const ready = this.core.ready();
        this.options.observer?.readyTaken(ready);
        const early = ready.messagesToSend.filter(sendableBeforePersist);
        const late =
          early.length === 0
            ? ready.messagesToSend
            : ready.messagesToSend.filter((m) => !sendableBeforePersist(m));
        this.transport.send(early);
        const hardStateWritten = await this.persist(ready);
        this.options.observer?.readyDurable(ready, hardStateWritten);
        this.transport.send(late);
        if (ready.softState !== null) this.onSoftState(ready.softState);
        if (ready.snapshot !== null) this.restore(ready.snapshot);
        this.apply(ready.entriesToDeliver);
        this.options.observer?.readyApplied(ready);
        for (const state of ready.readStates) this.readWaiters.get(state.requestId)?.(state.index);
        this.core.advance(ready);
        await this.maybeCompact();
        this.flushOutgoing();
      }
    } catch (error) {
      this.failStop(error);
    } finally {
      this.loopRunning = false;
    }
  }

  /**
   * Writes what must be durable before the messages leave. A hard state that changed only
   * its commit index is a hint (the commit index is recomputed after a restart), so it
   * rides along with the next write instead of costing an fsync of its own.
   */
  private async persist(ready: Ready): Promise<HardState | null> {
    let hardState = ready.hardState;
    const durable = this.lastDurableHardState;
    const onlyCommit =
      hardState !== null &&
      durable !== null &&
      hardState.term === durable.term &&
      hardState.vote === durable.vote;
    if (
      ready.snapshot === null &&
      ready.entriesToAppend.length === 0 &&
      (hardState === null || onlyCommit)
    ) {
      if (hardState !== null) this.lazyHardState = hardState;
      return null;
    }
    hardState ??= this.lazyHardState;
    const startedMs = this.options.environment.monotonicMs();
    await this.storage.append({
      hardState,
      snapshot: ready.snapshot,
      entries: ready.entriesToAppend,
    });
    this.persistSeconds.observe((this.options.environment.monotonicMs() - startedMs) / 1000);
    if (hardState !== null) this.lastDurableHardState = hardState;
    this.lazyHardState = null;
    return hardState;
  }

  private onSoftState(state: { role: string; leaderId: NodeId | null }): void {
    this.options.logger.info(
      { node: this.id, role: state.role, leader: state.leaderId, term: this.core.status().term },
      'role changed',
    );
    if (state.leaderId !== this.lastLeaderId && state.leaderId !== null) this.leaderChangeCount++;
    this.lastLeaderId = state.leaderId ?? this.lastLeaderId;
    // A new leader may not have what the old one was given: send everything again.
    if (state.leaderId !== null) this.retrySoon();
  }

  private sessionOptions(): SessionTableOptions {
    const unsafe = this.options.unsafe === 'deliverSeqGapAtOnce' ? this.options.unsafe : null;
    return { sessionTtlMs: this.options.sessionTtlMs, recentPositionsMax: 4096, unsafe };
  }

  private restore(snapshot: Snapshot): void {
    const state = decodeAppState(snapshot.data, this.sessionOptions());
    this.sessions =
      this.options.unsafe === 'dropSessionsOnRestore'
        ? state.sessions.withoutSessions()
        : state.sessions;
    this.membership = state.membership;
    this.updatePeers();
    this.deliveryLog.resetTo(this.sessions.lastPosition + 1);
    this.appliedIndex = snapshot.meta.index;
    this.appliedTerm = snapshot.meta.term;
    this.appliedConfig = snapshot.meta.config;
    this.snapshotCandidates = [];
    this.bytesSinceCandidate = 0;
    // Messages the snapshot shows delivered were delivered for their callers: answer now
    // (with the position, not the entry, which this node never saw) instead of resending.
    for (const pending of [...this.pending.values()]) {
      const known = this.sessions.deliveredPosition(pending.message.clientId, pending.message.seq);
      if (known === undefined) continue;
      this.finish(
        pending,
        { position: known.position, index: null, term: null, duplicate: false },
        null,
      );
    }
    // The rest were placed at indexes the snapshot skipped over: they will not be applied
    // here one by one, so send them again now rather than after the long retry.
    this.retrySoon();
    this.options.logger.info(
      { node: this.id, index: snapshot.meta.index },
      'installed snapshot from leader',
    );
  }

  private apply(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    for (const entry of entries) {
      if (entry.kind === 'normal') this.applyBatch(entry);
      else if (entry.kind === 'config') this.appliedConfig = decodeConfiguration(entry.data);
      this.resendLostAt(entry.index);
      this.appliedIndex = entry.index;
      this.appliedTerm = entry.term;
      this.bytesSinceCandidate += entry.data.length;
    }
    this.deliveryLog.notify();
    while (
      this.appliedWaiters.length > 0 &&
      (this.appliedWaiters[0]?.index ?? 0) <= this.appliedIndex
    ) {
      this.appliedWaiters.shift()?.resolve();
    }
    if (this.bytesSinceCandidate >= this.options.snapshotIntervalBytes)
      this.takeSnapshotCandidate();
  }

  private applyBatch(entry: Entry): void {
    let batch: ReturnType<typeof decodeBatch>;
    try {
      batch = decodeBatch(entry.data);
    } catch (error) {
      if (!(error instanceof BatchFormatError)) throw error;
      // Every replica skips the same committed entry, so they still agree.
      this.options.logger.error(
        { node: this.id, index: entry.index, reason: error.message },
        'skipped an undecodable batch',
      );
      return;
    }
    const outcomes = this.sessions.applyRuns(batch);
    this.batchMessages.observe(batch.runs.reduce((sum, run) => sum + run.payloads.length, 0));
    batch.runs.forEach((run, offset) => {
      const outcome = outcomes[offset] as RunOutcome;
      if (outcome.kind === 'accepted')
        this.deliverRun(run, outcome.duplicateCount, outcome.firstPosition, entry);
      else if (outcome.kind === 'control') this.applyControlRun(run, outcome.duplicateCount);
      this.settleRun(run, outcome, entry);
    });
  }

  private deliverRun(
    run: MessageRun,
    duplicateCount: number,
    firstPosition: number,
    entry: Entry,
  ): void {
    const anonymous = run.clientId === '';
    for (let offset = duplicateCount; offset < run.payloads.length; offset++) {
      const delivered: DeliveredMessage = {
        position: firstPosition + offset - duplicateCount,
        index: entry.index,
        term: entry.term,
        clientId: run.clientId,
        seq: anonymous ? 0 : run.firstSeq + offset,
        topic: run.topic,
        payload: run.payloads[offset] as Uint8Array,
        // The session table's clock: it only moves forward, whatever the stamping clocks.
        logTimeMs: this.sessions.logTimeMs,
      };
      this.deliveryLog.append(delivered);
      this.options.observer?.delivered(delivered);
    }
  }

  /** Answers the callers waiting on this run's messages, if any wait on this node. */
  private settleRun(run: MessageRun, outcome: RunOutcome, entry: Entry): void {
    const waiting = this.pending.forClient(run.clientId);
    if (waiting === undefined) return;
    if (outcome.kind === 'refused') {
      this.settleRefusedRun(run, outcome, waiting);
      return;
    }
    for (let offset = 0; offset < run.payloads.length; offset++) {
      const seq = run.firstSeq + offset;
      const pending = waiting.get(seq);
      if (pending === undefined) continue;
      const duplicate = offset < outcome.duplicateCount;
      let position: number | null = null;
      if (outcome.kind === 'accepted') {
        position = duplicate
          ? (this.sessions.deliveredPosition(run.clientId, seq)?.position ?? null)
          : outcome.firstPosition + offset - outcome.duplicateCount;
      }
      const result = {
        position,
        index: duplicate ? null : entry.index,
        term: duplicate ? null : entry.term,
        duplicate,
      };
      this.finish(pending, result, null);
    }
  }

  /**
   * A gap means an earlier seq is still on its way: the messages wait and are sent again.
   * So does an unknown session while this node still holds an earlier seq of it (its first
   * message was lost, not its session expired). Otherwise every message of the run fails.
   */
  private settleRefusedRun(
    run: MessageRun,
    outcome: Extract<RunOutcome, { kind: 'refused' }>,
    waiting: ReadonlyMap<number, PendingMessage>,
  ): void {
    if (outcome.code === 'SEQUENCE_GAP') {
      for (let offset = 0; offset < run.payloads.length; offset++) {
        const pending = waiting.get(run.firstSeq + offset);
        if (pending !== undefined) pending.gapExpectedSeq = outcome.expectedSeq;
      }
      return;
    }
    for (const seq of waiting.keys()) if (seq < run.firstSeq) return;
    let ownSessionLost = false;
    for (let offset = 0; offset < run.payloads.length; offset++) {
      const pending = waiting.get(run.firstSeq + offset);
      if (pending === undefined) continue;
      const error = new BroadcastError(outcome.code, 'the client session refused the message', {
        expectedSeq: outcome.expectedSeq,
      });
      this.finish(pending, null, error);
      ownSessionLost ||= pending.ownSession;
    }
    if (ownSessionLost) this.restartOwnSession();
  }

  private finish(
    pending: PendingMessage,
    result: BroadcastResult | null,
    error: BroadcastError | null,
  ): void {
    this.pending.delete(pending);
    for (const waiter of pending.waiters) {
      waiter.settled = true;
      if (result !== null) waiter.resolve(result);
      else waiter.reject(error as BroadcastError);
    }
  }

  /** Our session expired (a very long partition): resend what is left under a new one. */
  private restartOwnSession(): void {
    const left = [...this.pending.values()].filter((entry) => entry.ownSession);
    this.ownClientId = `${this.id}.${this.options.environment.randomHex(8)}`;
    this.ownSeq = 0;
    for (const entry of left) {
      this.pending.delete(entry);
      const message = { ...entry.message, clientId: this.ownClientId, seq: ++this.ownSeq };
      const moved = this.track(message, true);
      moved.waiters.push(...entry.waiters);
    }
  }

  // ------------------------------------------------------------ snapshots

  /**
   * Serialises the session table at the applied index now; the log is compacted to the
   * previous candidate later, so one to two intervals of entries stay for slow followers.
   */
  private takeSnapshotCandidate(): void {
    this.bytesSinceCandidate = 0;
    this.snapshotCandidates.push({
      meta: { index: this.appliedIndex, term: this.appliedTerm, config: this.appliedConfig },
      data: encodeAppState(this.sessions, this.membership),
    });
  }

  private async maybeCompact(): Promise<void> {
    if (this.snapshotCandidates.length < 2) return;
    const snapshot = this.snapshotCandidates.shift() as Snapshot;
    if (snapshot.meta.index <= this.core.status().snapshotIndex) return;
    await this.storage.saveSnapshot(snapshot);
    // A leader's snapshot may have replaced the log while ours was being written: then ours
    // is already covered, and the core must not be asked to compact to it.
    if (snapshot.meta.index <= this.core.status().snapshotIndex) return;
    this.core.compact(snapshot);
    this.options.observer?.compacted(snapshot);
    this.options.logger.info({ node: this.id, index: snapshot.meta.index }, 'compacted the log');
  }

  // ------------------------------------------------------------ reads and subscriptions

  /** The last position delivered on this node (0 before any); cheap enough to poll. */
  get lastPosition(): number {
    return this.deliveryLog.lastPosition;
  }

  /** Delivered messages from `from` on, as kept in memory; COMPACTED if too old. */
  read(from: number, limit: number): DeliveredMessage[] {
    if (!Number.isSafeInteger(from) || from < 1) {
      throw new BroadcastError('INVALID_ARGUMENT', 'from must be a position >= 1', {
        field: 'from',
      });
    }
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new BroadcastError('INVALID_ARGUMENT', 'limit must be an integer >= 1', {
        field: 'limit',
      });
    }
    return this.deliveryLog.read(from, limit);
  }

  /**
   * An ordered, resumable subscription: every position from `from` (default 1) on, exactly
   * once, waiting for new ones; it ends when `signal` aborts or the node stops, and throws
   * COMPACTED if it falls behind what the node keeps. Resume after a restart with
   * `from: lastSeenPosition + 1`.
   */
  deliveries(
    options: { readonly from?: number; readonly signal?: AbortSignal } = {},
  ): AsyncGenerator<DeliveredMessage> {
    const from = options.from ?? 1;
    if (!Number.isSafeInteger(from) || from < 1) {
      throw new BroadcastError('INVALID_ARGUMENT', 'from must be a position >= 1', {
        field: 'from',
      });
    }
    return this.deliveryLog.follow(from, options.signal);
  }

  /**
   * Linearizable: resolves with a position that includes every message acknowledged
   * anywhere before the call (ReadIndex, Raft thesis §6.4).
   */
  async barrier(): Promise<number> {
    const environment = this.options.environment;
    const deadline = environment.monotonicMs() + this.options.requestTimeoutMs;
    while (this.stopped === null && environment.monotonicMs() < deadline) {
      const requestId = `${this.id}.${this.nextReadId++}`;
      const index = await new Promise<number | null>((resolve) => {
        const timer = environment.setTimer(this.options.retryIntervalMs, () => resolve(null));
        this.readWaiters.set(requestId, (value) => {
          timer.cancel();
          resolve(value);
        });
        this.core.readIndex(requestId);
        this.scheduleLoop();
      });
      this.readWaiters.delete(requestId);
      if (index !== null) {
        if (await this.appliedAtLeast(index, deadline)) return this.sessions.lastPosition;
        break;
      }
      await new Promise<void>((resolve) =>
        environment.setTimer(
          this.options.tickIntervalMs * this.options.heartbeatIntervalTicks,
          resolve,
        ),
      );
    }
    throw this.stopped ?? new BroadcastError('NO_LEADER', 'no leader confirmed a read in time');
  }

  /** True once applied reaches `index`; false at the deadline or when the node stops. */
  private appliedAtLeast(index: number, deadlineMs: number): Promise<boolean> {
    if (this.appliedIndex >= index) return Promise.resolve(true);
    return new Promise((resolve) => {
      const environment = this.options.environment;
      const timer = environment.setTimer(Math.max(0, deadlineMs - environment.monotonicMs()), () =>
        finish(false),
      );
      const finish = (reached: boolean) => {
        timer.cancel();
        this.appliedWaiters = this.appliedWaiters.filter((waiter) => waiter.resolve !== onApplied);
        resolve(reached);
      };
      const onApplied = () => finish(true);
      this.appliedWaiters.push({ index, resolve: onApplied, cancel: () => finish(false) });
      this.appliedWaiters.sort((a, b) => a.index - b.index);
    });
  }

  // ------------------------------------------------------------ membership

  private addressOf(id: NodeId): string | null {
    return this.membership.get(id)?.address ?? this.initialPeers.get(id) ?? null;
  }

  /** Every address we know: the log's records over the initial peers. */
  private updatePeers(): void {
    const peers = new Map(this.initialPeers);
    for (const member of this.membership.list()) peers.set(member.id, member.address);
    // A runtime given its peers by its transport's owner (tests, embedding) keeps them.
    if (peers.size > 0) this.transport.setPeers(peers);
  }

  private applyControlRun(run: MessageRun, duplicateCount: number): void {
    if (run.topic !== membershipTopic) return; // a newer release's control record: ignored alike
    for (let offset = duplicateCount; offset < run.payloads.length; offset++) {
      const command = decodeMembershipCommand(run.payloads[offset] as Uint8Array);
      if (command === null) {
        this.options.logger.error({ node: this.id }, 'skipped a malformed membership record');
        continue;
      }
      this.membership.apply(command);
      this.options.logger.info({ node: this.id, command: command.op }, 'membership record applied');
    }
    this.updatePeers();
  }

  /**
   * The leader moves the configuration one step towards the recorded membership. The first
   * leader records the initial members' addresses first, so later joiners learn them.
   */
  private reconcileMembership(): void {
    const status = this.core.status();
    if (status.role !== 'leader' || this.stopped !== null) return;
    if (!this.membership.isSeeded) {
      // Without every member's address there is nothing trustworthy to record.
      const members = [...status.config.voters, ...status.config.learners];
      if (this.seedRequested || !members.every((id) => this.initialPeers.has(id))) return;
      this.seedRequested = true;
      const records = members.map((id) => ({
        id,
        address: this.initialPeers.get(id) as string,
        voter: status.config.voters.includes(id),
      }));
      this.proposeMembership({ op: 'seed', members: records }).catch(() => {
        this.seedRequested = false;
      });
      return;
    }
    // Caught up: replicating (the logs agree), heard from lately, and close to our last index.
    const caughtUp = (id: NodeId) =>
      status.progress.some(
        (follower) =>
          follower.id === id &&
          follower.state === 'replicate' &&
          follower.recentlyActive &&
          follower.matchIndex + membershipCatchUpEntries >= status.lastIndex,
      );
    const change = nextConfigChange(
      this.membership.list(),
      this.membership.removedIds(),
      status.config,
      caughtUp,
    );
    if (change === null) return;
    const result = this.core.proposeConfigChange(change);
    if (result.accepted) {
      this.options.logger.info(
        { node: this.id, change: change.type, member: change.node },
        'configuration change proposed',
      );
      this.scheduleLoop();
    }
  }

  private proposeMembership(command: MembershipCommand): Promise<BroadcastResult> {
    if (this.stopped !== null) return Promise.reject(this.stopped);
    const message: ClientMessage = {
      clientId: this.ownClientId,
      seq: ++this.ownSeq,
      topic: membershipTopic,
      payload: encodeMembershipCommand(command),
    };
    const entry = this.track(message, true);
    return new Promise<BroadcastResult>((resolve, reject) => {
      const deadlineMs = this.options.environment.monotonicMs() + this.options.requestTimeoutMs;
      const waiter: Waiter = { resolve, reject, deadlineMs, entry, settled: false };
      entry.waiters.push(waiter);
      this.deadlines.push(waiter);
    });
  }

  /**
   * Adds a member (or changes its address or role): recorded in the log, then the leader
   * brings the configuration there. Resolves once the configuration holds it as asked.
   */
  async addMember(member: MemberRecord): Promise<NodeStatus> {
    const problem = memberProblem(member);
    if (problem !== null) {
      const field = problem.split(' ')[0] ?? 'member';
      throw new BroadcastError('INVALID_ARGUMENT', problem, { field });
    }
    await this.proposeMembership({ op: 'upsert', member });
    return this.configurationReaches((config) =>
      member.voter ? config.voters.includes(member.id) : config.learners.includes(member.id),
    );
  }

  /** Removes a member: recorded in the log; resolves once it left the configuration. */
  async removeMember(id: NodeId): Promise<NodeStatus> {
    if (typeof id !== 'string' || id === '') {
      throw new BroadcastError('INVALID_ARGUMENT', 'id must be a non-empty string', {
        field: 'id',
      });
    }
    await this.proposeMembership({ op: 'remove', id });
    return this.configurationReaches(
      (config) => !config.voters.includes(id) && !config.learners.includes(id),
    );
  }

  private async configurationReaches(
    done: (config: Configuration) => boolean,
  ): Promise<NodeStatus> {
    const environment = this.options.environment;
    const deadline = environment.monotonicMs() + this.options.requestTimeoutMs;
    while (this.stopped === null) {
      if (done(this.appliedConfig)) return this.status();
      if (environment.monotonicMs() > deadline) {
        throw new BroadcastError(
          'TIMEOUT',
          'the membership change is recorded but not in force yet',
          {
            timeoutMs: this.options.requestTimeoutMs,
          },
        );
      }
      await new Promise<void>((resolve) =>
        environment.setTimer(this.options.tickIntervalMs, resolve),
      );
    }
    throw this.stopped;
  }

  status(): NodeStatus {
    const core = this.core.status();
    return {
      id: this.id,
      role: core.role,
      term: core.term,
      leaderId: core.leaderId,
      commitIndex: core.commitIndex,
      appliedIndex: this.appliedIndex,
      lastPosition: this.sessions.lastPosition,
      firstRetainedPosition: this.deliveryLog.firstRetainedPosition,
      lastIndex: core.lastIndex,
      progress: core.progress,
      leaderChangeCount: this.leaderChangeCount,
      proposalCount: this.proposalCount,
      batchMessages: this.batchMessages.snapshot(),
      persistSeconds: this.persistSeconds.snapshot(),
      config: core.config,
      members: [
        ...core.config.voters.map((id) => ({ id, address: this.addressOf(id), voter: true })),
        ...core.config.learners.map((id) => ({ id, address: this.addressOf(id), voter: false })),
      ],
      pendingMessageCount: this.pending.size,
      storage: this.storage.counters(),
      transport: this.transport.stats(),
    };
  }

  transferLeadership(to: NodeId): { accepted: boolean; detail: string } {
    const result = this.core.transferLeadership(to);
    this.scheduleLoop();
    return result;
  }

  // ------------------------------------------------------------ stopping

  private failStop(error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    const storage = error instanceof StorageError;
    this.options.logger.error(
      { node: this.id, reason },
      storage ? 'storage failed: the node stops' : 'internal error: the node stops',
    );
    const stopped = new BroadcastError(
      storage ? 'STORAGE_FAILED' : 'INTERNAL',
      `node ${this.id} stopped: ${reason}`,
    );
    this.halt(stopped);
    this.options.observer?.stopped(stopped);
  }

  private halt(reason: BroadcastError): void {
    if (this.stopped !== null) return;
    this.stopped = reason;
    this.ticker?.cancel();
    this.ticker = null;
    for (const pending of [...this.pending.values()]) this.finish(pending, null, reason);
    for (const waiter of [...this.appliedWaiters]) waiter.cancel();
    for (const answer of this.readWaiters.values()) answer(null);
    this.deliveryLog.close();
  }

  /** Stops accepting work, lets the write in flight finish, then closes links and disk. */
  async close(): Promise<void> {
    this.halt(new BroadcastError('NODE_STOPPED', `node ${this.id} is stopping`));
    await this.loopIdle;
    await this.transport.close();
    await this.storage.close();
  }
}

/** A learner within this many entries of the leader's log counts as caught up. */
const membershipCatchUpEntries = 64;

/**
 * The application state a snapshot holds: u32 length of the session table's bytes, those
 * bytes, then the membership table as JSON.
 */
function encodeAppState(sessions: SessionTable, membership: MembershipTable): Uint8Array {
  const sessionBytes = sessions.toSnapshot();
  const membershipBytes = Buffer.from(JSON.stringify(membership.toJSON()));
  const header = Buffer.alloc(4);
  header.writeUInt32LE(sessionBytes.length, 0);
  return Buffer.concat([header, sessionBytes, membershipBytes]);
}

function decodeAppState(
  data: Uint8Array,
  sessionOptions: SessionTableOptions,
): { sessions: SessionTable; membership: MembershipTable } {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  assert(view.length >= 4, 'an application snapshot has a header');
  const sessionBytes = view.readUInt32LE(0);
  assert(4 + sessionBytes <= view.length, 'the session table fits in the snapshot');
  const sessionData = view.subarray(4, 4 + sessionBytes);
  const membershipJson = view.subarray(4 + sessionBytes).toString('utf8');
  return {
    sessions: SessionTable.fromSnapshot(sessionData, sessionOptions),
    membership: MembershipTable.fromJSON(JSON.parse(membershipJson)),
  };
}

/** At most this many forwarded batches await an answer; beyond it the oldest are forgotten. */
const forwardsInFlightMax = 4096;

/** Client by client in the order clients first appear, each client's messages by seq. */
function sortedBySeq(entries: readonly PendingMessage[]): PendingMessage[] {
  const byClient = new Map<string, PendingMessage[]>();
  for (const entry of entries) {
    const group = byClient.get(entry.message.clientId);
    if (group === undefined) byClient.set(entry.message.clientId, [entry]);
    else group.push(entry);
  }
  return [...byClient.values()].flatMap((group) =>
    group.sort((a, b) => a.message.seq - b.message.seq),
  );
}
