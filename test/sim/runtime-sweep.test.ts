// The code users run — real BroadcastNodes, the real WAL code over simulated disks that lose
// and tear unsynced writes at power cuts, the real HTTP routes with authentication and real
// SDK clients, some sharing a client id — holds every property over a sweep of seeds, and a
// seed replays the same run. The sweep also shows the session binding and barrier paths ran,
// that clients sent their runs as the binary port's broadcastRun frames, that clients
// reached the real binary port over simulated TCP, whose connections were reset, and that
// every seed had subscribers, whose yields (messages, and a topic's progress marks) the
// checker compared with the order.
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
  const seen = {
    foreignRefusals: 0,
    barriers: 0,
    runFramesSent: 0,
    binaryConnections: 0,
    binaryResets: 0,
    subscriberMessages: 0,
    subscriberProgressMarks: 0,
  };
  let seedsWithoutSubscribers = 0;
  const report = await sweepRuntime({
    from: 1,
    count: seedCount,
    violationsMax: 1,
    clockMs: () => performance.now(),
    onResult: (result) => {
      seen.foreignRefusals += result.stats.foreignRefusals;
      seen.barriers += result.stats.barriers;
      seen.runFramesSent += result.stats.runFramesSent;
      seen.binaryConnections += result.stats.binaryConnections;
      seen.binaryResets += result.stats.binaryResets;
      seen.subscriberMessages += result.stats.subscriberMessages;
      seen.subscriberProgressMarks += result.stats.subscriberProgressMarks;
      if (result.stats.subscribers === 0) seedsWithoutSubscribers++;
    },
  });
  const first = report.violations[0];
  assert.equal(first, undefined, first?.violation?.message);
  assert.equal(report.seedsRun, seedCount);
  assert.ok(seen.foreignRefusals > 0, 'some broadcasts met another client in their session');
  assert.ok(seen.barriers > 0, 'some barriers were answered');
  assert.ok(seen.runFramesSent > 0, 'some runs went as broadcastRun frames');
  assert.ok(seen.binaryConnections > 0, 'some clients connected to the binary port');
  assert.ok(seen.binaryResets > 0, 'some of those connections were reset');
  assert.equal(seedsWithoutSubscribers, 0, 'every seed has a subscriber');
  assert.ok(seen.subscriberMessages > 0, 'subscribers yielded messages');
  assert.ok(seen.subscriberProgressMarks > 0, 'topic subscribers passed progress marks');
});
