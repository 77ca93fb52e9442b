/**
 * The messages a node has accepted and the log has not decided yet, found by session:
 * client id first, then seq, so that applying a run costs one lookup by client.
 */
import { assert } from '../util/assert.ts';
import { type ClientMessage, payloadBytesOf } from './batch.ts';
import type { BroadcastError } from './errors.ts';

export interface BroadcastResult {
  /** Null only for a duplicate older than the per-client window of remembered positions. */
  readonly position: number | null;
  /** The log entry that carried the message; null for a duplicate. */
  readonly index: number | null;
  readonly term: number | null;
  /** True when this (clientId, seq) was delivered before: `position` is the original one. */
  readonly duplicate: boolean;
}

/**
 * A settled run's outcomes, read slot by slot where they lie: what answers a run on the
 * wire (a runAnswer frame) without a result object per message.
 */
export interface SettledRun {
  readonly count: number;
  /** The slot's message is in the order (delivered now, or before: a duplicate). */
  delivered(slot: number): boolean;
  /** Of a delivered slot (BroadcastResult's fields). */
  position(slot: number): number | null;
  index(slot: number): number | null;
  term(slot: number): number | null;
  duplicate(slot: number): boolean;
  /** Why a slot that was not delivered was refused. */
  reason(slot: number): unknown;
}

/** Outcomes already made as objects (a refusal of a whole run), read as a SettledRun. */
export class SettledOutcomes implements SettledRun {
  readonly count: number;

  constructor(private readonly outcomes: readonly PromiseSettledResult<BroadcastResult>[]) {
    this.count = outcomes.length;
  }

  delivered(slot: number): boolean {
    return this.outcomes[slot]?.status === 'fulfilled';
  }

  position(slot: number): number | null {
    return this.result(slot).position;
  }

  index(slot: number): number | null {
    return this.result(slot).index;
  }

  term(slot: number): number | null {
    return this.result(slot).term;
  }

  duplicate(slot: number): boolean {
    return this.result(slot).duplicate;
  }

  reason(slot: number): unknown {
    const outcome = this.outcomes[slot];
    assert(outcome?.status === 'rejected', 'a refused slot');
    return outcome.reason;
  }

  private result(slot: number): BroadcastResult {
    const outcome = this.outcomes[slot];
    assert(outcome?.status === 'fulfilled', 'a delivered slot');
    return outcome.value;
  }
}

/**
 * The callers of one run of a session's messages (a single broadcast is a run of one): one
 * outcome slot per message and one promise for all, answered once every slot is settled.
 * Each pending entry lists the runs that wait on it; the slot is the message's offset in
 * the run, so waiting on a message costs no object of its own. Settled, the run is read
 * in place (SettledRun), or as outcome objects (`outcomeList`) by callers that want them.
 */
export class RunWaiter implements SettledRun {
  /**
   * By slot, the outcomes answered as objects (a duplicate, a refusal); null until one is.
   * `outcomeList` writes the delivered slots in too.
   */
  private outcomes: PromiseSettledResult<BroadcastResult>[] | null = null;
  /** The entry each slot waits on; null once the slot is answered (or when it never waited). */
  readonly entries: (PendingMessage | null)[];
  /**
   * The results of slots delivered in the log, as numbers: a run lives until its last
   * message commits, and two objects per message held that long were copied by every
   * young collection on the way (10,000 in flight make many); read in place once settled,
   * an answer on the wire makes none at all. Null until a first slot is delivered.
   */
  private deliveredSlots: DeliveredSlots | null = null;
  /** Slots not answered yet, plus one until the run is sealed (all of it handed in). */
  private outstanding = 1;

  constructor(
    /** The seq of slot 0: slot = seq - firstSeq (a run of one moves with its entry). */
    private readonly firstSeq: number,
    count: number,
    /** On the environment's monotonic clock. */
    readonly deadlineMs: number,
    /** Told once every slot is answered; the run is then read as a SettledRun. */
    private readonly done: (run: RunWaiter) => void,
  ) {
    this.entries = new Array(count).fill(null);
  }

  get count(): number {
    return this.entries.length;
  }

  /** True once every slot is answered and the caller told. */
  get settled(): boolean {
    return this.outstanding === 0;
  }

  /** The slot of `entry` in this run (our own session's runs are of one: their seq moves). */
  slotOf(entry: PendingMessage): number {
    return this.entries.length === 1 ? 0 : entry.message.seq - this.firstSeq;
  }

  /** Slot `slot` waits on `entry` until the entry settles (or the deadline passes). */
  wait(slot: number, entry: PendingMessage): void {
    assert(this.outcomes?.[slot] === undefined && this.entries[slot] === null, 'waits once');
    this.entries[slot] = entry;
    addWaiter(entry, this);
    this.outstanding++;
  }

  /**
   * Slot `slot` waits on `entry`, made for it with this run as its only waiter (its list
   * is made holding the run: a push onto an empty list allocates room for many).
   */
  waitOnNew(slot: number, entry: PendingMessage): void {
    assert(this.outcomes?.[slot] === undefined && this.entries[slot] === null, 'waits once');
    assert(entry.waiter === this && entry.otherWaiters === null, 'a new entry lists its run');
    this.entries[slot] = entry;
    this.outstanding++;
  }

  /** Our own session restarted: the slot waiting on `from` now waits on `to`. */
  moved(from: PendingMessage, to: PendingMessage): void {
    assert(this.entries.length === 1 && this.entries[0] === from, 'only a run of one moves');
    this.entries[0] = to;
  }

  /** Answers a slot that waits on no entry (a duplicate, a refusal at the door). */
  answer(slot: number, outcome: PromiseSettledResult<BroadcastResult>): void {
    assert(this.outcomes?.[slot] === undefined && this.entries[slot] === null, 'answered once');
    this.outcomeSlots()[slot] = outcome;
  }

  /** `entry` is decided (or its wait is over): answers the slot waiting on it. */
  settle(entry: PendingMessage, result: BroadcastResult | null, error: BroadcastError | null) {
    if (result !== null) {
      this.deliver(entry, result.position, result.index, result.term, result.duplicate);
      return;
    }
    const slot = this.slotOf(entry);
    assert(this.entries[slot] === entry, 'a run settles the entry its slot waits on');
    this.entries[slot] = null;
    this.outcomeSlots()[slot] = { status: 'rejected', reason: error };
    this.release();
  }

  /** `entry` is in the order (BroadcastResult's fields): answers the slot waiting on it. */
  deliver(
    entry: PendingMessage,
    position: number | null,
    index: number | null,
    term: number | null,
    duplicate: boolean,
  ): void {
    const slot = this.slotOf(entry);
    assert(this.entries[slot] === entry, 'a run settles the entry its slot waits on');
    this.entries[slot] = null;
    this.deliveredSlots ??= new DeliveredSlots(this.entries.length);
    this.deliveredSlots.set(slot, position, index, term, duplicate);
    this.release();
  }

  /** Every slot is handed in: the run answers once the last one settles (maybe now). */
  seal(): void {
    this.release();
  }

  private release(): void {
    assert(this.outstanding > 0, 'a run is answered once');
    if (--this.outstanding > 0) return;
    this.done(this);
  }

  /** Of a settled run: every slot's outcome as an object, made on the first call. */
  outcomeList(): PromiseSettledResult<BroadcastResult>[] {
    assert(this.settled, 'a run is read once settled');
    const outcomes = this.outcomeSlots();
    this.deliveredSlots?.writeTo(outcomes);
    this.deliveredSlots = null;
    return outcomes;
  }

  private outcomeSlots(): PromiseSettledResult<BroadcastResult>[] {
    this.outcomes ??= new Array(this.entries.length);
    return this.outcomes;
  }

  delivered(slot: number): boolean {
    if (this.deliveredSlots?.has(slot) === true) return true;
    return this.outcome(slot).status === 'fulfilled';
  }

  position(slot: number): number | null {
    const slots = this.deliveredSlots;
    return slots?.has(slot) === true ? slots.position(slot) : this.result(slot).position;
  }

  index(slot: number): number | null {
    const slots = this.deliveredSlots;
    return slots?.has(slot) === true ? slots.index(slot) : this.result(slot).index;
  }

  term(slot: number): number | null {
    const slots = this.deliveredSlots;
    return slots?.has(slot) === true ? slots.term(slot) : this.result(slot).term;
  }

  duplicate(slot: number): boolean {
    const slots = this.deliveredSlots;
    return slots?.has(slot) === true ? slots.duplicate(slot) : this.result(slot).duplicate;
  }

  reason(slot: number): unknown {
    const outcome = this.outcome(slot);
    assert(outcome.status === 'rejected', 'a refused slot');
    return outcome.reason;
  }

  /** A slot answered with an object (a duplicate, a refusal; every slot once listed). */
  private outcome(slot: number): PromiseSettledResult<BroadcastResult> {
    assert(this.settled, 'a run is read once settled');
    const outcome = this.outcomes?.[slot];
    assert(outcome !== undefined, 'a settled run has an outcome in every slot');
    return outcome;
  }

  private result(slot: number): BroadcastResult {
    const outcome = this.outcome(slot);
    assert(outcome.status === 'fulfilled', 'a delivered slot');
    return outcome.value;
  }
}

/** No result: the slot was not delivered (yet). */
const unknownValue = -1;

/**
 * Delivered results by slot, as numbers (null as `unknownValue`: positions, indexes and
 * terms are never negative): plain arrays of small integers hold no object per message.
 */
class DeliveredSlots {
  private readonly positions: number[];
  /** 0: not delivered; 1: delivered; 2: delivered before (a duplicate). */
  private readonly states: Uint8Array;
  /**
   * The index and term of the first slot delivered, which a run's slots mostly share (one
   * batch carried them); per slot only once some slot's differ, null until then.
   */
  private sharedIndex = unknownValue;
  private sharedTerm = unknownValue;
  private indexes: number[] | null = null;
  private terms: number[] | null = null;
  private deliveredCount = 0;

  constructor(count: number) {
    this.positions = new Array<number>(count).fill(unknownValue);
    this.states = new Uint8Array(count);
  }

  set(
    slot: number,
    position: number | null,
    index: number | null,
    term: number | null,
    duplicate: boolean,
  ): void {
    assert(this.states[slot] === 0, 'a slot is delivered once');
    const indexValue = index ?? unknownValue;
    const termValue = term ?? unknownValue;
    if (this.deliveredCount++ === 0) {
      this.sharedIndex = indexValue;
      this.sharedTerm = termValue;
    } else if (
      this.indexes === null &&
      (indexValue !== this.sharedIndex || termValue !== this.sharedTerm)
    ) {
      this.indexes = new Array<number>(this.states.length).fill(this.sharedIndex);
      this.terms = new Array<number>(this.states.length).fill(this.sharedTerm);
    }
    if (this.indexes !== null && this.terms !== null) {
      this.indexes[slot] = indexValue;
      this.terms[slot] = termValue;
    }
    this.positions[slot] = position ?? unknownValue;
    this.states[slot] = duplicate ? 2 : 1;
  }

  /** Whether the slot was delivered in the log (its results are here). */
  has(slot: number): boolean {
    return this.states[slot] !== 0;
  }

  position(slot: number): number | null {
    return orNull(this.positions[slot] as number);
  }

  index(slot: number): number | null {
    return orNull(this.indexes === null ? this.sharedIndex : (this.indexes[slot] as number));
  }

  term(slot: number): number | null {
    return orNull(this.terms === null ? this.sharedTerm : (this.terms[slot] as number));
  }

  duplicate(slot: number): boolean {
    return this.states[slot] === 2;
  }

  /** The results as a run answers them, each into its slot. */
  writeTo(outcomes: PromiseSettledResult<BroadcastResult>[]): void {
    const { states } = this;
    for (let slot = 0; slot < states.length; slot++) {
      const state = states[slot] as number;
      if (state === 0) continue;
      assert(outcomes[slot] === undefined, 'a delivered slot has no other outcome');
      const value: BroadcastResult = {
        position: orNull(this.positions[slot] as number),
        index: this.index(slot),
        term: this.term(slot),
        duplicate: state === 2,
      };
      outcomes[slot] = { status: 'fulfilled', value };
    }
  }
}

function orNull(value: number): number | null {
  return value === unknownValue ? null : value;
}

/**
 * Where a pending message is, exactly one of: `queued` in the outbox (to be sent), `proposed`
 * (the leader placed our last copy at `proposedIndex`), `held` until its turn (gap-hold.ts),
 * or waiting for a retry (none of these: sent, place unknown). The outbox moves it between them; the table asserts it is never two.
 */
export interface PendingMessage {
  readonly message: ClientMessage;
  /** The node's own session: retried until delivered, since a gap would block the rest. */
  readonly ownSession: boolean;
  /**
   * The run waiting on it, and any others after it (a retry of it while pending adds one):
   * a field, with a list only for the rare second run, because every pending message has
   * one and a list each was two more objects per message to collect (the helpers
   * below keep the two in step).
   */
  waiter: RunWaiter | null;
  otherWaiters: RunWaiter[] | null;
  /** When the last copy left, on the monotonic clock. */
  lastSentMs: number;
  /**
   * Where the leader appended the last copy we sent, once known. While it is set the
   * message is not sent again: it either commits there or that index is taken by another
   * entry (then the copy is lost and goes again), or the leader changes.
   */
  proposedIndex: number | null;
  /** Set when a copy was refused for a gap, or the message was held for one. */
  gapExpectedSeq?: number;
  queued: boolean;
  /** Waiting for its turn (gap-hold.ts): not sent until the seqs before it are on their way. */
  held: boolean;
  /** Copies handed to the leader so far: with none, nothing of it can still commit. */
  copiesSent: number;
  /**
   * Set while the table holds it (PendingTable.add to delete): asked for every message at
   * every step, so it is a field rather than two map lookups.
   */
  inTable?: boolean;
}

/** Lists `waiter` on `entry`, after the runs already waiting. */
function addWaiter(entry: PendingMessage, waiter: RunWaiter): void {
  if (entry.waiter === null) {
    assert(entry.otherWaiters === null, 'other runs wait only behind a first');
    entry.waiter = waiter;
  } else if (entry.otherWaiters === null) entry.otherWaiters = [waiter];
  else entry.otherWaiters.push(waiter);
}

/** Takes `waiter` off `entry` (its deadline passed); it must be listed there. */
export function removeWaiter(entry: PendingMessage, waiter: RunWaiter): void {
  if (entry.waiter === waiter) {
    entry.waiter = entry.otherWaiters?.shift() ?? null;
  } else {
    const at = entry.otherWaiters?.indexOf(waiter) ?? -1;
    assert(at >= 0, 'a run is listed on the entry it waits on');
    entry.otherWaiters?.splice(at, 1);
  }
  if (entry.otherWaiters?.length === 0) entry.otherWaiters = null;
}

/** The runs waiting on `entry`, in the order they came (a copy). */
export function waitersOf(entry: PendingMessage): RunWaiter[] {
  if (entry.waiter === null) return [];
  return [entry.waiter, ...(entry.otherWaiters ?? [])];
}

/** Asserts the one-stage rule above; returns the stage, for callers that branch on it. */
export function stageOf(entry: PendingMessage): 'queued' | 'proposed' | 'waiting' | 'held' {
  assert(
    !(entry.queued && entry.proposedIndex !== null),
    'a pending message is queued or proposed, not both',
  );
  assert(
    !(entry.held && (entry.queued || entry.proposedIndex !== null)),
    'a held message is neither queued nor proposed',
  );
  if (entry.held) return 'held';
  if (entry.queued) return 'queued';
  return entry.proposedIndex === null ? 'waiting' : 'proposed';
}

/**
 * How many seqs the window indexed by seq may span: a client's pending seqs are mostly one
 * dense stretch (the SDK keeps 10,000 in flight); a seq that would stretch it further (a
 * client that skipped ahead) is kept aside. A bound on the whole span, not on the step past
 * its top: a seq gone from the top leaves the span as it was, and a client that kept one seq
 * waiting while sending ever further ones stretched the ring by a step per request.
 */
const windowSpanMax = 1 << 16;

/**
 * How sparse the window may be: it spans at most `ringSlackSeqs` plus `ringSeqsPerEntry`
 * seqs per message in it, and a seq that would make it sparser is kept aside. The bound on
 * the span alone let each client id with two pending seqs 65,535 apart hold a ring of 65,536
 * slots (512 KiB), and a caller may hold thousands of client ids; now a client's ring is a
 * few slots per pending message it has, plus the slack that covers seqs arriving a little
 * out of order.
 */
const ringSlackSeqs = 256;
const ringSeqsPerEntry = 4;

/**
 * One client's pending messages by seq, with what the gap hold needs to judge a message in
 * O(1) amortized instead of a scan of every earlier seq (10,000 in flight from one client
 * made that scan quadratic): how many were ever removed, and the lowest seq.
 *
 * The seqs in flight from one client are mostly consecutive, so they are kept in a window
 * indexed by seq rather than a hash map of thousands of entries: a ring whose slot for seq
 * `s` is `s & mask`, sliding up as the lowest are settled, so that a lookup is an index and
 * a window that slides allocates nothing (an array grown at the top and cut at the bottom
 * was a copy of the window every few thousand messages). Seqs that would stretch the window
 * far are kept in a map aside. Iteration is in seq order within the window, then the map's.
 */
export class ClientPending {
  /** Bumped by every removal: a range found complete stays so while it is unchanged. */
  removals = 0;
  /**
   * The ring: seq `s` of the window [low, low + span) lies at slots[s & mask]; the length
   * is a power of two, at least `span`, and every slot outside the window is empty.
   */
  private slots: (PendingMessage | undefined)[];
  private mask: number;
  /** The window's lowest seq, taken whenever the window holds anything. */
  private low = 0;
  private span = 0;
  private inWindow = 0;
  private aside: Map<number, PendingMessage> | null = null;

  /** `ring`: an empty ring another client left (`releaseRing`), to start with its size. */
  constructor(ring: (PendingMessage | undefined)[] = []) {
    assert((ring.length & (ring.length - 1)) === 0, 'a ring holds a power of two slots');
    this.slots = ring;
    this.mask = Math.max(ring.length - 1, 0);
  }

  get size(): number {
    return this.inWindow + (this.aside?.size ?? 0);
  }

  /**
   * Hands over the ring of an empty window (every slot empty), for the next client's: a
   * client whose messages all settle now and then would otherwise grow one anew each time.
   */
  releaseRing(): (PendingMessage | undefined)[] {
    assert(this.size === 0, 'only an empty window gives its ring away');
    const ring = this.slots;
    this.slots = [];
    this.mask = 0;
    this.span = 0;
    return ring;
  }

  get(seq: number): PendingMessage | undefined {
    const offset = seq - this.low;
    const entry = offset >= 0 && offset < this.span ? this.slots[seq & this.mask] : undefined;
    return entry === undefined && this.aside !== null ? this.aside.get(seq) : entry;
  }

  has(seq: number): boolean {
    return this.get(seq) !== undefined;
  }

  set(seq: number, entry: PendingMessage): this {
    assert(Number.isSafeInteger(seq), 'pending seqs are safe integers');
    if (this.aside?.has(seq) === true) {
      this.aside.set(seq, entry);
      return this;
    }
    if (this.inWindow === 0) {
      this.low = seq;
      this.span = 0;
    }
    const offset = seq - this.low;
    if (offset >= 0 && offset < this.span) {
      if (this.slots[seq & this.mask] === undefined) this.inWindow++;
      this.slots[seq & this.mask] = entry;
    } else if (offset >= this.span && this.spanFits(offset + 1)) {
      this.fit(offset + 1);
      this.span = offset + 1;
      this.slots[seq & this.mask] = entry;
      this.inWindow++;
    } else if (offset < 0 && this.spanFits(this.span - offset)) {
      // A seq that arrived after later ones: the window grows down to it.
      this.fit(this.span - offset);
      this.low = seq;
      this.span -= offset;
      this.slots[seq & this.mask] = entry;
      this.inWindow++;
    } else {
      this.aside ??= new Map();
      this.aside.set(seq, entry);
    }
    return this;
  }

  /** Whether the window may span `span` seqs once one more message is in it. */
  private spanFits(span: number): boolean {
    return span <= windowSpanMax && span <= ringSlackSeqs + ringSeqsPerEntry * (this.inWindow + 1);
  }

  /** Makes the ring hold a window of `span` seqs: a larger power of two, entries moved. */
  private fit(span: number): void {
    if (span <= this.slots.length) return;
    let capacity = Math.max(this.slots.length, 16);
    while (capacity < span) capacity *= 2;
    const slots = new Array<PendingMessage | undefined>(capacity).fill(undefined);
    const mask = capacity - 1;
    for (let seq = this.low; seq < this.low + this.span; seq++) {
      slots[seq & mask] = this.slots[seq & this.mask];
    }
    this.slots = slots;
    this.mask = mask;
  }

  delete(seq: number): boolean {
    const offset = seq - this.low;
    let removed = false;
    if (offset >= 0 && offset < this.span && this.slots[seq & this.mask] !== undefined) {
      this.slots[seq & this.mask] = undefined;
      this.inWindow--;
      removed = true;
      if (this.inWindow === 0) this.span = 0;
      else if (offset === 0) this.advanceLow();
    } else if (this.aside?.delete(seq) === true) {
      removed = true;
      if (this.aside.size === 0) this.aside = null;
    }
    if (removed) this.removals++;
    return removed;
  }

  /** Moves the window's bottom up past the empty slots (something is above them). */
  private advanceLow(): void {
    const { slots, mask } = this;
    while (slots[this.low & mask] === undefined) {
      this.low++;
      this.span--;
    }
    assert(this.span > 0, 'a window with entries ends at one');
  }

  /** The lowest pending seq (Infinity when none). */
  lowestSeq(): number {
    let lowest = this.inWindow > 0 ? this.low : Number.POSITIVE_INFINITY;
    if (this.aside !== null) for (const seq of this.aside.keys()) lowest = Math.min(lowest, seq);
    return lowest;
  }

  /** In seq order within the window, then the seqs kept aside. */
  *keys(): Generator<number> {
    const { slots, mask } = this;
    for (let seq = this.low; seq < this.low + this.span; seq++) {
      if (slots[seq & mask] !== undefined) yield seq;
    }
    if (this.aside !== null) yield* this.aside.keys();
  }

  /** `values` without an iterator: every entry, in the same order. */
  forEach(visit: (entry: PendingMessage) => void): void {
    const { slots, mask } = this;
    for (let seq = this.low; seq < this.low + this.span; seq++) {
      const entry = slots[seq & mask];
      if (entry !== undefined) visit(entry);
    }
    if (this.aside !== null) for (const entry of this.aside.values()) visit(entry);
  }

  /** In the order of `keys`. */
  *values(): Generator<PendingMessage> {
    const { slots, mask } = this;
    for (let seq = this.low; seq < this.low + this.span; seq++) {
      const entry = slots[seq & mask];
      if (entry !== undefined) yield entry;
    }
    if (this.aside !== null) yield* this.aside.values();
  }
}

/** The largest ring kept for the next client: a window of a few thousand seqs in flight. */
const spareRingSlotsMax = windowSpanMax;

export class PendingTable {
  private readonly byClient = new Map<string, ClientPending>();
  /** The ring of the last client window that emptied, for the next one to start with. */
  private spareRing: (PendingMessage | undefined)[] | null = null;
  private count = 0;
  private payloadBytes = 0;

  get size(): number {
    return this.count;
  }

  /** Payload bytes of the pending messages: what waiting for the log holds in memory. */
  get bytes(): number {
    return this.payloadBytes;
  }

  get(clientId: string, seq: number): PendingMessage | undefined {
    return this.byClient.get(clientId)?.get(seq);
  }

  forClient(clientId: string): ClientPending | undefined {
    return this.byClient.get(clientId);
  }

  has(entry: PendingMessage): boolean {
    return entry.inTable === true;
  }

  add(entry: PendingMessage): void {
    const { clientId, seq } = entry.message;
    let bySeq = this.byClient.get(clientId);
    if (bySeq === undefined) {
      bySeq = new ClientPending(this.spareRing ?? []);
      this.spareRing = null;
      this.byClient.set(clientId, bySeq);
    }
    assert(!bySeq.has(seq) && entry.inTable !== true, 'one pending entry per (clientId, seq)');
    bySeq.set(seq, entry);
    entry.inTable = true;
    this.count++;
    this.payloadBytes += payloadBytesOf(entry.message);
  }

  delete(entry: PendingMessage): void {
    if (entry.inTable !== true) return;
    const { clientId, seq } = entry.message;
    const bySeq = this.byClient.get(clientId);
    // An entry in the table is the one at its seq: add allows one per (clientId, seq).
    const removed = bySeq?.delete(seq) === true;
    assert(removed, 'an entry in the table is found at its seq');
    entry.inTable = false;
    this.count--;
    this.payloadBytes -= payloadBytesOf(entry.message);
    assert(this.count >= 0 && this.payloadBytes >= 0, 'the table never counts below zero');
    if (bySeq?.size === 0) {
      this.byClient.delete(clientId);
      // A ring stretched far (seqs spread over the span a window may grow by) is let go:
      // kept, it would hold that memory for good, handed from client to client.
      const ring = bySeq.releaseRing();
      this.spareRing = ring.length <= spareRingSlotsMax ? ring : null;
    }
  }

  /**
   * Answers every caller waiting on `entry`, with the result or else the error, and forgets
   * the entry: it is decided and will not be sent again.
   */
  settle(
    entry: PendingMessage,
    result: BroadcastResult | null,
    error: BroadcastError | null,
  ): void {
    assert((result === null) !== (error === null), 'an entry settles with a result or an error');
    if (result !== null) {
      this.deliver(entry, result.position, result.index, result.term, result.duplicate);
      return;
    }
    const { waiter, otherWaiters } = entry;
    this.forget(entry);
    waiter?.settle(entry, null, error);
    if (otherWaiters !== null) for (const other of otherWaiters) other.settle(entry, null, error);
  }

  /** `settle` with a result, given as its fields: no object is made for it. */
  deliver(
    entry: PendingMessage,
    position: number | null,
    index: number | null,
    term: number | null,
    duplicate: boolean,
  ): void {
    const { waiter, otherWaiters } = entry;
    this.forget(entry);
    waiter?.deliver(entry, position, index, term, duplicate);
    if (otherWaiters !== null) {
      for (const other of otherWaiters) other.deliver(entry, position, index, term, duplicate);
    }
  }

  /** Takes a decided entry out of the table and of every stage: it is not sent again. */
  private forget(entry: PendingMessage): void {
    this.delete(entry);
    entry.waiter = null;
    entry.otherWaiters = null;
    entry.queued = false;
    entry.held = false;
    entry.proposedIndex = null;
  }

  /**
   * `values` without an iterator or a copy (a scan of 10,000 in flight made one of each
   * per entry): `visit` must not add or remove entries.
   */
  forEach(visit: (entry: PendingMessage) => void): void {
    for (const bySeq of this.byClient.values()) bySeq.forEach(visit);
  }

  /** Client by client, each in the order its messages were accepted. */
  *values(): Generator<PendingMessage> {
    for (const bySeq of this.byClient.values()) yield* bySeq.values();
  }
}
