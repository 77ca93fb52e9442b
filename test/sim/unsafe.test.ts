// Each deliberately broken core variant is caught within a bounded number of seeds, twice:
// by the check closest to the bug, and end to end with that check switched off (so election
// safety, leader completeness and state machine safety are shown to catch it on their own).
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
