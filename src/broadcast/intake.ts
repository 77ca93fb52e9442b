/**
 * The intake: where a broadcast enters the node. It checks the message once (message-rules.ts),
 * answers a retry of something already applied at once, refuses beyond `pendingMessagesMax`,
 * gives messages without a session a seq of the node's own session, and keeps the deadline
 * queue that turns a silent message into timeout (or sequence_gap when the log said why).
 *
 * A run of one session's messages (the batch route's, a single broadcast being a run of one)
 * is taken whole: its shared fields and its session checked once, one RunWaiter with a slot
 * per message (pending.ts) instead of a promise and closures each, one deadline, and its new
 * messages queued together. Per message it costs what must be per message: the payload,
 * topic and key checks, the session table's and the pending table's answer for its seq.
 */
import type { NodeId } from '../raft/types.ts';
import { ReceivedRunMessage } from '../transport/run-frames.ts';
import { assert } from '../util/assert.ts';
import type { Environment } from '../util/environment.ts';
import { type ClientMessage, payloadBytesOf } from './batch.ts';
import { BroadcastError } from './errors.ts';
import {
  clientIdProblem,
  keyProblem,
  type MessageProblem,
  nonceProblem,
  ownerProblem,
  ownSessionPrefix,
  payloadProblem,
  runSeqProblem,
  seqProblem,
  sessionPairProblem,
  topicProblem,
} from './message-rules.ts';
import type { BroadcastOptions, BroadcastRun, RunMessage } from './options.ts';
import type { Outbox } from './outbox.ts';
import {
  type BroadcastResult,
  type PendingMessage,
  type PendingTable,
  RunWaiter,
  removeWaiter,
  type SettledRun,
  waitersOf,
} from './pending.ts';
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

/**
 * Checks a run: its shared fields once (the session, its first and last seq, the sender),
 * then per message what differs. The first problem found refuses the whole run: a run taken
 * in part would leave a gap in its session behind the refused message.
 */
export function checkRun(run: BroadcastRun, payloadBytesMax: number): BroadcastError | null {
  if (run === null || typeof run !== 'object' || !Array.isArray(run.messages)) {
    return new BroadcastError('invalid_argument', 'a run has a list of messages', {
      field: 'messages',
    });
  }
  const { clientId, firstSeq, owner, nonce, messages } = run;
  const shared =
    clientIdProblem(clientId) ??
    runSeqProblem(firstSeq, messages.length) ??
    (owner === undefined ? null : ownerProblem(owner)) ??
    (nonce === undefined ? null : nonceProblem(nonce));
  if (shared !== null) return errorOf(shared);
  // A run's messages mostly share one topic and key: each string is checked once.
  let topicFine: string | undefined;
  let keyFine: string | undefined;
  for (const message of messages) {
    const problem =
      (message === null || typeof message !== 'object'
        ? payloadProblem(undefined, payloadBytesMax)
        : null) ??
      runPayloadProblem(message, payloadBytesMax) ??
      (message.topic === undefined || message.topic === topicFine
        ? null
        : topicProblem(message.topic, { field: 'topic', reservedAllowed: false })) ??
      (message.key === undefined || message.key === keyFine ? null : keyProblem(message.key));
    if (problem !== null) return errorOf(problem);
    topicFine = message.topic;
    keyFine = message.key;
  }
  return null;
}

/**
 * `payloadProblem` of a run's message; a payload range read off the binary port is bytes by
 * construction, and its view is made only to say what is wrong with it.
 */
function runPayloadProblem(message: RunMessage, payloadBytesMax: number): MessageProblem | null {
  if (message instanceof ReceivedRunMessage && message.payloadBytes <= payloadBytesMax) {
    return null;
  }
  return payloadProblem(message.payload, payloadBytesMax);
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

/** Without messages there is no outcome to carry a refusal: the call itself is refused. */
function emptyRunRefusal(run: BroadcastRun, payloadBytesMax: number): BroadcastError | null {
  if (Array.isArray(run?.messages) && run.messages.length > 0) return null;
  return (
    checkRun(run, payloadBytesMax) ??
    new BroadcastError('invalid_argument', 'a run has at least one message', {
      field: 'messages',
    })
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
  /** Every run waiting, in deadline order (one timeout for all, so arrival order is enough). */
  private deadlines: RunWaiter[] = [];
  private deadlinesHead = 0;
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
    const run: BroadcastRun = {
      clientId: checked.clientId,
      firstSeq: checked.seq as number,
      ...(checked.owner === '' ? {} : { owner: checked.owner }),
      ...(checked.nonce === '' ? {} : { nonce: checked.nonce }),
      messages: [{ payload, topic: checked.topic, key: checked.key }],
    };
    return new Promise<BroadcastResult>((resolve, reject) => {
      this.takeRun(run, true, answerOne(resolve, reject));
    });
  }

  /**
   * A run of one session's messages, seqs firstSeq, firstSeq + 1, …: one outcome per
   * message, in order, once every one is settled. It is taken as that many single
   * broadcasts would be (each message exactly once by its seq, a retry of any one joins it),
   * with the shared checks, the deadline and the answer made once for the run.
   */
  acceptRun(run: BroadcastRun): Promise<PromiseSettledResult<BroadcastResult>[]> {
    const refusal = emptyRunRefusal(run, this.options.payloadBytesMax);
    if (refusal !== null) return Promise.reject(refusal);
    return new Promise((resolve) =>
      this.takeRun(run, false, (settled) => resolve(settled.outcomeList())),
    );
  }

  /**
   * `acceptRun`, its outcomes read in place: what an answer on the wire reads, with no
   * result object made per message.
   */
  acceptRunSettled(run: BroadcastRun): Promise<SettledRun> {
    const refusal = emptyRunRefusal(run, this.options.payloadBytesMax);
    if (refusal !== null) return Promise.reject(refusal);
    return new Promise((resolve) => this.takeRun(run, false, resolve));
  }

  private takeRun(run: BroadcastRun, checked: boolean, done: (settled: RunWaiter) => void): void {
    const count = Array.isArray(run?.messages) ? run.messages.length : 0;
    const deadlineMs = this.nextDeadlineMs();
    const waiter = new RunWaiter(run?.firstSeq ?? 0, count, deadlineMs, done);
    const refusal =
      (checked ? null : checkRun(run, this.options.payloadBytesMax)) ??
      // Someone else's session is refused before anything about it is answered: not even
      // whether a seq was delivered.
      this.foreignRefusal(run) ??
      this.newSessionRefusal(run.clientId, run.owner ?? '');
    if (refusal !== null) {
      for (let slot = 0; slot < count; slot++) waiter.answer(slot, rejected(refusal));
    } else {
      this.takeMessages(run, waiter);
    }
    waiter.seal();
    if (!waiter.settled) this.deadlines.push(waiter);
  }

  /** Every message of a checked run: answered, joined to its pending entry, or tracked anew. */
  private takeMessages(run: BroadcastRun, waiter: RunWaiter): void {
    const { clientId, firstSeq, messages } = run;
    const owner = run.owner ?? '';
    const nonce = run.nonce ?? '';
    const sessions = this.options.sessions();
    const { pending } = this.options;
    // Looked up once for the run: below the session's next seq everything is applied, and
    // only a client with something pending can have a seq of the run pending.
    const nextSeq = sessions.expectedSeq(clientId);
    const clientPending = pending.forClient(clientId);
    // Sized for the whole run and cut to what it took: the outbox may keep it as its queue.
    const tracked = new Array<PendingMessage>(messages.length);
    let trackedCount = 0;
    // Handed-over messages carry no owner or nonce: kept as they are only where none is due.
    const keepable = run.messagesKept === true && owner === '' && nonce === '';
    let full: BroadcastError | null = null;
    for (let slot = 0; slot < messages.length; slot++) {
      const seq = firstSeq + slot;
      // A retry of something this node has already applied is answered at once.
      const known = seq < nextSeq ? sessions.deliveredPosition(clientId, seq) : undefined;
      if (known !== undefined) {
        const result = { position: known.position, index: null, term: null, duplicate: true };
        waiter.answer(slot, { status: 'fulfilled', value: result });
        continue;
      }
      // A retry of a message still pending joins it: one entry per (clientId, seq).
      const existing = clientPending?.get(seq);
      if (existing !== undefined) {
        // Another sender's copy of this (client, seq) is on its way. That says nothing yet of
        // whose session it is: this sender's copy may reach the log through another node
        // first (and then be delivered). Only the log decides, so the answer is not a refusal
        // but "unknown, ask again": a retry once the copy here is applied is answered for good.
        if (senderRefusal(existing.message, owner, nonce) !== null) {
          waiter.answer(slot, rejected(otherSenderError(clientId, seq)));
        } else {
          waiter.wait(slot, existing);
        }
        continue;
      }
      const message = messages[slot] as RunMessage;
      // Once one message is refused for room, so is the rest of the run: a later one taken
      // would wait behind a gap.
      full ??= this.fullRefusal(payloadBytesOf(message));
      if (full !== null) {
        waiter.answer(slot, rejected(full));
        continue;
      }
      const kept = keepable ? keptMessage(message, clientId, seq) : null;
      const logMessage = kept ?? clientMessage(clientId, seq, message, owner, nonce);
      const entry = this.track(logMessage, false, waiter);
      // The caller waits before the message goes to the outbox, which may decide it at once
      // (a gapped seq past the hold's bounds) and must find someone to answer.
      waiter.waitOnNew(slot, entry);
      tracked[trackedCount++] = entry;
    }
    if (trackedCount === 0) return;
    tracked.length = trackedCount;
    this.options.outbox.enqueueRun(tracked);
  }

  private foreignRefusal(run: BroadcastRun): BroadcastError | null {
    const foreign = this.options
      .sessions()
      .foreignRefusal(run.clientId, run.owner ?? '', run.nonce ?? '');
    return foreign === null ? null : foreignError(foreign, run.clientId);
  }

  /**
   * A message of the node's own session. Its seq is taken only once nothing can refuse the
   * message: a seq taken and never sent would be a gap that blocks every later one. The
   * topic is not checked here: the node writes its own control records this way.
   */
  acceptOwn(topic: string, payload: Uint8Array, key = ''): Promise<BroadcastResult> {
    const full = this.fullRefusal(payload.byteLength);
    if (full !== null) throw full;
    const message = {
      clientId: this.ownClientId,
      seq: this.ownSeq + 1,
      topic,
      payload,
      ...(key === '' ? {} : { key }),
    };
    this.ownSeq++;
    const entry = this.track(message, true, null);
    return new Promise<BroadcastResult>((resolve, reject) => {
      const deadlineMs = this.nextDeadlineMs();
      const waiter = new RunWaiter(message.seq, 1, deadlineMs, answerOne(resolve, reject));
      waiter.wait(0, entry);
      this.options.outbox.enqueue(entry);
      waiter.seal();
      if (!waiter.settled) this.deadlines.push(waiter);
    });
  }

  /** One timeout for all, on a clock that never goes back: deadlines queue in order. */
  private nextDeadlineMs(): number {
    const deadlineMs = this.options.environment.monotonicMs() + this.options.requestTimeoutMs;
    assert(deadlineMs >= this.lastDeadlineMs, 'deadlines queue in order');
    this.lastDeadlineMs = deadlineMs;
    return deadlineMs;
  }

  private fullRefusal(payloadBytes: number): BroadcastError | null {
    const { pending, pendingMessagesMax, pendingBytesMax } = this.options;
    if (pending.size >= pendingMessagesMax) {
      return new BroadcastError('overloaded', 'too many messages are waiting for the log', {
        pendingMessagesMax,
      });
    }
    // One message always fits, however large (up to payloadBytesMax), so none is refused
    // for good; the bound keeps many from piling up in memory behind a slow log.
    if (pending.size > 0 && pending.bytes + payloadBytes > pendingBytesMax) {
      return new BroadcastError('overloaded', 'too many bytes are waiting for the log', {
        pendingBytesMax,
      });
    }
    return null;
  }

  /**
   * The session table is replicated state every node keeps until a session expires: a
   * flood of new client ids would grow every node's memory. This check is made at the door
   * against what this node has applied, so it bounds the table within what is in flight,
   * without changing the state machine's rules.
   */
  private newSessionRefusal(clientId: string, owner: string): BroadcastError | null {
    const sessions = this.options.sessions();
    const { sessionsMax, sessionsPerIdentityMax } = this.options;
    const full = sessions.sessionCount >= sessionsMax;
    // An identity may not take every session of the cluster from the others.
    const ownerFull = owner !== '' && sessions.sessionCountOf(owner) >= sessionsPerIdentityMax;
    if (!full && !ownerFull) return null;
    if (sessions.knows(clientId)) return null;
    if (this.options.pending.forClient(clientId) !== undefined) return null;
    if (full) {
      return new BroadcastError('overloaded', 'too many client sessions are open on this cluster', {
        sessionsMax,
      });
    }
    return new BroadcastError('overloaded', `${owner} has too many client sessions open`, {
      sessionsPerIdentityMax,
    });
  }

  /** A new pending entry, with `waiter` listed (its slot still to be told, `waitOnNew`). */
  private track(
    message: ClientMessage,
    ownSession: boolean,
    waiter: RunWaiter | null,
  ): PendingMessage {
    const entry: PendingMessage = {
      proposedIndex: null,
      message,
      ownSession,
      waiter,
      otherWaiters: null,
      lastSentMs: 0,
      queued: false,
      held: false,
      copiesSent: 0,
      inTable: false,
    };
    this.options.pending.add(entry);
    return entry;
  }

  /** Fails every slot whose deadline passed; settled runs leave the queue on the way. */
  expireDeadlines(nowMs: number): void {
    const { deadlines } = this;
    let head = this.deadlinesHead;
    while (head < deadlines.length) {
      const waiter = deadlines[head] as RunWaiter;
      if (!waiter.settled && waiter.deadlineMs > nowMs) break;
      head++;
      if (waiter.settled) continue;
      const { entries } = waiter;
      for (let slot = 0; slot < entries.length && !waiter.settled; slot++) {
        const entry = entries[slot];
        if (entry !== null && entry !== undefined) this.expire(entry, waiter);
      }
    }
    // Dropped from the front in chunks: a splice per tick would copy the whole queue.
    if (head === deadlines.length) {
      this.deadlines = [];
      head = 0;
    } else if (head >= 1024 && head * 2 >= deadlines.length) {
      this.deadlines = deadlines.slice(head);
      head = 0;
    }
    this.deadlinesHead = head;
  }

  private expire(entry: PendingMessage, waiter: RunWaiter): void {
    removeWaiter(entry, waiter);
    waiter.settle(entry, null, this.expiryError(entry));
    // A caller's own session retries on its own; ours must go on, or later seqs would wait.
    if (!entry.ownSession && entry.waiter === null) this.options.pending.delete(entry);
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
      const moved = this.track(message, true, null);
      // Our own session's runs are runs of one: the slot stays 0 as the seq moves.
      const waiters = waitersOf(entry);
      for (const waiter of waiters) waiter.moved(entry, moved);
      moved.waiter = waiters[0] ?? null;
      moved.otherWaiters = waiters.length > 1 ? waiters.slice(1) : null;
      entry.waiter = null;
      entry.otherWaiters = null;
      this.options.outbox.enqueue(moved);
    }
  }
}

/**
 * The message as the log will carry it. The plain case (no owner, nonce or key) is one
 * literal of one shape: spreading empty objects per message cost more than the rest of it.
 */
function clientMessage(
  clientId: string,
  seq: number,
  message: RunMessage,
  owner: string,
  nonce: string,
): ClientMessage {
  const topic = message.topic ?? '';
  const { payload, key } = message;
  if (owner === '' && nonce === '' && (key === undefined || key === '')) {
    return { clientId, seq, topic, payload };
  }
  return {
    clientId,
    seq,
    topic,
    payload,
    ...(owner === '' ? {} : { owner }),
    ...(nonce === '' ? {} : { nonce }),
    ...(key === undefined || key === '' ? {} : { key }),
  };
}

/**
 * A message handed over (BroadcastRun.messagesKept) that is the log's message as it is: of
 * this session and seq, with no owner and nonce to add; null when it must be copied.
 */
function keptMessage(message: RunMessage, clientId: string, seq: number): ClientMessage | null {
  const candidate = message as Partial<ClientMessage>;
  const fits =
    candidate.clientId === clientId &&
    candidate.seq === seq &&
    typeof candidate.topic === 'string' &&
    candidate.owner === undefined &&
    candidate.nonce === undefined &&
    candidate.key !== '';
  return fits ? (message as ClientMessage) : null;
}

/** The answer of a run of one, as a single broadcast gives it: the result or the error. */
function answerOne(
  resolve: (result: BroadcastResult) => void,
  reject: (error: unknown) => void,
): (settled: RunWaiter) => void {
  return (settled) => {
    const outcome = settled.outcomeList()[0] as PromiseSettledResult<BroadcastResult>;
    if (outcome.status === 'fulfilled') resolve(outcome.value);
    else reject(outcome.reason);
  };
}

function rejected(reason: BroadcastError): PromiseRejectedResult {
  return { status: 'rejected', reason };
}

function otherSenderError(clientId: string, seq: number): BroadcastError {
  return new BroadcastError(
    'timeout',
    `another sender's copy of client ${clientId} seq ${seq} is waiting for the log, which decides whose session it is; retry`,
    { field: 'client' },
  );
}
