/** Helpers for tests that wait on real processes and sockets. */
export { freePorts } from '../../src/cli/process-cluster.ts';

/**
 * How long a wait on a real process may take before the test calls it a hang: a node started
 * with tsx on a loaded 2-core machine can take many seconds to boot and elect a leader, so
 * this bounds a hang only and says nothing about speed.
 */
export const hangBoundMs = 60_000;

/** Polls `condition` until it holds or `timeoutMs` passes; never a blind sleep. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // A condition that throws (a status fetch refused while a node starts on a loaded machine)
  // is asked again; only at the deadline does its last error fail the wait.
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await condition()) return;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const cause = lastError === undefined ? '' : `; last error: ${String(lastError)}`;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`, {
    cause: lastError,
  });
}
