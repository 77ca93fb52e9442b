// Proves which committed entries of a Ready the node delivers before the Ready's write: on
// generated Readies (a deliverable range with configuration entries here and there, an
// appended range that may start inside it, with or without a snapshot), exactly the entries
// below the first appended one and before the first configuration entry, none with a
// snapshot, compared with a naive twin.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { deliverableBeforeWrite } from '../../src/broadcast/node.ts';
import type { Entry, Ready, Snapshot } from '../../src/raft/types.ts';

function entries(first: number, count: number, configAt: ReadonlySet<number> = new Set()): Entry[] {
  return Array.from({ length: count }, (_, at) => ({
    index: first + at,
    term: 1,
    kind: configAt.has(first + at) ? ('config' as const) : ('normal' as const),
    data: new Uint8Array(0),
  }));
}

function readyOf(deliver: Entry[], append: Entry[], snapshot: Snapshot | null): Ready {
  return {
    softState: null,
    hardState: null,
    snapshot,
    entriesToAppend: append,
    messagesToSend: [],
    entriesToDeliver: deliver,
    readStates: [],
  };
}

const snapshot: Snapshot = {
  meta: { index: 1, term: 1, config: { voters: ['n1'], learners: [] } },
  data: new Uint8Array(0),
} as unknown as Snapshot;

test('a Ready that appends nothing delivers everything before its (empty) write', () => {
  assert.equal(deliverableBeforeWrite(readyOf(entries(5, 3), [], null)), 3);
});

test('a leader whose followers committed its unwritten entries delivers them after', () => {
  // Entries 5..9 committed; 8 and 9 are appended by this very Ready.
  assert.equal(deliverableBeforeWrite(readyOf(entries(5, 5), entries(8, 4), null)), 3);
});

test('a configuration entry and what follows it wait for the write', () => {
  assert.equal(deliverableBeforeWrite(readyOf(entries(5, 4, new Set([7])), [], null)), 2);
});

test('a snapshot install delivers nothing before its write', () => {
  assert.equal(deliverableBeforeWrite(readyOf(entries(5, 3), [], snapshot)), 0);
});

test('the count matches a naive twin on generated Readies', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 50 }),
      fc.integer({ min: 0, max: 20 }),
      fc.option(fc.integer({ min: 1, max: 80 }), { nil: null }),
      fc.integer({ min: 0, max: 20 }),
      fc.boolean(),
      fc.uniqueArray(fc.integer({ min: 1, max: 80 }), { maxLength: 3 }),
      (deliverFirst, deliverCount, appendFirst, appendCount, withSnapshot, configIndexes) => {
        const deliver = entries(deliverFirst, deliverCount, new Set(configIndexes));
        const append = appendFirst === null ? [] : entries(appendFirst, appendCount);
        const ready = readyOf(deliver, append, withSnapshot ? snapshot : null);
        const firstAppended = append[0]?.index ?? Number.POSITIVE_INFINITY;
        const firstConfig = deliver.findIndex((e) => e.kind === 'config');
        const beforeConfig = firstConfig === -1 ? deliver : deliver.slice(0, firstConfig);
        const naive = withSnapshot ? 0 : beforeConfig.filter((e) => e.index < firstAppended).length;
        assert.equal(deliverableBeforeWrite(ready), naive);
      },
    ),
  );
});
