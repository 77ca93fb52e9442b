// With lazy commit news a follower hears of a commit with the leader's next entries. When the
// load pauses there are none, and the ticks that would carry the news are far apart: the
// leader sends it itself once its Ready loop has been idle a short while. Proven with the
// ticks stopped after the election, so only that wait can bring a follower the news.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Environment, Timer } from '../../src/util/environment.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';
import { decode, encode, TwinCluster, twinTuning, waitFor } from './twin-cluster.ts';

test('a follower delivers the last message before a pause without waiting for a tick', async () => {
  let ticksStopped = false;
  const never: Timer = { cancel() {} };
  const environment: Environment = {
    ...systemEnvironment,
    setTimer: (delayMs, fire, options) =>
      ticksStopped && delayMs === twinTuning.tickIntervalMs
        ? never
        : systemEnvironment.setTimer(delayMs, fire, options),
  };
  const cluster = await TwinCluster.start({ tuning: { environment } });
  try {
    const leader = await cluster.waitForLeader();
    const warm = await cluster.node(leader).broadcast(encode('before'));
    await cluster.waitDelivered(warm.position as number);
    ticksStopped = true;
    // A tick already armed may still fire once; the one after it is never armed.
    await new Promise((resolve) => setTimeout(resolve, 3 * twinTuning.tickIntervalMs));
    const result = await cluster.node(leader).broadcast(encode('last'));
    const position = result.position as number;
    for (const follower of cluster.followers(leader)) {
      await waitFor(
        () => cluster.node(follower).read(position, 1).length === 1,
        `${follower} delivers position ${position}`,
        5_000,
      );
      const [message] = cluster.node(follower).read(position, 1);
      assert.equal(decode(message?.payload ?? new Uint8Array()), 'last');
    }
  } finally {
    ticksStopped = false;
    await cluster.close();
  }
});

// Under load the news rides on the next run's Append: a wait that ran from the first idle
// moment, not from the last Ready, sent an Append of its own to every follower in about one
// round of eight at 128 in flight. With the clock stopped the loop never looks idle for the
// whole wait, so no follower hears of the commit until the clock moves on.
test('commit news waits for the Ready loop to be idle for the whole wait, counted from its last Ready', async () => {
  let ticksStopped = false;
  let frozenMs: number | null = null;
  let shortTimerFires = 0;
  const never: Timer = { cancel() {} };
  const environment: Environment = {
    ...systemEnvironment,
    monotonicMs: () => frozenMs ?? systemEnvironment.monotonicMs(),
    setTimer: (delayMs, fire, options) => {
      if (ticksStopped && delayMs === twinTuning.tickIntervalMs) return never;
      if (delayMs > 1) return systemEnvironment.setTimer(delayMs, fire, options);
      return systemEnvironment.setTimer(
        delayMs,
        () => {
          shortTimerFires++;
          fire();
        },
        options,
      );
    },
  };
  const cluster = await TwinCluster.start({ tuning: { environment } });
  try {
    const leader = await cluster.waitForLeader();
    const warm = await cluster.node(leader).broadcast(encode('before'));
    await cluster.waitDelivered(warm.position as number);
    ticksStopped = true;
    await new Promise((resolve) => setTimeout(resolve, 3 * twinTuning.tickIntervalMs));
    frozenMs = systemEnvironment.monotonicMs();
    const result = await cluster.node(leader).broadcast(encode('last'));
    const position = result.position as number;
    const firesBefore = shortTimerFires;
    await waitFor(() => shortTimerFires >= firesBefore + 3, 'the wait fires three times', 5_000);
    for (const follower of cluster.followers(leader)) {
      assert.equal(cluster.node(follower).lastPosition, position - 1, `${follower} waits`);
    }
    frozenMs = null;
    for (const follower of cluster.followers(leader)) {
      await waitFor(
        () => cluster.node(follower).read(position, 1).length === 1,
        `${follower} delivers position ${position}`,
        5_000,
      );
    }
  } finally {
    ticksStopped = false;
    frozenMs = null;
    await cluster.close();
  }
});
