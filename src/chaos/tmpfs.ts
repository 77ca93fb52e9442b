/**
 * Small disks for the full-disk fault: each node's data directory on its own tmpfs (root
 * only: `mount -t tmpfs`), which a ballast file fills to within a few kilobytes, so that the
 * node's own writes run it out of space while it runs; deleting the ballast gives the space
 * back. Every mount is undone at the end of the run, on failure too, and — synchronously, as
 * a last resort — when the process exits with mounts left (a lazy unmount if one is busy).
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdir, open, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Whether this process may mount file systems. */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Why a tmpfs cannot be mounted here, or null if it can: tried on `dir` and undone. Root is
 * not always enough (a container without CAP_SYS_ADMIN).
 */
export async function tmpfsRefusal(dir: string): Promise<string | null> {
  if (!isRoot()) return 'mounting a tmpfs needs root';
  const mounts = new TmpfsMounts(1024 * 1024);
  try {
    await mounts.mount(dir);
    return null;
  } catch (error) {
    return `mount -t tmpfs failed: ${(error as { stderr?: string }).stderr?.trim() || String(error)}`;
  } finally {
    await mounts.unmountAll();
    await rm(dir, { recursive: true, force: true });
  }
}

const ballastFileName = 'ballast';
const chunkBytes = 64 * 1024;

export class TmpfsMounts {
  private readonly mounted = new Set<string>();
  private readonly onExit = () => this.unmountAllSync();

  constructor(private readonly sizeBytes: number) {
    process.on('exit', this.onExit);
  }

  /** Mounts a tmpfs of the configured size on `dir` (created if missing). */
  async mount(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    await run('mount', ['-t', 'tmpfs', '-o', `size=${this.sizeBytes}`, 'tmpfs', dir]);
    this.mounted.add(dir);
  }

  /** Free bytes an unprivileged writer may still use on the file system holding `dir`. */
  async freeBytes(dir: string): Promise<number> {
    const info = await statfs(dir);
    return info.bavail * info.bsize;
  }

  /**
   * Fills the tmpfs on `dir` with a ballast file until at most `headroomBytes` are free
   * (or it is full); says what it did.
   */
  async fill(dir: string, headroomBytes: number): Promise<string> {
    const before = await this.freeBytes(dir);
    const target = Math.max(0, before - headroomBytes);
    const handle = await open(join(dir, ballastFileName), 'a');
    const zeros = Buffer.alloc(chunkBytes);
    let written = 0;
    try {
      // Bounded by the target, itself bounded by the mount's size.
      while (written < target) {
        const length = Math.min(chunkBytes, target - written);
        try {
          await handle.write(zeros, 0, length);
        } catch (error) {
          if ((error as { code?: string }).code === 'ENOSPC') break;
          throw error;
        }
        written += length;
      }
    } finally {
      await handle.close();
    }
    return `a ballast of ${written} bytes leaves ${await this.freeBytes(dir)} of ${before} free`;
  }

  /** Gives the space back. */
  async free(dir: string): Promise<void> {
    await rm(join(dir, ballastFileName), { force: true });
  }

  /** Unmounts every mount (lazily if busy); never rejects, says what it could not undo. */
  async unmountAll(): Promise<string[]> {
    const failures: string[] = [];
    for (const dir of [...this.mounted]) {
      try {
        await run('umount', [dir]);
      } catch {
        try {
          await run('umount', ['-l', dir]);
        } catch (error) {
          failures.push(`${dir}: ${String(error)}`);
          continue;
        }
      }
      this.mounted.delete(dir);
    }
    if (this.mounted.size === 0) process.off('exit', this.onExit);
    return failures;
  }

  private unmountAllSync(): void {
    for (const dir of this.mounted) {
      if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
    }
    this.mounted.clear();
  }
}
