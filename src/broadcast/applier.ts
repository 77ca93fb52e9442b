/**
 * The applier: committed entries in, decisions out. It decodes each committed batch, lets the
 * session table decide every run (delivered, duplicate, control record, refused), appends the
 * delivered messages to the delivery log, and settles the callers waiting on this node. It
 * also installs a leader's snapshot in place of the application state.
 *
 * Everything here follows from the committed entries alone, in index order, so every replica
 * decides the same (Raft §5.3: the state machine applies committed entries in log order).
 */
import { decodeConfiguration } from '../raft/config.ts';
import type { Configuration, Entry, NodeId, Snapshot } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { FixedHistogram } from '../util/histogram.ts';
import { BatchFormatError, type DecodedBatch, decodeBatch, type MessageRun } from './batch.ts';
import { compactionTopic, firstOfKey } from './compaction.ts';
import { DeliveryLog, type DeliveryLogOptions } from './deliveries.ts';
import { BroadcastError } from './errors.ts';
import { decodeMembershipCommand, MembershipTable, membershipTopic } from './membership.ts';
import type { NodeObserver } from './observer.ts';
import type { NodeLogger } from './options.ts';
import type { ClientPending, PendingMessage, PendingTable } from './pending.ts';
import { type RunOutcome, SessionTable, type SessionTableOptions } from './sessions.ts';
import { type AppState, decodeAppState, encodeAppState, type Snapshots } from './snapshots.ts';
import {
  consumersTopic,
  decodeStreamCommand,
  retentionTopic,
  StreamState,
} from './stream-state.ts';

/** What the other parts do when the applier learns something. */
export interface ApplierHooks {
  /** The entry at `index` is applied: copies placed there that still wait were lost. */
  lostAt(index: number): void;
  /** A snapshot skipped indexes: every pending message must be sent again. */
  retryAll(): void;
  /** The log refused a message of our own session as unknown: it expired. */
  ownSessionLost(): void;
  /** A membership record was applied, or a snapshot replaced the table. */
  membershipChanged(): void;
  /** Entries up to `index` are applied (called once per apply, after the last). */
  applied(index: number): void;
}

export interface ApplierOptions {
  readonly id: NodeId;
  readonly logger: NodeLogger;
  readonly pending: PendingTable;
  readonly snapshots: Snapshots;
  readonly observer: NodeObserver | undefined;
  readonly sessionOptions: SessionTableOptions;
  /** Where delivered messages are kept for readers and subscriptions. */
  readonly deliveries: DeliveryLogOptions;
  readonly hooks: ApplierHooks;
}

/** Enough for the requests one node has waiting at once. */
const expiredRecordsKept = 64;

export class Applier {
  readonly deliveryLog: DeliveryLog;
  /** Messages per applied batch. */
  readonly batchMessages = new FixedHistogram([1, 4, 16, 64, 256, 1024, 4096]);
  /**
   * The last membership records found expired here, as `index@deadlineMs`: the node that
   * took a request answers its caller from this (not replicated state: nothing else reads
   * it). The deadline tells apart the records of one entry: one sent again late may share a
   * batch with a fresh one, and records with one deadline share their fate.
   */
  private readonly expiredMembershipRecords = new Set<string>();
  private state: AppState;
  /** A key was first followed by compaction since the last cut (`applyStreamRun`). */
  private keysFollowedSinceCut = false;
  private appliedIndexValue: number;
  private appliedTerm: number;
  private appliedConfigValue: Configuration;

  constructor(
    private readonly options: ApplierOptions,
    snapshot: Snapshot | null,
  ) {
    this.state =
      snapshot === null
        ? {
            sessions: new SessionTable(options.sessionOptions),
            membership: new MembershipTable(),
            streams: new StreamState(),
          }
        : decodeAppState(snapshot.data, options.sessionOptions);
    this.deliveryLog = new DeliveryLog(options.deliveries);
    this.deliveryLog.resetTo(this.state.sessions.lastPosition + 1);
    this.deliveryLog.retainFrom(this.state.streams.retainedFrom);
    this.appliedIndexValue = snapshot?.meta.index ?? 0;
    this.appliedTerm = snapshot?.meta.term ?? 0;
    this.appliedConfigValue = snapshot?.meta.config ?? { voters: [], learners: [] };
  }

  get sessions(): SessionTable {
    return this.state.sessions;
  }

  /** Whether the membership record with `deadlineMs` at `index` came after its deadline. */
  membershipExpiredAt(index: number, deadlineMs: number): boolean {
    return this.expiredMembershipRecords.has(`${index}@${deadlineMs}`);
  }

  get membership(): MembershipTable {
    return this.state.membership;
  }

  get streams(): StreamState {
    return this.state.streams;
  }

  get appliedIndex(): number {
    return this.appliedIndexValue;
  }

  /** Saves the state as of the applied index as the snapshot (Snapshots.saveAtStop). */
  saveSnapshotAtStop(): Promise<boolean> {
    const meta = {
      index: this.appliedIndexValue,
      term: this.appliedTerm,
      config: this.appliedConfigValue,
    };
    return this.options.snapshots.saveAtStop(meta, this.state);
  }

  /** The configuration as of the applied index (what `addMember` waits on). */
  get appliedConfig(): Configuration {
    return this.appliedConfigValue;
  }

  apply(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    let candidateDue = false;
    for (const entry of entries) {
      assert(entry.index === this.appliedIndexValue + 1, 'entries apply densely, in index order');
      if (entry.kind === 'normal') this.applyBatch(entry);
      else if (entry.kind === 'config') {
        this.appliedConfigValue = decodeConfiguration(entry.data);
        // The peers follow the configuration too: a removed member is let go only now.
        this.options.hooks.membershipChanged();
      }
      this.options.hooks.lostAt(entry.index);
      this.appliedIndexValue = entry.index;
      this.appliedTerm = entry.term;
      candidateDue = this.options.snapshots.noteApplied(entry.data.length);
    }
    this.deliveryLog.notify();
    this.options.hooks.applied(this.appliedIndexValue);
    if (candidateDue) {
      const meta = {
        index: this.appliedIndexValue,
        term: this.appliedTerm,
        config: this.appliedConfigValue,
      };
      this.options.snapshots.takeCandidate(meta, this.state);
    }
  }

  private applyBatch(entry: Entry): void {
    let batch: DecodedBatch;
    try {
      batch = decodeBatch(entry.data);
    } catch (error) {
      if (!(error instanceof BatchFormatError)) throw error;
      // Every replica skips the same committed entry, so they still agree.
      this.options.logger.error(
        { node: this.options.id, index: entry.index, reason: error.message },
        'skipped an undecodable batch',
      );
      return;
    }
    const outcomes = this.state.sessions.applyRuns(batch);
    assert(outcomes.length === batch.runs.length, 'one outcome per run');
    this.batchMessages.observe(batch.runs.reduce((sum, run) => sum + run.payloads.length, 0));
    batch.runs.forEach((run, offset) => {
      const outcome = outcomes[offset] as RunOutcome;
      if (outcome.kind === 'accepted')
        this.deliverRun(run, outcome.duplicateCount, outcome.firstPosition, entry);
      else if (outcome.kind === 'control') {
        this.applyControlRun(run, outcome.duplicateCount, batch.logTimeMs, entry.index);
      }
      this.settleRun(run, outcome, entry);
    });
    const { lastPosition } = this.state.sessions;
    assert(
      this.deliveryLog.lastPosition === lastPosition,
      'the log delivered what the table decided',
    );
  }

  private deliverRun(run: MessageRun, duplicateCount: number, firstPosition: number, entry: Entry) {
    const anonymous = run.clientId === '';
    const observer = this.options.observer;
    const { compaction } = this.state.streams;
    const key = run.key === '' ? undefined : run.key;
    // The session table's clock: it only moves forward, whatever the stamping clocks.
    const logTimeMs = this.state.sessions.logTimeMs;
    const { index, term } = entry;
    const { clientId, topic } = run;
    if (key === undefined) {
      // Without a key compaction has nothing to follow: the store writes the run's records
      // from its payloads, with no object per message unless an observer wants them.
      const { firstSeq, payloads } = run;
      const stored = { index, term, clientId, firstSeq, topic, logTimeMs, payloads };
      this.deliveryLog.appendRun(stored, duplicateCount, firstPosition);
      if (observer === undefined) return;
      for (let offset = duplicateCount; offset < payloads.length; offset++) {
        const position = firstPosition + offset - duplicateCount;
        const seq = anonymous ? 0 : firstSeq + offset;
        const payload = payloads[offset] as Uint8Array;
        observer.delivered({ position, index, term, clientId, seq, topic, payload, logTimeMs });
      }
      return;
    }
    for (let offset = duplicateCount; offset < run.payloads.length; offset++) {
      const position = firstPosition + offset - duplicateCount;
      const seq = anonymous ? 0 : run.firstSeq + offset;
      const payload = run.payloads[offset] as Uint8Array;
      const message = { position, index, term, clientId, seq, topic, payload, logTimeMs, key };
      this.deliveryLog.append(message);
      const superseded = compaction.noteDelivered(topic, key, position);
      if (superseded > 0) this.deliveryLog.store.noteSuperseded(superseded);
      else if (superseded === firstOfKey) this.keysFollowedSinceCut = true;
      observer?.delivered(message);
    }
  }

  private applyControlRun(
    run: MessageRun,
    duplicateCount: number,
    batchLogTimeMs: number,
    index: number,
  ): void {
    if (
      run.topic === retentionTopic ||
      run.topic === consumersTopic ||
      run.topic === compactionTopic
    ) {
      this.applyStreamRun(run, duplicateCount);
      return;
    }
    if (run.topic !== membershipTopic) return; // a newer release's control record: ignored alike
    for (let offset = duplicateCount; offset < run.payloads.length; offset++) {
      const command = decodeMembershipCommand(run.payloads[offset] as Uint8Array);
      const node = this.options.id;
      if (command === null) {
        this.options.logger.error({ node }, 'skipped a malformed membership record');
        continue;
      }
      if (this.state.membership.apply(command, batchLogTimeMs) === 'expired') {
        const deadlineMs = command.op === 'seed' ? null : command.deadlineMs;
        this.expiredMembershipRecords.add(`${index}@${deadlineMs}`);
        if (this.expiredMembershipRecords.size > expiredRecordsKept) {
          const oldest = this.expiredMembershipRecords.values().next().value as string;
          this.expiredMembershipRecords.delete(oldest);
        }
        this.options.logger.warn(
          {
            node,
            command: command.op,
            deadlineMs: command.op === 'seed' ? null : command.deadlineMs,
            batchLogTimeMs,
          },
          'membership record reached the log after its deadline: not applied',
        );
        continue;
      }
      this.options.logger.info({ node, command: command.op }, 'membership record applied');
    }
    this.options.hooks.membershipChanged();
  }

  private applyStreamRun(run: MessageRun, duplicateCount: number): void {
    const { sessions, streams } = this.state;
    for (let offset = duplicateCount; offset < run.payloads.length; offset++) {
      const command = decodeStreamCommand(run.topic, run.payloads[offset] as Uint8Array);
      if (command === null) {
        this.options.logger.error(
          { node: this.options.id, topic: run.topic },
          'skipped a malformed stream record',
        );
        continue;
      }
      streams.apply(command, {
        lastPosition: sessions.lastPosition,
        logTimeMs: sessions.logTimeMs,
      });
    }
    this.deliveryLog.retainFrom(streams.retainedFrom);
    if (run.topic === compactionTopic && this.keysFollowedSinceCut) {
      // Keys followed since the last cut may supersede messages applied before they were
      // followed, in segments already judged: judged again, once a cut, not once a key.
      this.keysFollowedSinceCut = false;
      this.deliveryLog.store.forgetCompaction();
    }
  }

  /**
   * One slice of the store's compaction to the applied cut (src/store/compaction.ts),
   * judged by the state as applied now: a later slice sees a later state, whose rule only
   * picks more.
   */
  compactSlice(): Promise<void> | null {
    const { compaction } = this.state.streams;
    if (compaction.before <= 1) return null; // no cut yet: nothing to do, every tick
    return this.deliveryLog.store
      .compactSlice(compaction.before, (message) =>
        this.state.streams.compaction.isSuperseded(message),
      )
      .then((slice) => {
        if (slice.rewritten === null) return;
        this.options.logger.info(
          { node: this.options.id, before: compaction.before, ...slice.rewritten },
          'compacted a segment by key',
        );
      });
  }

  /** Answers the callers waiting on this run's messages, if any wait on this node. */
  private settleRun(run: MessageRun, outcome: RunOutcome, entry: Entry): void {
    const waiting = this.options.pending.forClient(run.clientId);
    if (waiting === undefined) return;
    if (outcome.kind === 'refused') {
      this.settleRefusedRun(run, outcome, waiting);
      return;
    }
    for (let offset = 0; offset < run.payloads.length; offset++) {
      const seq = run.firstSeq + offset;
      const pending = waiting.get(seq);
      if (pending === undefined || !sentBy(pending, run)) continue;
      const duplicate = offset < outcome.duplicateCount;
      let position: number | null = null;
      if (outcome.kind === 'accepted') {
        position = duplicate
          ? (this.state.sessions.deliveredPosition(run.clientId, seq)?.position ?? null)
          : outcome.firstPosition + offset - outcome.duplicateCount;
      }
      const index = duplicate ? null : entry.index;
      const term = duplicate ? null : entry.term;
      this.options.pending.deliver(pending, position, index, term, duplicate);
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
    waiting: ClientPending,
  ): void {
    if (outcome.code === 'sequence_gap') {
      for (let offset = 0; offset < run.payloads.length; offset++) {
        const pending = waiting.get(run.firstSeq + offset);
        if (pending !== undefined && sentBy(pending, run)) {
          pending.gapExpectedSeq = outcome.expectedSeq;
        }
      }
      return;
    }
    if (outcome.code === 'session_forbidden' || outcome.code === 'session_conflict') {
      this.settleForeignRun(run, outcome.code, waiting);
      return;
    }
    if (waiting.lowestSeq() < run.firstSeq) return;
    let ownSessionLost = false;
    for (let offset = 0; offset < run.payloads.length; offset++) {
      const pending = waiting.get(run.firstSeq + offset);
      if (pending === undefined || !sentBy(pending, run)) continue;
      const error = new BroadcastError(outcome.code, 'the client session refused the message', {
        expectedSeq: outcome.expectedSeq,
      });
      this.options.pending.settle(pending, null, error);
      ownSessionLost ||= pending.ownSession;
    }
    if (ownSessionLost) this.options.hooks.ownSessionLost();
  }

  /** A run sent in someone else's session: its own senders hear why, nobody else does. */
  private settleForeignRun(
    run: MessageRun,
    code: 'session_forbidden' | 'session_conflict',
    waiting: ClientPending,
  ): void {
    const message =
      code === 'session_forbidden'
        ? `client ${run.clientId} is a session of another identity`
        : `client ${run.clientId} is a session another client started (another nonce); pick another client id`;
    for (let offset = 0; offset < run.payloads.length; offset++) {
      const pending = waiting.get(run.firstSeq + offset);
      if (pending === undefined || !sentBy(pending, run)) continue;
      this.options.pending.settle(pending, null, new BroadcastError(code, message, {}));
    }
  }

  /**
   * The application state as of the applied index, serialised as a snapshot: what a backup
   * holds. Taken in one synchronous step, so it is one consistent cut of the applied log.
   */
  snapshotNow(): Snapshot {
    return {
      meta: {
        index: this.appliedIndexValue,
        term: this.appliedTerm,
        config: this.appliedConfigValue,
      },
      data: encodeAppState(this.state),
    };
  }

  /** Replaces the application state with a leader's snapshot (Raft §7). */
  restore(snapshot: Snapshot): void {
    assert(snapshot.meta.index >= this.appliedIndexValue, 'a snapshot never moves the state back');
    this.state = decodeAppState(snapshot.data, this.options.sessionOptions);
    this.options.hooks.membershipChanged();
    this.deliveryLog.resetTo(this.state.sessions.lastPosition + 1);
    this.deliveryLog.retainFrom(this.state.streams.retainedFrom);
    this.appliedIndexValue = snapshot.meta.index;
    this.appliedTerm = snapshot.meta.term;
    this.appliedConfigValue = snapshot.meta.config;
    this.options.snapshots.reset();
    // Messages the snapshot shows delivered were delivered for their callers: answer now
    // (with the position, not the entry, which this node never saw) instead of resending.
    const { pending } = this.options;
    for (const entry of [...pending.values()]) {
      const { owner, nonce } = entry.message;
      const foreign = this.state.sessions.foreignRefusal(
        entry.message.clientId,
        owner ?? '',
        nonce ?? '',
      );
      if (foreign !== null) continue; // sent again, and refused once applied
      const known = this.state.sessions.deliveredPosition(
        entry.message.clientId,
        entry.message.seq,
      );
      if (known === undefined) continue;
      const result = { position: known.position, index: null, term: null, duplicate: false };
      pending.settle(entry, result, null);
    }
    // The rest were placed at indexes the snapshot skipped over: they will not be applied
    // here one by one, so send them again now rather than after the long retry.
    this.options.hooks.retryAll();
    this.options.logger.info(
      { node: this.options.id, index: snapshot.meta.index },
      'installed snapshot from leader',
    );
  }
}

/**
 * Whether `pending` is the message this run carries, not another sender's at the same
 * (client, seq): only the sender of a run hears its outcome.
 */
function sentBy(pending: PendingMessage, run: MessageRun): boolean {
  return (pending.message.owner ?? '') === run.owner && (pending.message.nonce ?? '') === run.nonce;
}
