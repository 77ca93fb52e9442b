/**
 * The message store: every delivered message, in position order, in segment files
 * (segment.ts), kept for as long as retention says, separate from the Raft log and its
 * compaction. Reads come from the files (the page cache), never from a copy in memory: what
 * the store holds in memory is a sparse index per segment and the topic index of the
 * segments being written, so memory stays flat as the history grows.
 *
 * Not synced: the Raft log is the source of truth. After a crash the store may have lost its
 * last writes (or the records still buffered: a segment writes 256 KiB at a time), or kept
 * a torn frame of records; opening it cuts the torn tail, the node drops what it
 * holds past its snapshot (`truncateAfter`) and applies its log again from the snapshot.
 * What lies before the
 * snapshot and was lost is a hole, filled from peers (backfill) like the history of a node
 * that joined late.
 *
 * The store may hold holes: segments are dense runs, but two segments need not be adjacent.
 * A segment grows until `segmentBytesMax`, or until it reaches the next one (backfill).
 */
import { assert } from '../util/assert.ts';
import { type CompactionSlice, Compactor, type SupersededRule } from './compaction.ts';
import { directBlockBytes } from './direct-append.ts';
import type { StoreFiles } from './files.ts';
import type { StoredMessage, StoredRun } from './record.ts';
import { parseSegmentName, Segment, type SyncMark } from './segment.ts';

export interface StoreRange {
  readonly first: number;
  readonly last: number;
}

export interface SegmentSummary extends StoreRange {
  readonly sizeBytes: number;
  readonly firstLogTimeMs: number;
  readonly lastLogTimeMs: number;
}

export interface MessageStoreOptions {
  readonly files: StoreFiles;
  /** A segment is closed and a new one begun once it holds this many bytes. */
  readonly segmentBytesMax: number;
}

export const defaultSegmentBytesMax = 64 << 20;
/**
 * The least `segmentBytesMax` worth asking for (as the WAL's SEGMENT_BYTES_MIN is for its
 * own): one block of the direct writes a segment is appended with. The store takes any
 * positive size, but a segment holds one message at least, so below this each message would
 * be a segment of its own: three files (records, sparse index, topic index) per message.
 */
export const segmentBytesMin = directBlockBytes;

export interface TopicPage {
  readonly messages: StoredMessage[];
  /** The position to read from next: after the last one examined. */
  readonly next: number;
}

export class MessageStore {
  /** Ascending by first position, disjoint. */
  private segments: Segment[] = [];
  private readonly dirty = new Set<Segment>();
  private readonly compactor: Compactor;
  private closed = false;

  constructor(private readonly options: MessageStoreOptions) {
    assert(options.segmentBytesMax > 0, 'segmentBytesMax is positive');
    this.compactor = new Compactor({
      files: options.files,
      segments: () => this.segments,
      isSealed: (segment) => this.isSealed(segment),
      readSegment: (segment, from, limit, bytesMax) => {
        const page = segment.read(from, limit, bytesMax);
        this.cutDamage(segment);
        return page;
      },
      replace: (segment, copy) => {
        const at = this.segmentIndexBefore(segment.first);
        assert(this.segments[at] === segment, 'a compacted segment is still held');
        this.segments[at] = copy;
      },
    });
    const names = options.files.names();
    // A copy compaction was writing when the process stopped: the segment it copies is whole.
    for (const name of names) if (name.endsWith('.compacting')) options.files.remove(name);
    const firsts = names
      .map(parseSegmentName)
      .filter((first): first is number => first !== null)
      .sort((a, b) => a - b);
    for (const first of firsts) {
      const segment = new Segment(options.files, first);
      segment.load();
      const previous = this.segments.at(-1);
      // A segment that overlaps its predecessor, or holds nothing, is not kept.
      if (segment.count === 0 || (previous !== undefined && previous.last >= first)) {
        segment.remove();
        continue;
      }
      this.segments.push(segment);
    }
  }

  /** The highest position held (0 when empty). */
  get lastPosition(): number {
    return this.segments.at(-1)?.last ?? 0;
  }

  /** The dense runs held, ascending: adjacent segments merge into one range. */
  ranges(): StoreRange[] {
    const ranges: { first: number; last: number }[] = [];
    for (const segment of this.segments) {
      const previous = ranges.at(-1);
      if (previous !== undefined && previous.last + 1 === segment.first) {
        previous.last = segment.last;
      } else ranges.push({ first: segment.first, last: segment.last });
    }
    return ranges;
  }

  summaries(): SegmentSummary[] {
    return this.segments.map((segment) => ({
      first: segment.first,
      last: segment.last,
      sizeBytes: segment.sizeBytes,
      firstLogTimeMs: segment.firstLogTimeMs,
      lastLogTimeMs: segment.lastLogTimeMs,
    }));
  }

  get sizeBytes(): number {
    return this.segments.reduce((sum, segment) => sum + segment.sizeBytes, 0);
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  /** Whether the segment that begins at `first` holds a message of `topic` (false if none). */
  holdsTopic(first: number, topic: string): boolean {
    const segment = this.segmentHolding(first);
    if (segment === undefined || segment.first !== first) return false;
    const held = segment.topicRuns(topic).length > 0;
    if (segment !== this.segments.at(-1) && !this.dirty.has(segment)) segment.releaseTopics();
    return held;
  }

  has(position: number): boolean {
    return this.segmentHolding(position) !== undefined;
  }

  /**
   * Keeps `message` unless its position is held already (then false). It continues the
   * segment that ends just before it, or begins a new one: a position past a hole is fine.
   */
  append(message: StoredMessage): boolean {
    const { position } = message;
    assert(Number.isSafeInteger(position) && position >= 1, 'positions start at 1');
    // The applier's case, once per message: the next position, after everything held.
    const tail = this.segments[this.segments.length - 1];
    if (
      tail !== undefined &&
      position === tail.last + 1 &&
      tail.sizeBytes < this.options.segmentBytesMax
    ) {
      tail.append(message);
      this.dirty.add(tail);
      return true;
    }
    if (this.has(position)) return false;
    const at = this.segmentIndexBefore(position);
    let segment = at < 0 ? undefined : this.segments[at];
    if (
      segment === undefined ||
      segment.last + 1 !== position ||
      segment.sizeBytes >= this.options.segmentBytesMax
    ) {
      if (segment !== undefined) this.seal(segment);
      segment = new Segment(this.options.files, position);
      this.segments.splice(at + 1, 0, segment);
    }
    segment.append(message);
    this.dirty.add(segment);
    return true;
  }

  /**
   * Keeps `run`'s messages from `from` on at positions from `firstPosition` on, which must
   * follow everything held: the applier's case, once per run, the same records `append`
   * would keep message by message.
   */
  appendRun(run: StoredRun, from: number, firstPosition: number): void {
    assert(Number.isSafeInteger(firstPosition) && firstPosition >= 1, 'positions start at 1');
    let offset = from;
    while (offset < run.payloads.length) {
      const tail = this.segments[this.segments.length - 1];
      const position = firstPosition + offset - from;
      if (
        tail !== undefined &&
        position === tail.last + 1 &&
        tail.sizeBytes < this.options.segmentBytesMax
      ) {
        offset += tail.appendRun(run, offset, this.options.segmentBytesMax);
        this.dirty.add(tail);
        continue;
      }
      // A new segment begins (or a hole is passed): one message the usual way, then on.
      const seq = run.clientId === '' ? 0 : run.firstSeq + offset;
      const payload = run.payloads[offset] as Uint8Array;
      const { index, term, clientId, topic, logTimeMs } = run;
      this.append({ position, index, term, clientId, seq, topic, payload, logTimeMs });
      offset++;
    }
  }

  /** Writes every buffered append. */
  flush(): void {
    for (const segment of this.dirty) segment.flush();
    this.dirty.clear();
  }

  /**
   * An applied batch ends. Its records are written with the next ones once the buffer holds
   * `pendingFlushBytes` (segment.ts): one write per 256 KiB, not one per batch (at 128 in
   * flight a batch is ~40 KB). Only the last segment is left buffered: any other is written
   * now. Nothing waits for these writes: a read writes what is buffered first, a sync or a
   * close writes everything, and a crash loses nothing the WAL does not apply again, as with
   * the page cache the store is never synced from (see `sync`).
   */
  batchApplied(): void {
    const tail = this.segments.at(-1);
    for (const segment of this.dirty) if (segment !== tail) segment.flush();
    this.dirty.clear();
    if (tail?.buffering === true) this.dirty.add(tail);
  }

  /**
   * Up to `limit` messages from `from` on, while positions stay dense: the read stops at the
   * end of what is held or at a hole, or once the payloads reach `bytesMax` (one message at
   * least). Empty when `from` itself is not held.
   */
  read(from: number, limit: number, bytesMax = Number.POSITIVE_INFINITY): StoredMessage[] {
    assert(limit >= 1, 'a read asks for one message at least');
    const messages: StoredMessage[] = [];
    let at = this.segmentIndexBefore(from);
    let cursor = from;
    let payloadBytes = 0;
    while (messages.length < limit && at >= 0 && at < this.segments.length) {
      const segment = this.segments[at] as Segment;
      if (cursor < segment.first || cursor > segment.last || payloadBytes >= bytesMax) break;
      for (const message of segment.read(
        cursor,
        limit - messages.length,
        bytesMax - payloadBytes,
      )) {
        messages.push(message);
        payloadBytes += message.payload.byteLength;
      }
      if (this.cutDamage(segment)) break;
      cursor = segment.last + 1;
      at++;
    }
    return messages;
  }

  /**
   * `read` for readers that copy records out as bytes: `take` gets each record's body (a
   * view valid only during the call) and answers the payload bytes it counts against
   * `bytesMax`. Returns how many records it was given.
   */
  visit(from: number, limit: number, bytesMax: number, take: (body: Buffer) => number): number {
    assert(limit >= 1, 'a read asks for one record at least');
    let count = 0;
    let at = this.segmentIndexBefore(from);
    let cursor = from;
    let payloadBytes = 0;
    const counted = (body: Buffer) => {
      const bytes = take(body);
      payloadBytes += bytes;
      return bytes;
    };
    while (count < limit && at >= 0 && at < this.segments.length) {
      const segment = this.segments[at] as Segment;
      if (cursor < segment.first || cursor > segment.last || payloadBytes >= bytesMax) break;
      count += segment.visit(cursor, limit - count, bytesMax - payloadBytes, counted);
      if (this.cutDamage(segment)) break;
      cursor = segment.last + 1;
      at++;
    }
    return count;
  }

  /**
   * Messages of `topic` from `from` on, examining at most `positionsMax` positions and
   * stopping at a hole: segments without the topic are skipped by their topic index, and
   * inside a segment only the topic's runs are read.
   */
  readTopic(topic: string, from: number, limit: number, positionsMax: number): TopicPage {
    const messages: StoredMessage[] = [];
    const end = from + positionsMax; // first position not examined
    let cursor = from;
    let at = this.segmentIndexBefore(from);
    while (at >= 0 && at < this.segments.length && cursor < end) {
      const segment = this.segments[at] as Segment;
      if (cursor < segment.first || cursor > segment.last) break;
      const runs = segment.topicRuns(topic);
      for (let run = 0; run < runs.length && cursor < end; run += 2) {
        const runFirst = runs[run] as number;
        const runLast = runFirst + (runs[run + 1] as number) - 1;
        if (runLast < cursor) continue;
        const start = Math.max(runFirst, cursor);
        if (start >= end) {
          cursor = end;
          break;
        }
        const wanted = Math.min(runLast, end - 1) - start + 1;
        const page = segment.read(start, Math.min(wanted, limit - messages.length));
        for (const message of page) messages.push(message);
        cursor = start + page.length;
        if (this.cutDamage(segment)) return { messages, next: cursor };
        if (messages.length === limit) return { messages, next: cursor };
      }
      if (cursor < end) cursor = Math.min(segment.last + 1, end);
      if (segment !== this.segments.at(-1) && this.dirty.has(segment) === false) {
        segment.releaseTopics();
      }
      at++;
    }
    return { messages, next: cursor };
  }

  /**
   * Forgets every position after `position`: at a restart, what the store holds beyond the
   * snapshot is applied again from the WAL, the source of truth, so the store never keeps
   * what the log no longer says.
   */
  truncateAfter(position: number): void {
    while (this.segments.length > 0 && (this.segments.at(-1) as Segment).first > position) {
      const segment = this.segments.pop() as Segment;
      this.dirty.delete(segment);
      segment.remove();
    }
    const last = this.segments.at(-1);
    if (last === undefined || last.last <= position) return;
    last.truncateAfter(position);
    // A damaged record before `position` may have cut it further, to nothing.
    if (last.count === 0) {
      this.segments.pop();
      this.dirty.delete(last);
      last.remove();
    }
  }

  /** Deletes every segment whose positions all lie before `position`: whole segments only. */
  dropBefore(position: number): number {
    let dropped = 0;
    while (this.segments.length > 0 && (this.segments[0] as Segment).last < position) {
      const segment = this.segments.shift() as Segment;
      this.dirty.delete(segment);
      segment.remove();
      dropped++;
    }
    return dropped;
  }

  /**
   * One slice of compaction by key (compaction.ts) towards the cut `before`: positions
   * before it that `superseded` picks are compacted, a bounded piece of work per call.
   */
  compactSlice(before: number, superseded: SupersededRule): Promise<CompactionSlice> {
    return this.compactor.slice(before, superseded);
  }

  /**
   * The message at `position` was superseded (a newer one of its key was applied): its
   * segment is judged again by the next compaction, whatever it was judged before.
   */
  noteSuperseded(position: number): void {
    const segment = this.segmentHolding(position);
    if (segment !== undefined) segment.supersededSince = true;
  }

  /**
   * Compaction's rule changed other than by applied messages (a leader's snapshot replaced
   * the state): every segment is judged again, whole.
   */
  forgetCompaction(): void {
    for (const segment of this.segments) segment.supersededSince = true;
  }

  /**
   * Makes every record written so far durable, awaited off the event loop. The store is
   * otherwise never synced: the WAL holds what it lost in a crash, and applies it again; but
   * once the WAL is compacted past a position, the store holds the only copy this node has,
   * so the node syncs the store before it compacts (src/broadcast/snapshots.ts). For the
   * same reason a cut inside a frame syncs the frame's new header (segment.ts).
   */
  async sync(): Promise<void> {
    this.flush();
    const unsynced = this.segments.filter((segment) => segment.unsynced);
    if (unsynced.length === 0) return;
    const marks = unsynced.map((segment) => segment.syncMark());
    await this.options.files.sync(unsynced.map((segment) => segment.name));
    unsynced.forEach((segment, at) => {
      segment.synced(marks[at] as SyncMark);
    });
  }

  /**
   * Syncs every segment found at open, once, at start: what a crashed process left in the
   * page cache is durable before the node counts on it (segment.ts, `syncedBytes`).
   */
  async syncFound(): Promise<void> {
    await this.options.files.sync(this.segments.map((segment) => segment.name));
  }

  /** Flushes and writes every index, so that the next open needs no scan. */
  close(): void {
    this.closed = true;
    try {
      this.flush();
      for (const segment of this.segments) segment.saveIndex();
    } finally {
      this.options.files.close();
    }
  }

  /**
   * A read found `segment` damaged from some position on (store.ts's header says why that
   * can happen): what follows is dropped, so those positions become a hole that backfill
   * fills from peers, as after any other loss. True when the segment was cut.
   */
  private cutDamage(segment: Segment): boolean {
    const from = segment.damagedFrom;
    if (from === null) return false;
    segment.damagedFrom = null;
    if (from > segment.first) {
      segment.truncateAfter(from - 1);
      return true;
    }
    this.dirty.delete(segment);
    segment.remove();
    this.segments.splice(this.segments.indexOf(segment), 1);
    return true;
  }

  /** Held, not the segment being written, and nothing appended to it waits for a flush. */
  private isSealed(segment: Segment): boolean {
    if (this.closed || segment === this.segments.at(-1) || this.dirty.has(segment)) return false;
    return this.segments[this.segmentIndexBefore(segment.first)] === segment;
  }

  private seal(segment: Segment): void {
    segment.saveIndex();
    segment.releaseTopics();
    this.dirty.delete(segment);
  }

  private segmentHolding(position: number): Segment | undefined {
    const segment = this.segments[this.segmentIndexBefore(position)];
    return segment !== undefined && position <= segment.last ? segment : undefined;
  }

  /** The index of the last segment whose first position is at most `position`; -1 if none. */
  private segmentIndexBefore(position: number): number {
    let low = 0;
    let high = this.segments.length - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if ((this.segments[middle] as Segment).first <= position) {
        found = middle;
        low = middle + 1;
      } else high = middle - 1;
    }
    return found;
  }
}
