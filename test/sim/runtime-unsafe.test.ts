// Each deliberately broken variant of the node, the WAL and the SDK is caught by the runtime
// simulation within a bounded number of seeds: the checkers can fail, one layer at a time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sweepRuntime } from '../../src/sim/runtime/run.ts';
import type { RuntimeUnsafe } from '../../src/sim/runtime/world.ts';

const hunts: { readonly variant: RuntimeUnsafe; readonly seedsMax: number }[] = [
  { variant: 'answerBeforeCommit', seedsMax: 100 },
  { variant: 'dropSessionsOnRestore', seedsMax: 100 },
  { variant: 'deliverSeqGapAtOnce', seedsMax: 100 },
  { variant: 'ackBeforeDatasync', seedsMax: 100 },
  { variant: 'moveSentMessage', seedsMax: 100 },
];

for (const hunt of hunts) {
  test(`unsafe ${hunt.variant} is caught within ${hunt.seedsMax} seeds`, async () => {
    const report = await sweepRuntime({
      from: 1,
      count: hunt.seedsMax,
      unsafe: hunt.variant,
      violationsMax: 1,
      clockMs: () => performance.now(),
    });
    const caught = report.violations[0];
    assert.ok(caught !== undefined, `no seed of ${hunt.seedsMax} caught ${hunt.variant}`);
  });
}
