/**
 * Appends to a store file with direct I/O (O_DIRECT): whole aligned blocks go from our own
 * buffer to the disk without passing through the page cache.
 *
 * Why: the store writes every delivered message once and reads it back rarely (a subscriber
 * catching up, backfill). Through the page cache each written byte takes a fresh cached
 * page, and once the cache has grown by a few GiB a fresh page costs far more than the copy
 * into it: on the VMs measured here ≈3.5 ns per byte of kernel time, against ≈0.2 for a
 * direct write (docs/performance-profile.md). A node appending 100 MB/s pays that on every
 * byte for as long as it runs. Direct writes cost the same from the first GiB to the last,
 * and keep the history out of memory the node's own work needs.
 *
 * How: bytes are gathered in a staging buffer aligned to the block size (the memory of a
 * WebAssembly instance is page-aligned; a Buffer is not). When it is full it is written
 * whole, in place; the partial block at the end stays staged. `settle` writes what is
 * staged, padded to a whole block, then cuts the file back to its true length: before a
 * sync, a rewrite in place, a truncation, a rename or a close. So at any moment the file
 * holds every byte before `stageStart`, and the stage every byte from there to `end`: reads
 * combine the two.
 *
 * Bytes still staged are lost if the process dies, as bytes in the page cache are lost if
 * the machine does: the store is not synced, the WAL holds what it lost (store.ts).
 */
import {
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  writeSync,
} from 'node:fs';
import { assert } from '../util/assert.ts';

/** Offsets, lengths and the buffer's address of a direct write are multiples of this. */
export const directBlockBytes = 4096;

const wasmPageBytes = 65536;

/**
 * An aligned buffer of `byteCount` bytes (a multiple of 64 KiB). Each reserves address space
 * of its own (a wasm memory): keep and reuse them rather than make one per file.
 */
export function alignedBuffer(byteCount: number): Buffer {
  assert(byteCount % wasmPageBytes === 0, 'aligned buffers are whole wasm pages');
  const memory = new WebAssembly.Memory({ initial: byteCount / wasmPageBytes });
  return Buffer.from(memory.buffer, 0, byteCount);
}

/** Whether direct I/O works in `directory`'s file system (tmpfs, for one, refuses it). */
export function directWritesWork(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT, 0o644);
  } catch {
    return false;
  }
  try {
    const block = alignedBuffer(wasmPageBytes).subarray(0, directBlockBytes);
    writeSync(fd, block, 0, directBlockBytes, 0);
    return true;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

export class DirectAppender {
  private readonly fd: number;
  /** File offset of the stage's first byte: a multiple of the block size. */
  private stageStart: number;
  /** Bytes in the stage. */
  private stagedBytes: number;

  /**
   * Starts appending at `end`, the file's current length, gathering in `stage` (from
   * `alignedBuffer`, its own until `close`); `readFile` reads the partial block before `end`
   * into the stage (it must be rewritten whole with what follows it).
   */
  constructor(
    path: string,
    end: number,
    readonly stage: Buffer,
    readFile: (buffer: Buffer, offset: number) => number,
  ) {
    assert(stage.length % directBlockBytes === 0, 'a stage of whole blocks');
    this.fd = openSync(path, constants.O_WRONLY | constants.O_DIRECT);
    this.stageStart = end - (end % directBlockBytes);
    this.stagedBytes = end - this.stageStart;
    if (this.stagedBytes > 0) {
      const head = this.stage.subarray(0, this.stagedBytes);
      const readBytes = readFile(head, this.stageStart);
      assert(readBytes === this.stagedBytes, 'the partial block before the end reads whole');
    }
  }

  /** The file's length, staged bytes included. */
  get end(): number {
    return this.stageStart + this.stagedBytes;
  }

  append(data: Buffer): void {
    let taken = 0;
    while (taken < data.length) {
      const copied = data.copy(this.stage, this.stagedBytes, taken);
      taken += copied;
      this.stagedBytes += copied;
      if (this.stagedBytes === this.stage.length) {
        this.writeStage(this.stage.length);
        this.stageStart += this.stage.length;
        this.stagedBytes = 0;
      }
    }
  }

  /**
   * Reads `buffer.length` bytes from `offset` (fewer past the end): the part before the
   * stage with `readFile`, the rest from the stage.
   */
  read(buffer: Buffer, offset: number, readFile: (buffer: Buffer, offset: number) => number) {
    const end = Math.min(offset + buffer.length, this.end);
    if (end <= offset) return 0;
    let readBytes = 0;
    if (offset < this.stageStart) {
      const fileEnd = Math.min(end, this.stageStart);
      readBytes = readFile(buffer.subarray(0, fileEnd - offset), offset);
      if (readBytes < fileEnd - offset) return readBytes;
    }
    const from = Math.max(offset, this.stageStart);
    if (from < end) {
      readBytes += this.stage.copy(
        buffer,
        from - offset,
        from - this.stageStart,
        end - this.stageStart,
      );
    }
    return readBytes;
  }

  /**
   * Writes the staged bytes (their last block padded), then cuts the file to its length:
   * afterwards the file alone holds every byte. The stage stays, so appending goes on.
   */
  settle(): void {
    if (this.stagedBytes === 0) return;
    const paddedBytes = Math.ceil(this.stagedBytes / directBlockBytes) * directBlockBytes;
    this.stage.fill(0, this.stagedBytes, paddedBytes);
    this.writeStage(paddedBytes);
    if (fstatSync(this.fd).size !== this.end) ftruncateSync(this.fd, this.end);
  }

  close(): void {
    closeSync(this.fd);
  }

  private writeStage(byteCount: number): void {
    let written = 0;
    while (written < byteCount) {
      written += writeSync(
        this.fd,
        this.stage,
        written,
        byteCount - written,
        this.stageStart + written,
      );
    }
  }
}

/** Reads through an ordinary descriptor: what direct writes left on disk, as any reader. */
export function readAt(fd: number, buffer: Buffer, offset: number): number {
  return readSync(fd, buffer, 0, buffer.length, offset);
}
