// With lazy commit news a follower hears of a commit with the leader's next entries. When the
// load pauses there are none, and the ticks that would carry the news are far apart: the
// leader sends it itself once its Ready loop has been idle a short while. Proven with the
// ticks stopped after the election, so only that wait can bring a follower the news.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Environment, Timer } from '../../src/util/environment.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';
import { decode, encode, TwinCluster, twinTuning, waitFor } from './twin-cluster.ts';

/**
 * The ticks' timers: once stopped, no tick is armed again, and `quiet` says when every tick
 * armed before the stop has fired or been cancelled (on a loaded machine one may fire long
 * after its interval, and bring the news itself).
 */
class TickGate {
  stopped = false;
  private armed = 0;

  arm(delayMs: number, fire: () => void, options?: { readonly background?: boolean }): Timer {
    if (this.stopped) return { cancel() {} };
    this.armed++;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.armed--;
    };
    const timer = systemEnvironment.setTimer(
      delayMs,
      () => {
        end();
        fire();
      },
      options,
    );
    return {
      cancel: () => {
        end();
        timer.cancel();
      },
    };
  }

  get quiet(): boolean {
    return this.armed === 0;
  }
}

/** A leader, one message delivered everywhere, then no more ticks. */
async function stopTicksAfterWarmUp(cluster: TwinCluster, ticks: TickGate): Promise<string> {
  const leader = await cluster.waitForLeader();
  const warm = await cluster.node(leader).broadcast(encode('before'));
  await cluster.waitDelivered(warm.position as number);
  ticks.stopped = true;
  await waitFor(() => ticks.quiet, 'the ticks armed before the stop have fired');
  return leader;
}

test('a follower delivers the last message before a pause without waiting for a tick', async () => {
  const ticks = new TickGate();
  const environment: Environment = {
    ...systemEnvironment,
    setTimer: (delayMs, fire, options) =>
      delayMs === twinTuning.tickIntervalMs
        ? ticks.arm(delayMs, fire, options)
        : systemEnvironment.setTimer(delayMs, fire, options),
  };
  const cluster = await TwinCluster.start({ tuning: { environment } });
  try {
    const leader = await stopTicksAfterWarmUp(cluster, ticks);
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
    ticks.stopped = false;
    await cluster.close();
  }
});

// Under load the news rides on the next run's Append: a wait that ran from the first idle
// moment, not from the last Ready, woke the leader about once a round at 128 in flight and
// in about one round of eight sent every follower an Append of its own. Each Ready starts
// the wait again, so only a loop idle for the whole wait sends the news.
test('each Ready starts the wait for commit news again', async () => {
  const ticks = new TickGate();
  const waits: { fire: () => void; cancelled: boolean }[] = [];
  const environment: Environment = {
    ...systemEnvironment,
    setTimer: (delayMs, fire, options) => {
      if (delayMs === twinTuning.tickIntervalMs) return ticks.arm(delayMs, fire, options);
      if (!ticks.stopped || delayMs !== 1) {
        return systemEnvironment.setTimer(delayMs, fire, options);
      }
      // The commit news wait: held here, fired by the test.
      const wait = { fire, cancelled: false };
      waits.push(wait);
      return {
        cancel: () => {
          wait.cancelled = true;
        },
      };
    },
  };
  const live = () => waits.filter((wait) => !wait.cancelled);
  const cluster = await TwinCluster.start({ tuning: { environment } });
  try {
    const leader = await stopTicksAfterWarmUp(cluster, ticks);
    await cluster.node(leader).broadcast(encode('a'));
    await waitFor(() => live().length === 1, 'the leader waits to send the news of a', 5_000);
    const first = live()[0];
    const b = await cluster.node(leader).broadcast(encode('b'));
    const position = b.position as number;
    assert.equal(first?.cancelled, true, 'the Ready of b cancelled the wait');
    await waitFor(() => live().length === 1, 'the leader waits to send the news of b', 5_000);
    for (const follower of cluster.followers(leader)) {
      // The Append of b carried the commit of a.
      await waitFor(
        () => cluster.node(follower).lastPosition === position - 1,
        `${follower} delivers a`,
        5_000,
      );
    }
    live()[0]?.fire();
    for (const follower of cluster.followers(leader)) {
      await waitFor(
        () => cluster.node(follower).lastPosition === position,
        `${follower} delivers b once the wait ends`,
        5_000,
      );
    }
  } finally {
    ticks.stopped = false;
    await cluster.close();
  }
});
