/**
 * The message store's files (src/store/files.ts) on a simulated disk: the same synchronous
 * calls node:fs answers in production, over the SimFileSystem the WAL uses. The store syncs
 * only before the WAL is compacted and when it rewrites a frame in place, so most of what
 * it wrote is unsynced: a power cut loses or tears any sector of it, and may lose any file
 * it created, renamed or removed, as page-cache writeback in any order would. Bit rot and a
 * full disk reach these files as they reach the WAL's.
 *
 * One instance serves one incarnation: after a power cut every call fails with EIO, so a
 * dead process's store can never write into the disk its successor opened.
 *
 * node:fs appends with direct I/O from a stage in memory (src/store/direct-append.ts): a
 * process that dies there loses the unsynced tail it still held staged. That is one of the
 * states a power cut here may leave (any unsynced write lost), so no twin of the stage is
 * needed for the simulator to reach it.
 */
import { posix } from 'node:path';
import type { StoreFiles } from '../store/files.ts';
import { assert } from '../util/assert.ts';
import { SimFileError, type SimFileSystem } from './sim-file-system.ts';

export class SimStoreFiles implements StoreFiles {
  private readonly epoch: number;

  constructor(
    private readonly disk: SimFileSystem,
    private readonly directory: string,
  ) {
    assert(posix.isAbsolute(directory), 'the store directory is an absolute path');
    this.epoch = disk.currentEpoch;
    this.live('scandir');
    disk.namesSync(directory);
  }

  names(): string[] {
    this.live('scandir');
    return this.disk.namesSync(this.directory);
  }

  size(name: string): number {
    this.live('fstat');
    return this.disk.fileSync(this.path(name), false)?.live.length ?? 0;
  }

  read(name: string, buffer: Buffer, offset: number): number {
    this.live('read');
    const inode = this.disk.fileSync(this.path(name), false);
    if (inode === null) throw new SimFileError('ENOENT', 'open', name, 'no such file');
    const end = Math.min(inode.live.length, offset + buffer.length);
    if (end <= offset) return 0;
    buffer.set(inode.live.view(offset, end));
    return end - offset;
  }

  write(name: string, data: Buffer, offset: number): void {
    this.live('write');
    const path = this.path(name);
    const inode = this.disk.fileSync(path, true);
    assert(inode !== null, 'a file is created for a write');
    this.disk.writeTo(inode, path, [data], offset);
  }

  truncate(name: string, sizeBytes: number): void {
    this.live('ftruncate');
    const inode = this.disk.fileSync(this.path(name), true);
    assert(inode !== null, 'a file is created for a truncate');
    this.disk.truncateSync(inode, sizeBytes);
  }

  remove(name: string): void {
    this.live('unlink');
    this.disk.unlinkSync(this.path(name));
  }

  readText(name: string): string | null {
    this.live('read');
    const inode = this.disk.fileSync(this.path(name), false);
    if (inode === null) return null;
    return Buffer.from(inode.live.view(0, inode.live.length)).toString('utf8');
  }

  writeText(name: string, text: string): void {
    // As DiskStoreFiles: a temporary file renamed over the name, neither synced.
    const temporary = `${name}.tmp`;
    this.disk.unlinkSync(this.path(temporary));
    this.write(temporary, Buffer.from(text, 'utf8'), 0);
    this.disk.renameSync(this.path(temporary), this.path(name));
  }

  rename(from: string, to: string): void {
    // Compaction by key's rewritten segment over the old one: unsynced, as on a real disk.
    this.live('rename');
    this.disk.renameSync(this.path(from), this.path(to));
  }

  async sync(names: readonly string[]): Promise<void> {
    this.live('fdatasync');
    for (const name of names) {
      const path = this.path(name);
      const inode = this.disk.fileSync(path, false);
      if (inode === null) continue; // removed meanwhile, as DiskStoreFiles allows
      this.disk.datasync(inode, path);
    }
    // The directory, and its parents' entries down to it, as a store on a new disk needs.
    for (let path = this.directory; path !== '/'; path = posix.dirname(path)) {
      this.disk.syncDirectorySync(path);
    }
    this.disk.syncDirectorySync('/');
  }

  syncNow(name: string): void {
    this.live('fdatasync');
    const path = this.path(name);
    const inode = this.disk.fileSync(path, false);
    if (inode === null) throw new SimFileError('ENOENT', 'open', name, 'no such file');
    this.disk.datasync(inode, path);
  }

  close(): void {}

  private path(name: string): string {
    assert(!name.includes('/'), 'store file names are flat');
    return `${this.directory}/${name}`;
  }

  private live(syscall: string): void {
    if (!this.disk.isCurrent(this.epoch)) {
      throw new SimFileError('EIO', syscall, this.directory, 'the power was cut');
    }
  }
}
