/**
 * The examples' one error type: a cluster that would not start or come up, a fault asked of
 * a cluster this process does not own, a bad flag. Callers match on `code`.
 */
export type ExampleErrorCode =
  | 'invalid_argument'
  | 'cluster_start_failed'
  | 'cluster_not_ready'
  | 'faults_unavailable'
  | 'unknown_node'
  | 'timeout';

export class ExampleError extends Error {
  constructor(
    readonly code: ExampleErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = 'ExampleError';
  }
}

/** Polls `condition` until it yields a value or `timeoutMs` passes: never a blind sleep. */
export async function pollUntil<T>(
  condition: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T> {
  const deadlineMs = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value !== undefined) return value;
    if (Date.now() >= deadlineMs) {
      throw new ExampleError('timeout', `timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resume) => setTimeout(resume, intervalMs));
  }
}
