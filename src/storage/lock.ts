/**
 * An exclusive lock on a data directory: a `LOCK` file created exclusively, holding the
 * owner's pid, so two processes (or two opens in one process) never write one log. A lock
 * whose pid is no longer alive was left by a crash and is taken over.
 *
 * A pid alone does not prove its owner alive: a killed process whose parent died too stays
 * a zombie until PID 1 reaps it, and `kill(pid, 0)` succeeds on a zombie; a pid may also be
 * reused by an unrelated process. So the lock records the owner's start time as the kernel
 * counts it (`/proc/<pid>/stat`, field 22), and where /proc exists a lock is held only by a
 * process that is not a zombie and started at that time. Elsewhere `kill(pid, 0)` decides,
 * with the two weaknesses above (the error names the file to remove). The takeover is made
 * safe against a racing opener by moving the stale file aside and checking it is the one
 * judged stale.
 *
 * The files go through the storage's FileSystem; whether a pid is alive is asked of this
 * process's operating system. A simulated disk shared by simulated restarts within one
 * process would always find its own pid alive: the simulator opens without a lock
 * (`directoryLock: 'none'`), and needs none, as nothing else opens its directories.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ioError, StorageError } from './errors.ts';
import { type FileSystem, hasErrorCode } from './file-system.ts';
import { readFileIfPresent, removeIfPresent, writeWholeFile } from './fs-util.ts';
import type { StorageLogger } from './types.ts';

export const LOCK_FILE_NAME = 'LOCK';

export interface DirectoryLock {
  readonly path: string;
  release(): Promise<void>;
}

/** Takes the lock; throws LOCKED when a live process holds it. */
export async function acquireLock(
  files: FileSystem,
  dataDir: string,
  log: StorageLogger,
): Promise<DirectoryLock> {
  const path = join(dataDir, LOCK_FILE_NAME);
  // Two attempts: the second follows the takeover of a stale lock.
  for (let attempt = 0; attempt < 2; attempt++) {
    if (await tryCreate(files, path)) return { path, release: () => releaseLock(files, path) };
    const content = await readLockContent(files, path);
    if (content === null) continue; // released between our attempt and our read
    const owner = parseOwner(content);
    if (owner !== null && isAlive(owner)) throw lockedError(path, owner.pid);
    if (!(await moveAsideIfUnchanged(files, path, content))) break;
    log({ type: 'staleLockRemoved', file: path, pid: owner?.pid ?? null });
  }
  throw lockedError(path, null);
}

/**
 * Writes the pid to a private file, then links it to LOCK: link(2) fails with EEXIST like
 * an O_EXCL open, and a lock file is never seen half-written (an empty LOCK could be a
 * crashed owner or a live one that has not written its pid yet).
 */
async function tryCreate(files: FileSystem, path: string): Promise<boolean> {
  const privatePath = `${path}.${process.pid}.tmp`;
  try {
    const started = processStartTicks(process.pid) ?? '-';
    await writeWholeFile(
      files,
      privatePath,
      Buffer.from(`${process.pid} ${hostname()} ${started}\n`),
    );
    await files.link(privatePath, path);
    return true;
  } catch (error) {
    if (hasErrorCode(error, 'EEXIST')) return false;
    throw ioError('create lock', path, error);
  } finally {
    await removeIfPresent(files, privatePath).catch(() => undefined);
  }
}

async function readLockContent(files: FileSystem, path: string): Promise<string | null> {
  try {
    return (await readFileIfPresent(files, path))?.toString('utf8') ?? null;
  } catch (error) {
    throw ioError('read lock', path, error);
  }
}

interface LockOwner {
  readonly pid: number;
  /** The owner's start time in clock ticks since boot, as /proc says; null if unknown. */
  readonly startTicks: string | null;
}

/** The owner in a lock file; null when unreadable (a crash while it was being written). */
function parseOwner(content: string): LockOwner | null {
  const fields = content.trim().split(/\s+/);
  const pid = Number.parseInt(fields[0] ?? '', 10);
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  const startTicks = fields[2];
  return { pid, startTicks: startTicks === undefined || startTicks === '-' ? null : startTicks };
}

/**
 * A process's state and start time from /proc/<pid>/stat; 'gone' when it has no entry, and
 * null where there is no /proc to ask. The command name (field 2) is in parentheses and may
 * hold spaces and parentheses itself, so fields are counted after its last ')'.
 */
function procStat(pid: number): { state: string; startTicks: string } | 'gone' | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'ESRCH') {
      return procAvailable() ? 'gone' : null;
    }
    return null;
  }
  const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = after[0];
  const startTicks = after[22 - 3];
  if (state === undefined || startTicks === undefined) return null;
  return { state, startTicks };
}

function procAvailable(): boolean {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
}

function processStartTicks(pid: number): string | null {
  const stat = procStat(pid);
  return stat === null || stat === 'gone' ? null : stat.startTicks;
}

function isAlive(owner: LockOwner): boolean {
  const { pid } = owner;
  // Our own pid with our start time: this process opened the directory twice. With another
  // start time: a previous process that had our pid (containers hand out the same low pids).
  const stat = procStat(pid);
  if (stat === 'gone') return false;
  if (stat !== null) {
    // Z: a zombie, dead but not yet reaped; X: dying. Neither writes to the log again.
    if (stat.state === 'Z' || stat.state === 'X') return false;
    // Another start time: the pid was reused by an unrelated process.
    return owner.startTicks === null || owner.startTicks === stat.startTicks;
  }
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, owned by another user. Only ESRCH proves it gone.
    return (error as { code?: unknown }).code !== 'ESRCH';
  }
}

/**
 * Renames the stale lock to a private name and checks it still holds what was judged
 * stale; if a racing process replaced it meanwhile, puts that fresh lock back.
 */
async function moveAsideIfUnchanged(
  files: FileSystem,
  path: string,
  staleContent: string,
): Promise<boolean> {
  const asidePath = `${path}.stale-${process.pid}`;
  try {
    await files.rename(path, asidePath);
  } catch (error) {
    if (hasErrorCode(error, 'ENOENT')) return true;
    throw ioError('move stale lock', path, error);
  }
  const movedContent = await readLockContent(files, asidePath);
  if (movedContent !== staleContent) {
    await files.rename(asidePath, path).catch(() => undefined);
    return false;
  }
  await removeIfPresent(files, asidePath);
  return true;
}

async function releaseLock(files: FileSystem, path: string): Promise<void> {
  try {
    await removeIfPresent(files, path);
  } catch (error) {
    throw ioError('release lock', path, error);
  }
}

function lockedError(path: string, pid: number | null): StorageError {
  const holder = pid === null ? 'another process' : `process ${pid}`;
  return new StorageError(
    'LOCKED',
    `${path} is held by ${holder}; if no such process runs, remove the file`,
    { file: path, pid },
  );
}

/**
 * No lock at all: for a directory that nothing else can open (a simulated disk, which
 * restarts within one process and so would always find its own pid alive).
 */
export function noLock(dataDir: string): DirectoryLock {
  return { path: join(dataDir, LOCK_FILE_NAME), release: async () => undefined };
}
