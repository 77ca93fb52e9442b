// Each deliberately broken core variant is caught within a bounded number of seeds, twice:
// by the check closest to the bug, and end to end with that check switched off (so election
// safety, leader completeness and state machine safety are shown to catch it on their own).
// The default profile's hunts show a plain sweep finds every variant without a sharp flag.
// Their bounds leave a margin over the seed of the first catch measured over seeds 1..2000 of
// the default profile (shape weights 50/30/15/5): forgetVoteOnRestart seed 1 (2,000 of 2,000
// seeds catch it), grantTwoVotesPerTerm seed 1 (1,622), commitPreviousTermByCounting seed 3
// (659), countStaleVotes seed 61 (10, nearly all in the elections shape). End to end, with
// vote durability off, election safety catches grantTwoVotesPerTerm at seed 1 (835 of 2,000)
// and forgetVoteOnRestart at seed 50 (99). commitPreviousTermByCounting with the commit rule
// off is caught by only 3 of those 2,000 seeds (first 406): its end-to-end hunts stay on the
// figure8 profile with a longer fault phase.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { UnsafeVariant } from '../../src/raft/core.ts';
import type { Profile } from '../../src/sim/fault-mix.ts';
import { sweep } from '../../src/sim/run.ts';
import type { Property } from '../../src/sim/violation.ts';

interface Hunt {
  readonly variant: UnsafeVariant;
  readonly profile: Profile;
  readonly faultPhaseTicks?: number;
  readonly off: Property[];
  readonly caughtBy: Property[];
  readonly seedsMax: number;
}

const hunts: Hunt[] = [
  {
    variant: 'forgetVoteOnRestart',
    profile: 'default',
    off: [],
    caughtBy: ['vote durability'],
    seedsMax: 5,
  },
  {
    variant: 'forgetVoteOnRestart',
    profile: 'default',
    off: ['vote durability'],
    caughtBy: ['election safety'],
    seedsMax: 200,
  },
  {
    variant: 'forgetVoteOnRestart',
    profile: 'elections',
    off: ['vote durability'],
    caughtBy: ['election safety'],
    seedsMax: 40,
  },
  {
    variant: 'grantTwoVotesPerTerm',
    profile: 'default',
    off: [],
    caughtBy: ['vote durability'],
    seedsMax: 10,
  },
  {
    variant: 'grantTwoVotesPerTerm',
    profile: 'default',
    off: ['vote durability'],
    caughtBy: ['election safety'],
    seedsMax: 10,
  },
  {
    variant: 'grantTwoVotesPerTerm',
    profile: 'elections',
    off: ['vote durability'],
    caughtBy: ['election safety'],
    seedsMax: 30,
  },
  {
    variant: 'commitPreviousTermByCounting',
    profile: 'default',
    off: [],
    caughtBy: ['commit rule'],
    seedsMax: 30,
  },
  {
    variant: 'commitPreviousTermByCounting',
    profile: 'figure8',
    faultPhaseTicks: 3000,
    off: ['commit rule'],
    caughtBy: ['leader completeness', 'log matching', 'state machine safety'],
    seedsMax: 40,
  },
  {
    variant: 'commitPreviousTermByCounting',
    profile: 'figure8',
    faultPhaseTicks: 3000,
    off: ['commit rule', 'leader completeness', 'log matching'],
    caughtBy: ['state machine safety'],
    seedsMax: 60,
  },
  {
    variant: 'countStaleVotes',
    profile: 'default',
    off: [],
    caughtBy: ['election safety'],
    seedsMax: 300,
  },
];

for (const hunt of hunts) {
  const off = hunt.off.length === 0 ? 'all checks on' : `without ${hunt.off.join(', ')}`;
  test(`${hunt.variant} is caught within ${hunt.seedsMax} ${hunt.profile} seeds, ${off}`, (t) => {
    const report = sweep({
      from: 1,
      count: hunt.seedsMax,
      unsafe: hunt.variant,
      profile: hunt.profile,
      faultPhaseTicks: hunt.faultPhaseTicks,
      disabledProperties: hunt.off,
      violationsMax: 1,
    });
    const found = report.violations[0]?.violation;
    assert.ok(found !== undefined && found !== null, `no violation in ${report.seedsRun} seeds`);
    t.diagnostic(
      `seed ${report.violations[0]?.seed} (${report.seedsRun} tried): ${found.property}: ${found.detail}`,
    );
    assert.ok(hunt.caughtBy.includes(found.property), found.message);
  });
}
