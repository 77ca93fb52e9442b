/**
 * Builds the runtime's parts and wires them to one another: who tells whom when an entry is
 * applied, a snapshot installed or a session lost. The node shell owns the loop and the
 * lifecycle; everything else it reaches through these parts.
 */
import { RaftCore } from '../raft/core.ts';
import type { PersistedState } from '../raft/types.ts';
import type { RaftStorage } from '../storage/types.ts';
import type { Transport } from '../transport/types.ts';
import { Applier } from './applier.ts';
import { CompactionDriver } from './compaction.ts';
import { memoryDeliveryLogOptions } from './deliveries.ts';
import type { BroadcastError } from './errors.ts';
import { defaultGapHoldLimits } from './gap-hold.ts';
import { Intake } from './intake.ts';
import { MembershipDriver } from './membership-driver.ts';
import { type BroadcastNodeOptions, defaultNodeTuning } from './options.ts';
import { Outbox } from './outbox.ts';
import { PendingTable } from './pending.ts';
import { Persister } from './persister.ts';
import { Reads } from './reads.ts';
import { RetentionDriver, retainForever } from './retention.ts';
import { Snapshots } from './snapshots.ts';

/** Positions remembered per client, to answer a duplicate with its original position. */
const recentPositionsMax = 4096;

export interface NodeParts {
  readonly core: RaftCore;
  readonly pending: PendingTable;
  readonly persister: Persister;
  readonly snapshots: Snapshots;
  readonly applier: Applier;
  readonly outbox: Outbox;
  readonly intake: Intake;
  readonly reads: Reads;
  readonly membership: MembershipDriver;
  readonly retention: RetentionDriver;
  readonly compaction: CompactionDriver;
}

/** What the parts need of the node's loop: to be run soon, and whether the node stopped. */
export interface NodeLoop {
  readonly scheduleLoop: () => void;
  readonly stopped: () => BroadcastError | null;
}

export function buildNodeParts(
  options: BroadcastNodeOptions,
  storage: RaftStorage,
  transport: Transport,
  persisted: PersistedState,
  loop: NodeLoop,
): NodeParts {
  const { environment, logger, observer } = options;
  const unsafe = options.unsafe ?? {};
  const { scheduleLoop, stopped } = loop;
  const core = new RaftCore(
    {
      nodeId: options.id,
      electionTimeoutTicks: options.electionTimeoutTicks,
      heartbeatIntervalTicks: options.heartbeatIntervalTicks,
      random: environment.random,
      preVote: options.preVote ?? true,
      checkQuorum: options.checkQuorum ?? true,
      appendBytesMax: options.appendBytesMax,
      inflightAppendsMax: options.inflightAppendsMax,
      // On: a follower hears of a commit with the next entries (at once for an entry it
      // forwarded or a read index it asked for; and a millisecond after the leader's Ready
      // loop goes idle, see BroadcastNode.armCommitNews), not in an Append and a response of
      // its own. At 128 in flight that is one round trip per follower per round fewer: per
      // round the leader sent 4.1 messages and took 2.9 Readies, now 2.9 and 2.5; a follower
      // 2.1 and 1.8, now 1.5 and 1.3 (and it applies the previous batch in the Ready that
      // writes the next, before the write). CPU per message, 3 runs alternated (a loaded
      // machine): leader 25.5/25.7/14.9 off, 19.6/14.9/13.5 on; followers 13.1/13.6/8.4 off,
      // 10.2/7.8/7.5 on.
      lazyCommitNews: true,
      // On: under load a heartbeat only repeated what the last Append told a follower. At 128
      // in flight a leader of three sent some 65 a second, each answered; without them its
      // frames per round went from 2.47 to 2.30 each way, a follower's from 1.24 to 1.15.
      quietHeartbeats: true,
      bootstrap: options.bootstrap,
      unsafe: unsafe.core ?? null,
    },
    { ...persisted, appliedIndex: persisted.snapshot?.meta.index ?? 0 },
  );
  const pending = new PendingTable();
  const persister = new Persister(storage, environment, persisted.hardState);
  const snapshots = new Snapshots({
    id: options.id,
    core,
    storage,
    logger,
    observer,
    snapshotIntervalBytes: options.snapshotIntervalBytes,
    // The applier exists by the time a snapshot is compacted to.
    syncStore: (): Promise<void> => applier.deliveryLog.store.sync(),
  });
  const applier = new Applier(
    {
      id: options.id,
      logger,
      pending,
      snapshots,
      observer,
      sessionOptions: {
        sessionTtlMs: options.sessionTtlMs,
        recentPositionsMax,
        unsafeDeliverSeqGapAtOnce: unsafe.deliverSeqGapAtOnce === true,
        unsafeDropSessionsOnRestore: unsafe.dropSessionsOnRestore === true,
        unsafeIgnoreSessionOwner: unsafe.ignoreSessionOwner === true,
      },
      deliveries: options.deliveries ?? memoryDeliveryLogOptions(options.retainBytesMax),
      hooks: {
        lostAt: (index) => outbox.lostAt(index),
        retryAll: () => outbox.retryAll(),
        ownSessionLost: () => intake.restartOwnSession(),
        membershipChanged: () => membership.updatePeers(),
        applied: (index) => reads.onApplied(index),
      },
    },
    persisted.snapshot,
  );
  const outbox = new Outbox({
    id: options.id,
    core,
    transport,
    pending,
    environment,
    batchBytesMax: options.batchBytesMax,
    retryIntervalMs: options.retryIntervalMs,
    appliedIndex: () => applier.appliedIndex,
    sessions: () => applier.sessions,
    gapHoldLimits: options.gapHoldLimits ?? defaultGapHoldLimits,
    scheduleLoop,
    answerBeforeCommit: unsafe.answerBeforeCommit === true,
  });
  const intake = new Intake({
    id: options.id,
    environment,
    pending,
    outbox,
    sessions: () => applier.sessions,
    payloadBytesMax: options.payloadBytesMax,
    pendingMessagesMax: options.pendingMessagesMax,
    pendingBytesMax: options.pendingBytesMax ?? defaultNodeTuning.pendingBytesMax,
    sessionsMax: options.sessionsMax ?? defaultNodeTuning.sessionsMax,
    sessionsPerIdentityMax:
      options.sessionsPerIdentityMax ?? defaultNodeTuning.sessionsPerIdentityMax,
    requestTimeoutMs: options.requestTimeoutMs,
  });
  const reads = new Reads({
    id: options.id,
    core,
    environment,
    requestTimeoutMs: options.requestTimeoutMs,
    retryIntervalMs: options.retryIntervalMs,
    retryPauseMs: options.tickIntervalMs * options.heartbeatIntervalTicks,
    appliedIndex: () => applier.appliedIndex,
    lastPosition: () => applier.sessions.lastPosition,
    stopped,
    scheduleLoop,
  });
  const membership = new MembershipDriver({
    id: options.id,
    core,
    transport,
    logger,
    environment,
    initialPeers: options.initialPeers ?? new Map(),
    membership: () => applier.membership,
    appliedConfig: () => applier.appliedConfig,
    propose: (topic, payload) => intake.acceptOwn(topic, payload),
    expiredAt: (index, deadlineMs) => applier.membershipExpiredAt(index, deadlineMs),
    stopped,
    scheduleLoop,
    requestTimeoutMs: options.requestTimeoutMs,
    pollIntervalMs: options.tickIntervalMs,
    reconcileIntervalTicks: options.heartbeatIntervalTicks,
  });
  const retention = new RetentionDriver({
    policy: options.retention ?? retainForever,
    checkIntervalTicks: Math.max(1, Math.round(1000 / options.tickIntervalMs)),
    isLeader: () => core.status().role === 'leader',
    segments: () => {
      const log = applier.deliveryLog;
      return log.store.summaries().filter((segment) => segment.last >= log.firstRetainedPosition);
    },
    holdsTopic: (segment, topic) => applier.deliveryLog.store.holdsTopic(segment.first, topic),
    retainedFrom: () => applier.streams.retainedFrom,
    logTimeMs: () => applier.sessions.logTimeMs,
    propose: (topic, payload) => intake.acceptOwn(topic, payload),
    onError: (error) =>
      logger.warn({ node: options.id, reason: String(error) }, 'retention record not committed'),
    unsafeLocal:
      unsafe.retainLocally === true
        ? {
            nowMs: environment.nowMs,
            floor: () => applier.deliveryLog.firstRetainedPosition,
            retainFrom: (position) => applier.deliveryLog.retainFrom(position),
          }
        : null,
  });
  const compaction = new CompactionDriver({
    topics: options.compactTopics ?? [],
    checkIntervalTicks: Math.max(1, Math.round(1000 / options.tickIntervalMs)),
    isLeader: () => core.status().role === 'leader',
    sealedBefore: () => applier.deliveryLog.store.summaries().at(-1)?.first ?? 1,
    state: () => applier.streams.compaction,
    compactSlice: () => applier.compactSlice(),
    propose: (topic, payload) => intake.acceptOwn(topic, payload),
    onError: (error) =>
      logger.warn({ node: options.id, reason: String(error) }, 'compaction by key failed'),
  });
  applier.deliveryLog.setTopicRetention(
    options.retention?.topics ?? {},
    () => applier.sessions.logTimeMs,
  );
  return {
    core,
    pending,
    persister,
    snapshots,
    applier,
    outbox,
    intake,
    reads,
    membership,
    retention,
    compaction,
  };
}
