// Quorum arithmetic checked against naive twins with fast-check: the commit index a quorum
// holds, and election outcomes, for arbitrary voter sets and answers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { majority, quorumValue, voteOutcome } from '../../src/raft/quorum.ts';

/** The largest v such that more than half of the voters have a value >= v. */
function naiveQuorumValue(values: number[]): number {
  let best = 0;
  for (const candidate of values) {
    const atLeast = values.filter((value) => value >= candidate).length;
    if (atLeast * 2 > values.length && candidate > best) best = candidate;
  }
  return best;
}

test('quorumValue equals the naive largest value held by a majority', () => {
  fc.assert(
    fc.property(fc.array(fc.nat(1000), { minLength: 1, maxLength: 9 }), (values) => {
      const voters = values.map((_, position) => `v${position}`);
      const value = quorumValue(voters, (id) => values[Number(id.slice(1))] as number);
      assert.equal(value, naiveQuorumValue(values));
    }),
  );
});

test('voteOutcome: won needs a majority granted, lost needs a majority impossible', () => {
  const answer = fc.constantFrom<boolean | undefined>(true, false, undefined);
  fc.assert(
    fc.property(fc.array(answer, { minLength: 1, maxLength: 9 }), (answers) => {
      const voters = answers.map((_, position) => `v${position}`);
      const map = new Map<string, boolean>();
      answers.forEach((value, position) => {
        if (value !== undefined) map.set(`v${position}`, value);
      });
      map.set('outsider', true);
      const granted = answers.filter((value) => value === true).length;
      const unanswered = answers.filter((value) => value === undefined).length;
      const expected =
        granted * 2 > voters.length
          ? 'won'
          : (granted + unanswered) * 2 <= voters.length
            ? 'lost'
            : 'pending';
      assert.equal(voteOutcome(voters, map), expected);
    }),
  );
});

test('majority of n is the smallest count above half', () => {
  for (let n = 1; n <= 11; n++) assert.equal(majority(n), Math.floor(n / 2) + 1);
  assert.throws(() => majority(0));
});
