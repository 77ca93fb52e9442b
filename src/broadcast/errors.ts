/**
 * Operating errors of the broadcast service. Callers match on `code`; each has a documented
 * HTTP status in the server (docs/api.md once it exists).
 */
export type BroadcastErrorCode =
  /** The request is malformed (a field is missing or out of range); `details.field` says which. */
  | 'INVALID_ARGUMENT'
  | 'PAYLOAD_TOO_LARGE'
  /** No leader is known, or the leader is unreachable; retry after a short wait. */
  | 'NO_LEADER'
  /** The outcome is unknown: the message may still be delivered. Retry with the same seq. */
  | 'TIMEOUT'
  /** Too many messages wait for the log; retry later. */
  | 'OVERLOADED'
  | 'NODE_STOPPED'
  /** The client skipped a sequence number; `details.expectedSeq` is the next one expected. */
  | 'SEQUENCE_GAP'
  /** The client's session is unknown (expired, or never started at seq 1). */
  | 'SESSION_UNKNOWN'
  /** The session belongs to another identity: it was started by someone else. */
  | 'SESSION_FORBIDDEN'
  /**
   * The session was started by another client of the same identity with another nonce: two
   * clients picked one client id. Start a session under another id.
   */
  | 'SESSION_CONFLICT'
  /** The requested position is older than what this node keeps; `details.firstPosition`. */
  | 'COMPACTED'
  /** Storage failed; the node stopped so that it cannot acknowledge what it did not keep. */
  | 'STORAGE_FAILED'
  /** An invariant of our own broke (a bug); the node stopped rather than risk a wrong answer. */
  | 'INTERNAL';

export class BroadcastError extends Error {
  constructor(
    readonly code: BroadcastErrorCode,
    message: string,
    readonly details: Readonly<Record<string, string | number | null>> = {},
  ) {
    super(message);
    this.name = 'BroadcastError';
  }
}
