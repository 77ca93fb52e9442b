/**
 * One segment of the message store: a file of records for a dense run of positions
 * `first … last`, named by its first position, with a sparse index (every
 * `sparseEveryCount`-th position → byte offset) and a topic index (per topic, the runs of
 * consecutive positions it holds). Both indexes are rebuilt by scanning the file when the
 * files that keep them (`.idx`, `.tix`) are missing or stale.
 */
import { assert } from '../util/assert.ts';
import type { StoreFiles } from './files.ts';
import {
  bodyPosition,
  decodeBody,
  frameHeaderBytes,
  RecordWalker,
  recordBytesOf,
  runRecordBytesOf,
  type StoredMessage,
  type StoredRun,
  writeFrameHeader,
  writeRecord,
  writeRunRecord,
} from './record.ts';

/**
 * One sparse index entry per this many positions: 16 bytes of memory per 64 messages. Each
 * such position begins a frame (record.ts), so a read starts at a frame.
 */
export const sparseEveryCount = 64;
const readChunkBytes = 256 << 10;
/** The pending buffer's first size: a batch of small messages fits without growing it. */
const pendingInitialBytes = 64 << 10;
/**
 * Pending records are written out once they reach this many bytes, even within one applied
 * batch: the buffer then stays this size whatever the batch (a window of 10,000 messages
 * applies megabytes at once), instead of doubling to the batch's size and being dropped
 * after its flush, megabytes of fresh ArrayBuffers an apply that start old-space GCs.
 */
const pendingFlushBytes = 256 << 10;
/** A pending buffer grown past this (a burst of large messages) is not kept after a flush. */
const pendingKeptBytesMax = 1 << 20;
const emptyBuffer = Buffer.alloc(0);

export function segmentName(first: number): string {
  return `${String(first).padStart(16, '0')}.seg`;
}

export function parseSegmentName(name: string): number | null {
  const match = /^([0-9]{16})\.seg$/.exec(name);
  return match === null ? null : Number(match[1]);
}

export interface SyncMark {
  readonly writtenBytes: number;
  readonly cuts: number;
}

interface SegmentIndexFile {
  readonly version: 1;
  readonly first: number;
  readonly last: number;
  readonly sizeBytes: number;
  readonly firstLogTimeMs: number;
  readonly lastLogTimeMs: number;
  readonly sparse: number[];
}

export class Segment {
  /** Position of the last record; first - 1 while empty. */
  last: number;
  /** Bytes of records, written or waiting in `pending`. */
  sizeBytes = 0;
  firstLogTimeMs = 0;
  lastLogTimeMs = 0;
  /** Flat pairs (position, byte offset), positions ascending. */
  private sparse: number[] = [];
  /** Per topic, flat pairs (first position, count) of consecutive runs; null until needed. */
  private topics: Map<string, number[]> | null = new Map();
  /**
   * The records appended since the last flush, laid out back to back in its first
   * `pendingBytes`; kept between flushes so that a batch allocates nothing per record, and
   * written out whenever it holds `pendingFlushBytes`.
   */
  private pending: Buffer = emptyBuffer;
  private pendingBytes = 0;
  /** Where the frame being filled begins in `pending`; -1 when none is open. */
  private frameAt = -1;
  private writtenBytes = 0;
  /**
   * Bytes known durable. What is found on disk at open counts as synced: what lies before
   * the snapshot was synced before the WAL was compacted past it, what lies after it is cut
   * and applied again from the WAL (`truncateAfter`), and a backfilled hole lost to a power
   * cut is a hole again, filled from peers; the node also syncs it once at start
   * (`MessageStore.syncFound`), off the apply path.
   */
  private syncedBytes = 0;
  /**
   * Compaction by key (compaction.ts): every position before this was judged under a cut
   * at least that far, and `supersededSince` says whether one of them was superseded since.
   * In memory only: a reopened segment is judged again, once.
   */
  compactedBefore: number;
  supersededSince = false;
  private fileName: string;
  /** Cuts of the file so far (`truncateAfter`): a sync begun before one covers less. */
  private cuts = 0;
  /** The `.idx` and `.tix` files describe the segment as it is now. */
  private indexCurrent = false;

  /** `fileName` differs from the segment's name only while compaction writes a copy. */
  constructor(
    private readonly files: StoreFiles,
    readonly first: number,
    fileName = segmentName(first),
  ) {
    assert(Number.isSafeInteger(first) && first >= 1, 'a segment starts at a position');
    this.last = first - 1;
    this.compactedBefore = first;
    this.fileName = fileName;
  }

  get name(): string {
    return this.fileName;
  }

  /** Renames the file (a compacted copy taking its segment's name), replacing any there. */
  renameTo(name: string): void {
    this.flush();
    this.files.rename(this.fileName, name);
    this.fileName = name;
    this.indexCurrent = false;
  }

  get count(): number {
    return this.last - this.first + 1;
  }

  append(message: StoredMessage): void {
    assert(message.position === this.last + 1, 'a segment holds a dense run of positions');
    const recordBytes = recordBytesOf(message);
    const indexed = (message.position - this.first) % sparseEveryCount === 0;
    const addedBytes = recordBytes + frameHeaderBytes;
    if (this.pendingBytes > 0 && this.pendingBytes + addedBytes > pendingFlushBytes) this.flush();
    if (this.frameAt < 0 || indexed) this.openFrame();
    const frameOffset = this.writtenBytes + this.frameAt;
    this.reservePending(recordBytes);
    this.pendingBytes = writeRecord(message, this.pending, this.pendingBytes, true);
    this.sizeBytes += recordBytes;
    this.index(message, message.position, indexed ? frameOffset : -1);
  }

  /**
   * Appends `run`'s messages from `from` on at positions from `this.last + 1`, as `append`
   * would one by one (the same bytes, frames and indexes), until the segment reaches
   * `segmentBytesMax`; returns how many it took (one at least).
   */
  appendRun(run: StoredRun, from: number, segmentBytesMax: number): number {
    assert(from < run.payloads.length, 'a run appends one message at least');
    // Loaded before `last` moves, as `index` does (the file's index describes it as it was).
    if (this.topics === null) this.topics = this.loadTopics();
    const headBytes = runRecordBytesOf(run);
    const firstPosition = this.last + 1;
    let offset = from;
    do {
      const position = this.last + 1;
      const recordBytes = headBytes + (run.payloads[offset] as Uint8Array).byteLength;
      const indexed = (position - this.first) % sparseEveryCount === 0;
      const addedBytes = recordBytes + frameHeaderBytes;
      if (this.pendingBytes > 0 && this.pendingBytes + addedBytes > pendingFlushBytes) {
        this.flush();
      }
      if (this.frameAt < 0 || indexed) this.openFrame();
      if (indexed) this.sparse.push(position, this.writtenBytes + this.frameAt);
      this.reservePending(recordBytes);
      this.pendingBytes = writeRunRecord(run, offset, position, this.pending, this.pendingBytes);
      this.sizeBytes += recordBytes;
      this.last = position;
      offset++;
    } while (offset < run.payloads.length && this.sizeBytes < segmentBytesMax);
    this.indexRun(run, firstPosition, this.last - firstPosition + 1);
    return offset - from;
  }

  /** `index` for `count` messages of `run` from `first` on (already in `sparse`, `last`). */
  private indexRun(run: StoredRun, first: number, count: number): void {
    assert(this.topics !== null, 'the topic index is loaded');
    const runs = this.topics.get(run.topic);
    const runCount = runs?.length ?? 0;
    if (runs !== undefined && runs[runCount - 2]! + runs[runCount - 1]! === first) {
      runs[runCount - 1]! += count;
    } else if (runs !== undefined) runs.push(first, count);
    else this.topics.set(run.topic, [first, count]);
    if (first === this.first) this.firstLogTimeMs = run.logTimeMs;
    this.lastLogTimeMs = run.logTimeMs;
    this.indexCurrent = false;
  }

  /** Closes the frame being filled and begins the next one after it. */
  private openFrame(): void {
    this.closeFrame();
    this.reservePending(frameHeaderBytes);
    this.frameAt = this.pendingBytes;
    this.pendingBytes += frameHeaderBytes;
    this.sizeBytes += frameHeaderBytes;
  }

  /** Gives the frame being filled its length and checksum, now that its records are in. */
  private closeFrame(): void {
    if (this.frameAt < 0) return;
    writeFrameHeader(this.pending, this.frameAt, this.pendingBytes);
    this.frameAt = -1;
  }

  /**
   * Counts `message` (already in `sizeBytes`) in the indexes. A read of its position starts
   * at `sparseOffset`, where the frame holding it begins with `sparsePosition` (its own
   * offset and position when unframed); -1 when the sparse index skips it.
   */
  private index(message: StoredMessage, sparsePosition: number, sparseOffset: number): void {
    if (this.topics === null) this.topics = this.loadTopics();
    if (sparseOffset >= 0) this.sparse.push(sparsePosition, sparseOffset);
    const runs = this.topics.get(message.topic);
    const runCount = runs?.length ?? 0;
    if (runs !== undefined && runs[runCount - 2]! + runs[runCount - 1]! === message.position) {
      runs[runCount - 1]!++;
    } else if (runs !== undefined) runs.push(message.position, 1);
    else this.topics.set(message.topic, [message.position, 1]);
    if (this.count === 0) this.firstLogTimeMs = message.logTimeMs;
    this.lastLogTimeMs = message.logTimeMs;
    this.last = message.position;
    this.indexCurrent = false;
  }

  /** Whether appends wait in the buffer for a flush. */
  get buffering(): boolean {
    return this.pendingBytes > 0;
  }

  /** Writes what `append` buffered (into the page cache: no fsync). */
  flush(): void {
    this.closeFrame();
    const byteCount = this.pendingBytes;
    if (byteCount === 0) return;
    // Taken before the write: a write that fails is not tried again by a later flush (as
    // the one a close makes after a failure stopped the node).
    this.pendingBytes = 0;
    const chunk = this.pending.subarray(0, byteCount);
    if (this.pending.length > pendingKeptBytesMax) this.pending = emptyBuffer;
    // The files copy what they are given before they return, so the buffer is free again.
    this.files.write(this.name, chunk, this.writtenBytes);
    this.writtenBytes += byteCount;
    assert(this.writtenBytes === this.sizeBytes, 'every appended byte is written once');
  }

  /** Room for `byteCount` more bytes after the pending records. */
  private reservePending(byteCount: number): void {
    const needed = this.pendingBytes + byteCount;
    if (needed <= this.pending.length) return;
    const grown = Buffer.allocUnsafe(
      Math.max(needed, 2 * this.pending.length, pendingInitialBytes),
    );
    this.pending.copy(grown, 0, 0, this.pendingBytes);
    this.pending = grown;
  }

  /**
   * Up to `limit` messages from `from` (which this segment holds) on, within the segment,
   * stopping once their payloads reach `bytesMax` (one message at least). A record that
   * fails its checksum, is not the position due, or is cut short ends the read early and
   * sets `damagedFrom`: the store is not synced, so a crash or bit rot may have damaged what
   * the index still counts (store.ts cuts the segment there and backfill fills it again).
   */
  read(from: number, limit: number, bytesMax = Number.POSITIVE_INFINITY): StoredMessage[] {
    const messages: StoredMessage[] = [];
    this.visit(from, limit, bytesMax, (body) => {
      const message = decodeBody(body);
      messages.push(message);
      return message.payload.byteLength;
    });
    return messages;
  }

  /**
   * `read` for readers that copy records out as bytes: `take` is given each record's body
   * (checked, a view of a buffer reused once it returns) and answers the payload bytes it
   * counts against `bytesMax`. Returns how many records it was given.
   */
  visit(from: number, limit: number, bytesMax: number, take: (body: Buffer) => number): number {
    assert(from >= this.first && from <= this.last, 'a segment reads what it holds');
    this.flush();
    let count = 0;
    let { position: due, offset } = this.entryAtOrBefore(from);
    let buffer = Buffer.allocUnsafe(this.chunkBytesFrom(offset));
    let payloadBytes = 0;
    const walker = new RecordWalker();
    while (count < limit && offset < this.sizeBytes && payloadBytes < bytesMax) {
      const readBytes = this.files.read(this.name, buffer, offset);
      const view = buffer.subarray(0, readBytes);
      let at = 0;
      let grown = false;
      walker.reset();
      while (count < limit) {
        const found = walker.at(view, at);
        if (found.kind === 'short') {
          // Past what the segment counts, or past the end of its file: damaged.
          const end = offset + at + found.recordBytes;
          if (end > this.sizeBytes || readBytes < buffer.length) return this.damaged(due, count);
          // A record larger than the buffer: read again from it, whole, into a larger one.
          if (found.recordBytes > buffer.length) {
            buffer = Buffer.allocUnsafe(found.recordBytes);
            offset += at;
            at = 0;
            grown = true;
          }
          break;
        }
        const position = found.kind === 'record' ? bodyPosition(found.body) : null;
        if (found.kind === 'invalid' || position !== due) return this.damaged(due, count);
        if (position >= from) {
          payloadBytes += take(found.body);
          count++;
        }
        at += found.recordBytes;
        due++;
        if (position === this.last || payloadBytes >= bytesMax) return count;
      }
      assert(at > 0 || grown, 'each read makes progress');
      offset += at;
    }
    return count;
  }

  /** Positions from this one on read back damaged; the store cuts them (store.ts). */
  damagedFrom: number | null = null;

  private damaged(position: number, count: number): number {
    this.damagedFrom = position;
    return count;
  }

  /**
   * Drops every record after `position` (which this segment holds, or first - 1 to empty
   * it): the file is cut at the next record's offset and the indexes trimmed to match.
   */
  truncateAfter(position: number): void {
    assert(position >= this.first - 1 && position <= this.last, 'a cut within the segment');
    if (position === this.last) return;
    this.flush();
    let offset = 0;
    if (position >= this.first) {
      const [kept] = this.read(position, 1);
      if (kept === undefined) {
        // Damaged at or before `position` (the read says where): the cut goes there instead.
        const damaged = this.damagedFrom;
        assert(damaged !== null && damaged <= position, 'a record that does not read is damaged');
        this.damagedFrom = null;
        this.truncateAfter(damaged - 1);
        return;
      }
      assert(kept.position === position, 'the last kept record reads back');
      const cut = this.cutAfter(position);
      offset = cut.offset;
      if (cut.frameEnd > offset) this.resealFrame(cut.frameStart, offset);
    }
    // The saved indexes describe what is cut away; were they kept, a file that later grew
    // back to exactly their length (appended again with other frames, or left padded by a
    // crash) would open trusting them. The topic index is read first: the cut trims it below.
    const topics = this.topics ?? this.loadTopics();
    this.topics = topics;
    this.removeIndexFiles();
    this.files.truncate(this.name, offset);
    this.sizeBytes = this.writtenBytes = offset;
    this.syncedBytes = Math.min(this.syncedBytes, offset);
    this.cuts++;
    // Positions appended again after the cut (backfill) are judged by compaction again.
    this.compactedBefore = Math.min(this.compactedBefore, position + 1);
    this.last = position;
    while (this.sparse.length > 0 && (this.sparse[this.sparse.length - 2] as number) > position) {
      this.sparse.length -= 2;
    }
    for (const [topic, runs] of topics) {
      while (runs.length > 0 && (runs[runs.length - 2] as number) > position) runs.length -= 2;
      const count = runs.length;
      if (count > 0)
        runs[count - 1] = Math.min(
          runs[count - 1] as number,
          position - (runs[count - 2] as number) + 1,
        );
      if (runs.length === 0) topics.delete(topic);
    }
  }

  /**
   * The byte offset just past the record at `position` (which this segment holds), and the
   * frame that record lies in (both -1 when it is unframed).
   */
  private cutAfter(position: number): { offset: number; frameStart: number; frameEnd: number } {
    let offset = this.offsetAtOrBefore(position);
    let buffer = Buffer.allocUnsafe(readChunkBytes);
    const walker = new RecordWalker();
    for (;;) {
      const view = buffer.subarray(0, this.files.read(this.name, buffer, offset));
      let at = 0;
      walker.reset();
      for (;;) {
        const found = walker.at(view, at);
        if (found.kind === 'short') {
          if (found.recordBytes > buffer.length) buffer = Buffer.allocUnsafe(found.recordBytes);
          break;
        }
        assert(found.kind === 'record', 'a written record reads back whole');
        at += found.recordBytes;
        if (bodyPosition(found.body) === position) {
          const framed = walker.frameStart >= 0;
          return {
            offset: offset + at,
            frameStart: framed ? offset + walker.frameStart : -1,
            frameEnd: framed ? offset + walker.frameEnd : -1,
          };
        }
      }
      assert(at > 0 || view.length < buffer.length, 'each read makes progress');
      offset += at;
    }
  }

  /**
   * A cut at `end` falls inside the frame at `start`: its header is rewritten for the records
   * kept, and made durable, before the file is cut and anything is written after the cut.
   * The frame's records may be this node's only copy (the WAL was compacted past them once
   * they were synced): were the new header lost in a crash while records written after the
   * cut reached the disk, the old header's checksum would fail over the whole frame, and
   * every record kept would go with it. Durable, a crash leaves the kept frame whole,
   * followed by bytes that do not verify (the next scan cuts them) or by the new records.
   */
  private resealFrame(start: number, end: number): void {
    const kept = Buffer.allocUnsafe(end - start);
    assert(this.files.read(this.name, kept, start) === kept.length, 'a kept frame reads back');
    writeFrameHeader(kept, 0, kept.length);
    this.files.write(this.name, kept.subarray(0, frameHeaderBytes), start);
    this.files.syncNow(this.name);
  }

  /** The runs of `topic` as flat (first, count) pairs: empty when the topic is absent. */
  topicRuns(topic: string): readonly number[] {
    if (this.topics === null) this.topics = this.loadTopics();
    return this.topics.get(topic) ?? [];
  }

  /** Drops the topic index of a segment nobody appends to, to keep memory flat. */
  releaseTopics(): void {
    if (this.pendingBytes === 0) this.pending = emptyBuffer;
    if (this.indexCurrent) this.topics = null;
  }

  /** Writes the index files, so that the next open does not scan the records. */
  saveIndex(): void {
    if (this.indexCurrent) return;
    this.flush();
    const topics = this.topics ?? this.loadTopics();
    const index: SegmentIndexFile = {
      version: 1,
      first: this.first,
      last: this.last,
      sizeBytes: this.sizeBytes,
      firstLogTimeMs: this.firstLogTimeMs,
      lastLogTimeMs: this.lastLogTimeMs,
      sparse: this.sparse,
    };
    this.files.writeText(`${this.name}.tix`, JSON.stringify(Object.fromEntries(topics)));
    // The .idx last: it is what says the .tix is current.
    this.files.writeText(`${this.name}.idx`, JSON.stringify(index));
    this.indexCurrent = true;
  }

  /** Whether bytes were written since the last sync. */
  get unsynced(): boolean {
    return this.sizeBytes > this.syncedBytes;
  }

  /** What a sync begun now makes durable (flushed first): pass it to `synced` after. */
  syncMark(): SyncMark {
    this.flush();
    return { writtenBytes: this.writtenBytes, cuts: this.cuts };
  }

  /**
   * A sync begun at `mark` ended (store.ts syncs many files at once). A cut meanwhile may
   * have replaced bytes the sync covered with bytes it did not: then it counts for nothing.
   */
  synced(mark: SyncMark): void {
    if (mark.cuts !== this.cuts) return;
    this.syncedBytes = Math.max(this.syncedBytes, Math.min(mark.writtenBytes, this.writtenBytes));
  }

  remove(): void {
    this.files.remove(this.name);
    this.removeIndexFiles();
  }

  removeIndexFiles(): void {
    this.files.remove(`${this.name}.idx`);
    this.files.remove(`${this.name}.tix`);
    this.indexCurrent = false;
  }

  /**
   * Opens the segment from its files: from the index when it matches the file's size, by a
   * scan otherwise, which also cuts a record torn by a crash and what follows it.
   */
  load(): void {
    const fileBytes = this.files.size(this.name);
    const index = this.readIndexFile();
    if (index !== null && index.sizeBytes === fileBytes && index.first === this.first) {
      // Neither file is synced, and a crash may keep the newer one of them only: the topic
      // index must describe exactly the positions the index counts, or both are rebuilt.
      if (this.topicIndexMatches(index.last)) {
        this.last = index.last;
        this.sizeBytes = this.writtenBytes = fileBytes;
        this.firstLogTimeMs = index.firstLogTimeMs;
        this.lastLogTimeMs = index.lastLogTimeMs;
        this.sparse = index.sparse;
        this.topics = null;
        this.indexCurrent = true;
        this.syncedBytes = fileBytes;
        return;
      }
    }
    this.scan(fileBytes);
  }

  /** Whether the `.tix` file reads whole and covers exactly `first … last`. */
  private topicIndexMatches(last: number): boolean {
    let topics: Map<string, number[]>;
    try {
      topics = this.parseTopics();
    } catch {
      return false; // a torn topic index is rebuilt by a scan
    }
    let count = 0;
    let end = this.first - 1;
    for (const runs of topics.values()) {
      if (!Array.isArray(runs) || runs.length % 2 !== 0) return false;
      for (let at = 0; at < runs.length; at += 2) {
        const runFirst = runs[at];
        const runCount = runs[at + 1];
        if (!Number.isSafeInteger(runFirst) || !Number.isSafeInteger(runCount)) return false;
        if ((runCount as number) < 1 || (runFirst as number) < this.first) return false;
        count += runCount as number;
        end = Math.max(end, (runFirst as number) + (runCount as number) - 1);
      }
    }
    return count === last - this.first + 1 && end === last;
  }

  private scan(fileBytes: number): void {
    let buffer = Buffer.allocUnsafe(readChunkBytes);
    let offset = 0;
    this.topics ??= new Map<string, number[]>();
    const walker = new RecordWalker();
    // Where a read of the last record found would start: its frame, or itself unframed.
    let unitPosition = this.first;
    let unitOffset = 0;
    let frameEnd = -1;
    scanning: while (offset < fileBytes) {
      const readBytes = this.files.read(this.name, buffer, offset);
      const view = buffer.subarray(0, readBytes);
      let at = 0;
      walker.reset();
      for (;;) {
        const found = walker.at(view, at);
        if (found.kind === 'short') {
          if (offset + at + found.recordBytes > fileBytes) break scanning; // torn tail
          if (found.recordBytes > buffer.length) buffer = Buffer.allocUnsafe(found.recordBytes);
          break;
        }
        if (found.kind === 'invalid') break scanning;
        const message = decodeBody(found.body);
        if (message.position !== this.last + 1) break scanning;
        if (walker.frameStart < 0 || walker.frameStart === at) {
          unitPosition = message.position;
          unitOffset = offset + at;
        }
        frameEnd = walker.frameStart < 0 ? -1 : offset + walker.frameEnd;
        at += found.recordBytes;
        this.sizeBytes = this.writtenBytes = offset + at;
        const indexed = (message.position - this.first) % sparseEveryCount === 0;
        this.index(message, unitPosition, indexed ? unitOffset : -1);
      }
      offset += at;
    }
    if (this.sizeBytes < fileBytes) {
      // A frame whose later records do not read (damage its checksum missed) keeps the rest.
      if (frameEnd > this.sizeBytes) this.resealFrame(unitOffset, this.sizeBytes);
      this.files.truncate(this.name, this.sizeBytes);
    }
    this.syncedBytes = this.sizeBytes;
  }

  /** A read buffer for what lies from `offset` on: no larger than that, nor than a chunk. */
  private chunkBytesFrom(offset: number): number {
    return Math.max(1, Math.min(readChunkBytes, this.sizeBytes - offset));
  }

  private offsetAtOrBefore(position: number): number {
    return this.entryAtOrBefore(position).offset;
  }

  /** The sparse index's last entry at or before `position` (the segment's start if none). */
  private entryAtOrBefore(position: number): { position: number; offset: number } {
    const sparse = this.sparse;
    let low = 0;
    let high = sparse.length / 2 - 1;
    let found = { position: this.first, offset: 0 };
    while (low <= high) {
      const middle = (low + high) >> 1;
      if ((sparse[middle * 2] as number) <= position) {
        found = {
          position: sparse[middle * 2] as number,
          offset: sparse[middle * 2 + 1] as number,
        };
        low = middle + 1;
      } else high = middle - 1;
    }
    return found;
  }

  private readIndexFile(): SegmentIndexFile | null {
    const text = this.files.readText(`${this.name}.idx`);
    if (text === null) return null;
    try {
      const parsed = JSON.parse(text) as SegmentIndexFile;
      return parsed.version === 1 && Array.isArray(parsed.sparse) ? parsed : null;
    } catch {
      return null; // a torn index is rebuilt by a scan
    }
  }

  private loadTopics(): Map<string, number[]> {
    const topics = this.parseTopics();
    assert(topics.size > 0 || this.count === 0, 'a segment opened from its index has topics');
    return topics;
  }

  /** The `.tix` file's runs; throws when it is missing or not JSON. */
  private parseTopics(): Map<string, number[]> {
    const text = this.files.readText(`${this.name}.tix`);
    assert(text !== null, 'a segment opened from its index has a topic index');
    return new Map(Object.entries(JSON.parse(text) as Record<string, number[]>));
  }
}
