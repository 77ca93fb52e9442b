/**
 * The SDK's one error type. `code` is the node's `error` code from docs/api.md when a node
 * refused the request, or one of the SDK's own: `unavailable` (no endpoint answered for
 * longer than the bound), `closed` (the client was closed), `invalid_argument` (refused
 * before sending). Match on `code`, never on `message`.
 */
export type ClientErrorCode =
  | 'invalid_argument'
  | 'payload_too_large'
  | 'session_unknown'
  | 'sequence_gap'
  | 'compacted'
  | 'unavailable'
  | 'closed'
  | 'protocol'
  | (string & {});

export class ClientError extends Error {
  constructor(
    readonly code: ClientErrorCode,
    /** The node's answer fields (`field`, `firstIndex`, `status`, `endpoint`, …). */
    readonly details: Readonly<Record<string, unknown>> = {},
    message?: string,
  ) {
    super(message ?? `${code}${typeof details.message === 'string' ? `: ${details.message}` : ''}`);
    this.name = 'ClientError';
  }
}
