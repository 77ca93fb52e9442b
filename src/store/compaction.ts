/**
 * Compaction by key, on disk: every record the caller's rule says is superseded is written
 * again as its header alone, marked compacted (record.ts), and the segment is replaced whole
 * by a copy: written beside it, synced, renamed over it. Positions never change.
 *
 * The work is cut into slices (`compactSliceRecords`, `compactSliceBytes`), one per call, so
 * that no turn of the event loop does more than a slice whatever the size of the store; the
 * node runs one slice per tick. Each segment remembers how far it was judged
 * (`compactedBefore`) and whether a record of it was superseded since (`supersededSince`,
 * set as newer messages of its keys are applied): a segment is read again only from where
 * its last judgement stopped, or whole when something in it was superseded since. The
 * segment being written (the store's last) is never touched, nor one that changed while its
 * copy was written: that copy is dropped and the segment judged again later.
 *
 * A power cut at any point leaves the old file or the synced copy under the segment's name,
 * never neither nor a torn copy: the copy is synced before it takes the name, and takes it
 * in one rename over the old file (whose index files went first; they are rebuilt by a scan).
 */
import type { StoreFiles } from './files.ts';
import type { StoredMessage } from './record.ts';
import { Segment } from './segment.ts';

/** Records judged or copied per slice at most... */
export const compactSliceRecords = 2048;
/** ...and payload bytes read per slice at most (one record at least). */
export const compactSliceBytes = 1 << 20;

export type SupersededRule = (message: StoredMessage) => boolean;

/** The message as compaction leaves it: header and key, no payload. */
export function compactedCopy(message: StoredMessage): StoredMessage {
  return { ...message, payload: new Uint8Array(0), compacted: true };
}

/** What compaction needs of the store. */
export interface CompactionHost {
  readonly files: StoreFiles;
  /** Held segments, ascending. */
  segments(): readonly Segment[];
  /** Held, not the last segment (the one written), and not appended to since its flush. */
  isSealed(segment: Segment): boolean;
  /** Up to `limit` messages of `segment` from `from`; a damaged record ends it (and is cut). */
  readSegment(segment: Segment, from: number, limit: number, bytesMax: number): StoredMessage[];
  /** Puts `copy` where `segment` was, in one synchronous step. */
  replace(segment: Segment, copy: Segment): void;
}

export interface CompactionSlice {
  /** Whether the slice did any work: when false, nothing is due until the next cut. */
  readonly worked: boolean;
  /** The segment replaced by its compacted copy, when this slice ended one. */
  readonly rewritten: { readonly first: number; readonly last: number } | null;
}

interface Job {
  readonly segment: Segment;
  /** The cut judged: positions before it, up to `end`. */
  readonly before: number;
  readonly end: number;
  /** The segment as when the job began: a change drops the job. */
  readonly last: number;
  readonly sizeBytes: number;
  /** The next position to read. */
  cursor: number;
  /** The compacted copy being written, once a record was found due. */
  copy: Segment | null;
}

const idle: CompactionSlice = { worked: false, rewritten: null };
const worked: CompactionSlice = { worked: true, rewritten: null };

export class Compactor {
  private job: Job | null = null;
  private running = false;

  constructor(private readonly host: CompactionHost) {}

  /**
   * One slice of work towards compacting every sealed segment to the cut `before` by
   * `superseded`: a bounded read (and write) of one segment, then, when the copy is whole,
   * its sync (awaited off the event loop) and the rename. One slice at a time: a call while
   * another one waits on its sync does nothing.
   */
  async slice(before: number, superseded: SupersededRule): Promise<CompactionSlice> {
    if (this.running) return idle;
    this.running = true;
    try {
      return await this.step(before, superseded);
    } catch (error) {
      // A failed read, write or sync leaves the copy behind what it counts (a write that
      // failed is not tried again): started afresh on a later slice rather than continued.
      if (this.job !== null) this.drop(this.job);
      throw error;
    } finally {
      this.running = false;
    }
  }

  private async step(before: number, superseded: SupersededRule): Promise<CompactionSlice> {
    let job = this.job;
    if (job !== null && !this.unchanged(job)) {
      this.drop(job);
      job = null;
    }
    job ??= this.begin(before);
    if (job === null) return idle;
    const due = (message: StoredMessage) =>
      message.position < job.before && message.compacted !== true && superseded(message);
    const { segment } = job;
    if (job.copy === null) {
      const limit = Math.min(compactSliceRecords, job.end - job.cursor + 1);
      const page = this.host.readSegment(segment, job.cursor, limit, compactSliceBytes);
      if (page.length === 0 || !this.unchanged(job)) {
        this.drop(job); // damaged, and cut: judged again later
        return worked;
      }
      if (page.some(due)) {
        // Written from the start: what precedes the first record due is read a second time.
        const copyName = `${segment.name}.compacting`;
        this.host.files.remove(copyName);
        job.copy = new Segment(this.host.files, segment.first, copyName);
        job.cursor = segment.first;
        return worked;
      }
      job.cursor += page.length;
      if (job.cursor > job.end) this.judged(job, segment);
      return worked;
    }
    const { copy } = job;
    const limit = Math.min(compactSliceRecords, job.last - job.cursor + 1);
    const page = this.host.readSegment(segment, job.cursor, limit, compactSliceBytes);
    if (page.length === 0 || !this.unchanged(job)) {
      this.drop(job);
      return worked;
    }
    for (const message of page) copy.append(due(message) ? compactedCopy(message) : message);
    copy.flush();
    job.cursor += page.length;
    if (job.cursor <= job.last) return worked;
    return this.finish(job, copy);
  }

  /** The copy is whole: synced, then renamed over the segment, then the directory synced. */
  private async finish(job: Job, copy: Segment): Promise<CompactionSlice> {
    const mark = copy.syncMark();
    await this.host.files.sync([copy.name]);
    if (!this.unchanged(job)) {
      this.drop(job);
      return worked;
    }
    const { segment } = job;
    segment.removeIndexFiles();
    copy.renameTo(segment.name);
    copy.synced(mark);
    copy.supersededSince = segment.supersededSince;
    copy.compactedBefore = Math.max(segment.compactedBefore, job.end + 1);
    this.host.replace(segment, copy);
    this.job = null;
    copy.saveIndex();
    copy.releaseTopics();
    // The rename itself: durable before the WAL may be compacted past what the copy keeps.
    await this.host.files.sync([copy.name]);
    return { worked: true, rewritten: { first: copy.first, last: copy.last } };
  }

  /** The first sealed segment with positions before the cut not judged under it. */
  private begin(before: number): Job | null {
    for (const segment of this.host.segments()) {
      if (segment.first >= before) break;
      const end = Math.min(before - 1, segment.last);
      if (!segment.supersededSince && segment.compactedBefore > end) continue;
      if (!this.host.isSealed(segment)) continue;
      const from = segment.supersededSince
        ? segment.first
        : Math.max(segment.first, segment.compactedBefore);
      // Marks set from here on are for this job's successor: this one may have read past them.
      segment.supersededSince = false;
      this.job = {
        segment,
        before,
        end,
        last: segment.last,
        sizeBytes: segment.sizeBytes,
        cursor: from,
        copy: null,
      };
      return this.job;
    }
    return null;
  }

  /** Judged whole, nothing due: remembered, so it is not read again for this cut. */
  private judged(job: Job, segment: Segment): void {
    segment.compactedBefore = Math.max(segment.compactedBefore, job.end + 1);
    this.job = null;
  }

  private unchanged(job: Job): boolean {
    const { segment } = job;
    return (
      this.host.isSealed(segment) &&
      segment.last === job.last &&
      segment.sizeBytes === job.sizeBytes
    );
  }

  /** Forgets the job (its copy removed): the segment, if still held, is judged again. */
  private drop(job: Job): void {
    if (job.copy !== null) job.copy.remove();
    job.segment.supersededSince = true;
    if (this.job === job) this.job = null;
  }
}
