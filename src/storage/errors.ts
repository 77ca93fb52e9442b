/**
 * Typed operating errors of the storage layer. Callers match on `code`, never on the message:
 *
 * - `INVALID_ARGUMENT`: a request or option breaks the contract (gap in the log, a term going
 *   back, a second vote in one term, an overwrite of a committed entry); nothing was written.
 * - `CORRUPT_RECORD`: a checksummed WAL record failed verification where a torn write cannot
 *   explain it (not the tail of the last segment), and no intact record after it tells the
 *   hard state (a vote may be lost); `details` name the file and byte offset. With one, the
 *   open repairs instead (`PersistedState.damage`, see recovery.ts).
 * - `CORRUPT_LOG`: every record verifies but together they are inconsistent (a missing
 *   segment, an index gap, a commit hint beyond the log); never repaired automatically.
 * - `CORRUPT_SNAPSHOT`, `CORRUPT_METADATA`: the snapshot or metadata file fails verification.
 * - `WRONG_CLUSTER`, `WRONG_NODE`: the data directory belongs to another cluster or node.
 * - `FORMAT_TOO_NEW`: written by a newer release; this one must not guess at it.
 * - `LOCKED`: another live process (or another open in this one) holds the directory.
 * - `OVERLOADED`: too many appends queued behind the disk; nothing was written, retry later.
 * - `CLOSED`: the storage was closed (or abandoned) before the operation could run.
 * - `IO`: the operating system refused a read, write or fsync. After a failed write or fsync
 *   the storage refuses everything (fail-stop): what reached the disk is unknown, and only a
 *   restart, which rereads the disk, can tell.
 */
export type StorageErrorCode =
  | 'INVALID_ARGUMENT'
  | 'CORRUPT_RECORD'
  | 'CORRUPT_LOG'
  | 'CORRUPT_SNAPSHOT'
  | 'CORRUPT_METADATA'
  | 'WRONG_CLUSTER'
  | 'WRONG_NODE'
  | 'FORMAT_TOO_NEW'
  | 'LOCKED'
  | 'OVERLOADED'
  | 'CLOSED'
  | 'IO';

export type StorageErrorDetails = Readonly<Record<string, string | number | boolean | null>>;

export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    readonly details: StorageErrorDetails = {},
    options?: { readonly cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
  }
}

/** Wraps an error thrown by `node:fs` into an `IO` StorageError that names the path. */
export function ioError(operation: string, path: string, cause: unknown): StorageError {
  if (cause instanceof StorageError) return cause;
  const systemCode =
    cause instanceof Error && 'code' in cause && typeof cause.code === 'string' ? cause.code : null;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new StorageError(
    'IO',
    `${operation} failed for ${path}: ${reason}`,
    { operation, path, systemCode },
    { cause },
  );
}

export function invalidArgument(message: string, details: StorageErrorDetails = {}): StorageError {
  return new StorageError('INVALID_ARGUMENT', message, details);
}

/**
 * A file or directory of a newer release: named with both versions, so that the operator
 * knows which release to go back to. Raised before anything is written.
 */
export function formatTooNew(
  what: string,
  formatVersion: number,
  supportedVersion: number,
  details: Readonly<Record<string, string>>,
): StorageError {
  return new StorageError(
    'FORMAT_TOO_NEW',
    `${what} was written in format ${formatVersion}; this release reads up to ${supportedVersion}`,
    { ...details, formatVersion, supportedVersion },
  );
}
