/**
 * The mark of a restore under way in a data directory. `snapshot restore` writes the node's
 * identity and first WAL segment before the snapshot itself; a restore cut short between
 * the two (a full disk, a killed process, a power cut) left a directory that `start` took
 * for a new, empty member, and a cluster restored that way on every node started empty with
 * no error. The mark is durable before the storage writes anything and goes only once the
 * snapshot is durable: `start` and a second `restore` refuse a directory that holds it.
 */
import { join } from 'node:path';
import { hasErrorCode } from '../../storage/file-system.ts';
import {
  ensureDirectory,
  fsyncDirectory,
  newIoCounters,
  removeIfPresent,
} from '../../storage/fs-util.ts';
import { nodeFileSystem } from '../../storage/node-file-system.ts';
import { CliError } from './errors.ts';

export const restoreMarkerName = 'restore-incomplete';

/** Refuses a directory an unfinished restore left, naming what to do. */
export async function refuseUnfinishedRestore(dataDir: string): Promise<void> {
  let names: string[];
  try {
    names = await nodeFileSystem.readdir(dataDir);
  } catch (error) {
    if (hasErrorCode(error, 'ENOENT')) return;
    throw error;
  }
  if (!names.includes(restoreMarkerName)) return;
  throw new CliError(
    `${dataDir} holds an unfinished restore (${restoreMarkerName}): the snapshot may be missing from it. Remove the directory and run abcast snapshot restore again`,
  );
}

/** Creates the directory (durably) and the mark in it, synced before anything else is written. */
export async function markRestoreStarted(dataDir: string): Promise<void> {
  const counters = newIoCounters();
  await ensureDirectory(nodeFileSystem, dataDir, counters);
  // Empty: its name is all it says, made durable by the directory's sync.
  const handle = await nodeFileSystem.open(join(dataDir, restoreMarkerName), 'createExclusive');
  await handle.close();
  await fsyncDirectory(nodeFileSystem, dataDir, counters);
}

/** Removes the mark once the restored state is durable. */
export async function markRestoreDone(dataDir: string): Promise<void> {
  await removeIfPresent(nodeFileSystem, join(dataDir, restoreMarkerName));
  await fsyncDirectory(nodeFileSystem, dataDir, newIoCounters());
}
