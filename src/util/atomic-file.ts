/**
 * Replacing a file atomically: readers see the old content or the new, whole, even after a
 * power cut. The steps are write a temporary file, fsync it, rename it over the old one, then
 * fsync the directory — without the last step the rename itself may be lost at a crash.
 *
 * The file operations come in as a narrow interface that src/storage's FileSystem satisfies,
 * so the storage runs this over the real disk or the simulator's, and other layers (agents'
 * snapshots) over the real one, with no copy of the steps.
 */
import { assert } from './assert.ts';

export interface AtomicWriteHandle {
  write(chunks: readonly Uint8Array[], positionBytes: number): Promise<void>;
  /** Resolves once every write made through this handle is durable. */
  datasync(): Promise<void>;
  close(): Promise<void>;
}

export interface AtomicWriteFileSystem {
  open(path: string, mode: 'createOrTruncate'): Promise<AtomicWriteHandle>;
  /** Atomically replaces `to` with `from`, in the same directory. */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Makes the directory's entries (here: the rename) durable. */
  syncDirectory(path: string): Promise<void>;
}

export interface TemporaryWrite {
  readonly files: AtomicWriteFileSystem;
  readonly path: string;
  readonly chunks: readonly Uint8Array[];
  /** Unique per writer when several processes may replace one file at once. */
  readonly temporaryPath: string;
  /** Called after each fsync that succeeded, for the caller's counters. */
  readonly onFsync?: () => void;
}

/**
 * The first three steps: `chunks` written to `temporaryPath`, fsynced, renamed over `path`.
 * On failure the temporary file is removed (best effort) and the error is thrown as it came.
 * The rename is not durable until the caller fsyncs the directory. Returns the bytes written.
 */
export async function writeTemporaryAndRename(write: TemporaryWrite): Promise<number> {
  const { files, path, chunks, temporaryPath } = write;
  assert(temporaryPath !== path, 'the temporary file is not the file it replaces');
  let byteCount = 0;
  for (const chunk of chunks) byteCount += chunk.length;
  let handle: AtomicWriteHandle | null = null;
  try {
    handle = await files.open(temporaryPath, 'createOrTruncate');
    await handle.write(chunks, 0);
    await handle.datasync();
    write.onFsync?.();
    await handle.close();
    handle = null;
    await files.rename(temporaryPath, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await files.unlink(temporaryPath).catch(() => undefined);
    throw error;
  }
  return byteCount;
}

/** Every step, the directory fsync of `directory` (the one holding `path`) included. */
export async function replaceFileAtomically(
  write: TemporaryWrite & { readonly directory: string },
): Promise<number> {
  const byteCount = await writeTemporaryAndRename(write);
  await write.files.syncDirectory(write.directory);
  write.onFsync?.();
  return byteCount;
}
