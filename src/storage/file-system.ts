/**
 * The file operations the storage needs, and nothing more. Production passes the real disk
 * (node-file-system.ts); the simulator passes a disk of its own (src/sim/sim-file-system.ts)
 * that loses what was not synced when it cuts the power, so that one seed replays the same
 * run of the same WAL code.
 *
 * Contract, for every implementation:
 *
 * - Every operation is async and completes in call order per handle only as far as the
 *   caller awaits it: the storage never issues two operations on one handle at once.
 * - A write is not durable until `datasync` on its handle resolves (or, on a handle opened
 *   `readWriteDurable`, until the write itself resolves); a directory entry made
 *   by `open` (creating), `rename`, `link` or `unlink` is not durable until `syncDirectory`
 *   on its directory resolves. Until then a power cut may lose it.
 * - Failures are errors carrying a POSIX `code` (`ENOENT`, `EEXIST`, `ENOSPC`, `EIO`, ...),
 *   as `node:fs` throws them; callers match on it with `hasErrorCode`.
 * - After `datasync` fails the file's unsynced writes may be gone while reads still return
 *   them (fsyncgate): the caller must stop trusting the file.
 * - Paths are absolute or relative to the process's directory, joined with `node:path`.
 */

/** How `open` finds or makes the file. */
export type OpenMode =
  /** An existing file, read only. */
  | 'read'
  /** An existing file, read and write. */
  | 'readWrite'
  /**
   * An existing file, read and write, each write durable once it resolves (O_DSYNC): as a
   * write followed by `datasync`, in one system call instead of two. A power cut before it
   * resolves may keep any part of it. A failed write leaves the file's content unknown, as a
   * failed `datasync` does.
   */
  | 'readWriteDurable'
  /** A new file; fails with EEXIST when the name is taken. */
  | 'createExclusive'
  /** A new file, or an existing one emptied. */
  | 'createOrTruncate';

export interface FileHandle {
  /**
   * Writes every byte of `chunks`, in order, starting at `positionBytes` (growing the file
   * if they reach past its end); rejects otherwise. Not durable until `datasync`, unless the
   * handle was opened `readWriteDurable`.
   */
  write(chunks: readonly Uint8Array[], positionBytes: number): Promise<void>;
  /** Reads up to `target.length` bytes at `positionBytes`; resolves with how many (0 at the end). */
  read(target: Uint8Array, positionBytes: number): Promise<number>;
  /** The file's size in bytes, unsynced writes included. */
  sizeBytes(): Promise<number>;
  /** Resolves once every write made through this handle is durable, with the file's size. */
  datasync(): Promise<void>;
  /** Releases the handle; unsynced writes stay unsynced. */
  close(): Promise<void>;
}

export interface FileSystem {
  open(path: string, mode: OpenMode): Promise<FileHandle>;
  /** The whole file. */
  readFile(path: string): Promise<Uint8Array>;
  /** Atomically replaces `to` (a file) with `from`, in the same directory. */
  rename(from: string, to: string): Promise<void>;
  /** A second name for the file `from`; fails with EEXIST when `to` is taken. */
  link(from: string, to: string): Promise<void>;
  /** Removes a file's name; fails with ENOENT when there is none. */
  unlink(path: string): Promise<void>;
  /** The names in a directory, in no particular order. */
  readdir(path: string): Promise<string[]>;
  /**
   * Creates `path` and any missing parents; resolves with the first directory it created,
   * or null when `path` existed. The new entries are durable once their parents are synced.
   */
  makeDirectory(path: string): Promise<string | null>;
  /** Makes the directory's entries (creations, renames, links, unlinks) durable. */
  syncDirectory(path: string): Promise<void>;
}

/** True when `error` is a file-system error with this POSIX code (ENOENT, EEXIST, ...). */
export function hasErrorCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}
