/**
 * The intake: where a broadcast enters the node. It checks the message once (message-rules.ts),
 * answers a retry of something already applied at once, refuses beyond `pendingMessagesMax`,
 * gives messages without a session a seq of the node's own session, and keeps the deadline
 * queue that turns a silent message into timeout (or sequence_gap when the log said why).
 */
import type { NodeId } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import type { Environment } from '../util/environment.ts';
import type { ClientMessage } from './batch.ts';
import { BroadcastError } from './errors.ts';
import {
  clientIdProblem,
  keyProblem,
  type MessageProblem,
  nonceProblem,
  ownerProblem,
  ownSessionPrefix,
  payloadProblem,
  seqProblem,
  sessionPairProblem,
  topicProblem,
} from './message-rules.ts';
import type { BroadcastOptions } from './options.ts';
import type { Outbox } from './outbox.ts';
import type { BroadcastResult, PendingMessage, PendingTable, Waiter } from './pending.ts';
import type { SessionTable } from './sessions.ts';

export interface IntakeOptions {
  readonly id: NodeId;
  readonly environment: Environment;
  readonly pending: PendingTable;
  readonly outbox: Outbox;
  /** The applied session table (replaced when a snapshot is installed). */
  readonly sessions: () => SessionTable;
  readonly payloadBytesMax: number;
  readonly pendingMessagesMax: number;
  readonly pendingBytesMax: number;
  readonly sessionsMax: number;
  readonly sessionsPerIdentityMax: number;
  readonly requestTimeoutMs: number;
}

/** Checks a library call's arguments with the shared rules; throws invalid_argument and co. */
export function checkBroadcast(
  payload: unknown,
  options: BroadcastOptions,
  payloadBytesMax: number,
): {
  readonly clientId?: string;
  readonly seq?: number;
  readonly topic: string;
  readonly owner: string;
  readonly nonce: string;
  readonly key: string;
} {
  if (options === null || typeof options !== 'object') {
    throw new BroadcastError('invalid_argument', 'options must be an object', { field: 'options' });
  }
  const { clientId, seq, topic, owner, nonce, key } = options;
  const problem =
    payloadProblem(payload, payloadBytesMax) ??
    (clientId === undefined ? null : clientIdProblem(clientId)) ??
    (seq === undefined ? null : seqProblem(seq)) ??
    sessionPairProblem(clientId, seq, { clientId: 'clientId', seq: 'seq', blame: 'seq' }) ??
    (topic === undefined
      ? null
      : topicProblem(topic, { field: 'topic', reservedAllowed: false })) ??
    (owner === undefined ? null : ownerProblem(owner)) ??
    (nonce === undefined ? null : nonceProblem(nonce)) ??
    (key === undefined ? null : keyProblem(key));
  if (problem !== null) throw errorOf(problem);
  const checked = { topic: topic ?? '', owner: owner ?? '', nonce: nonce ?? '', key: key ?? '' };
  return { clientId, seq, ...checked };
}

function senderRefusal(
  message: ClientMessage,
  owner: string,
  nonce: string,
): 'session_forbidden' | 'session_conflict' | null {
  if ((message.owner ?? '') !== owner) return 'session_forbidden';
  if ((message.nonce ?? '') !== nonce) return 'session_conflict';
  return null;
}

function foreignError(
  code: 'session_forbidden' | 'session_conflict',
  clientId: string,
): BroadcastError {
  return new BroadcastError(
    code,
    code === 'session_forbidden'
      ? `client ${clientId} is a session of another identity`
      : `client ${clientId} is a session another client started (another nonce); pick another client id`,
    { field: 'client' },
  );
}

function errorOf(problem: MessageProblem): BroadcastError {
  return new BroadcastError(problem.code, problem.message, {
    field: problem.field,
    ...problem.details,
  });
}

export class Intake {
  /**
   * The node's own session, for messages that come without one: `$<node id>.<random>`, in
   * the namespace no caller may name (message-rules.ts), so nobody else can write in it.
   */
  private ownClientIdValue: string;
  private ownSeq = 0;
  /** Every waiter, in deadline order (one timeout for all, so arrival order is enough). */
  private deadlines: Waiter[] = [];
  private lastDeadlineMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: IntakeOptions) {
    assert(options.requestTimeoutMs > 0, 'requestTimeoutMs is positive');
    assert(options.pendingMessagesMax >= 1, 'pendingMessagesMax is at least 1');
    this.ownClientIdValue = this.newOwnClientId();
  }

  get ownClientId(): string {
    return this.ownClientIdValue;
  }

  private newOwnClientId(): string {
    return `${ownSessionPrefix(this.options.id)}${this.options.environment.randomHex(8)}`;
  }

  /** Throws a BroadcastError for any refusal; the node turns it into a rejected promise. */
  accept(payload: Uint8Array, options: BroadcastOptions): Promise<BroadcastResult> {
    const checked = checkBroadcast(payload, options, this.options.payloadBytesMax);
    if (checked.clientId === undefined) return this.acceptOwn(checked.topic, payload, checked.key);
    const message: ClientMessage = {
      clientId: checked.clientId,
      seq: checked.seq as number,
      topic: checked.topic,
      payload,
      ...(checked.owner === '' ? {} : { owner: checked.owner }),
      ...(checked.nonce === '' ? {} : { nonce: checked.nonce }),
      ...(checked.key === '' ? {} : { key: checked.key }),
    };
    // Someone else's session is refused before anything about it is answered: not even
    // whether a seq was delivered.
    const foreign = this.options
      .sessions()
      .foreignRefusal(message.clientId, checked.owner, checked.nonce);
    if (foreign !== null) throw foreignError(foreign, message.clientId);
    // A retry of something this node has already applied is answered at once.
    const known = this.options.sessions().deliveredPosition(message.clientId, message.seq);
    if (known !== undefined) {
      return Promise.resolve({
        position: known.position,
        index: null,
        term: null,
        duplicate: true,
      });
    }
    // A retry of a message still pending joins it: one entry per (clientId, seq).
    const existing = this.options.pending.get(message.clientId, message.seq);
    if (existing !== undefined) {
      // Another sender's copy of this (client, seq) is on its way. That says nothing yet of
      // whose session it is: this sender's copy may reach the log through another node
      // first (and then be delivered). Only the log decides, so the answer is not a refusal
      // but "unknown, ask again": a retry once the copy here is applied is answered for good.
      if (senderRefusal(existing.message, checked.owner, checked.nonce) !== null) {
        throw new BroadcastError(
          'timeout',
          `another sender's copy of client ${message.clientId} seq ${message.seq} is waiting for the log, which decides whose session it is; retry`,
          { field: 'client' },
        );
      }
      return this.wait(existing);
    }
    this.refuseWhenFull(payload.byteLength);
    this.refuseNewSessionWhenFull(message);
    return this.trackAndSend(message, false);
  }

  /**
   * A message of the node's own session. Its seq is taken only once nothing can refuse the
   * message: a seq taken and never sent would be a gap that blocks every later one. The
   * topic is not checked here: the node writes its own control records this way.
   */
  acceptOwn(topic: string, payload: Uint8Array, key = ''): Promise<BroadcastResult> {
    this.refuseWhenFull(payload.byteLength);
    const message = {
      clientId: this.ownClientId,
      seq: this.ownSeq + 1,
      topic,
      payload,
      ...(key === '' ? {} : { key }),
    };
    this.ownSeq++;
    return this.trackAndSend(message, true);
  }

  /**
   * The caller waits before the message goes to the outbox, which may decide it at once
   * (a gapped seq past the hold's bounds) and must find someone to answer.
   */
  private trackAndSend(message: ClientMessage, ownSession: boolean): Promise<BroadcastResult> {
    const entry = this.track(message, ownSession);
    const answer = this.wait(entry);
    this.options.outbox.enqueue(entry);
    return answer;
  }

  private refuseWhenFull(payloadBytes: number): void {
    const { pending, pendingMessagesMax, pendingBytesMax } = this.options;
    if (pending.size >= pendingMessagesMax) {
      throw new BroadcastError('overloaded', 'too many messages are waiting for the log', {
        pendingMessagesMax,
      });
    }
    // One message always fits, however large (up to payloadBytesMax), so none is refused
    // for good; the bound keeps many from piling up in memory behind a slow log.
    if (pending.size > 0 && pending.bytes + payloadBytes > pendingBytesMax) {
      throw new BroadcastError('overloaded', 'too many bytes are waiting for the log', {
        pendingBytesMax,
      });
    }
  }

  /**
   * The session table is replicated state every node keeps until a session expires: a
   * flood of new client ids would grow every node's memory. This check is made at the door
   * against what this node has applied, so it bounds the table within what is in flight,
   * without changing the state machine's rules.
   */
  private refuseNewSessionWhenFull(message: ClientMessage): void {
    const sessions = this.options.sessions();
    const owner = message.owner ?? '';
    const { sessionsMax, sessionsPerIdentityMax } = this.options;
    const full = sessions.sessionCount >= sessionsMax;
    // An identity may not take every session of the cluster from the others.
    const ownerFull = owner !== '' && sessions.sessionCountOf(owner) >= sessionsPerIdentityMax;
    if (!full && !ownerFull) return;
    if (sessions.knows(message.clientId)) return;
    if (this.options.pending.forClient(message.clientId) !== undefined) return;
    if (full) {
      throw new BroadcastError('overloaded', 'too many client sessions are open on this cluster', {
        sessionsMax,
      });
    }
    throw new BroadcastError('overloaded', `${owner} has too many client sessions open`, {
      sessionsPerIdentityMax,
    });
  }

  private track(message: ClientMessage, ownSession: boolean): PendingMessage {
    const entry: PendingMessage = {
      proposedIndex: null,
      message,
      ownSession,
      waiters: [],
      lastSentMs: 0,
      queued: false,
      held: false,
      copiesSent: 0,
    };
    this.options.pending.add(entry);
    return entry;
  }

  private wait(entry: PendingMessage): Promise<BroadcastResult> {
    return new Promise<BroadcastResult>((resolve, reject) => {
      const deadlineMs = this.options.environment.monotonicMs() + this.options.requestTimeoutMs;
      // One timeout for all, on a clock that never goes back: deadlines queue in order and
      // the tick expires them from the front, with no timer each.
      assert(deadlineMs >= this.lastDeadlineMs, 'deadlines queue in order');
      this.lastDeadlineMs = deadlineMs;
      const waiter: Waiter = { resolve, reject, deadlineMs, entry, settled: false };
      entry.waiters.push(waiter);
      this.deadlines.push(waiter);
    });
  }

  /** Fails every waiter whose deadline passed; settled ones leave the queue on the way. */
  expireDeadlines(nowMs: number): void {
    let head = 0;
    while (head < this.deadlines.length) {
      const waiter = this.deadlines[head] as Waiter;
      if (!waiter.settled && waiter.deadlineMs > nowMs) break;
      head++;
      if (!waiter.settled) this.expire(waiter.entry, waiter);
    }
    if (head > 0) this.deadlines.splice(0, head);
  }

  private expire(entry: PendingMessage, waiter: Waiter): void {
    assert(entry.waiters.includes(waiter), 'a waiter is listed on the entry it waits on');
    waiter.settled = true;
    const at = entry.waiters.indexOf(waiter);
    if (at >= 0) entry.waiters.splice(at, 1);
    waiter.reject(this.expiryError(entry));
    // A caller's own session retries on its own; ours must go on, or later seqs would wait.
    if (!entry.ownSession && entry.waiters.length === 0) this.options.pending.delete(entry);
  }

  /**
   * A message held for a gap and never sent is not in doubt: say what is missing instead.
   * One with a copy out may still commit once its turn comes, so its outcome is unknown.
   */
  private expiryError(entry: PendingMessage): BroadcastError {
    const gap = entry.gapExpectedSeq;
    if (gap !== undefined && !entry.ownSession && entry.held && entry.copiesSent === 0) {
      return new BroadcastError(
        'sequence_gap',
        `seq ${entry.message.seq} waits for seq ${gap} of its client`,
        { expectedSeq: gap },
      );
    }
    return new BroadcastError('timeout', 'the message was not delivered in time; it may still be', {
      timeoutMs: this.options.requestTimeoutMs,
    });
  }

  /** Our session expired (a very long partition): resend what is left under a new one. */
  restartOwnSession(): void {
    const left = [...this.options.pending.values()].filter((entry) => entry.ownSession);
    this.ownClientIdValue = this.newOwnClientId();
    this.ownSeq = 0;
    for (const entry of left) {
      this.options.pending.delete(entry);
      entry.queued = false;
      entry.proposedIndex = null;
      const message = { ...entry.message, clientId: this.ownClientId, seq: ++this.ownSeq };
      const moved = this.track(message, true);
      for (const waiter of entry.waiters) waiter.entry = moved;
      moved.waiters.push(...entry.waiters);
      this.options.outbox.enqueue(moved);
    }
  }
}
