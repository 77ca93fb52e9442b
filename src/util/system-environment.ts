/**
 * The production Environment: the real clock, Node's timers and crypto-backed randomness. The
 * one place below the CLI where src/broadcast, src/storage and src/client reach them (a lint
 * check keeps it so); the simulator provides its own.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { assert } from './assert.ts';
import type { Environment, Timer } from './environment.ts';

/** Node's timers overflow past 2^31 - 1 ms and fire at once: longer waits re-arm. */
const timerDelayMsMax = 2_147_483_647;

function setTimer(
  delayMs: number,
  fire: () => void,
  options?: { readonly background?: boolean },
): Timer {
  assert(Number.isFinite(delayMs) && delayMs >= 0, 'timer delays are finite and >= 0');
  if (delayMs === 0) return nextTurn(fire, options?.background === true);
  const deadlineMs = performance.now() + delayMs;
  let handle: NodeJS.Timeout | null = null;
  const arm = (waitMs: number) => {
    handle = setTimeout(() => {
      const leftMs = deadlineMs - performance.now();
      if (leftMs > timerDelayMsMax / 2) arm(Math.min(leftMs, timerDelayMsMax));
      else {
        handle = null;
        fire();
      }
    }, waitMs);
    if (options?.background === true) handle.unref();
  };
  arm(Math.min(delayMs, timerDelayMsMax));
  return {
    cancel: () => {
      if (handle !== null) clearTimeout(handle);
      handle = null;
    },
  };
}

/**
 * A zero delay means "after this turn" (the SDK's batcher gathers the broadcasts issued in
 * one turn): setImmediate, since Node stretches setTimeout(0) to 1 ms, a whole millisecond
 * added to every broadcast at one in flight.
 */
function nextTurn(fire: () => void, background: boolean): Timer {
  let handle: NodeJS.Immediate | null = setImmediate(() => {
    handle = null;
    fire();
  });
  if (background) handle.unref();
  return {
    cancel: () => {
      if (handle !== null) clearImmediate(handle);
      handle = null;
    },
  };
}

export const systemEnvironment: Environment = Object.freeze({
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
  setTimer,
  // randomInt takes a range of at most 2^48 - 1: six random bytes give the full [0, 2^48).
  random: () => randomBytes(6).readUIntBE(0, 6) / 2 ** 48,
  randomHex: (byteCount: number) => {
    assert(Number.isSafeInteger(byteCount) && byteCount > 0, 'randomHex takes a positive count');
    return randomBytes(byteCount).toString('hex');
  },
});
