/**
 * What this node appended as leader in its current term and has not applied yet:
 * (clientId, seq) -> index. A copy of such a message appended again could only be applied
 * as a duplicate, since the placed one commits first (a leader never truncates its own
 * term's entries, Raft §5.3). The outbox answers such a copy with the index it already has,
 * so retries (the SDK's across nodes, the nodes' own after a retry interval) add no log
 * entries while commits are slow, instead of lengthening the log in front of every message.
 *
 * Kept by stretch, not by message: consecutive seqs of one client appended at one index are
 * one range (seq-ranges.ts), noted, looked up and forgotten as one.
 */
import { assert } from '../util/assert.ts';
import type { ClientMessage } from './batch.ts';
import { SeqRanges } from './seq-ranges.ts';

/** A stretch of one client's seqs placed at an index: [clientId, firstSeq, count]. */
type PlacedRange = [clientId: string, firstSeq: number, count: number];

/**
 * Calls `visit` with each stretch of `messages`: consecutive messages of one client with
 * consecutive seqs, as [start, end) offsets. Anonymous messages are left out: they have no
 * (clientId, seq) to tell copies apart, each is its own.
 */
export function forEachStretch(
  messages: readonly ClientMessage[],
  visit: (clientId: string, firstSeq: number, start: number, end: number) => void,
): void {
  let start = 0;
  while (start < messages.length) {
    const first = messages[start] as ClientMessage;
    let end = start + 1;
    if (first.clientId === '') {
      start = end;
      continue;
    }
    while (end < messages.length) {
      const next = messages[end] as ClientMessage;
      if (next.clientId !== first.clientId || next.seq !== first.seq + (end - start)) break;
      end++;
    }
    visit(first.clientId, first.seq, start, end);
    start = end;
  }
}

export class Placements {
  private term = 0;
  private count = 0;
  private readonly rangesByClient = new Map<string, SeqRanges>();
  private readonly rangesByIndex = new Map<number, PlacedRange[]>();

  /** Placed messages not applied yet. */
  get size(): number {
    return this.count;
  }

  /** Where this term placed the message, if it did and the entry is not applied yet. */
  indexOf(term: number, message: ClientMessage): number | undefined {
    if (term !== this.term || message.clientId === '') return undefined;
    return this.rangesByClient.get(message.clientId)?.get(message.seq);
  }

  /** Whether this term placed any of the client's seqs [firstSeq, firstSeq + count). */
  placesAny(term: number, clientId: string, firstSeq: number, count: number): boolean {
    if (term !== this.term || clientId === '') return false;
    return this.rangesByClient.get(clientId)?.overlaps(firstSeq, count) ?? false;
  }

  /** The leader appended these messages at `index` in `term`. */
  note(term: number, index: number, messages: readonly ClientMessage[]): void {
    assert(Number.isSafeInteger(index) && index >= 1, 'placements are at indexes >= 1');
    if (term !== this.term) this.clear(term);
    let placed = this.rangesByIndex.get(index);
    forEachStretch(messages, (clientId, firstSeq, start, end) => {
      let ranges = this.rangesByClient.get(clientId);
      if (ranges === undefined) {
        ranges = new SeqRanges();
        this.rangesByClient.set(clientId, ranges);
      }
      // Seqs placed already keep their index: the earlier copy is the one that counts.
      ranges.addUncovered(firstSeq, end - start, index, (first, count) => {
        if (placed === undefined) {
          placed = [];
          this.rangesByIndex.set(index, placed);
        }
        placed.push([clientId, first, count]);
        this.count += count;
      });
    });
  }

  /** The entry at `index` is applied: what it holds is decided, later copies go to the log. */
  applied(index: number): void {
    const placed = this.rangesByIndex.get(index);
    if (placed === undefined) return;
    this.rangesByIndex.delete(index);
    for (const [clientId, firstSeq, count] of placed) {
      const ranges = this.rangesByClient.get(clientId);
      assert(ranges !== undefined, 'a placed range is listed under its client');
      ranges.remove(firstSeq, count);
      this.count -= count;
      if (ranges.rangeCount === 0) this.rangesByClient.delete(clientId);
    }
    assert(this.count >= 0, 'never fewer than no placements');
  }

  /** A new term (or a new leader): nothing placed before is known to stay. */
  clear(term: number): void {
    this.term = term;
    this.count = 0;
    this.rangesByClient.clear();
    this.rangesByIndex.clear();
  }
}
