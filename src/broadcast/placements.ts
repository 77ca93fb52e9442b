/**
 * What this node appended as leader in its current term and has not applied yet, message by
 * message: (clientId, seq) -> index. A copy of such a message appended again could only be
 * applied as a duplicate, since the placed one commits first (a leader never truncates its
 * own term's entries, Raft §5.3). The outbox answers such a copy with the index it already
 * has, so retries (the SDK's across nodes, the nodes' own after a retry interval) add no log
 * entries while commits are slow, instead of lengthening the log in front of every message.
 */
import { assert } from '../util/assert.ts';
import type { ClientMessage } from './batch.ts';

export class Placements {
  private term = 0;
  private readonly indexByMessage = new Map<string, number>();
  private readonly keysByIndex = new Map<number, string[]>();

  get size(): number {
    return this.indexByMessage.size;
  }

  /** Where this term placed the message, if it did and the entry is not applied yet. */
  indexOf(term: number, message: ClientMessage): number | undefined {
    if (term !== this.term || message.clientId === '') return undefined;
    return this.indexByMessage.get(keyOf(message));
  }

  /** The leader appended these messages at `index` in `term`. */
  note(term: number, index: number, messages: readonly ClientMessage[]): void {
    assert(Number.isSafeInteger(index) && index >= 1, 'placements are at indexes >= 1');
    if (term !== this.term) this.clear(term);
    const keys = this.keysByIndex.get(index) ?? [];
    for (const message of messages) {
      // Anonymous messages have no (clientId, seq) to tell copies apart: each is its own.
      if (message.clientId === '') continue;
      const key = keyOf(message);
      if (this.indexByMessage.has(key)) continue; // the earlier copy is the one that counts
      this.indexByMessage.set(key, index);
      keys.push(key);
    }
    if (keys.length > 0) this.keysByIndex.set(index, keys);
  }

  /** The entry at `index` is applied: what it holds is decided, later copies go to the log. */
  applied(index: number): void {
    const keys = this.keysByIndex.get(index);
    if (keys === undefined) return;
    this.keysByIndex.delete(index);
    for (const key of keys) {
      if (this.indexByMessage.get(key) === index) this.indexByMessage.delete(key);
    }
  }

  /** A new term (or a new leader): nothing placed before is known to stay. */
  clear(term: number): void {
    this.term = term;
    this.indexByMessage.clear();
    this.keysByIndex.clear();
  }
}

function keyOf(message: ClientMessage): string {
  return `${message.seq} ${message.clientId}`;
}
