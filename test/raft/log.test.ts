// The in-memory Raft log against a plain array model: appends, conflicting overwrites,
// commits, compaction, and the binary searches used for fast backtracking.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeConfiguration } from '../../src/raft/config.ts';
import { RaftLog } from '../../src/raft/log.ts';
import type { Entry } from '../../src/raft/types.ts';

const none = new Uint8Array(0);

function entriesFromTerms(terms: number[], startIndex = 1): Entry[] {
  return terms.map((term, position) => ({
    index: startIndex + position,
    term,
    kind: 'normal',
    data: none,
  }));
}

/** Non-decreasing term sequences, as any valid log has. */
const termRuns = fc
  .array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 40 })
  .map((steps) => {
    let term = 1;
    return steps.map((step) => {
      term += step === 0 ? 1 : 0;
      return term;
    });
  });

test('firstIndexOfTermRun and lastIndexOfTerm agree with linear scans', () => {
  fc.assert(
    fc.property(termRuns, fc.nat(), fc.nat(5), (terms, pick, termOffset) => {
      const log = new RaftLog();
      log.load(null, entriesFromTerms(terms));
      const index = 1 + (pick % terms.length);
      const term = terms[index - 1] as number;
      let first = index;
      while (first > 1 && terms[first - 2] === term) first--;
      assert.equal(log.firstIndexOfTermRun(index), first);
      const wanted = Math.max(1, term - 2 + termOffset);
      let last = 0;
      for (let scan = index; scan >= 1; scan--) {
        if (terms[scan - 1] === wanted) {
          last = scan;
          break;
        }
      }
      assert.equal(log.lastIndexOfTerm(wanted, index), last);
    }),
  );
});

test('overwrites replace the suffix and keep the prefix; stable index follows', () => {
  fc.assert(
    fc.property(termRuns, fc.nat(), fc.integer({ min: 1, max: 5 }), (terms, cut, length) => {
      const log = new RaftLog();
      log.load(null, entriesFromTerms(terms));
      const from = 1 + (cut % terms.length);
      const newTerm = (terms[terms.length - 1] as number) + 1;
      const replacement = entriesFromTerms(Array(length).fill(newTerm), from);
      assert.equal(log.findConflict(replacement), from);
      log.truncateAndAppend(replacement);
      assert.equal(log.lastIndex(), from + length - 1);
      assert.equal(log.stableIndex, from - 1);
      for (let index = 1; index < from; index++) assert.equal(log.termAt(index), terms[index - 1]);
      assert.equal(log.unstableEntries().length, length);
    }),
  );
});

test('committed entries are never overwritten', () => {
  const log = new RaftLog();
  log.load(null, entriesFromTerms([1, 1, 2]));
  log.commitTo(2);
  assert.throws(() => log.truncateAndAppend(entriesFromTerms([3], 2)), /never overwritten/);
});

test('compaction keeps the configuration in force and the terms after it', () => {
  const log = new RaftLog();
  const config = { voters: ['a', 'b'], learners: [] };
  log.load(null, [
    { index: 1, term: 1, kind: 'config', data: encodeConfiguration(config) },
    ...entriesFromTerms([1, 2, 2], 2),
  ]);
  log.commitTo(4);
  log.appliedTo(3);
  log.compact({ meta: { index: 3, term: 2, config }, data: none });
  assert.equal(log.firstIndex(), 4);
  assert.equal(log.termAt(3), 2);
  assert.equal(log.termAt(2), null);
  assert.deepEqual(log.config(), config);
  assert.throws(() => log.compact({ meta: { index: 2, term: 1, config }, data: none }));
});

test('after a snapshot restore, entries appended past it are not mistaken for durable ones', () => {
  const log = new RaftLog();
  log.load(null, entriesFromTerms([1, 1, 1, 1, 1]));
  assert.equal(log.stableIndex, 5);
  const config = { voters: ['a'], learners: [] };
  const snapshot = { meta: { index: 3, term: 4, config }, data: none };
  log.restore(snapshot);
  log.truncateAndAppend(entriesFromTerms([6], 4));
  assert.ok(log.stableIndex <= 3, 'nothing after the snapshot is on disk yet');
  assert.deepEqual(
    log.unstableEntries().map((entry) => [entry.index, entry.term]),
    [[4, 6]],
  );
  log.snapshotPersisted(snapshot);
  assert.equal(log.stableIndex, 3);
});
