/** Helpers for tests that wait on real processes and sockets. */
export { freePorts } from '../../src/cli/process-cluster.ts';

/** Polls `condition` until it holds or `timeoutMs` passes; never a blind sleep. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
