import { AbcastError } from '../util/errors.ts';

/**
 * Operating errors of the broadcast service. Callers match on `code`; the codes are the HTTP
 * contract's (docs/api.md), and src/server/errors.ts gives each its status.
 */
export type BroadcastErrorCode =
  /** The request is malformed (a field is missing or out of range); `details.field` says which. */
  | 'invalid_argument'
  | 'payload_too_large'
  /** No leader is known, or the leader is unreachable; retry after a short wait. */
  | 'no_leader'
  /** The outcome is unknown: the message may still be delivered. Retry with the same seq. */
  | 'timeout'
  /** Too many messages wait for the log; retry later. */
  | 'overloaded'
  | 'node_stopped'
  /** The client skipped a sequence number; `details.expectedSeq` is the next one expected. */
  | 'sequence_gap'
  /** The client's session is unknown (expired, or never started at seq 1). */
  | 'session_unknown'
  /** The session belongs to another identity: it was started by someone else. */
  | 'session_forbidden'
  /**
   * The session was started by another client of the same identity with another nonce: two
   * clients picked one client id. Start a session under another id.
   */
  | 'session_conflict'
  /** The requested position is older than what this node keeps; `details.firstPosition`. */
  | 'compacted'
  /**
   * A membership request would take away the cluster's only voter (removing or demoting it):
   * add another voter first.
   */
  | 'last_voter'
  /**
   * The position is retained but not on this node yet (it is being backfilled from peers);
   * `details.position`. The HTTP server forwards such a read to a peer when it can.
   */
  | 'not_held'
  /** Storage failed; the node stopped so that it cannot acknowledge what it did not keep. */
  | 'storage_failed'
  /** An invariant of our own broke (a bug); the node stopped rather than risk a wrong answer. */
  | 'internal';

/** Detail values are scalars: the server copies them into the JSON error body as they are. */
export type BroadcastErrorDetails = Readonly<Record<string, string | number | null>>;

export class BroadcastError extends AbcastError<BroadcastErrorCode, BroadcastErrorDetails> {
  override readonly name = 'BroadcastError';
}
