// The simulated disk and application keep what the checkers rely on: equal log prefixes have
// equal prefix hashes across compaction and snapshots, a restart sees the newest application
// state, retries take no position, and an application snapshot restores the same state while
// corrupt snapshot data is refused with a typed error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeBatch } from '../../src/broadcast/batch.ts';
import { encodeConfiguration } from '../../src/raft/config.ts';
import type { Entry } from '../../src/raft/types.ts';
import { SimApp, SnapshotDataError } from '../../src/sim/app.ts';
import { SimDisk } from '../../src/sim/disk.ts';
import { messageFor } from '../../src/sim/workload.ts';

const config = { voters: ['n1', 'n2', 'n3'], learners: [] };

function log(terms: number[]): Entry[] {
  return terms.map((term, offset) => ({
    index: offset + 1,
    term,
    kind: offset === 0 ? 'config' : 'noop',
    data: offset === 0 ? encodeConfiguration(config) : new Uint8Array(),
  }));
}

function batch(index: number, sends: Array<[number, number]>): Entry {
  const messages = sends.map(([client, seq]) => messageFor(client, seq, 3, 40));
  return { index, term: 1, kind: 'normal', data: encodeBatch(messages, 0) };
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
  const app = SimApp.empty();
  for (const entry of log([1, 1, 3]).slice(0, 2)) app.apply(entry);
  const snapshot = app.snapshot();
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

test('a restart resumes from the newer of snapshot and application checkpoint', () => {
  const disk = new SimDisk();
  disk.append(log([1, 1, 1, 1]));
  const app = SimApp.empty();
  for (const entry of log([1, 1, 1])) app.apply(entry);
  assert.equal(disk.persisted().appliedIndex, 0);
  disk.appCheckpoint = app.snapshot();
  assert.equal(disk.persisted().appliedIndex, 3);
  assert.equal(disk.appStateForRestart()?.meta.index, 3);
  assert.equal(disk.persisted().entries.length, 4, 'the log is untouched by a checkpoint');
});

test('the application gives positions to new messages only, and its snapshot restores it', () => {
  const app = SimApp.empty();
  const entries = [
    log([1])[0] as Entry,
    batch(2, [
      [0, 1],
      [1, 1],
    ]),
    batch(3, [
      [0, 1],
      [0, 2],
    ]),
  ];
  const outcomes = entries.flatMap((entry) => app.apply(entry).map((applied) => applied.outcome));
  assert.deepEqual(outcomes, [
    { kind: 'delivered', position: 1 },
    { kind: 'delivered', position: 2 },
    { kind: 'duplicate', position: 1 },
    { kind: 'delivered', position: 3 },
  ]);
  assert.deepEqual(app.config, config);
  const restored = SimApp.fromSnapshot(app.snapshot());
  assert.equal(restored.lastPosition, 3);
  assert.equal(restored.chainHash, app.chainHash);
  assert.equal(restored.expectedSeq('c0'), 3);
  assert.equal(restored.expectedSeq('c1'), 2);
  assert.equal(restored.appliedIndex, 3);
  assert.throws(() => app.apply(batch(5, [[1, 2]])), /applied in log order/);
});

test('corrupt snapshot data is refused with SnapshotDataError', () => {
  const app = SimApp.empty();
  app.apply(log([1])[0] as Entry);
  const snapshot = app.snapshot();
  const cases = [
    { ...snapshot, data: new Uint8Array(3) },
    { ...snapshot, data: Uint8Array.from([9, ...snapshot.data.subarray(1)]) },
    { ...snapshot, meta: { ...snapshot.meta, index: 7 } },
    { ...snapshot, data: Uint8Array.from([...snapshot.data.subarray(0, 21), 123]) },
  ];
  for (const corrupt of cases) assert.throws(() => SimApp.fromSnapshot(corrupt), SnapshotDataError);
});
