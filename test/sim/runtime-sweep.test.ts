// The code users run — real BroadcastNodes, the real WAL code over simulated disks that lose
// and tear unsynced writes at power cuts, the real HTTP routes and real SDK clients — holds
// every property over a sweep of seeds, and a seed replays the same run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sweepRuntime } from '../../src/sim/runtime/run.ts';
import { runRuntimeSeed } from '../../src/sim/runtime/world.ts';

const seedCount = Number(process.env.ABCAST_RUNTIME_SEEDS ?? 500);

test('a seed replays the same run', async () => {
  const lines: string[][] = [[], []];
  for (const run of [0, 1]) {
    await runRuntimeSeed({ seed: 0x5eed, traceSink: (line) => lines[run]?.push(line) });
  }
  assert.ok((lines[0] ?? []).length > 20, 'the run did something');
  assert.deepEqual(lines[0], lines[1]);
});

test(`${seedCount} seeds of the runtime simulation pass`, async () => {
  const report = await sweepRuntime({
    from: 1,
    count: seedCount,
    violationsMax: 1,
    clockMs: () => performance.now(),
  });
  const first = report.violations[0];
  assert.equal(first, undefined, first?.violation?.message);
  assert.equal(report.seedsRun, seedCount);
});
