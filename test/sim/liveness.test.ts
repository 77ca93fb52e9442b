// The liveness phase demands progress and can fail: after faults stop, every client gets one
// more message committed and every live member catches up, and a world sabotaged to stay
// partitioned is reported as a liveness violation naming what is stuck.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSeed } from '../../src/sim/run.ts';

test('after faults stop, the cluster commits new messages from every client', () => {
  const lines: string[] = [];
  const result = runSeed({
    seed: 11,
    profile: 'calm',
    faultPhaseTicks: 150,
    traceSink: (line) => lines.push(line),
  });
  assert.equal(result.violation, null, result.violation?.message);
  const start = lines.findIndex((line) => line.includes('liveness phase'));
  assert.ok(start > 0);
  const acknowledgedAfter = lines.slice(start).filter((line) => /\back c\d+ seq \d+/.test(line));
  assert.ok(
    acknowledgedAfter.length >= result.mix.clientCount,
    'each client owes one last message',
  );
});

test('a cluster kept partitioned after the fault phase fails liveness', () => {
  for (const seed of [1, 2, 3]) {
    const result = runSeed({
      seed,
      profile: 'calm',
      faultPhaseTicks: 100,
      isolateInLivenessPhase: true,
    });
    assert.equal(result.violation?.property, 'liveness', `seed ${seed}`);
    assert.match(
      result.violation.detail,
      /ticks after faults stopped: committed \d+; lagging: .*; clients waiting: c\d+ seq \d+/,
    );
    assert.equal(
      result.stats.ticks,
      100 + result.mix.livenessTicksMax,
      'it waits out the whole budget',
    );
  }
});
