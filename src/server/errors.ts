/**
 * The HTTP face of every error: a status, a stable lowercase code and a JSON body
 * `{"error": code, "message": text, ...details}`. Runtime errors (`BroadcastError`) are
 * mapped here, in one table, so that docs/api.md can mirror it line by line.
 */
import { BroadcastError, type BroadcastErrorCode } from '../broadcast/errors.ts';

export type HttpErrorCode =
  | 'invalid_argument'
  | 'payload_too_large'
  | 'no_leader'
  | 'not_leader'
  | 'timeout'
  | 'request_timeout'
  | 'overloaded'
  | 'node_stopped'
  | 'storage_failed'
  | 'sequence_gap'
  | 'session_unknown'
  | 'session_forbidden'
  | 'session_conflict'
  | 'unauthorized'
  | 'forbidden'
  | 'compacted'
  | 'not_held'
  | 'transfer_refused'
  | 'not_found'
  | 'not_owner'
  | 'last_voter'
  | 'method_not_allowed'
  | 'not_implemented'
  | 'internal';

/** Extra fields of an error body, next to `error` and `message`. */
export type ErrorDetails = Readonly<Record<string, string | number | null>>;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: HttpErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
    /** Whether the answer carries `Retry-After`: the same request may succeed later. */
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** A 400 that names the offending field in its message and in `field`. */
export function invalidArgument(field: string, message: string): HttpError {
  return new HttpError(400, 'invalid_argument', message, { field });
}

interface Mapping {
  readonly status: number;
  readonly code: HttpErrorCode;
  readonly retryable: boolean;
}

/**
 * Every runtime code, its status, and whether to retry. 503 means "this node cannot do it
 * now; retry here after Retry-After or on another node", for every transient cause. timeout
 * is among them: its outcome is unknown, and a retry with the same (client, seq) is how a
 * caller learns it, exactly once. storage_failed is a 500: the node halted for good.
 */
const runtimeErrors: Readonly<Record<BroadcastErrorCode, Mapping>> = {
  invalid_argument: { status: 400, code: 'invalid_argument', retryable: false },
  payload_too_large: { status: 413, code: 'payload_too_large', retryable: false },
  no_leader: { status: 503, code: 'no_leader', retryable: true },
  timeout: { status: 503, code: 'timeout', retryable: true },
  overloaded: { status: 503, code: 'overloaded', retryable: true },
  node_stopped: { status: 503, code: 'node_stopped', retryable: true },
  storage_failed: { status: 500, code: 'storage_failed', retryable: false },
  internal: { status: 500, code: 'internal', retryable: false },
  sequence_gap: { status: 409, code: 'sequence_gap', retryable: false },
  session_unknown: { status: 409, code: 'session_unknown', retryable: false },
  session_forbidden: { status: 403, code: 'session_forbidden', retryable: false },
  session_conflict: { status: 409, code: 'session_conflict', retryable: false },
  compacted: { status: 410, code: 'compacted', retryable: false },
  last_voter: { status: 409, code: 'last_voter', retryable: false },
  not_held: { status: 503, code: 'not_held', retryable: true },
};

/** Runtime detail names that differ on the wire, where "index" means a position. */
const detailNames: Readonly<Record<string, string>> = {
  firstPosition: 'firstIndex',
  position: 'index',
};

export function fromBroadcastError(error: BroadcastError): HttpError {
  const mapping = runtimeErrors[error.code];
  const details: Record<string, string | number | null> = {};
  for (const [name, value] of Object.entries(error.details)) {
    details[detailNames[name] ?? name] = value;
  }
  return new HttpError(mapping.status, mapping.code, error.message, details, mapping.retryable);
}

/** Whatever a handler threw, as an HttpError; anything unexpected is a 500 `internal`. */
/** What the log says of an unexpected failure: its stack when it has one. */
export function failureReason(cause: unknown): string {
  return cause instanceof Error ? (cause.stack ?? cause.message) : String(cause);
}

export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof BroadcastError) return fromBroadcastError(error);
  return new HttpError(500, 'internal', 'internal error; see the node log');
}
