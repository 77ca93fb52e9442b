// The leader's placements are kept as ranges of consecutive seqs (seq-ranges.ts) rather than
// one map entry per message. Proved against naive twins that keep one entry per seq: random
// notes of stretches (overlapping ones, retries of parts, several clients, anonymous
// messages), applies in any order and term changes must answer every lookup the same.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { ClientMessage } from '../../src/broadcast/batch.ts';
import { forEachStretch, Placements } from '../../src/broadcast/placements.ts';
import { SeqRanges } from '../../src/broadcast/seq-ranges.ts';

const seqMax = 60;

test('SeqRanges answers as a map of seqs does, whatever is added and removed', () => {
  const operation = fc.oneof(
    fc.record({
      kind: fc.constant('add' as const),
      firstSeq: fc.integer({ min: 1, max: seqMax }),
      count: fc.integer({ min: 1, max: 12 }),
    }),
    fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }),
  );
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 40 }), (operations) => {
      const ranges = new SeqRanges();
      const naive = new Map<number, number>();
      const added: [number, number][] = [];
      operations.forEach((operation, value) => {
        if (operation.kind === 'add') {
          const expected: [number, number][] = [];
          for (let seq = operation.firstSeq; seq < operation.firstSeq + operation.count; seq++) {
            if (naive.has(seq)) continue;
            naive.set(seq, value);
            const last = expected[expected.length - 1];
            if (last !== undefined && last[0] + last[1] === seq) last[1]++;
            else expected.push([seq, 1]);
          }
          const reported: [number, number][] = [];
          ranges.addUncovered(operation.firstSeq, operation.count, value, (first, count) =>
            reported.push([first, count]),
          );
          assert.deepEqual(reported, expected, 'each uncovered gap is added as one range');
          added.push(...reported);
        } else if (added.length > 0) {
          const [first, count] = added.splice(operation.pick % added.length, 1)[0] as [
            number,
            number,
          ];
          ranges.remove(first, count);
          for (let seq = first; seq < first + count; seq++) naive.delete(seq);
        }
        assert.equal(ranges.size, naive.size);
        for (let seq = 0; seq <= seqMax + 13; seq++) assert.equal(ranges.get(seq), naive.get(seq));
        for (let first = 1; first <= seqMax; first += 3) {
          for (const count of [1, 2, 5]) {
            let any = false;
            for (let seq = first; seq < first + count; seq++) any ||= naive.has(seq);
            assert.equal(ranges.overlaps(first, count), any, `overlaps(${first}, ${count})`);
          }
        }
      });
    }),
    { numRuns: 300 },
  );
});

test('SeqRanges refuses to remove what was not added whole', () => {
  const ranges = new SeqRanges();
  ranges.addUncovered(5, 10, 1, () => {});
  assert.throws(() => ranges.remove(6, 9));
  assert.throws(() => ranges.remove(5, 9));
  ranges.remove(5, 10);
  assert.equal(ranges.size, 0);
});

/** The placements as they were kept before: one map entry per (clientId, seq). */
class NaivePlacements {
  private term = 0;
  private readonly indexByMessage = new Map<string, number>();
  private readonly messagesByIndex = new Map<number, string[]>();

  indexOf(term: number, message: ClientMessage): number | undefined {
    if (term !== this.term || message.clientId === '') return undefined;
    return this.indexByMessage.get(`${message.clientId} ${message.seq}`);
  }

  note(term: number, index: number, messages: readonly ClientMessage[]): void {
    if (term !== this.term) this.clear(term);
    const placed = this.messagesByIndex.get(index) ?? [];
    for (const message of messages) {
      const key = `${message.clientId} ${message.seq}`;
      if (message.clientId === '' || this.indexByMessage.has(key)) continue;
      this.indexByMessage.set(key, index);
      placed.push(key);
    }
    if (placed.length > 0) this.messagesByIndex.set(index, placed);
  }

  applied(index: number): void {
    for (const key of this.messagesByIndex.get(index) ?? []) this.indexByMessage.delete(key);
    this.messagesByIndex.delete(index);
  }

  clear(term: number): void {
    this.term = term;
    this.indexByMessage.clear();
    this.messagesByIndex.clear();
  }

  get size(): number {
    return this.indexByMessage.size;
  }
}

const clients = ['a', 'b', ''];

function messagesOf(stretches: readonly [number, number, number][]): ClientMessage[] {
  const messages: ClientMessage[] = [];
  for (const [client, firstSeq, count] of stretches) {
    const clientId = clients[client] as string;
    for (let offset = 0; offset < count; offset++) {
      const seq = clientId === '' ? 0 : firstSeq + offset;
      messages.push({ clientId, seq, topic: '', payload: new Uint8Array(0) });
    }
  }
  return messages;
}

test('Placements answer as the per-message table does, across notes, applies and terms', () => {
  const stretch = fc.tuple(
    fc.integer({ min: 0, max: clients.length - 1 }),
    fc.integer({ min: 1, max: 30 }),
    fc.integer({ min: 1, max: 6 }),
  );
  const operation = fc.oneof(
    fc.record({
      kind: fc.constant('note' as const),
      term: fc.integer({ min: 1, max: 3 }),
      index: fc.integer({ min: 1, max: 8 }),
      stretches: fc.array(stretch, { minLength: 1, maxLength: 4 }),
    }),
    fc.record({ kind: fc.constant('applied' as const), index: fc.integer({ min: 1, max: 8 }) }),
  );
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 30 }), (operations) => {
      const placements = new Placements();
      const naive = new NaivePlacements();
      let term = 1;
      for (const operation of operations) {
        if (operation.kind === 'note') {
          term = Math.max(term, operation.term);
          const messages = messagesOf(operation.stretches);
          placements.note(term, operation.index, messages);
          naive.note(term, operation.index, messages);
        } else {
          placements.applied(operation.index);
          naive.applied(operation.index);
        }
        assert.equal(placements.size, naive.size);
        for (const clientId of clients) {
          for (let seq = 0; seq <= 40; seq++) {
            const message = { clientId, seq, topic: '', payload: new Uint8Array(0) };
            for (const asked of [term, term + 1]) {
              assert.equal(placements.indexOf(asked, message), naive.indexOf(asked, message));
            }
            let any = false;
            for (let at = seq; at < seq + 3; at++) {
              any ||= naive.indexOf(term, { ...message, seq: at }) !== undefined;
            }
            assert.equal(placements.placesAny(term, clientId, seq, 3), clientId !== '' && any);
          }
        }
      }
    }),
    { numRuns: 200 },
  );
});

test('forEachStretch cuts at a new client and at a seq that does not follow', () => {
  const seen: [string, number, number, number][] = [];
  const messages = messagesOf([
    [0, 1, 3],
    [0, 5, 2],
    [2, 0, 2],
    [1, 7, 1],
  ]);
  forEachStretch(messages, (clientId, firstSeq, start, end) =>
    seen.push([clientId, firstSeq, start, end]),
  );
  assert.deepEqual(seen, [
    ['a', 1, 0, 3],
    ['a', 5, 3, 5],
    ['b', 7, 7, 8],
  ]);
});
