// runSeqProblem, the one rule for a run's seqs that the HTTP and binary routes, the library's
// intake and the log's batch decoder share: a table of edges, the rounding trap among them,
// and a property comparing it with a naive twin that sums in exact BigInt arithmetic.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { runSeqProblem } from '../../src/broadcast/message-rules.ts';

const seqMax = Number.MAX_SAFE_INTEGER;

/** The naive twin: the last seq summed exactly, then compared with 2^53 - 1. */
function runFitsExactly(firstSeq: number, count: number): boolean {
  if (!Number.isSafeInteger(firstSeq) || firstSeq < 1) return false;
  if (count === 0) return true;
  return BigInt(firstSeq) + BigInt(count) - 1n <= BigInt(seqMax);
}

test('the edges of a run: its first seq, its last, and a run of none', () => {
  const cases: [firstSeq: unknown, count: number, fits: boolean][] = [
    [1, 0, true],
    [1, 1, true],
    [1, 2 ** 32 - 1, true],
    [seqMax, 0, true],
    [seqMax, 1, true],
    [seqMax, 2, false],
    [seqMax - 1, 2, true],
    [seqMax - 1, 3, false],
    [seqMax - 999, 1_000, true],
    [seqMax - 998, 1_000, false],
    [2 ** 52, 2 ** 32 - 1, true],
    [0, 1, false],
    [0, 0, false],
    [-1, 1, false],
    [1.5, 1, false],
    [2 ** 53, 1, false],
    [Number.NaN, 1, false],
    ['1', 1, false],
    [undefined, 1, false],
  ];
  for (const [firstSeq, count, fits] of cases) {
    const problem = runSeqProblem(firstSeq, count);
    assert.equal(problem === null, fits, `${String(firstSeq)} with ${count}`);
    if (problem !== null) {
      assert.equal(problem.code, 'invalid_argument');
      assert.equal(problem.field, 'seq');
    }
  }
});

test('the rounding trap: a sum that rounds past 2^53 and back under is still refused', () => {
  // 2^53 - 1 + 2 rounds to 2^53, and the 1 taken off lands on 2^53 - 1: a safe integer.
  const [firstSeq, count] = [seqMax, 2];
  assert.ok(Number.isSafeInteger(firstSeq + count - 1), 'the naive sum is fooled');
  const problem = runSeqProblem(firstSeq, count);
  assert.equal(problem?.field, 'seq');
  assert.match(problem?.message ?? '', /runs past the largest seq, 2\^53 - 1/);
  // Every run whose last seq is 2^53, however long: one seq too many is refused.
  for (let count = 2; count <= 64; count++) {
    assert.notEqual(runSeqProblem(seqMax - count + 2, count), null, `${count} messages`);
    assert.equal(runSeqProblem(seqMax - count + 1, count), null, `${count} messages, fitting`);
  }
});

test('the field a refusal names is the caller’s', () => {
  assert.equal(runSeqProblem(seqMax, 2, 'firstSeq')?.field, 'firstSeq');
  assert.match(runSeqProblem(seqMax, 2, 'firstSeq')?.message ?? '', /^firstSeq /);
  assert.equal(runSeqProblem(0, 2, 'firstSeq')?.field, 'firstSeq');
});

test('a count that is no count is our bug, not the caller’s', () => {
  for (const count of [-1, 1.5, Number.NaN, 2 ** 53]) {
    assert.throws(() => runSeqProblem(1, count), /assertion failed/);
  }
});

test('runSeqProblem agrees with exact arithmetic near 2^53 and everywhere else', () => {
  const nearMax = fc.integer({ min: 0, max: 2 ** 33 }).map((below) => seqMax - below);
  const firstSeq = fc.oneof(
    nearMax,
    fc.integer({ min: 1, max: seqMax }),
    fc.constantFrom(0, -1, 0.5, 2 ** 53, 2 ** 53 + 2),
  );
  const count = fc.oneof(fc.integer({ min: 0, max: 1_000 }), fc.integer({ min: 0, max: 2 ** 32 }));
  fc.assert(
    fc.property(firstSeq, count, (first, messageCount) => {
      const fits = runSeqProblem(first, messageCount) === null;
      assert.equal(fits, runFitsExactly(first, messageCount));
    }),
    { numRuns: 2_000 },
  );
});
