// Each deliberately broken variant of the core, the node, the WAL and the SDK is caught by the
// runtime simulation's default sweep: the checkers can fail, one layer at a time. Each hunt
// starts near a seed known to catch its variant, so the test runs few seeds; the comments say
// how often the variant is caught over the default sweep, to show it needs no sharp flag.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sweepRuntime } from '../../src/sim/runtime/run.ts';
import type { RuntimeUnsafe } from '../../src/sim/runtime/world.ts';
import type { Property } from '../../src/sim/violation.ts';

interface Hunt {
  readonly variant: RuntimeUnsafe;
  readonly from: number;
  readonly seedsMax: number;
  /** The properties that may catch it first; empty for any. */
  readonly caughtBy: readonly Property[];
}

const hunts: readonly Hunt[] = [
  { variant: 'answerBeforeCommit', from: 1, seedsMax: 100, caughtBy: [] },
  { variant: 'dropSessionsOnRestore', from: 1, seedsMax: 100, caughtBy: [] },
  { variant: 'deliverSeqGapAtOnce', from: 1, seedsMax: 100, caughtBy: [] },
  { variant: 'ackBeforeDatasync', from: 1, seedsMax: 100, caughtBy: [] },
  { variant: 'moveSentMessage', from: 1, seedsMax: 100, caughtBy: [] },
  // Sessions that ignore who sends (only the nonce compared) let the impostor, which copies
  // c0's nonce, write in c0's session: seeds 3, 5, 0x11, 0x13, 0x18, 0x1e … of 1..40, told
  // a duplicate at c0's position, or delivered in c0's session.
  {
    variant: 'ignoreSessionOwner',
    from: 1,
    seedsMax: 100,
    caughtBy: ['acknowledged delivery', 'session ownership'],
  },
  // Retention cut by each node from its own segments and wall clock, not through the log:
  // seeds 3, 10, 22 of 1..30 (a member left with a hole no peer still holds, members that
  // keep different ranges, a floor that moves back after a restart).
  { variant: 'retainLocally', from: 1, seedsMax: 30, caughtBy: ['retained range'] },
  // Every one of seeds 1..4 catches it.
  { variant: 'forgetVoteOnRestart', from: 1, seedsMax: 3, caughtBy: ['vote durability'] },
  // Seeds 8, 9, 11, 13, 14, ... of 1..30.
  { variant: 'grantTwoVotesPerTerm', from: 8, seedsMax: 5, caughtBy: ['vote durability'] },
  // Seeds 8, 14, 24, 25, 28, 30, ... of 1..100.
  { variant: 'commitPreviousTermByCounting', from: 24, seedsMax: 5, caughtBy: ['commit rule'] },
  // Seeds 47, 68, 70, 81 of 1..150: forced split elections with vote answers held until
  // their candidate's next round. (Seeds moved when every
  // WAL record began to repeat the hard state, when meta.json came to be written after the
  // first segment, when the nodes came to keep their messages on the simulated disk and to
  // backfill from each other, when WAL records came to be written through O_DSYNC handles,
  // when a leader came to send each follower one Append per Ready, and when the HTTP server
  // came to serve every request deadline from one timer, and when a follower came to apply
  // before its write and to hear of commits with the next entries, and when commit news came
  // to wait for a real pause, when WAL segments came to be recycled, and when some clients
  // came to reach the binary port over simulated TCP, when every seed came to have a
  // subscriber, when a crash stopped resetting the connections already closed, when a node
  // came to hold what it is given during a write for one batch, and when the binary port's
  // deadlines came to run in the simulator, and when a leader came to skip the heartbeats
  // its Appends made redundant: faults land elsewhere.)
  {
    variant: 'countStaleVotes',
    from: 68,
    seedsMax: 3,
    caughtBy: ['election safety', 'leader completeness'],
  },
];

for (const hunt of hunts) {
  const range = `seeds ${hunt.from}..${hunt.from + hunt.seedsMax - 1}`;
  test(`unsafe ${hunt.variant} is caught within ${range}`, async (t) => {
    const report = await sweepRuntime({
      from: hunt.from,
      count: hunt.seedsMax,
      unsafe: hunt.variant,
      violationsMax: 1,
      clockMs: () => performance.now(),
    });
    const found = report.violations[0]?.violation;
    assert.ok(found !== undefined && found !== null, `no seed in ${range} caught ${hunt.variant}`);
    t.diagnostic(`seed ${report.violations[0]?.seed}: ${found.property}: ${found.detail}`);
    if (hunt.caughtBy.length > 0) assert.ok(hunt.caughtBy.includes(found.property), found.message);
  });
}
