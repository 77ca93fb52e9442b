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
  private count = 0;
  /** clientId -> seq -> index: no key string made per message, as `${seq} ${clientId}` was. */
  private readonly indexByMessage = new Map<string, Map<number, number>>();
  private readonly messagesByIndex = new Map<number, ClientMessage[]>();

  get size(): number {
    return this.count;
  }

  /** Where this term placed the message, if it did and the entry is not applied yet. */
  indexOf(term: number, message: ClientMessage): number | undefined {
    if (term !== this.term || message.clientId === '') return undefined;
    return this.indexByMessage.get(message.clientId)?.get(message.seq);
  }

  /** The leader appended these messages at `index` in `term`. */
  note(term: number, index: number, messages: readonly ClientMessage[]): void {
    assert(Number.isSafeInteger(index) && index >= 1, 'placements are at indexes >= 1');
    if (term !== this.term) this.clear(term);
    const placed = this.messagesByIndex.get(index) ?? [];
    let bySeq: Map<number, number> | undefined;
    let bySeqClientId: string | null = null;
    for (const message of messages) {
      // Anonymous messages have no (clientId, seq) to tell copies apart: each is its own.
      if (message.clientId === '') continue;
      // A batch is mostly one client's run: look its map up once, not per message.
      if (bySeq === undefined || bySeqClientId !== message.clientId) {
        bySeqClientId = message.clientId;
        bySeq = this.indexByMessage.get(message.clientId);
        if (bySeq === undefined) {
          bySeq = new Map();
          this.indexByMessage.set(message.clientId, bySeq);
        }
      }
      if (bySeq.has(message.seq)) continue; // the earlier copy is the one that counts
      bySeq.set(message.seq, index);
      this.count++;
      placed.push(message);
    }
    if (placed.length > 0) this.messagesByIndex.set(index, placed);
  }

  /** The entry at `index` is applied: what it holds is decided, later copies go to the log. */
  applied(index: number): void {
    const placed = this.messagesByIndex.get(index);
    if (placed === undefined) return;
    this.messagesByIndex.delete(index);
    for (const message of placed) {
      const bySeq = this.indexByMessage.get(message.clientId);
      if (bySeq?.get(message.seq) !== index) continue;
      bySeq.delete(message.seq);
      this.count--;
      if (bySeq.size === 0) this.indexByMessage.delete(message.clientId);
    }
  }

  /** A new term (or a new leader): nothing placed before is known to stay. */
  clear(term: number): void {
    this.term = term;
    this.count = 0;
    this.indexByMessage.clear();
    this.messagesByIndex.clear();
  }
}
