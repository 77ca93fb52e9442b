import { assert } from '../util/assert.ts';
import type { NodeId } from './types.ts';

export function majority(voterCount: number): number {
  assert(Number.isSafeInteger(voterCount) && voterCount > 0, 'a quorum needs at least one voter');
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The highest value that a majority of voters has reached: sort descending, take the
 * majority-th. With match indexes this is the highest index stored on a quorum.
 */
export function quorumValue(voters: readonly NodeId[], valueFor: (id: NodeId) => number): number {
  const values = voters.map(valueFor).sort((a, b) => b - a);
  const value = values[majority(voters.length) - 1];
  assert(value !== undefined, 'a quorum value exists for a non-empty voter set');
  return value;
}

export type VoteOutcome = 'won' | 'lost' | 'pending';

/** Only voters' answers count; a missing answer is still pending. */
export function voteOutcome(
  voters: readonly NodeId[],
  answers: ReadonlyMap<NodeId, boolean>,
): VoteOutcome {
  let granted = 0;
  let refused = 0;
  for (const id of voters) {
    const answer = answers.get(id);
    if (answer === true) granted++;
    else if (answer === false) refused++;
  }
  const needed = majority(voters.length);
  if (granted >= needed) return 'won';
  if (refused > voters.length - needed) return 'lost';
  return 'pending';
}
