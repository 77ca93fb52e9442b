/**
 * The outbox: accepted messages on their way into the leader's log. It cuts the queue into
 * batches (one batch, one log entry, one fsync), proposes them itself when this node leads or
 * forwards them to the leader, remembers where the leader placed each copy (`proposedAt`), and
 * sends again what was lost: copies whose index was taken by another entry, everything after a
 * leader change or a snapshot install, and anything silent for a retry interval.
 *
 * Retries are safe because the session table decides each (clientId, seq) once (Raft thesis
 * §6.3): a second copy that commits is a duplicate, not a second delivery.
 */
import type { RaftCore } from '../raft/core.ts';
import type { NodeId, ProposalResult } from '../raft/types.ts';
import type { Transport } from '../transport/types.ts';
import { assert } from '../util/assert.ts';
import type { Environment } from '../util/environment.ts';
import {
  BatchBuilder,
  BatchFormatError,
  type ClientMessage,
  type DecodedBatch,
  decodeBatch,
  encodeBatch,
  payloadBytesOf,
} from './batch.ts';
import { BroadcastError } from './errors.ts';
import { GapHold, type GapHoldLimits, type HoldDecision } from './gap-hold.ts';
import { clientIdBytesMax, topicBytesMax } from './message-rules.ts';
import { type PendingMessage, type PendingTable, stageOf } from './pending.ts';
import { forEachStretch, Placements } from './placements.ts';
import type { SessionTable } from './sessions.ts';

export interface OutboxOptions {
  readonly id: NodeId;
  readonly core: RaftCore;
  readonly transport: Transport;
  readonly pending: PendingTable;
  readonly environment: Environment;
  /** A batch is cut once it holds this many bytes, so it exceeds it by one message at most. */
  readonly batchBytesMax: number;
  readonly retryIntervalMs: number;
  /** The last index applied on this node: a copy placed at or below it was lost. */
  readonly appliedIndex: () => number;
  /** The applied session table, which says whose turn it is (gap-hold.ts). */
  readonly sessions: () => SessionTable;
  readonly gapHoldLimits: GapHoldLimits;
  /** Asks the node to run its Ready loop soon (the outbox flushes from there). */
  readonly scheduleLoop: () => void;
  /** Unsafe (tests only): answer a broadcast once our own proposal was accepted. */
  readonly answerBeforeCommit: boolean;
}

/** What one message may add to a batch besides its payload: a run header and its length. */
const messageOverheadBytesMax = 2 + clientIdBytesMax + 8 + 2 + topicBytesMax + 4 + 4;

/** At most this many forwarded batches await an answer; beyond it the oldest are forgotten. */
const forwardsInFlightMax = 4096;

export class Outbox {
  private queue: PendingMessage[] = [];
  /** The queued payloads with their lengths (some may have left the table since). */
  private queuedPayloadBytes = 0;
  /** Forwarded batches waiting for the leader's answer, by request id. */
  private readonly forwards = new Map<number, PendingMessage[]>();
  /** Messages whose last copy the leader appended at an index not yet applied here. */
  private readonly proposedAt = new Map<number, PendingMessage[]>();
  private nextForwardId = 1;
  private lastRetryScanMs = 0;
  private proposals = 0;
  private readonly gapHold: GapHold;
  /** As leader: the messages this term appended and has not applied yet. */
  private readonly placements = new Placements();
  /** Kept across flushes: its buffer has grown to the batch size once, not every flush. */
  private readonly builder = new BatchBuilder();

  constructor(private readonly options: OutboxOptions) {
    assert(options.batchBytesMax > 0, 'batchBytesMax is positive');
    assert(options.retryIntervalMs > 0, 'retryIntervalMs is positive');
    this.gapHold = new GapHold({
      pending: options.pending,
      sessions: options.sessions,
      limits: options.gapHoldLimits,
    });
  }

  /** Messages held until the seqs before them are applied or on their way, and their bytes. */
  get held(): { readonly messages: number; readonly bytes: number } {
    return { messages: this.gapHold.size, bytes: this.gapHold.bytes };
  }

  /** Batches this node appended as leader (its own and forwarded ones). */
  get proposalCount(): number {
    return this.proposals;
  }

  /** Queues a pending message to be sent with the next flush; a queued one stays put. */
  enqueue(entry: PendingMessage): void {
    assert(this.options.pending.has(entry), 'only pending messages are queued');
    if (entry.queued || entry.held) return;
    // A new copy goes out: the old one's place no longer matters (it commits or is lost).
    entry.proposedIndex = null;
    const decision = this.gapHold.decide(entry);
    if (decision.kind === 'send') {
      this.queueEntry(entry);
      this.options.scheduleLoop();
      return;
    }
    this.holdOrRefuse(entry, decision);
  }

  /**
   * Queues messages just taken in, of one session, in seq order. The gap hold judges the
   * first of each stretch of consecutive seqs only: once a message may go, so may the one
   * right after it (every seq before it is applied or on its way, and it is on its way now).
   * `entries` is handed over: an empty queue takes it as it is when all of it is queued (a
   * queue grown a push at a time was garbage the size of every run).
   */
  enqueueRun(entries: PendingMessage[]): void {
    // While `adopting`, the queue is entries[0, queuedCount): every entry so far queued.
    let adopting = this.queue.length === 0;
    let queuedCount = 0;
    const queue = (entry: PendingMessage) => {
      if (adopting && entries[queuedCount] !== entry) {
        this.queue = entries.slice(0, queuedCount);
        adopting = false;
      }
      entry.queued = true;
      this.queuedPayloadBytes += payloadBytesOf(entry.message) + 4;
      if (!adopting) this.queue.push(entry);
      queuedCount++;
    };
    // The stretch being queued without judgement: its first (judged) and last message.
    let first: PendingMessage | null = null;
    let last: PendingMessage | null = null;
    for (const entry of entries) {
      assert(
        this.options.pending.has(entry) && !entry.queued && !entry.held && entry.copiesSent === 0,
        'a run enqueues new pending messages',
      );
      assert(!entry.ownSession && entry.gapExpectedSeq === undefined, 'a client run is new');
      const { clientId, seq } = entry.message;
      if (last !== null && last.message.clientId === clientId && last.message.seq + 1 === seq) {
        queue(entry);
        last = entry;
        continue;
      }
      this.endStretch(first, last);
      first = null;
      last = null;
      const decision = this.gapHold.decide(entry);
      if (decision.kind !== 'send') {
        this.holdOrRefuse(entry, decision);
        continue;
      }
      queue(entry);
      first = entry;
      last = entry;
    }
    this.endStretch(first, last);
    if (adopting && queuedCount > 0) {
      // Held or refused ones only after the last queued: the queued front is the queue.
      this.queue = queuedCount === entries.length ? entries : entries.slice(0, queuedCount);
    }
    if (this.queue.length > 0) this.options.scheduleLoop();
  }

  private endStretch(first: PendingMessage | null, last: PendingMessage | null): void {
    if (first !== null && last !== null && last !== first) {
      this.gapHold.queuedAfter(first, last.message.seq);
    }
  }

  private queueEntry(entry: PendingMessage): void {
    entry.queued = true;
    this.queue.push(entry);
    this.queuedPayloadBytes += payloadBytesOf(entry.message) + 4;
  }

  private holdOrRefuse(
    entry: PendingMessage,
    decision: Exclude<HoldDecision, { kind: 'send' }>,
  ): void {
    entry.gapExpectedSeq = decision.expectedSeq;
    // A message with a copy out is held whatever the bounds: refusing it now could not stop
    // that copy, and its bytes are counted among the pending ones already.
    if (decision.kind === 'hold' || entry.copiesSent > 0) {
      this.gapHold.hold(entry);
      return;
    }
    const error = new BroadcastError(
      'sequence_gap',
      `seq ${entry.message.seq} waits for seq ${decision.expectedSeq} of its client, and this node holds no more waiting messages (${decision.bound})`,
      { expectedSeq: decision.expectedSeq },
    );
    this.options.pending.settle(entry, null, error);
  }

  /** Cuts the queued messages into batches and hands them to the leader. */
  flush(): void {
    this.gapHold.release((entry) => this.enqueue(entry));
    if (this.queue.length === 0) return;
    const leaderId = this.options.core.leader();
    if (leaderId === null) return; // kept queued; sent once a leader is known
    const queue = this.queue;
    let bytesLeft = this.queuedPayloadBytes;
    this.queue = [];
    this.queuedPayloadBytes = 0;
    // Whole milliseconds: a small integer is kept in the entry as it is, where a fraction
    // would be a number object of its own per message (a retry may leave 1 ms early).
    const sentMs = Math.floor(this.options.environment.monotonicMs());
    const logTimeMs = this.options.environment.nowMs();
    const builder = this.builder;
    assert(builder.messageCount === 0, 'one flush at a time');
    const lastSeqByClient = new Map<string, number>();
    let lastClientId = '';
    let lastSeq = 0;
    // The batch being built is sorted[batchStart, at], less the entries that left the table.
    let batchStart = 0;
    let leftAny = false;
    builder.reserveFor(this.batchBytesFor(bytesLeft, queue.length));
    // Each client's messages leave in seq order, whatever order its callers used: the
    // session table refuses a seq that overtakes an earlier one (sequence_gap).
    const sorted = sortedBySeq(queue);
    for (let at = 0; at < sorted.length; at++) {
      const entry = sorted[at] as PendingMessage;
      assert(stageOf(entry) === 'queued' || !this.options.pending.has(entry), 'queue holds queued');
      entry.queued = false;
      if (!this.options.pending.has(entry)) {
        leftAny = true;
        continue;
      }
      const { clientId, seq } = entry.message;
      // The map is asked only where the client changes: a client's stretch is checked here.
      if (clientId !== lastClientId) {
        lastSeqByClient.set(lastClientId, lastSeq);
        lastSeq = lastSeqByClient.get(clientId) ?? 0;
        lastClientId = clientId;
      }
      assert(lastSeq < seq, "one client's messages leave in seq order");
      lastSeq = seq;
      assert(builder.byteLength < this.options.batchBytesMax, 'a full batch is cut before adding');
      entry.lastSentMs = sentMs;
      entry.copiesSent++;
      builder.add(entry.message);
      bytesLeft -= payloadBytesOf(entry.message) + 4;
      if (builder.byteLength >= this.options.batchBytesMax) {
        const batch = this.batchOf(sorted, batchStart, at + 1, leftAny);
        this.send(builder.finish(logTimeMs), logTimeMs, batch, leaderId);
        batchStart = at + 1;
        leftAny = false;
        builder.reserveFor(this.batchBytesFor(bytesLeft, queue.length));
      }
    }
    if (builder.messageCount > 0) {
      const batch = this.batchOf(sorted, batchStart, sorted.length, leftAny);
      this.send(builder.finish(logTimeMs), logTimeMs, batch, leaderId);
    }
  }

  /**
   * The entries of a batch: sorted[start, end) less those that left the table (`leftAny`),
   * cut out in one piece rather than grown one push at a time.
   */
  private batchOf(
    sorted: readonly PendingMessage[],
    start: number,
    end: number,
    leftAny: boolean,
  ): PendingMessage[] {
    const batch = sorted.slice(start, end);
    return leftAny ? batch.filter((entry) => this.options.pending.has(entry)) : batch;
  }

  /**
   * About what the next batch takes, so that its buffer can be handed over uncopied: what
   * is left of the queue (`messagesLeft` bounds its run headers, one per 64 messages
   * assumed), or a full batch and one more message (of up to 8 KiB: a larger last one
   * grows the buffer, and the batch is copied).
   */
  private batchBytesFor(payloadBytesLeft: number, messagesLeft: number): number {
    const { batchBytesMax } = this.options;
    if (payloadBytesLeft >= batchBytesMax) {
      return batchBytesMax + messageOverheadBytesMax + (8 << 10);
    }
    return payloadBytesLeft + messageOverheadBytesMax * (1 + (messagesLeft >> 6));
  }

  private send(
    data: Uint8Array,
    logTimeMs: number,
    batch: PendingMessage[],
    leaderId: NodeId,
  ): void {
    assert(batch.length > 0, 'a batch holds at least one message');
    const lastBytes = payloadBytesOf((batch[batch.length - 1] as PendingMessage).message);
    assert(
      data.length < this.options.batchBytesMax + messageOverheadBytesMax + lastBytes,
      'a batch exceeds batchBytesMax by its last message at most',
    );
    if (leaderId === this.options.id) {
      // A refusal (a transfer in progress, or we just lost leadership) leaves the messages
      // to the retry timer or the next leader change, never to a tight loop.
      // Our own batch: its messages are at hand, with no need to decode what was just built.
      const messages = batch.map((entry) => entry.message);
      const result = this.proposeOnce(data, { messages, logTimeMs });
      if (!result.accepted) return;
      if (this.options.answerBeforeCommit) {
        // Unsafe: acknowledged while only our own log holds it. Never outside tests.
        for (const entry of batch) {
          const answer = {
            position: null,
            index: result.index,
            term: result.term,
            duplicate: false,
          };
          this.options.pending.settle(entry, answer, null);
        }
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
    this.options.transport.send([
      { type: 'Forward', from: this.options.id, to: leaderId, requestId, data },
    ]);
  }

  /** The leader answered a forward: success means the messages wait for that index. */
  onForwardResult(requestId: number, index: number | null): void {
    const batch = this.forwards.get(requestId);
    this.forwards.delete(requestId);
    // A refusal is left to the retry timer and to the leader change that usually follows.
    if (batch !== undefined && index !== null) this.noteProposed(batch, index);
  }

  /** As leader: appends a batch a follower forwarded, and tells it where. */
  onForward(from: NodeId, requestId: number, data: Uint8Array): void {
    // A peer that passed the handshake builds valid batches; one that does not decode is
    // appended as it is, and skipped the same way on every replica once committed.
    const result = this.proposeOnce(data, null);
    // The follower answers its client once it applies the batch: tell it of the commit at
    // once rather than with the next entries or tick.
    if (result.accepted) this.options.core.commitAwaited(from, result.index);
    const outcome = result.accepted
      ? { index: result.index, term: result.term }
      : { code: result.reason, leaderId: result.leaderId };
    this.options.transport.send([
      { type: 'ForwardResult', from: this.options.id, to: from, requestId, result: outcome },
    ]);
  }

  /**
   * Appends a batch, leaving out the messages this term has placed and not applied (see
   * placements.ts). When all of them are placed it appends nothing and answers the highest
   * index among them: each message is decided there or earlier.
   */
  private proposeOnce(
    data: Uint8Array,
    built: Pick<DecodedBatch, 'messages' | 'logTimeMs'> | null,
  ): ProposalResult {
    const { core } = this.options;
    const batch = core.leader() !== this.options.id ? null : (built ?? decodedOrNull(data));
    if (batch === null) return this.proposeCounted(data, []);
    const term = core.status().term;
    const { messages } = batch;
    // Mostly nothing of a batch is placed: one look per stretch says so.
    if (!this.placesAny(term, messages)) return this.proposeCounted(data, messages);
    const fresh: ClientMessage[] = [];
    let placedIndexMax = 0;
    for (const message of messages) {
      const index = this.placements.indexOf(term, message);
      if (index === undefined) fresh.push(message);
      else placedIndexMax = Math.max(placedIndexMax, index);
    }
    if (fresh.length === 0) {
      assert(placedIndexMax > this.options.appliedIndex(), 'placements are not applied yet');
      return { accepted: true, index: placedIndexMax, term };
    }
    const whole = fresh.length === messages.length;
    return this.proposeCounted(whole ? data : encodeBatch(fresh, batch.logTimeMs), fresh);
  }

  private placesAny(term: number, messages: readonly ClientMessage[]): boolean {
    let any = false;
    forEachStretch(messages, (clientId, firstSeq, start, end) => {
      any ||= this.placements.placesAny(term, clientId, firstSeq, end - start);
    });
    return any;
  }

  private proposeCounted(data: Uint8Array, messages: readonly ClientMessage[]): ProposalResult {
    const result = this.options.core.propose(data);
    if (!result.accepted) return result;
    this.proposals++;
    this.placements.note(result.term, result.index, messages);
    return result;
  }

  /** `batch` is handed over: it may be kept as the list of what waits at `index`. */
  private noteProposed(batch: PendingMessage[], index: number): void {
    assert(Number.isSafeInteger(index) && index >= 1, 'proposals land at an index >= 1');
    // Only messages still waiting on this copy: a queued one has a newer copy on its way.
    // Mostly that is all of them, and the batch's own list (nobody else's) is kept as it is.
    const waiting = (entry: PendingMessage) => this.options.pending.has(entry) && !entry.queued;
    const placed = batch.every(waiting) ? batch : batch.filter(waiting);
    if (index <= this.options.appliedIndex()) {
      // The answer came after the entry was applied here: what is still waiting was lost.
      for (const entry of placed) this.enqueue(entry);
      return;
    }
    const atIndex = this.proposedAt.get(index);
    if (atIndex === undefined) this.proposedAt.set(index, placed);
    for (const entry of placed) {
      // A held message whose earlier copy the leader placed now waits on that copy: it is
      // decided there, or refused and held again, with no copy sent meanwhile.
      if (entry.held) this.gapHold.take(entry);
      entry.proposedIndex = index;
      atIndex?.push(entry);
      assert(stageOf(entry) === 'proposed', 'a placed message is proposed');
    }
  }

  /** The entry at `index` is applied: copies we placed there and still wait on were lost. */
  lostAt(index: number): void {
    this.placements.applied(index);
    const placed = this.proposedAt.get(index);
    if (placed === undefined) return;
    this.proposedAt.delete(index);
    for (const entry of placed) {
      if (entry.proposedIndex !== index || !this.options.pending.has(entry)) continue;
      this.enqueue(entry);
    }
  }

  /** Queues every undelivered message again (a new leader, a snapshot install). */
  retryAll(): void {
    this.forwards.clear();
    this.placements.clear(0);
    this.proposedAt.clear();
    // Held ones are judged again too: a snapshot may have applied what they waited for.
    this.gapHold.releaseAll();
    for (const entry of sortedBySeq([...this.options.pending.values()])) this.enqueue(entry);
  }

  /**
   * Sends again what has waited a retry interval without a known place in the leader's log,
   * or four intervals with one (a safety net for a leader change this node never saw).
   * Scans a few times per interval, not every tick.
   */
  tick(nowMs: number): void {
    const { pending, retryIntervalMs } = this.options;
    if (pending.size === 0 || nowMs - this.lastRetryScanMs < retryIntervalMs / 4) return;
    this.lastRetryScanMs = nowMs;
    // Mostly none is due: the scan lists the due ones, then queues them (which may settle
    // some, and so change the table the scan reads).
    const due: PendingMessage[] = [];
    pending.forEach((entry) => {
      if (entry.queued || entry.held) return;
      const intervalMs = retryIntervalMs * (entry.proposedIndex === null ? 1 : 4);
      if (nowMs - entry.lastSentMs >= intervalMs) due.push(entry);
    });
    for (const entry of due) this.enqueue(entry);
  }
}

/** A batch that does not decode stays opaque: every replica skips it alike when applied. */
function decodedOrNull(data: Uint8Array): DecodedBatch | null {
  try {
    return decodeBatch(data);
  } catch (error) {
    if (error instanceof BatchFormatError) return null;
    throw error;
  }
}

/** Client by client in the order clients first appear, each client's messages by seq. */
function sortedBySeq(entries: readonly PendingMessage[]): readonly PendingMessage[] {
  if (inSeqOrder(entries)) return entries;
  const byClient = new Map<string, PendingMessage[]>();
  for (const entry of entries) {
    const group = byClient.get(entry.message.clientId);
    if (group === undefined) byClient.set(entry.message.clientId, [entry]);
    else group.push(entry);
  }
  const sorted: PendingMessage[] = [];
  for (const group of byClient.values()) {
    group.sort((a, b) => a.message.seq - b.message.seq);
    for (const entry of group) sorted.push(entry);
  }
  return sorted;
}

/**
 * Whether the queue is already what sortedBySeq makes of it, as it mostly is (one client's
 * runs, queued as they came): each client's messages in one stretch, seqs rising.
 */
function inSeqOrder(entries: readonly PendingMessage[]): boolean {
  let clientId: string | null = null;
  let lastSeq = 0;
  const clientsSeen = new Set<string>();
  for (const entry of entries) {
    const { message } = entry;
    if (message.clientId === clientId) {
      if (message.seq <= lastSeq) return false;
    } else {
      // A client seen before, after another: its messages are not in one stretch.
      if (clientsSeen.has(message.clientId)) return false;
      clientsSeen.add(message.clientId);
      clientId = message.clientId;
    }
    lastSeq = message.seq;
  }
  return true;
}
