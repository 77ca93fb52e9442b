// The real core survives a sweep of 1,090 seeded worlds (600 with the default profile, which
// draws each seed's shape, and broad, election-heavy, Figure-8-style and calm ones on their
// own) with every property checked after every step; a failure lists each violated property
// with its replay command. The broad seeds keep that shape's share near the 600 it had when
// it was the whole default profile.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Profile } from '../../src/sim/fault-mix.ts';
import { sweep } from '../../src/sim/run.ts';

const plan: Array<{ profile: Profile; from: number; count: number }> = [
  { profile: 'default', from: 1, count: 500 },
  { profile: 'default', from: 100_001, count: 100 },
  { profile: 'broad', from: 200_001, count: 250 },
  { profile: 'elections', from: 1, count: 100 },
  { profile: 'figure8', from: 1, count: 100 },
  { profile: 'calm', from: 1, count: 40 },
];

for (const { profile, from, count } of plan) {
  test(`${count} seeds from ${from}, profile ${profile}: no property is violated`, (t) => {
    const report = sweep({ profile, from, count });
    t.diagnostic(
      `${report.seedsPerSecond.toFixed(1)} seeds/s, ${Math.round(report.stepsPerSecond)} steps/s, ${report.steps} steps, ${report.ticks} ticks`,
    );
    const failures = report.violations.map((result) => result.violation?.message ?? '');
    assert.equal(report.seedsRun, count);
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} seeds failed`);
  });
}
