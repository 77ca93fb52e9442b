// Proves reconnect delays grow exponentially from the minimum, stay within [step/2, step] and
// never pass the maximum, and start over after a success; jitter is pinned by an injected draw.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff } from '../../src/transport/backoff.ts';

test('delays double up to the cap, jittered within the upper half of each step', () => {
  const low = new Backoff({ initialMs: 10, maxMs: 100, random: () => 0 });
  const high = new Backoff({ initialMs: 10, maxMs: 100, random: () => 0.999999 });
  const lowDelays = Array.from({ length: 8 }, () => low.nextDelayMs());
  const highDelays = Array.from({ length: 8 }, () => Math.round(high.nextDelayMs()));
  assert.deepStrictEqual(lowDelays, [5, 10, 20, 40, 50, 50, 50, 50]);
  assert.deepStrictEqual(highDelays, [10, 20, 40, 80, 100, 100, 100, 100]);
});

test('a success resets the growth; the attempt count is bounded', () => {
  const backoff = new Backoff({ initialMs: 1, maxMs: 1_000, random: () => 0.5 });
  for (let attempt = 0; attempt < 1_000; attempt++) assert.ok(backoff.nextDelayMs() <= 1_000);
  assert.ok(backoff.attempts <= 30);
  backoff.reset();
  assert.equal(backoff.nextDelayMs(), 0.75);
});
