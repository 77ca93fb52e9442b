/**
 * The files of a message store: flat names in one directory, read and written at offsets.
 * Synchronous on purpose: the applier appends as it applies, in the Ready loop, and a read
 * of a few hundred kilobytes from the page cache costs less than the promise around it.
 * `DiskStoreFiles` is node:fs; `MemoryStoreFiles` its twin for the runtime's tests and the
 * simulator.
 */
import {
  closeSync,
  constants,
  existsSync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { assert } from '../util/assert.ts';
import { DirectAppender, DirectWriter, directWritesWork } from './direct-append.ts';

export interface StoreFiles {
  names(): string[];
  /** Bytes in the file; 0 for one that does not exist. */
  size(name: string): number;
  /** Reads into `buffer` from `offset`; returns the bytes read (fewer at the end). */
  read(name: string, buffer: Buffer, offset: number): number;
  /**
   * Writes `data` at `offset`, creating the file if needed. Not synced (store.ts says why).
   * Keeps no reference to `data`: the caller reuses it once this returns.
   */
  write(name: string, data: Buffer, offset: number): void;
  truncate(name: string, sizeBytes: number): void;
  remove(name: string): void;
  readText(name: string): string | null;
  /** Replaces the file whole: a reader sees the old text or the new one. */
  writeText(name: string, text: string): void;
  /** Moves `from` to `to`, replacing it (compaction's rewritten segments). */
  rename(from: string, to: string): void;
  /**
   * Makes the content of `names` and their entries in the directory durable (fdatasync of
   * each, then of the directory): before the WAL is compacted past what they hold. Off the
   * event loop: the node goes on meanwhile. A name removed meanwhile needs no sync.
   */
  sync(names: readonly string[]): Promise<void>;
  /**
   * Makes the content of `name` durable now, on the calling thread (fdatasync). For the rare
   * rewrite in place of bytes that were durable already (segment.ts, `resealFrame`): it
   * must reach the disk before anything written after it can.
   */
  syncNow(name: string): void;
  close(): void;
}

/** Open descriptors kept at most; older ones are closed and reopened when read again. */
const openFilesMax = 32;

/** Files appended to at once with direct writes, at most (a segment and a compaction copy). */
const appendersMax = 4;

export interface DiskStoreFilesOptions {
  /**
   * Appends go to disk with direct I/O (direct-append.ts says why) when the file system
   * allows it; false: always through the page cache. Default true.
   */
  readonly directWrites?: boolean;
  /** Bytes gathered before a direct write: a multiple of 64 KiB. Default 1 MiB. */
  readonly directStageBytes?: number;
}

export class DiskStoreFiles implements StoreFiles {
  private readonly descriptors = new Map<string, number>();
  /** Files being appended to with direct writes, least recently appended first. */
  private readonly appenders = new Map<string, DirectAppender>();
  /** Made with the first appender: the thread and the memory direct writes go from. */
  private writer: DirectWriter | null = null;
  /** Pairs of the writer's stages no appender holds. */
  private readonly spareStages: (readonly [Buffer, Buffer])[] = [];
  private readonly directWrites: boolean;
  private readonly directStageBytes: number;

  constructor(
    private readonly directory: string,
    options: DiskStoreFilesOptions = {},
  ) {
    this.directStageBytes = options.directStageBytes ?? 1 << 20;
    if (!existsSync(directory)) {
      mkdirSync(directory, { recursive: true });
      // The new folder's name is durable only once its parent is synced: without it, a
      // power cut after the WAL was compacted past what this folder holds could lose both.
      const parent = openSync(dirname(directory), 'r');
      try {
        fsyncSync(parent);
      } finally {
        closeSync(parent);
      }
    }
    this.directWrites = (options.directWrites ?? true) && this.probeDirectWrites();
  }

  /** Whether this directory takes direct writes: a probe file, removed after. */
  private probeDirectWrites(): boolean {
    const probe = join(this.directory, '.direct-probe');
    try {
      return directWritesWork(probe);
    } finally {
      try {
        unlinkSync(probe);
      } catch {}
    }
  }

  names(): string[] {
    return readdirSync(this.directory).filter((name) => name !== '.direct-probe');
  }

  size(name: string): number {
    const appender = this.appenders.get(name);
    if (appender !== undefined) return appender.end;
    try {
      return fstatSync(this.descriptor(name, false)).size;
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return 0;
      throw error;
    }
  }

  read(name: string, buffer: Buffer, offset: number): number {
    const appender = this.appenders.get(name);
    if (appender !== undefined) {
      return appender.read(buffer, offset, (part, at) => this.readFile(name, part, at));
    }
    return this.readFile(name, buffer, offset);
  }

  private readFile(name: string, buffer: Buffer, offset: number): number {
    return readSync(this.descriptor(name, false), buffer, 0, buffer.length, offset);
  }

  write(name: string, data: Buffer, offset: number): void {
    if (this.directWrites) {
      const appender = this.appenders.get(name) ?? this.startAppending(name, offset);
      if (appender !== null && appender.end === offset) {
        // Most recently appended last: the first one is the one to settle when too many.
        this.appenders.delete(name);
        this.appenders.set(name, appender);
        appender.append(data);
        return;
      }
      // A rewrite in place (a frame header resealed) goes through the page cache, after
      // what is staged: the two kinds of write never overlap in flight.
      this.settle(name);
    }
    const fd = this.descriptor(name, true);
    let written = 0;
    while (written < data.length) {
      written += writeSync(fd, data, written, data.length - written, offset + written);
    }
  }

  /** An appender for `name` when `offset` is its end, else null. */
  private startAppending(name: string, offset: number): DirectAppender | null {
    const fd = this.descriptor(name, true);
    if (fstatSync(fd).size !== offset) return null;
    if (this.writer === null) {
      const writer = new DirectWriter(this.directStageBytes, 2 * (appendersMax + 1));
      for (let at = 0; at < writer.stages.length; at += 2) {
        this.spareStages.push([writer.stages[at] as Buffer, writer.stages[at + 1] as Buffer]);
      }
      this.writer = writer;
    }
    const stages = this.spareStages.pop();
    assert(stages !== undefined, 'a pair of stages for each appender');
    let appender: DirectAppender;
    try {
      appender = new DirectAppender(
        join(this.directory, name),
        offset,
        stages,
        this.writer,
        (part, at) => this.readFile(name, part, at),
      );
    } catch (error) {
      this.spareStages.push(stages); // the open or the head read failed: nobody holds them
      throw error;
    }
    this.appenders.set(name, appender);
    if (this.appenders.size > appendersMax) {
      this.settle(this.appenders.keys().next().value as string);
    }
    return appender;
  }

  /** Writes out and forgets `name`'s appender, if any: the file alone then holds it all. */
  private settle(name: string): void {
    const appender = this.appenders.get(name);
    if (appender === undefined) return;
    this.appenders.delete(name);
    try {
      appender.settle();
    } finally {
      this.closeAppender(appender);
    }
  }

  private closeAppender(appender: DirectAppender): void {
    try {
      appender.close();
    } finally {
      this.spareStages.push(appender.stages);
    }
  }

  truncate(name: string, sizeBytes: number): void {
    this.settle(name);
    ftruncateSync(this.descriptor(name, true), sizeBytes);
  }

  remove(name: string): void {
    // What is staged is not worth writing to a file about to go.
    const appender = this.appenders.get(name);
    this.appenders.delete(name);
    if (appender !== undefined) this.closeAppender(appender);
    this.forget(name);
    try {
      unlinkSync(join(this.directory, name));
    } catch (error) {
      if ((error as { code?: string }).code !== 'ENOENT') throw error;
    }
  }

  readText(name: string): string | null {
    try {
      return readFileSync(join(this.directory, name), 'utf8');
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return null;
      throw error;
    }
  }

  writeText(name: string, text: string): void {
    const temporary = join(this.directory, `${name}.tmp`);
    writeFileSync(temporary, text);
    renameSync(temporary, join(this.directory, name));
  }

  rename(from: string, to: string): void {
    this.settle(from);
    this.settle(to);
    this.forget(from);
    this.forget(to);
    renameSync(join(this.directory, from), join(this.directory, to));
  }

  async sync(names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    // Staged bytes go to the file first; the appenders stay, so appending goes on meanwhile.
    for (const name of names) this.appenders.get(name)?.settle();
    // Descriptors of their own: a cached one may be closed (and its number reused) while the
    // sync runs in the thread pool. An fdatasync syncs the file, whichever descriptor asks.
    for (const name of names) {
      let handle: FileHandle;
      try {
        handle = await open(join(this.directory, name), 'r');
      } catch (error) {
        if ((error as { code?: string }).code === 'ENOENT') continue;
        throw error;
      }
      try {
        await handle.datasync();
      } finally {
        await handle.close();
      }
    }
    const directory = await open(this.directory, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }

  syncNow(name: string): void {
    this.appenders.get(name)?.settle();
    fdatasyncSync(this.descriptor(name, false));
  }

  close(): void {
    let failure: unknown = null;
    for (const name of [...this.appenders.keys()]) {
      try {
        this.settle(name);
      } catch (error) {
        failure ??= error; // the others are still written out and closed
      }
    }
    this.writer?.close();
    this.writer = null;
    this.spareStages.length = 0;
    // Closed whatever failed: a node that stops on a failing disk does not leak them.
    for (const name of [...this.descriptors.keys()]) this.forget(name);
    if (failure !== null) throw failure;
  }

  private descriptor(name: string, create: boolean): number {
    const known = this.descriptors.get(name);
    if (known !== undefined) {
      // Most recently used last: the first one is the one to close.
      this.descriptors.delete(name);
      this.descriptors.set(name, known);
      return known;
    }
    // Not 'a+': with O_APPEND, Linux ignores the offset of a positioned write.
    const flags = create ? constants.O_RDWR | constants.O_CREAT : constants.O_RDWR;
    const fd = openSync(join(this.directory, name), flags, 0o644);
    this.descriptors.set(name, fd);
    if (this.descriptors.size > openFilesMax) {
      const oldest = this.descriptors.keys().next().value as string;
      this.forget(oldest);
    }
    return fd;
  }

  private forget(name: string): void {
    const fd = this.descriptors.get(name);
    if (fd === undefined) return;
    this.descriptors.delete(name);
    closeSync(fd);
  }
}

export class MemoryStoreFiles implements StoreFiles {
  private readonly files = new Map<string, { bytes: Buffer; sizeBytes: number }>();

  names(): string[] {
    return [...this.files.keys()];
  }

  size(name: string): number {
    return this.files.get(name)?.sizeBytes ?? 0;
  }

  read(name: string, buffer: Buffer, offset: number): number {
    const file = this.files.get(name);
    if (file === undefined || offset >= file.sizeBytes) return 0;
    return file.bytes.copy(buffer, 0, offset, file.sizeBytes);
  }

  write(name: string, data: Buffer, offset: number): void {
    let file = this.files.get(name);
    if (file === undefined) {
      file = { bytes: Buffer.alloc(Math.max(4096, data.length)), sizeBytes: 0 };
      this.files.set(name, file);
    }
    assert(offset <= file.sizeBytes, 'store files are written without holes');
    const end = offset + data.length;
    if (end > file.bytes.length) {
      const grown = Buffer.alloc(Math.max(end, file.bytes.length * 2));
      file.bytes.copy(grown, 0, 0, file.sizeBytes);
      file.bytes = grown;
    }
    data.copy(file.bytes, offset);
    file.sizeBytes = Math.max(file.sizeBytes, end);
  }

  truncate(name: string, sizeBytes: number): void {
    const file = this.files.get(name);
    if (file !== undefined) file.sizeBytes = Math.min(file.sizeBytes, sizeBytes);
  }

  remove(name: string): void {
    this.files.delete(name);
  }

  readText(name: string): string | null {
    const file = this.files.get(name);
    return file === undefined ? null : file.bytes.toString('utf8', 0, file.sizeBytes);
  }

  writeText(name: string, text: string): void {
    this.files.delete(name);
    this.write(name, Buffer.from(text, 'utf8'), 0);
  }

  rename(from: string, to: string): void {
    const file = this.files.get(from);
    assert(file !== undefined, 'a renamed file exists');
    this.files.delete(from);
    this.files.set(to, file);
  }

  async sync(): Promise<void> {}

  syncNow(): void {}

  close(): void {}
}
