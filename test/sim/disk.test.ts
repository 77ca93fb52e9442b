// The checkers' mirror of a node's durable state keeps what they rely on: equal log prefixes
// have equal prefix hashes, across truncating appends, compaction and snapshots.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeConfiguration } from '../../src/raft/config.ts';
import type { Entry, Snapshot } from '../../src/raft/types.ts';
import { SimDisk } from '../../src/sim/disk.ts';

const config = { voters: ['n1', 'n2', 'n3'], learners: [] };

function log(terms: number[]): Entry[] {
  return terms.map((term, offset) => ({
    index: offset + 1,
    term,
    kind: offset === 0 ? 'config' : 'noop',
    data: offset === 0 ? encodeConfiguration(config) : new Uint8Array(),
  }));
}

test('prefix hashes are equal exactly when the log prefixes are equal', () => {
  const terms = fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 12 });
  fc.assert(
    fc.property(terms, terms, (left, right) => {
      const sortedLeft = [...left].sort();
      const sortedRight = [...right].sort();
      const a = new SimDisk();
      const b = new SimDisk();
      a.append(log(sortedLeft));
      b.append(log(sortedRight));
      for (let index = 1; index <= Math.min(a.lastIndex, b.lastIndex); index++) {
        const samePrefix = sortedLeft.slice(0, index).join() === sortedRight.slice(0, index).join();
        assert.equal(a.prefixHashAt(index) === b.prefixHashAt(index), samePrefix);
      }
    }),
  );
});

test('truncating appends, compaction and snapshots keep prefix hashes consistent', () => {
  const disk = new SimDisk();
  disk.append(log([1, 1, 2, 2]));
  const reference = new SimDisk();
  reference.append(log([1, 1, 3]));
  disk.append(log([1, 1, 3]).slice(2));
  assert.equal(disk.lastIndex, 3);
  assert.equal(disk.prefixHashAt(3), reference.prefixHashAt(3));
  const snapshot: Snapshot = { meta: { index: 2, term: 1, config }, data: new Uint8Array() };
  disk.compact(snapshot);
  assert.equal(disk.snapshotIndex, 2);
  assert.equal(disk.prefixHashAt(2), reference.prefixHashAt(2));
  assert.equal(disk.prefixHashAt(3), reference.prefixHashAt(3));
  assert.equal(disk.prefixHashAt(1), null, 'compacted entries are gone');
  const installed = new SimDisk();
  installed.append(log([1, 2, 2]));
  installed.installSnapshot(snapshot, reference.prefixHashAt(2) as number);
  assert.equal(installed.lastIndex, 2, 'a leader snapshot replaces the whole log');
});
