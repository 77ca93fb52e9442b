/**
 * The one shape of every operating error abcast raises (runtime, SDK, agents): a stable
 * lowercase snake `code` that callers match on, a human `message` they never parse,
 * structured `details`, and the `cause` when one error wraps another. The codes are the
 * HTTP contract's (docs/api.md), so an error reads the same in a log, a test and on the wire.
 */
export type ErrorDetails = Readonly<Record<string, unknown>>;

export interface ErrorJson<Code extends string, Details extends ErrorDetails> {
  readonly code: Code;
  readonly message: string;
  readonly details: Details;
}

export class AbcastError<
  Code extends string = string,
  Details extends ErrorDetails = ErrorDetails,
> extends Error {
  readonly code: Code;
  readonly details: Details;

  constructor(
    code: Code,
    message: string,
    details: Details = {} as Details,
    options?: { readonly cause?: unknown },
  ) {
    super(message, options);
    this.code = code;
    this.details = details;
    // Each subclass names itself in a field of its own, so that a log says which layer
    // refused even after a minifier renamed the classes.
    this.name = 'AbcastError';
  }

  /**
   * What `JSON.stringify` writes: an Error's own `message` is not enumerable, so without this
   * a logged error would lose it. `cause` stays out: it may not be serialisable.
   */
  toJSON(): ErrorJson<Code, Details> {
    return { code: this.code, message: this.message, details: this.details };
  }
}
