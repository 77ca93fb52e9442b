/**
 * Assertions catch our own bugs. They stay on in production: a stopped node is safer than a
 * wrong one. One fact per call, so a failure names the broken invariant.
 */
export class AssertionError extends Error {
  constructor(message: string) {
    super(`assertion failed: ${message}`);
    this.name = 'AssertionError';
  }
}

export function assert(condition: unknown, invariant: string): asserts condition {
  if (!condition) throw new AssertionError(invariant);
}

/** Indexes, terms and counts are plain numbers; this keeps them exact. */
export function assertSafeNatural(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new AssertionError(`${what} is a safe non-negative integer (got ${value})`);
  }
}

export function unreachable(value: never, what: string): never {
  throw new AssertionError(`unreachable ${what}: ${String(value)}`);
}
