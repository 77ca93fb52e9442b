/**
 * One client's seqs, kept as disjoint ranges of consecutive seqs that each carry a value
 * (the leader's placements: the log index a run of seqs was appended at). A run of a
 * thousand messages is one range, so noting, finding and forgetting it costs a binary
 * search and a splice among the ranges in flight, not a thousand map entries.
 *
 * Invariants: ranges are sorted by first seq, never empty, never overlap; a range is added
 * and removed whole (adjacent ranges are not merged, so each stays the unit its caller
 * recorded and can forget).
 */
import { assert } from '../util/assert.ts';

export class SeqRanges {
  private readonly firsts: number[] = [];
  private readonly counts: number[] = [];
  private readonly values: number[] = [];
  private seqCount = 0;

  /** Seqs covered, over every range. */
  get size(): number {
    return this.seqCount;
  }

  get rangeCount(): number {
    return this.firsts.length;
  }

  /** The first range that ends after `seq` (the one holding it, or the next one). */
  private firstEndingAfter(seq: number): number {
    const { firsts, counts } = this;
    let low = 0;
    let high = firsts.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((firsts[middle] as number) + (counts[middle] as number) <= seq) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The value of the range holding `seq`, if any. */
  get(seq: number): number | undefined {
    const at = this.firstEndingAfter(seq);
    if (at < this.firsts.length && (this.firsts[at] as number) <= seq) return this.values[at];
    return undefined;
  }

  /** Whether any seq of [firstSeq, firstSeq + count) is covered. */
  overlaps(firstSeq: number, count: number): boolean {
    assert(count >= 1, 'a stretch holds at least one seq');
    const at = this.firstEndingAfter(firstSeq);
    return at < this.firsts.length && (this.firsts[at] as number) < firstSeq + count;
  }

  /**
   * Covers the seqs of [firstSeq, firstSeq + count) not covered yet with `value`; seqs
   * already covered keep theirs. Calls `added` with each range made, in seq order.
   */
  addUncovered(
    firstSeq: number,
    count: number,
    value: number,
    added: (firstSeq: number, count: number) => void,
  ): void {
    assert(Number.isSafeInteger(firstSeq) && count >= 1, 'a stretch of safe seqs');
    const endSeq = firstSeq + count;
    let at = this.firstEndingAfter(firstSeq);
    let cursor = firstSeq;
    while (cursor < endSeq) {
      const nextFirst = at < this.firsts.length ? (this.firsts[at] as number) : endSeq;
      if (nextFirst > cursor) {
        const gapEnd = Math.min(nextFirst, endSeq);
        this.insertAt(at, cursor, gapEnd - cursor, value);
        added(cursor, gapEnd - cursor);
        cursor = gapEnd;
      } else {
        cursor = nextFirst + (this.counts[at] as number);
      }
      at++;
    }
  }

  private insertAt(at: number, firstSeq: number, count: number, value: number): void {
    if (at === this.firsts.length) {
      this.firsts.push(firstSeq);
      this.counts.push(count);
      this.values.push(value);
    } else {
      this.firsts.splice(at, 0, firstSeq);
      this.counts.splice(at, 0, count);
      this.values.splice(at, 0, value);
    }
    this.seqCount += count;
  }

  /** Removes the range that `addUncovered` reported as [firstSeq, firstSeq + count). */
  remove(firstSeq: number, count: number): void {
    const at = this.firstEndingAfter(firstSeq);
    assert(this.firsts[at] === firstSeq, 'a range is removed whole, as it was added');
    assert(this.counts[at] === count, 'a range is removed with its count');
    this.firsts.splice(at, 1);
    this.counts.splice(at, 1);
    this.values.splice(at, 1);
    this.seqCount -= count;
    assert(this.seqCount >= 0, 'never fewer than no seqs');
  }
}
