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
 * How: bytes are gathered in a stage aligned to the block size (the memory of a WebAssembly
 * instance is page-aligned; a Buffer is not). A full stage goes to a writer thread, which
 * writes it whole while the next stage fills: a direct write waits for the disk (≈1 ms a
 * MiB here), and the node's thread has better things to do meanwhile. `settle` waits for the
 * writer, writes what is staged, padded to a whole block, then cuts the file back to its
 * true length: before a sync, a rewrite in place, a truncation, a rename or a close. So at
 * any moment the file holds every byte before the stage being written (or, with none, the
 * stage being filled), and the two stages every byte from there to `end`: reads combine them.
 *
 * Bytes still staged are lost if the process dies, as bytes in the page cache are lost if
 * the machine does: the store is not synced, the WAL holds what it lost (store.ts).
 *
 * The node's thread blocks while it waits for the writer, so it cannot hear of the writer's
 * end through the Worker's events: it waits in slices and, between them, looks for the end
 * itself (`DirectWriter.idle`). A writer that ended, or never started, fails the store as a
 * failed write does; a write that is only slow (a slow disk) is waited for, however long.
 */
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  ftruncateSync,
  openSync,
  writeSync,
} from 'node:fs';
import { constants as osConstants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { Worker } from 'node:worker_threads';
import { assert } from '../util/assert.ts';

/** Offsets, lengths and the buffer's address of a direct write are multiples of this. */
export const directBlockBytes = 4096;

const wasmPageBytes = 65536;

/**
 * One aligned block for every probe of the process: each wasm memory reserves gigabytes of
 * address space until it is collected, and a store is opened once per node start (or per
 * test), so one is made on the first probe and kept.
 */
let probeBlock: Buffer | null = null;

function alignedProbeBlock(): Buffer {
  if (probeBlock === null) {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
    probeBlock = Buffer.from(memory.buffer, 0, directBlockBytes);
  }
  return probeBlock;
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
    writeSync(fd, alignedProbeBlock(), 0, directBlockBytes, 0);
    return true;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/** The shared control words of a `DirectWriter`, by index. */
const requestSeq = 0;
const doneSeq = 1;
const requestFd = 2;
const requestMemoryOffset = 3;
const requestLength = 4;
const requestFileOffsetHigh = 5;
const requestFileOffsetLow = 6;
const doneErrno = 7;
const stopFlag = 8;
/** 1 once the thread has started; -1 once the node gave up on it first (it must not start). */
const startedFlag = 9;
/** Set once the thread takes no more requests (its loop ended other than by `stopFlag`). */
const deadFlag = 10;
/** The thread's task id in /proc/self/task (0: unknown), set before it starts. */
const threadTaskId = 11;
/** Bytes of the thread's note on the error that ended its loop. */
const endNoteBytes = 12;
const controlWords = 13;

/** The most of an ending thread's error kept for the failure's message. */
const endNoteBytesMax = 512;

/**
 * How long waits wait, in all, for the writer thread to start before the store fails: a loaded
 * machine (a CI runner) can take seconds to start a thread; none takes a minute.
 */
export const writerThreadStartMsMax = 60_000;

/**
 * One wait for the writer, at most, before the node's thread looks whether it still exists.
 * Only a wait that times out costs the look (a stat of /proc), so a slice this short costs
 * nothing while writes keep up, and a dead writer is seen within it.
 */
const waitSliceMs = 100;

/**
 * The writer thread: waits for a request, writes it whole, says so. Plain JavaScript run by
 * `eval`, so that it loads the same from the sources (tsx) and from dist/.
 *
 * Whatever ends its loop but the stop flag (a throw outside the write's try) sets `deadFlag`
 * and wakes the node's thread, which would otherwise wait for the write forever. A thread
 * that cannot run that (terminated, or out of memory: Node stops its isolate) is seen gone
 * from /proc/self/task/<its task id>, where Linux shows a thread only while it exists.
 */
const writerThreadSource = `
const { workerData } = require('node:worker_threads');
const { readlinkSync, writeSync } = require('node:fs');
const control = new Int32Array(workerData.control);
try {
  control[${threadTaskId}] = Number(readlinkSync('/proc/thread-self').split('/').pop()) || 0;
} catch {}
// Claimed, not just set: a thread that starts after the node gave up on it writes nothing
// (the descriptors of its requests may be closed by then, their numbers reused).
const started = Atomics.compareExchange(control, ${startedFlag}, 0, 1) === 0;
try {
  const memory = Buffer.from(workerData.memory);
  let seen = 0;
  while (started) {
    Atomics.wait(control, ${requestSeq}, seen);
    if (Atomics.load(control, ${stopFlag}) !== 0) break;
    const seq = Atomics.load(control, ${requestSeq});
    if (seq === seen) continue;
    seen = seq;
    const fd = control[${requestFd}];
    const at = control[${requestMemoryOffset}];
    const length = control[${requestLength}];
    const offset = control[${requestFileOffsetHigh}] * 4294967296 + (control[${requestFileOffsetLow}] >>> 0);
    let errno = 0;
    try {
      let written = 0;
      while (written < length) {
        written += writeSync(fd, memory, at + written, length - written, offset + written);
      }
    } catch (error) {
      errno = typeof error.errno === 'number' && error.errno !== 0 ? error.errno : -5;
    }
    control[${doneErrno}] = errno;
    Atomics.store(control, ${doneSeq}, seen);
    Atomics.notify(control, ${doneSeq});
  }
} catch (error) {
  try {
    // The error and where it was thrown, on one line.
    const text = String((error && error.stack) || error).split('\\n').slice(0, 2).map((line) => line.trim());
    const note = Buffer.from(text.join(' ')).subarray(0, ${endNoteBytesMax});
    new Uint8Array(workerData.endNote).set(note);
    Atomics.store(control, ${endNoteBytes}, note.length);
  } catch {}
} finally {
  if (Atomics.load(control, ${stopFlag}) === 0) {
    Atomics.store(control, ${deadFlag}, 1);
    Atomics.notify(control, ${doneSeq});
  }
}
`;

/** What the writer thread is given. */
export interface WriterThreadData {
  readonly control: SharedArrayBuffer;
  /** The stages' memory (a shared wasm memory's buffer). */
  readonly memory: ArrayBufferLike;
  readonly endNote: SharedArrayBuffer;
}

export interface DirectWriterOptions {
  /** How long waits wait, in all, for the thread to start; default `writerThreadStartMsMax`. */
  readonly threadStartMsMax?: number;
}

/**
 * One thread making the direct writes of one store's appenders, one write at a time, from
 * stages in memory it shares with them (`stages`, each `stageBytes`, two per appender).
 */
export class DirectWriter {
  readonly stages: Buffer[] = [];
  private readonly control: Int32Array;
  /** Protected for tests that stop it as Node stops a thread out of memory. */
  protected readonly worker: Worker;
  private readonly endNote: Uint8Array;
  private readonly threadStartMsMax: number;
  /** Waited so far, in whole slices, for a thread that had not started. */
  private startWaitedMs = 0;
  /** Why the thread ended, as seen from this side ('error', 'exit', a look after a slice). */
  private threadEnd: string | null = null;
  private submitted = 0;
  private closed = false;
  /**
   * The first write that failed, or the thread's end. Kept, and thrown at every later wait:
   * the stage it was writing is gone once its appender fills that stage again, so the file
   * would keep a hole where those bytes belong, read as zeros once the appender moves on. No
   * appender may go on as if it had been written (nor another one, that was told instead:
   * the failure is thrown to whichever appender waits next). A thread that ended, or never
   * started, leaves the request it was given unwritten and takes no other.
   */
  private failure: Error | null = null;

  constructor(
    readonly stageBytes: number,
    stageCount: number,
    options: DirectWriterOptions = {},
  ) {
    assert(stageBytes % wasmPageBytes === 0, 'stages are whole wasm pages');
    this.threadStartMsMax = options.threadStartMsMax ?? writerThreadStartMsMax;
    assert(this.threadStartMsMax > 0, 'a thread is given time to start');
    const pages = (stageBytes / wasmPageBytes) * stageCount;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    for (let at = 0; at < stageCount; at++) {
      this.stages.push(Buffer.from(memory.buffer, at * stageBytes, stageBytes));
    }
    const control = new SharedArrayBuffer(controlWords * Int32Array.BYTES_PER_ELEMENT);
    this.control = new Int32Array(control);
    const endNote = new SharedArrayBuffer(endNoteBytesMax);
    this.endNote = new Uint8Array(endNote);
    this.worker = this.startThread(writerThreadSource, { control, memory: memory.buffer, endNote });
    // Heard only while the node's thread is not waiting for a write: a thread that ended
    // between writes fails the next one before it is handed over.
    this.worker.on('error', (error: Error) => this.threadEnded(`failed: ${String(error)}`));
    this.worker.on('exit', (exitCode: number) => {
      if (Atomics.load(this.control, stopFlag) === 0) {
        this.threadEnded(`exited (exit code ${exitCode})`);
      }
    });
    // The thread never holds the process up: it only ever waits for the next request.
    this.worker.unref();
  }

  /** Whether the thread has claimed its start (tests wait for it before timing a write). */
  protected threadHasStarted(): boolean {
    return Atomics.load(this.control, startedFlag) === 1;
  }

  /** Starts the thread running `source` (tests wrap it, to make it fail). */
  protected startThread(source: string, workerData: WriterThreadData): Worker {
    return new Worker(source, {
      eval: true,
      // Not the process's flags: with --input-type=module (node -e) the source would run as
      // a module, without `require`, and the thread would die before it started (a loader
      // such as tsx is no use to it either).
      execArgv: [],
      workerData,
    });
  }

  /**
   * Has the thread write `length` bytes of `stage` at `offset` of `fd`, once the write before
   * it (of any appender) is done. Throws that earlier write's failure, if it failed.
   */
  submit(fd: number, stage: Buffer, offset: number, length: number): void {
    assert(!this.closed, 'a closed writer takes no write');
    this.wait();
    const control = this.control;
    control[requestFd] = fd;
    control[requestMemoryOffset] = stage.byteOffset;
    control[requestLength] = length;
    control[requestFileOffsetHigh] = Math.floor(offset / 4294967296);
    control[requestFileOffsetLow] = offset % 4294967296;
    this.submitted = (this.submitted + 1) | 0;
    Atomics.store(control, requestSeq, this.submitted);
    Atomics.notify(control, requestSeq);
  }

  /**
   * Returns once no write is in flight; throws if any write so far failed or the thread
   * ended (that first failure, each time: see `failure`).
   */
  wait(): void {
    this.idle();
    if (this.failure !== null) throw this.failure;
  }

  /**
   * Returns once no write is in flight, failed or not (before a descriptor is closed): the
   * last one is done, or the thread will make none (it ended, or never started).
   */
  idle(): void {
    const control = this.control;
    for (;;) {
      const done = Atomics.load(control, doneSeq);
      if (done === this.submitted) break;
      if (Atomics.load(control, deadFlag) !== 0) break;
      if (Atomics.wait(control, doneSeq, done, waitSliceMs) === 'timed-out') this.lookAtThread();
    }
    const errno = control[doneErrno] as number;
    if (errno !== 0) {
      control[doneErrno] = 0;
      // Shaped as node:fs shapes a failed system call: the runtime stops the node on those as
      // on the disk's failure (src/broadcast/deliveries.ts, `isSystemCallFailure`).
      const code = errno < 0 ? getSystemErrorName(errno) : 'EIO';
      this.failure ??= Object.assign(
        new Error(`${code}: a direct write to the message store failed (errno ${errno})`),
        { errno, code, syscall: 'write' },
      );
    }
    if (Atomics.load(control, deadFlag) !== 0) this.failure ??= this.threadFailure();
  }

  /**
   * After a slice waited in vain: marks the thread dead if it is gone, or if it has not
   * started in `threadStartMsMax` of waiting. Time is counted in slices waited (the store
   * reads no clock), which is never more than the time that passed.
   */
  private lookAtThread(): void {
    const control = this.control;
    if (Atomics.load(control, startedFlag) === 0) {
      this.startWaitedMs += waitSliceMs;
      if (this.startWaitedMs < this.threadStartMsMax) return;
      // Claimed as the thread claims its start: one of the two wins, never both.
      if (Atomics.compareExchange(control, startedFlag, 0, -1) === 0) {
        this.threadEnded(`did not start within ${this.threadStartMsMax} ms`);
        return;
      }
    }
    const taskId = control[threadTaskId] as number;
    if (taskId !== 0 && !existsSync(`/proc/self/task/${taskId}`)) {
      this.threadEnded('is gone (terminated, or out of memory)');
    }
  }

  private threadEnded(reason: string): void {
    this.threadEnd ??= reason;
    Atomics.store(this.control, deadFlag, 1);
  }

  /** A dead thread's failure, shaped as a failed write (see `idle`). */
  private threadFailure(): Error {
    const noteBytes = Atomics.load(this.control, endNoteBytes);
    const reason =
      noteBytes > 0
        ? `stopped: ${Buffer.from(this.endNote.buffer, 0, noteBytes).toString()}`
        : (this.threadEnd ?? 'stopped');
    const errno = -osConstants.errno.EIO;
    return Object.assign(
      new Error(`EIO: the message store's writer thread ${reason}; no direct write can be made`),
      { errno, code: 'EIO', syscall: 'write' },
    );
  }

  /** Stops the thread once its write is done; a failure is thrown by `wait`, not here. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.idle();
    Atomics.store(this.control, stopFlag, 1);
    Atomics.add(this.control, requestSeq, 1);
    Atomics.notify(this.control, requestSeq);
  }
}

export class DirectAppender {
  private readonly fd: number;
  /** File offset of the filling stage's first byte: a multiple of the block size. */
  private stageStart: number;
  /** Bytes in the filling stage. */
  private stagedBytes: number;
  private filling: Buffer;
  /** The other stage: being written (or written) at `writtenStart`, `writtenBytes` long. */
  private other: Buffer;
  private writtenStart = 0;
  private writtenBytes = 0;

  /**
   * Starts appending at `end`, the file's current length, with `stages` (two, its own until
   * `close`) and `writer`; `readFile` reads the partial block before `end` into a stage (it
   * must be rewritten whole with what follows it).
   */
  constructor(
    path: string,
    end: number,
    readonly stages: readonly [Buffer, Buffer],
    private readonly writer: DirectWriter,
    readFile: (buffer: Buffer, offset: number) => number,
  ) {
    this.fd = openSync(path, constants.O_WRONLY | constants.O_DIRECT);
    [this.filling, this.other] = stages;
    this.stageStart = end - (end % directBlockBytes);
    this.stagedBytes = end - this.stageStart;
    if (this.stagedBytes > 0) {
      const head = this.filling.subarray(0, this.stagedBytes);
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
      const copied = data.copy(this.filling, this.stagedBytes, taken);
      taken += copied;
      this.stagedBytes += copied;
      if (this.stagedBytes === this.filling.length) this.handOver();
    }
  }

  /** The full stage goes to the writer; the other one, written by now, fills next. */
  private handOver(): void {
    // Waits for the other stage's write (and any before it) before the writer takes this one.
    this.writer.submit(this.fd, this.filling, this.stageStart, this.filling.length);
    const full = this.filling;
    this.filling = this.other;
    this.other = full;
    this.writtenStart = this.stageStart;
    this.writtenBytes = full.length;
    this.stageStart += full.length;
    this.stagedBytes = 0;
  }

  /**
   * Reads `buffer.length` bytes from `offset` (fewer past the end): the part before the
   * stages with `readFile`, the rest from them.
   */
  read(buffer: Buffer, offset: number, readFile: (buffer: Buffer, offset: number) => number) {
    const end = Math.min(offset + buffer.length, this.end);
    if (end <= offset) return 0;
    const memoryStart = this.writtenBytes > 0 ? this.writtenStart : this.stageStart;
    let readBytes = 0;
    if (offset < memoryStart) {
      const fileEnd = Math.min(end, memoryStart);
      readBytes = readFile(buffer.subarray(0, fileEnd - offset), offset);
      if (readBytes < fileEnd - offset) return readBytes;
    }
    readBytes += this.copyOut(
      this.other,
      this.writtenStart,
      this.writtenBytes,
      buffer,
      offset,
      end,
    );
    readBytes += this.copyOut(this.filling, this.stageStart, this.stagedBytes, buffer, offset, end);
    return readBytes;
  }

  /** Copies the part of `stage` (holding `stageBytes` from `stageStart`) in `offset … end`. */
  private copyOut(
    stage: Buffer,
    stageStart: number,
    stageBytes: number,
    buffer: Buffer,
    offset: number,
    end: number,
  ): number {
    const from = Math.max(offset, stageStart);
    const to = Math.min(end, stageStart + stageBytes);
    if (from >= to) return 0;
    return stage.copy(buffer, from - offset, from - stageStart, to - stageStart);
  }

  /**
   * Writes the staged bytes (their last block padded), then cuts the file to its length:
   * afterwards the file alone holds every byte. The stage stays, so appending goes on.
   */
  settle(): void {
    this.writer.wait();
    this.writtenBytes = 0;
    if (this.stagedBytes === 0) return;
    const paddedBytes = Math.ceil(this.stagedBytes / directBlockBytes) * directBlockBytes;
    this.filling.fill(0, this.stagedBytes, paddedBytes);
    let written = 0;
    while (written < paddedBytes) {
      written += writeSync(
        this.fd,
        this.filling,
        written,
        paddedBytes - written,
        this.stageStart + written,
      );
    }
    if (fstatSync(this.fd).size !== this.end) ftruncateSync(this.fd, this.end);
  }

  /**
   * Closes the file once the writer is done with it: its number could be reused at once. A
   * failed write is not thrown here (the writer throws it at every later wait).
   */
  close(): void {
    this.writer.idle();
    closeSync(this.fd);
  }
}
