/**
 * Messages that arrived before their turn: a seq whose earlier seqs this node has not seen
 * applied and is not itself sending. Proposing such a message only writes an entry the
 * session table refuses (sequence_gap); sending it again after every refusal turned one
 * gapped request into an entry per round trip (a 1 MB payload wrote hundreds of megabytes
 * of log a node in ten seconds). Instead it waits here, in memory and bounded, and goes to
 * the log once, when the seqs before it are applied or on their way; past the bounds it is
 * answered sequence_gap at once. The session table stays the rule (Raft thesis §6.3): this
 * only keeps what it would refuse from being written.
 */
import { assert } from '../util/assert.ts';
import { payloadBytesOf } from './batch.ts';
import { type ClientPending, type PendingMessage, type PendingTable, stageOf } from './pending.ts';
import type { SessionTable } from './sessions.ts';

export interface GapHoldLimits {
  /** Messages of one session held at once. */
  readonly heldPerSessionMax: number;
  /** Payload bytes of one session held at once. */
  readonly heldBytesPerSessionMax: number;
  /** Payload bytes held on this node, all sessions together. */
  readonly heldBytesMax: number;
}

/**
 * The count bound is well above what one client keeps in flight (the SDK's window of 10,000
 * messages, sent over HTTP as batches on parallel connections that the node may take in
 * any order): at 256, a batch overtaken by the one before it was refused whole, and its
 * messages, resent one by one with backoff, crept back 256 at a time past the client's 60 s
 * bound. The byte bounds keep memory in check whatever the count.
 */
export const defaultGapHoldLimits: GapHoldLimits = {
  heldPerSessionMax: 16_384,
  heldBytesPerSessionMax: 8 << 20,
  heldBytesMax: 64 << 20,
};

export interface GapHoldOptions {
  readonly pending: PendingTable;
  /** The applied session table (replaced when a snapshot is installed). */
  readonly sessions: () => SessionTable;
  readonly limits: GapHoldLimits;
}

/** What to do with a message about to be queued for the log. */
export type HoldDecision =
  | { readonly kind: 'send' }
  /** Not its turn: `expectedSeq` is the first earlier seq neither applied nor on its way. */
  | { readonly kind: 'hold'; readonly expectedSeq: number }
  /** Not its turn, and holding it would pass a bound: answer sequence_gap now. */
  | { readonly kind: 'refuse'; readonly expectedSeq: number; readonly bound: string };

/**
 * A range of seqs found all pending and none held: still so while the client's table saw
 * no removal and none of its seqs was held since (an addition cannot break it; `hold`
 * forgets a range it breaks).
 */
interface CompleteRange {
  readonly fromSeq: number;
  readonly belowSeq: number;
  readonly removals: number;
}

interface HeldSession {
  readonly entries: Set<PendingMessage>;
  bytes: number;
}

export class GapHold {
  private readonly sessions = new Map<string, HeldSession>();
  private heldBytes = 0;
  private heldCount = 0;
  private readonly completeRanges = new WeakMap<ClientPending, CompleteRange>();

  constructor(private readonly options: GapHoldOptions) {
    const { limits } = options;
    assert(limits.heldPerSessionMax >= 1, 'heldPerSessionMax is at least 1');
    assert(limits.heldBytesPerSessionMax >= 1, 'heldBytesPerSessionMax is at least 1');
    assert(limits.heldBytesMax >= 1, 'heldBytesMax is at least 1');
  }

  get size(): number {
    return this.heldCount;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  decide(entry: PendingMessage): HoldDecision {
    assert(!entry.held, 'a held message is released before it is decided again');
    const expectedSeq = this.missingSeq(entry);
    if (expectedSeq === null) return { kind: 'send' };
    const bound = this.boundPassed(entry);
    return bound === null ? { kind: 'hold', expectedSeq } : { kind: 'refuse', expectedSeq, bound };
  }

  /**
   * `first` was judged free to go, and the seqs after it up to `lastSeq` were queued behind
   * it without a judgement each (outbox.ts enqueueRun): the range found complete when `first`
   * was judged now reaches them too, so the next judgement need not look at them again.
   */
  queuedAfter(first: PendingMessage, lastSeq: number): void {
    const mine = this.options.pending.forClient(first.message.clientId);
    if (mine === undefined) return;
    const known = this.completeRanges.get(mine);
    if (
      known === undefined ||
      known.removals !== mine.removals ||
      known.belowSeq !== first.message.seq
    ) {
      return;
    }
    this.completeRanges.set(mine, { ...known, belowSeq: lastSeq });
  }

  /**
   * A held seq breaks the complete range that holds it, and only that one: after a leader
   * change thousands of a client's messages are judged again in seq order, and behind a
   * missing seq each is held; forgetting every range at each hold had each judgement look
   * at every earlier seq again.
   */
  private forgetRangeOf(entry: PendingMessage): void {
    const mine = this.options.pending.forClient(entry.message.clientId);
    const known = mine === undefined ? undefined : this.completeRanges.get(mine);
    const { seq } = entry.message;
    if (mine !== undefined && known !== undefined && seq >= known.fromSeq && seq < known.belowSeq) {
      this.completeRanges.delete(mine);
    }
  }

  hold(entry: PendingMessage): void {
    assert(!entry.held && !entry.queued, 'only a message on no way is held');
    const { clientId } = entry.message;
    let session = this.sessions.get(clientId);
    if (session === undefined) {
      session = { entries: new Set(), bytes: 0 };
      this.sessions.set(clientId, session);
    }
    entry.held = true;
    this.forgetRangeOf(entry);
    entry.proposedIndex = null;
    session.entries.add(entry);
    session.bytes += payloadBytesOf(entry.message);
    this.heldBytes += payloadBytesOf(entry.message);
    this.heldCount++;
  }

  /**
   * Takes out of the hold every message whose turn came, handing each to `send` in seq order
   * (so that the next one's check sees it on its way), and drops those no longer pending
   * (timed out, or decided meanwhile).
   */
  release(send: (entry: PendingMessage) => void): void {
    if (this.heldCount === 0) return;
    for (const session of [...this.sessions.values()]) {
      // Nothing of a session goes while its lowest held seq waits (every later one waits on
      // it): one pass to find it, not a sort of thousands of held messages every flush.
      if (!this.mayRelease(session)) continue;
      const bySeq = [...session.entries].sort((a, b) => a.message.seq - b.message.seq);
      for (const entry of bySeq) {
        const gone = !this.options.pending.has(entry);
        if (!gone && this.missingSeq(entry) !== null) continue;
        this.unhold(entry);
        if (!gone) send(entry);
      }
    }
  }

  private mayRelease(session: HeldSession): boolean {
    let lowest: PendingMessage | undefined;
    for (const entry of session.entries) {
      if (!this.options.pending.has(entry)) return true; // gone: to be dropped now
      if (lowest === undefined || entry.message.seq < lowest.message.seq) lowest = entry;
    }
    return lowest === undefined || this.missingSeq(lowest) === null;
  }

  /** Lets everything held go, to be judged again (a new leader, a snapshot install). */
  releaseAll(): void {
    for (const session of [...this.sessions.values()]) {
      for (const entry of [...session.entries]) this.unhold(entry);
    }
  }

  /** Takes `entry` out of the hold, to be placed or sent by the caller. */
  take(entry: PendingMessage): void {
    this.unhold(entry);
  }

  private unhold(entry: PendingMessage): void {
    const { clientId } = entry.message;
    const session = this.sessions.get(clientId);
    assert(session?.entries.has(entry) === true, 'an entry leaves the hold it is in');
    entry.held = false;
    session.entries.delete(entry);
    session.bytes -= payloadBytesOf(entry.message);
    this.heldBytes -= payloadBytesOf(entry.message);
    this.heldCount--;
    if (session.entries.size === 0) this.sessions.delete(clientId);
    assert(this.heldCount >= 0 && this.heldBytes >= 0, 'the hold never counts below zero');
  }

  /**
   * The first earlier seq of the message's session that is neither applied here nor on its
   * way from this node, or null when the message may go. A seq on its way counts when its
   * copy is queued or placed in the leader's log; a copy merely sent counts too, unless this
   * message was refused for a gap already (then it waits for its predecessor to be placed,
   * or a lost predecessor would have it refused again after every round trip).
   */
  private missingSeq(entry: PendingMessage): number | null {
    if (entry.ownSession) return null;
    const { clientId, seq } = entry.message;
    const table = this.options.sessions();
    const mine = this.options.pending.forClient(clientId);
    let fromSeq: number;
    if (table.knows(clientId)) {
      fromSeq = table.expectedSeq(clientId);
    } else {
      // An unknown session is the log's to judge (an expired one fails at once, a first
      // message starts it); a message follows the earlier seqs of it this node holds, so
      // that they travel together and are judged together.
      fromSeq = Math.min(seq, mine?.lowestSeq() ?? seq);
    }
    if (seq <= fromSeq) return null;
    // More seqs missing than this node has pending for the client: one of them is absent.
    if (mine === undefined || seq - fromSeq > mine.size) return fromSeq;
    const strict = entry.gapExpectedSeq !== undefined;
    // Seqs of a range found complete before need no look again (see CompleteRange).
    const known = strict ? undefined : this.completeRanges.get(mine);
    const reusable =
      known !== undefined && known.removals === mine.removals && known.fromSeq <= fromSeq;
    const firstToLook = reusable ? Math.max(fromSeq, Math.min(known.belowSeq, seq)) : fromSeq;
    for (let earlier = firstToLook; earlier < seq; earlier++) {
      const other = mine.get(earlier);
      if (other === undefined || other.held) return earlier;
      if (strict && stageOf(other) === 'waiting') return earlier;
    }
    if (!strict) {
      // Joined to the known range only where the two touch: seqs between them were not seen.
      const joined = reusable && known.belowSeq >= fromSeq;
      this.completeRanges.set(mine, {
        fromSeq: joined ? known.fromSeq : fromSeq,
        belowSeq: joined ? Math.max(seq, known.belowSeq) : seq,
        removals: mine.removals,
      });
    }
    return null;
  }

  private boundPassed(entry: PendingMessage): string | null {
    const { limits } = this.options;
    const bytes = payloadBytesOf(entry.message);
    const session = this.sessions.get(entry.message.clientId);
    if ((session?.entries.size ?? 0) + 1 > limits.heldPerSessionMax) return 'heldPerSessionMax';
    if ((session?.bytes ?? 0) + bytes > limits.heldBytesPerSessionMax) {
      return 'heldBytesPerSessionMax';
    }
    if (this.heldBytes + bytes > limits.heldBytesMax) return 'heldBytesMax';
    return null;
  }
}
