/**
 * The few file-system moves durability depends on. A new or renamed file survives a power
 * cut only once its directory is fsynced too; a file is replaced atomically by writing a
 * temporary file, fsyncing it, renaming it over the old one and fsyncing the directory.
 */
import { dirname, resolve } from 'node:path';
import { writeTemporaryAndRename } from '../util/atomic-file.ts';
import { ioError } from './errors.ts';
import { type FileSystem, hasErrorCode } from './file-system.ts';
import { nodeFileSystem } from './node-file-system.ts';

/** Mutable counters shared by a storage instance and its helpers. */
export interface IoCounters {
  appendCount: number;
  entryCount: number;
  recordCount: number;
  fsyncCount: number;
  walWrittenBytes: number;
  snapshotWrittenBytes: number;
  segmentCreatedCount: number;
  segmentDeletedCount: number;
  segmentSpareMissCount: number;
  segmentRecycledCount: number;
  walPreallocatedBytes: number;
}

export function newIoCounters(): IoCounters {
  return {
    appendCount: 0,
    entryCount: 0,
    recordCount: 0,
    fsyncCount: 0,
    walWrittenBytes: 0,
    snapshotWrittenBytes: 0,
    segmentCreatedCount: 0,
    segmentDeletedCount: 0,
    segmentSpareMissCount: 0,
    segmentRecycledCount: 0,
    walPreallocatedBytes: 0,
  };
}

export async function fsyncDirectory(
  files: FileSystem,
  path: string,
  counters: IoCounters,
): Promise<void> {
  try {
    await files.syncDirectory(path);
  } catch (error) {
    throw ioError('fsync directory', path, error);
  }
  counters.fsyncCount += 1;
}

/** Removes a file's name if it has one; a missing file is what the caller wanted. */
export async function removeIfPresent(files: FileSystem, path: string): Promise<void> {
  try {
    await files.unlink(path);
  } catch (error) {
    if (hasErrorCode(error, 'ENOENT')) return;
    throw ioError('remove', path, error);
  }
}

/** The whole file, or null when it does not exist. Other failures are thrown as they are. */
export async function readFileIfPresent(files: FileSystem, path: string): Promise<Buffer | null> {
  let bytes: Uint8Array;
  try {
    bytes = await files.readFile(path);
  } catch (error) {
    if (hasErrorCode(error, 'ENOENT')) return null;
    throw error;
  }
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Creates (or empties) `path` and writes `bytes`, not synced: for files no crash depends on. */
export async function writeWholeFile(
  files: FileSystem,
  path: string,
  bytes: Uint8Array,
): Promise<void> {
  const handle = await files.open(path, 'createOrTruncate');
  try {
    await handle.write([bytes], 0);
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `path` with `chunks` atomically: readers see the old or the new content, whole,
 * even after a power cut. Resolves after the directory fsync. Returns the bytes written.
 */
export async function replaceFileAtomically(options: {
  readonly files: FileSystem;
  readonly path: string;
  readonly chunks: readonly Uint8Array[];
  readonly counters: IoCounters;
  readonly temporaryPath?: string;
}): Promise<number> {
  const { files, path, chunks, counters } = options;
  let byteCount: number;
  try {
    byteCount = await writeTemporaryAndRename({
      files,
      path,
      chunks,
      temporaryPath: options.temporaryPath ?? `${path}.tmp`,
      onFsync: () => {
        counters.fsyncCount += 1;
      },
    });
  } catch (error) {
    throw ioError('atomic write', path, error);
  }
  await fsyncDirectory(files, dirname(path), counters);
  return byteCount;
}

/**
 * `replaceFileAtomically` on the real disk, for callers outside the storage that have no
 * FileSystem of their own (src/agents keeps its snapshots this way).
 */
export function writeFileAtomic(
  path: string,
  chunks: readonly Uint8Array[],
  counters: IoCounters,
  temporaryPath = `${path}.tmp`,
): Promise<number> {
  return replaceFileAtomically({ files: nodeFileSystem, path, chunks, counters, temporaryPath });
}

/** Creates the directory; a new directory entry is durable only once its parent is synced. */
export async function ensureDirectory(
  files: FileSystem,
  dataDir: string,
  counters: IoCounters,
): Promise<void> {
  let created: string | null;
  try {
    created = await files.makeDirectory(dataDir);
  } catch (error) {
    throw ioError('create directory', dataDir, error);
  }
  if (created === null) return;
  // Every directory made here is an entry in its parent: sync from dataDir up to the first
  // one created (bounded by the depth of the path).
  const firstCreated = resolve(created);
  for (let directory = resolve(dataDir); ; directory = dirname(directory)) {
    await fsyncDirectory(files, dirname(directory), counters);
    if (directory === firstCreated || dirname(directory) === directory) break;
  }
}
