// The pending table hands the ring of a client window that empties to the next client that
// comes (pending.ts spareRing). Proved against a Map per client over random histories of
// three clients whose windows fill, slide and empty in turn: no seq of one client is ever
// found in another's window, and every lookup, size and lowest seq matches the Maps.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type PendingMessage, PendingTable } from '../../src/broadcast/pending.ts';

const clients = ['a', 'b', 'c'] as const;

function entryFor(clientId: string, seq: number): PendingMessage {
  return {
    message: { clientId, seq, topic: '', payload: new Uint8Array(0) },
    ownSession: false,
    waiter: null,
    otherWaiters: null,
    lastSentMs: 0,
    proposedIndex: null,
    queued: false,
    held: false,
    copiesSent: 0,
  };
}

const operation = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('run' as const),
      client: fc.constantFrom(...clients),
      seq: fc.oneof(
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 2 ** 32 - 40, max: 2 ** 32 + 40 }),
      ),
      count: fc.integer({ min: 1, max: 40 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('deleteLowest' as const),
      client: fc.constantFrom(...clients),
      count: fc.integer({ min: 1, max: 60 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('empty' as const),
      client: fc.constantFrom(...clients),
    }),
  },
);

test("a reused ring never shows one client's seqs to another", () => {
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 60 }), (operations) => {
      const table = new PendingTable();
      const naive = new Map<string, Map<number, PendingMessage>>(
        clients.map((c) => [c, new Map()]),
      );
      const probes = new Set<number>();
      for (const next of operations) {
        const mine = naive.get(next.client) as Map<number, PendingMessage>;
        if (next.kind === 'run') {
          for (let seq = next.seq; seq < next.seq + next.count; seq++) {
            probes.add(seq);
            if (mine.has(seq)) continue;
            const entry = entryFor(next.client, seq);
            table.add(entry);
            mine.set(seq, entry);
          }
        } else {
          const seqs = [...mine.keys()].sort((x, y) => x - y);
          const gone = next.kind === 'empty' ? seqs : seqs.slice(0, next.count);
          for (const seq of gone) {
            table.delete(mine.get(seq) as PendingMessage);
            mine.delete(seq);
          }
        }
        for (const client of clients) {
          const want = naive.get(client) as Map<number, PendingMessage>;
          const window = table.forClient(client);
          assert.equal(window === undefined, want.size === 0, `client ${client} has a window`);
          for (const seq of probes) assert.equal(table.get(client, seq), want.get(seq));
          if (window === undefined) continue;
          assert.equal(window.size, want.size);
          assert.equal(window.lowestSeq(), Math.min(...want.keys()));
          assert.deepEqual(new Set(window.values()), new Set(want.values()));
        }
      }
    }),
    { numRuns: 200 },
  );
});
