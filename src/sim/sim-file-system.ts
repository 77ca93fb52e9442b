/**
 * A simulated disk behind the storage's FileSystem interface (src/storage/file-system.ts),
 * modelling what real disks do to a WAL, driven by a seeded PRNG and by explicit fault calls:
 *
 * - Each file has durable content and unsynced writes. `datasync` makes the file's writes
 *   durable (with its size); a directory entry (a create, rename, link or unlink) is durable
 *   only once its directory is synced. Reads see everything written, synced or not.
 * - `powerCut()` is a crash: of the unsynced writes, every sector (512 bytes unless
 *   configured) independently survives or is lost, drawn from the PRNG, so a write may be
 *   torn; each unsynced directory change independently survives or is lost, the survivors
 *   applied in order. Open handles die, and operations in flight fail.
 * - Latent corruption at rest: `flipBit` and `zeroSector`, on a file the PRNG picks.
 * - Per-instance probabilities, applied to each unsynced write at `datasync`: a lost write
 *   (reported durable, never reaches the disk) and a misdirected one (lands sectors away).
 * - `ENOSPC` past `capacityBytes`; `EIO` from `datasync` with a probability, after which the
 *   file's unsynced writes are gone from the disk while reads still return them (fsyncgate).
 *
 * Operations take effect and complete when they fire: on a microtask by default, or when the
 * simulator calls the `fire` it was given by `schedule` (so a datasync can take virtual time).
 * Nothing here reads a clock or draws randomness from anywhere but the PRNG passed in.
 *
 * A rename or link moves the name, never the bytes: a file renamed for reuse (a recycled WAL
 * segment) still holds its old content wherever nothing new was written, and a torn write
 * over it leaves old sectors between new ones, as on a real disk.
 *
 * Sectors are written atomically (a torn write tears at sector boundaries); creating a file
 * over an existing name (`createOrTruncate`) makes a new file under that name, as a rename
 * over it would; renames stay within one directory.
 */
import { posix } from 'node:path';
import type { FileHandle, FileSystem, OpenMode } from '../storage/file-system.ts';
import { assert } from '../util/assert.ts';
import type { Prng } from '../util/prng.ts';
import {
  applyChange,
  Bytes,
  corruptAtRest,
  Directory,
  type Entry,
  Inode,
  normalize,
} from './sim-disk-model.ts';
import {
  type CorruptionReport,
  NO_DISK_FAULTS,
  type SimDiskFaults,
  SimFileError,
  type SimFileOperation,
  type SimFileSystemCounters,
  type SimFileSystemOptions,
} from './sim-disk-types.ts';

export {
  type CorruptionReport,
  NO_DISK_FAULTS,
  type SimDiskFaults,
  SimFileError,
  type SimFileErrorCode,
  type SimFileOperation,
  type SimFileSystemCounters,
  type SimFileSystemOptions,
} from './sim-disk-types.ts';

const MISDIRECTION_SECTORS_MAX = 8;

export class SimFileSystem implements FileSystem {
  private readonly prng: Prng;
  private readonly sectorBytes: number;
  private readonly capacityBytes: number;
  private readonly schedule: ((delayMs: number, fire: () => void) => void) | null;
  private readonly delayMs: (operation: SimFileOperation) => number;
  private faults: SimDiskFaults;
  private readonly inodes = new Map<number, Inode>();
  private readonly directories = new Map<string, Directory>([['/', new Directory()]]);
  private nextInodeId = 1;
  /** Bumped by every power cut: handles and operations of an older epoch are dead. */
  private epoch = 0;
  private readonly counts = {
    datasyncCount: 0,
    directorySyncCount: 0,
    writtenBytes: 0,
    powerCutCount: 0,
    lostSectorCount: 0,
    lostDirectoryChangeCount: 0,
    lostWriteCount: 0,
    misdirectedWriteCount: 0,
    datasyncErrorCount: 0,
    noSpaceErrorCount: 0,
    bitFlipCount: 0,
    zeroedSectorCount: 0,
  };

  constructor(options: SimFileSystemOptions) {
    const sectorBytes = options.sectorBytes ?? 512;
    assert(
      Number.isSafeInteger(sectorBytes) &&
        sectorBytes > 0 &&
        (sectorBytes & (sectorBytes - 1)) === 0,
      'sectors are a power of two bytes',
    );
    const capacityBytes = options.capacityBytes ?? Number.POSITIVE_INFINITY;
    assert(capacityBytes >= 0, 'the capacity is not negative');
    this.prng = options.prng;
    this.sectorBytes = sectorBytes;
    this.capacityBytes = capacityBytes;
    this.schedule = options.schedule ?? null;
    this.delayMs = options.delayMs ?? (() => 0);
    this.faults = NO_DISK_FAULTS;
    this.setFaults(options.faults ?? {});
  }

  setFaults(faults: Partial<SimDiskFaults>): void {
    const next = { ...this.faults, ...faults };
    for (const [name, probability] of Object.entries(next)) {
      assert(probability >= 0 && probability <= 1, `${name} is a probability`);
    }
    this.faults = next;
  }

  counters(): SimFileSystemCounters {
    const c = this.counts;
    const faultCount =
      c.lostSectorCount +
      c.lostDirectoryChangeCount +
      c.lostWriteCount +
      c.misdirectedWriteCount +
      c.datasyncErrorCount +
      c.noSpaceErrorCount +
      c.bitFlipCount +
      c.zeroedSectorCount;
    return { ...c, faultCount };
  }

  /** Bytes of content held by files that have a name or an open handle. */
  usedBytes(): number {
    const held = this.heldInodeIds({ durable: false });
    let byteCount = 0;
    for (const inode of this.inodes.values()) {
      if (held.has(inode.inodeId) || inode.openCount > 0) byteCount += inode.live.length;
    }
    return byteCount;
  }

  // ---- FileSystem --------------------------------------------------------------------

  open(path: string, mode: OpenMode): Promise<FileHandle> {
    return this.run('open', () => {
      const inode = this.openInode(normalize(path), mode);
      return new SimHandle(this, inode, this.epoch, normalize(path), {
        writable: mode !== 'read',
        durableWrites: mode === 'readWriteDurable',
      });
    });
  }

  readFile(path: string): Promise<Uint8Array> {
    return this.run('readFile', () => {
      const inode = this.fileAt(normalize(path), 'open');
      return inode.live.view(0, inode.live.length).slice();
    });
  }

  rename(from: string, to: string): Promise<void> {
    return this.run('rename', () => {
      const source = this.lookUp(normalize(from), 'rename');
      const target = this.lookUp(normalize(to), 'rename');
      if (source.directoryPath !== target.directoryPath) {
        throw new SimFileError('EXDEV', 'rename', to, 'renames stay within one directory');
      }
      const entry = this.fileEntry(source, 'rename');
      if (target.entry?.kind === 'directory') {
        throw new SimFileError('EISDIR', 'rename', to, 'the target is a directory');
      }
      if (source.name === target.name) return;
      source.directory.change([
        { name: target.name, entry },
        { name: source.name, entry: null },
      ]);
    });
  }

  link(from: string, to: string): Promise<void> {
    return this.run('link', () => {
      const entry = this.fileEntry(this.lookUp(normalize(from), 'link'), 'link');
      const target = this.lookUp(normalize(to), 'link');
      if (target.entry !== null) throw new SimFileError('EEXIST', 'link', to, 'the name is taken');
      target.directory.change([{ name: target.name, entry }]);
    });
  }

  unlink(path: string): Promise<void> {
    return this.run('unlink', () => {
      const found = this.lookUp(normalize(path), 'unlink');
      this.fileEntry(found, 'unlink');
      found.directory.change([{ name: found.name, entry: null }]);
    });
  }

  readdir(path: string): Promise<string[]> {
    return this.run('readdir', () =>
      [...this.directoryAt(normalize(path), 'scandir').live.keys()].sort(),
    );
  }

  makeDirectory(path: string): Promise<string | null> {
    return this.run('makeDirectory', () => {
      let firstCreated: string | null = null;
      let current = '/';
      // Bounded by the depth of the path.
      for (const name of normalize(path)
        .split('/')
        .filter((part) => part.length > 0)) {
        const parent = this.directoryAt(current, 'mkdir');
        const child = posix.join(current, name);
        const entry = parent.live.get(name);
        if (entry?.kind === 'file') throw new SimFileError('EEXIST', 'mkdir', child, 'a file');
        if (entry === undefined) {
          parent.change([{ name, entry: { kind: 'directory' } }]);
          this.directories.set(child, new Directory());
          firstCreated ??= child;
        }
        current = child;
      }
      return firstCreated;
    });
  }

  syncDirectory(path: string): Promise<void> {
    return this.run('syncDirectory', () => {
      const directory = this.directoryAt(normalize(path), 'fsync');
      for (const change of directory.pending) applyChange(directory.durable, change);
      directory.pending = [];
      this.counts.directorySyncCount += 1;
    });
  }

  // ---- faults ------------------------------------------------------------------------

  /**
   * A crash: every unsynced sector and directory change survives or is lost (drawn from the
   * PRNG), what is left becomes what every read sees, open handles die and operations in
   * flight fail with EIO when they fire.
   */
  powerCut(): void {
    this.epoch += 1;
    this.counts.powerCutCount += 1;
    for (const inode of this.inodes.values()) this.settleWritesAtPowerCut(inode);
    for (const directory of this.directories.values()) {
      for (const change of directory.pending) {
        if (this.prng.chance(0.5)) applyChange(directory.durable, change);
        else this.counts.lostDirectoryChangeCount += 1;
      }
      directory.pending = [];
      directory.live = new Map(directory.durable);
    }
    this.dropUnreachableDirectories();
    const held = this.heldInodeIds({ durable: true });
    for (const inode of [...this.inodes.values()]) {
      inode.openCount = 0;
      if (!held.has(inode.inodeId)) this.inodes.delete(inode.inodeId);
    }
  }

  /** Flips one bit of a file's content at rest; the file is drawn when `path` is not given. */
  flipBit(path?: string): CorruptionReport | null {
    const target = this.corruptionTarget(path);
    if (target === null) return null;
    const offsetBytes = this.prng.below(target.inode.durable.length);
    const bit = 1 << this.prng.below(8);
    corruptAtRest(target.inode, offsetBytes, (byte) => byte ^ bit);
    this.counts.bitFlipCount += 1;
    return { path: target.path, offsetBytes };
  }

  /** Zeroes one sector of a file's content at rest; the file is drawn when not given. */
  zeroSector(path?: string): CorruptionReport | null {
    const target = this.corruptionTarget(path);
    if (target === null) return null;
    const sectorCount = Math.ceil(target.inode.durable.length / this.sectorBytes);
    const offsetBytes = this.prng.below(sectorCount) * this.sectorBytes;
    const endBytes = Math.min(offsetBytes + this.sectorBytes, target.inode.durable.length);
    for (let position = offsetBytes; position < endBytes; position++) {
      corruptAtRest(target.inode, position, () => 0);
    }
    this.counts.zeroedSectorCount += 1;
    return { path: target.path, offsetBytes };
  }

  /** Every file path the live namespace holds, sorted. */
  listFiles(): string[] {
    const paths: string[] = [];
    for (const [directoryPath, directory] of this.directories) {
      for (const [name, entry] of directory.live) {
        if (entry.kind === 'file') paths.push(posix.join(directoryPath, name));
      }
    }
    return paths.sort();
  }

  // ---- what handles call -------------------------------------------------------------

  /** @internal */
  run<T>(operation: SimFileOperation, effect: () => T, epoch = this.epoch): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const fire = (): void => {
        if (this.epoch !== epoch) {
          reject(new SimFileError('EIO', operation, '', 'the power was cut'));
          return;
        }
        try {
          resolve(effect());
        } catch (error) {
          reject(error);
        }
      };
      if (this.schedule === null) queueMicrotask(fire);
      else this.schedule(this.delayMs(operation), fire);
    });
  }

  /** @internal */
  isCurrent(epoch: number): boolean {
    return epoch === this.epoch;
  }

  /** @internal */
  writeTo(inode: Inode, path: string, chunks: readonly Uint8Array[], positionBytes: number): void {
    assert(Number.isSafeInteger(positionBytes) && positionBytes >= 0, 'writes go at an offset');
    let byteCount = 0;
    for (const chunk of chunks) byteCount += chunk.length;
    const growthBytes = Math.max(0, positionBytes + byteCount - inode.live.length);
    if (
      growthBytes > 0 &&
      this.capacityBytes !== Number.POSITIVE_INFINITY &&
      this.usedBytes() + growthBytes > this.capacityBytes
    ) {
      this.counts.noSpaceErrorCount += 1;
      throw new SimFileError('ENOSPC', 'write', path, 'no space left on the simulated disk');
    }
    const data = new Uint8Array(byteCount);
    let offset = 0;
    for (const chunk of chunks) {
      data.set(chunk, offset);
      offset += chunk.length;
    }
    inode.live.write(data, positionBytes);
    inode.pending.push({ positionBytes, data });
    this.counts.writtenBytes += byteCount;
  }

  /** @internal */
  datasync(inode: Inode, path: string): void {
    this.counts.datasyncCount += 1;
    const pending = inode.pending;
    inode.pending = [];
    if (pending.length > 0 && this.prng.chance(this.faults.datasyncErrorProbability)) {
      // The kernel marks the failed pages clean: they never reach the disk, reads still see them.
      this.counts.datasyncErrorCount += 1;
      throw new SimFileError('EIO', 'fdatasync', path, 'the simulated disk failed the flush');
    }
    for (const write of pending) {
      if (this.prng.chance(this.faults.lostWriteProbability)) {
        this.counts.lostWriteCount += 1;
        continue;
      }
      let positionBytes = write.positionBytes;
      if (this.prng.chance(this.faults.misdirectedWriteProbability)) {
        this.counts.misdirectedWriteCount += 1;
        const shiftBytes = this.prng.between(1, MISDIRECTION_SECTORS_MAX) * this.sectorBytes;
        positionBytes = this.prng.chance(0.5)
          ? positionBytes + shiftBytes
          : Math.max(0, positionBytes - shiftBytes);
      }
      inode.durable.write(write.data, positionBytes);
    }
  }

  // ---- synchronous access (sim-store-files.ts) -----------------------------------------

  /** @internal The file at `path`, created (empty) if `create` and absent; null if absent. */
  fileSync(path: string, create: boolean): Inode | null {
    const found = this.lookUp(path, 'open');
    if (found.entry === null) return create ? this.openInode(path, 'createExclusive') : null;
    return this.fileAt(path, 'open');
  }

  /** @internal Cuts the file's content to `sizeBytes`; like a write, lost at a power cut. */
  truncateSync(inode: Inode, sizeBytes: number): void {
    inode.live.truncate(sizeBytes);
  }

  /** @internal Names of the files in `directory`, which is created (with parents) if absent. */
  namesSync(directory: string): string[] {
    if (!this.directories.has(directory)) {
      if (directory !== '/') this.namesSync(posix.dirname(directory));
      const parent = this.directoryAt(posix.dirname(directory), 'mkdir');
      parent.change([{ name: posix.basename(directory), entry: { kind: 'directory' } }]);
      this.directories.set(directory, new Directory());
    }
    const names: string[] = [];
    for (const [name, entry] of this.directoryAt(directory, 'scandir').live) {
      if (entry.kind === 'file') names.push(name);
    }
    return names.sort();
  }

  /** @internal */
  unlinkSync(path: string): void {
    const found = this.lookUp(path, 'unlink');
    if (found.entry !== null) found.directory.change([{ name: found.name, entry: null }]);
  }

  /** @internal Within one directory, as rename() is. */
  renameSync(from: string, to: string): void {
    const source = this.lookUp(from, 'rename');
    const target = this.lookUp(to, 'rename');
    assert(source.directoryPath === target.directoryPath, 'renames stay within one directory');
    const entry = this.fileEntry(source, 'rename');
    source.directory.change([
      { name: target.name, entry },
      { name: source.name, entry: null },
    ]);
  }

  /** @internal As syncDirectory, at once. */
  syncDirectorySync(path: string): void {
    const directory = this.directoryAt(path, 'fsync');
    for (const change of directory.pending) applyChange(directory.durable, change);
    directory.pending = [];
    this.counts.directorySyncCount += 1;
  }

  /** @internal The power-cut epoch, which ends the handles of older ones. */
  get currentEpoch(): number {
    return this.epoch;
  }

  // ---- internals ---------------------------------------------------------------------

  /** Of the unsynced writes, each touched sector independently reaches the disk or not. */
  private settleWritesAtPowerCut(inode: Inode): void {
    const sectors = new Set<number>();
    for (const write of inode.pending) {
      const first = Math.floor(write.positionBytes / this.sectorBytes);
      const last = Math.floor((write.positionBytes + write.data.length - 1) / this.sectorBytes);
      for (let sector = first; sector <= last; sector++) sectors.add(sector);
    }
    for (const sector of [...sectors].sort((left, right) => left - right)) {
      if (!this.prng.chance(0.5)) {
        this.counts.lostSectorCount += 1;
        continue;
      }
      const from = sector * this.sectorBytes;
      const to = Math.min(from + this.sectorBytes, inode.live.length);
      if (from < to) inode.durable.write(inode.live.view(from, to).slice(), from);
    }
    inode.pending = [];
    inode.live = Bytes.copyOf(inode.durable);
  }

  private openInode(path: string, mode: OpenMode): Inode {
    if (mode === 'read' || mode === 'readWrite' || mode === 'readWriteDurable') {
      return this.fileAt(path, 'open');
    }
    const found = this.lookUp(path, 'open');
    if (found.entry?.kind === 'directory') {
      throw new SimFileError('EISDIR', 'open', path, 'a directory');
    }
    if (found.entry !== null && mode === 'createExclusive') {
      throw new SimFileError('EEXIST', 'open', path, 'the file exists');
    }
    const inode = new Inode(this.nextInodeId++);
    this.inodes.set(inode.inodeId, inode);
    found.directory.change([{ name: found.name, entry: { kind: 'file', inodeId: inode.inodeId } }]);
    return inode;
  }

  private lookUp(
    path: string,
    syscall: string,
  ): { directoryPath: string; directory: Directory; name: string; entry: Entry | null } {
    const directoryPath = posix.dirname(path);
    const name = posix.basename(path);
    assert(name.length > 0 && path !== '/', 'a file path names an entry');
    const directory = this.directoryAt(directoryPath, syscall);
    return { directoryPath, directory, name, entry: directory.live.get(name) ?? null };
  }

  private fileEntry(
    found: { readonly entry: Entry | null; readonly name: string },
    syscall: string,
  ): Entry {
    if (found.entry === null) {
      throw new SimFileError('ENOENT', syscall, found.name, 'no such file or directory');
    }
    if (found.entry.kind === 'directory') {
      throw new SimFileError('EISDIR', syscall, found.name, 'a directory');
    }
    return found.entry;
  }

  private fileAt(path: string, syscall: string): Inode {
    const entry = this.fileEntry(this.lookUp(path, syscall), syscall);
    assert(entry.kind === 'file', 'a file entry');
    const inode = this.inodes.get(entry.inodeId);
    assert(inode !== undefined, 'a named file has its inode');
    return inode;
  }

  private directoryAt(path: string, syscall: string): Directory {
    const directory = this.directories.get(path);
    if (directory !== undefined) return directory;
    if (this.inodeAtPath(path) !== null) {
      throw new SimFileError('ENOTDIR', syscall, path, 'not a directory');
    }
    throw new SimFileError('ENOENT', syscall, path, 'no such file or directory');
  }

  private inodeAtPath(path: string): Entry | null {
    if (path === '/') return null;
    return this.directories.get(posix.dirname(path))?.live.get(posix.basename(path)) ?? null;
  }

  /** Directories whose entry a power cut lost go, with everything in them. */
  private dropUnreachableDirectories(): void {
    const reachable = new Set<string>(['/']);
    const queue = ['/'];
    // Bounded by the number of directories: each is queued once.
    for (let path = queue.pop(); path !== undefined; path = queue.pop()) {
      for (const [name, entry] of this.directories.get(path)?.live ?? []) {
        const child = posix.join(path, name);
        if (entry.kind === 'directory' && this.directories.has(child) && !reachable.has(child)) {
          reachable.add(child);
          queue.push(child);
        }
      }
    }
    for (const path of [...this.directories.keys()]) {
      if (!reachable.has(path)) this.directories.delete(path);
    }
  }

  /** Inodes named by the live (or durable) namespace. */
  private heldInodeIds(options: { readonly durable: boolean }): Set<number> {
    const held = new Set<number>();
    for (const directory of this.directories.values()) {
      const entries = options.durable ? directory.durable : directory.live;
      for (const entry of entries.values()) if (entry.kind === 'file') held.add(entry.inodeId);
    }
    return held;
  }

  private corruptionTarget(path: string | undefined): { path: string; inode: Inode } | null {
    if (path !== undefined) {
      const inode = this.fileAt(normalize(path), 'corrupt');
      return inode.durable.length === 0 ? null : { path: normalize(path), inode };
    }
    const candidates = this.listFiles()
      .map((candidate) => ({ path: candidate, inode: this.fileAt(candidate, 'corrupt') }))
      .filter((candidate) => candidate.inode.durable.length > 0);
    return candidates.length === 0 ? null : this.prng.pick(candidates);
  }
}

class SimHandle implements FileHandle {
  private closed = false;
  private readonly writable: boolean;
  private readonly durableWrites: boolean;

  constructor(
    private readonly files: SimFileSystem,
    private readonly inode: Inode,
    private readonly epoch: number,
    private readonly path: string,
    how: { readonly writable: boolean; readonly durableWrites: boolean },
  ) {
    inode.openCount += 1;
    this.writable = how.writable;
    this.durableWrites = how.durableWrites;
  }

  /**
   * On a `readWriteDurable` handle (O_DSYNC) a write is a write and then a datasync, two
   * operations apart: a power cut between them tears the write as it would an unsynced one,
   * and the datasync's faults (lost, misdirected, EIO) apply to it.
   */
  async write(chunks: readonly Uint8Array[], positionBytes: number): Promise<void> {
    await this.writeOnly(chunks, positionBytes);
    if (this.durableWrites) await this.datasync();
  }

  private writeOnly(chunks: readonly Uint8Array[], positionBytes: number): Promise<void> {
    return this.files.run(
      'write',
      () => {
        this.checkUsable('write');
        if (!this.writable) throw new SimFileError('EBADF', 'write', this.path, 'read only');
        this.files.writeTo(this.inode, this.path, chunks, positionBytes);
      },
      this.epoch,
    );
  }

  read(target: Uint8Array, positionBytes: number): Promise<number> {
    return this.files.run(
      'read',
      () => {
        this.checkUsable('read');
        const live = this.inode.live;
        const end = Math.min(live.length, positionBytes + target.length);
        if (end <= positionBytes) return 0;
        target.set(live.view(positionBytes, end));
        return end - positionBytes;
      },
      this.epoch,
    );
  }

  sizeBytes(): Promise<number> {
    return this.files.run(
      'stat',
      () => {
        this.checkUsable('fstat');
        return this.inode.live.length;
      },
      this.epoch,
    );
  }

  datasync(): Promise<void> {
    return this.files.run(
      'datasync',
      () => {
        this.checkUsable('fdatasync');
        this.files.datasync(this.inode, this.path);
      },
      this.epoch,
    );
  }

  close(): Promise<void> {
    return this.files.run(
      'close',
      () => {
        this.checkUsable('close');
        this.closed = true;
        this.inode.openCount -= 1;
      },
      this.epoch,
    );
  }

  private checkUsable(syscall: string): void {
    if (this.closed) throw new SimFileError('EBADF', syscall, this.path, 'the handle is closed');
    assert(this.files.isCurrent(this.epoch), 'operations of a dead handle never fire');
  }
}
