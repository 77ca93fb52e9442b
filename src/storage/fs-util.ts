/**
 * The few file-system moves durability depends on. A new or renamed file survives a power
 * cut only once its directory is fsynced too; a file is replaced atomically by writing a
 * temporary file, fsyncing it, renaming it over the old one and fsyncing the directory.
 */
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { assert } from '../util/assert.ts';
import { ioError } from './errors.ts';

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
    walPreallocatedBytes: 0,
  };
}

export async function fsyncDirectory(path: string, counters: IoCounters): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | null = null;
  try {
    handle = await open(path, 'r');
    await handle.sync();
    counters.fsyncCount += 1;
  } catch (error) {
    throw ioError('fsync directory', path, error);
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Replaces `path` with `chunks` atomically: readers see the old or the new content, whole,
 * even after a power cut. Resolves after the directory fsync. Returns the bytes written.
 */
export async function writeFileAtomic(
  path: string,
  chunks: readonly Uint8Array[],
  counters: IoCounters,
  temporaryPath = `${path}.tmp`,
): Promise<number> {
  let byteCount = 0;
  for (const chunk of chunks) byteCount += chunk.length;
  let handle: Awaited<ReturnType<typeof open>> | null = null;
  try {
    handle = await open(temporaryPath, 'w');
    const { bytesWritten } = await handle.writev([...chunks], 0);
    assert(bytesWritten === byteCount, 'writev writes every byte');
    await handle.sync();
    counters.fsyncCount += 1;
    await handle.close();
    handle = null;
    await rename(temporaryPath, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(temporaryPath, { force: true }).catch(() => undefined);
    throw ioError('atomic write', path, error);
  }
  await fsyncDirectory(dirname(path), counters);
  return byteCount;
}
