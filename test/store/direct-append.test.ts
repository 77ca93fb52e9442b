/**
 * The store's node:fs files with direct appends (src/store/direct-append.ts) hold and read
 * back exactly what their in-memory twin does, whatever mix of appends, rewrites in place,
 * reads, cuts, renames, syncs and reopenings comes; a process that stops without closing
 * leaves at least what its last sync wrote; and a failed write, or a writer thread that
 * ended or never started, fails every later wait as the disk's failure instead of hanging.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import {
  DirectAppender,
  DirectWriter,
  directWritesWork,
  type WriterThreadData,
} from '../../src/store/direct-append.ts';
import { DiskStoreFiles, MemoryStoreFiles } from '../../src/store/files.ts';
// Types only: the fixture is a script, run as a child.
import type { Report, Scenario } from './fixtures/writer-child.ts';

const stageBytes = 64 << 10;

type Op =
  | { kind: 'append'; file: number; byteCount: number; seed: number }
  | { kind: 'rewrite'; file: number; at: number; byteCount: number; seed: number }
  | { kind: 'read'; file: number; at: number; byteCount: number }
  | { kind: 'truncate'; file: number; at: number }
  | { kind: 'rename'; from: number; to: number }
  | { kind: 'remove'; file: number }
  | { kind: 'sync'; file: number }
  | { kind: 'reopen' };

const fileArb = fc.integer({ min: 0, max: 2 });
const fractionArb = fc.double({ min: 0, max: 1, noNaN: true });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      file: fileArb,
      // Mostly small (records, frames), now and then past a stage or two.
      byteCount: fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: 1, max: 9000 }) },
        { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 * stageBytes }) },
      ),
      seed: fc.integer({ min: 0, max: 255 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({
        file: fileArb,
        at: fractionArb,
        byteCount: fc.integer({ min: 1, max: 64 }),
        seed: fc.integer({ min: 0, max: 255 }),
      })
      .map((op) => ({ kind: 'rewrite' as const, ...op, at: op.at as number })),
  },
  {
    weight: 4,
    arbitrary: fc
      .record({ file: fileArb, at: fractionArb, byteCount: fc.integer({ min: 1, max: 200000 }) })
      .map((op) => ({ kind: 'read' as const, ...op })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ file: fileArb, at: fractionArb })
      .map((op) => ({ kind: 'truncate' as const, ...op })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ from: fileArb, to: fileArb })
      .map((op) => ({ kind: 'rename' as const, ...op })),
  },
  { weight: 1, arbitrary: fileArb.map((file) => ({ kind: 'remove' as const, file })) },
  { weight: 1, arbitrary: fileArb.map((file) => ({ kind: 'sync' as const, file })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
);

function bytes(byteCount: number, seed: number): Buffer {
  const data = Buffer.allocUnsafe(byteCount);
  for (let at = 0; at < byteCount; at++) data[at] = (seed + at * 31) & 0xff;
  return data;
}

function withDirectory(body: (directory: string) => Promise<void>): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), 'abcast-direct-'));
  return body(directory).finally(() => rmSync(directory, { recursive: true, force: true }));
}

const name = (file: number) => `s${file}`;

test('direct writes are possible here (else the tests below test the page-cache path only)', (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'abcast-direct-'));
  try {
    if (!directWritesWork(join(directory, 'probe'))) t.skip('this file system refuses O_DIRECT');
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test('node:fs files with direct appends hold and read what their in-memory twin does', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 60 }), async (ops) => {
      await withDirectory(async (directory) => {
        const open = () => new DiskStoreFiles(directory, { directStageBytes: stageBytes });
        let disk = open();
        const twin = new MemoryStoreFiles();
        for (const op of ops) {
          switch (op.kind) {
            case 'append': {
              const data = bytes(op.byteCount, op.seed);
              const end = twin.size(name(op.file));
              twin.write(name(op.file), data, end);
              disk.write(name(op.file), data, end);
              data.fill(0); // the files keep no reference to what they were given
              break;
            }
            case 'rewrite': {
              const size = twin.size(name(op.file));
              if (size === 0) break;
              const at = Math.floor(op.at * size);
              const data = bytes(Math.min(op.byteCount, size - at), op.seed);
              twin.write(name(op.file), data, at);
              disk.write(name(op.file), data, at);
              break;
            }
            case 'read': {
              if (!twin.names().includes(name(op.file))) break;
              const at = Math.floor(op.at * (twin.size(name(op.file)) + 10));
              const expected = Buffer.alloc(op.byteCount);
              const actual = Buffer.alloc(op.byteCount);
              const expectedBytes = twin.read(name(op.file), expected, at);
              const actualBytes = disk.read(name(op.file), actual, at);
              assert.equal(actualBytes, expectedBytes, `bytes read at ${at}`);
              assert.ok(actual.subarray(0, actualBytes).equals(expected.subarray(0, actualBytes)));
              break;
            }
            case 'truncate': {
              const at = Math.floor(op.at * twin.size(name(op.file)));
              if (twin.size(name(op.file)) === 0) break;
              twin.truncate(name(op.file), at);
              disk.truncate(name(op.file), at);
              break;
            }
            case 'rename': {
              if (op.from === op.to || twin.size(name(op.from)) === 0) break;
              if (!twin.names().includes(name(op.from))) break;
              twin.rename(name(op.from), name(op.to));
              disk.rename(name(op.from), name(op.to));
              break;
            }
            case 'remove':
              twin.remove(name(op.file));
              disk.remove(name(op.file));
              break;
            case 'sync':
              await disk.sync(disk.names().includes(name(op.file)) ? [name(op.file)] : []);
              break;
            case 'reopen':
              disk.close();
              disk = open();
              break;
          }
          for (const file of [0, 1, 2]) {
            assert.equal(disk.size(name(file)), twin.size(name(file)), `size of ${name(file)}`);
          }
        }
        disk.close();
        // Closed, the files alone hold everything, with their exact lengths.
        for (const file of twin.names()) {
          const expected = Buffer.alloc(twin.size(file));
          twin.read(file, expected, 0);
          assert.equal(statSync(join(directory, file)).size, expected.length);
          assert.ok(readFileSync(join(directory, file)).equals(expected), `content of ${file}`);
        }
        assert.deepEqual(disk.names().sort(), twin.names().sort());
      });
    }),
    { numRuns: 60 },
  );
});

test('a process that stops without closing leaves every byte its last sync covered', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 1, max: 50000 }), { minLength: 1, maxLength: 20 }),
      fc.integer({ min: 0, max: 19 }),
      async (appendBytes, syncAfter) => {
        await withDirectory(async (directory) => {
          const disk = new DiskStoreFiles(directory, { directStageBytes: stageBytes });
          const all: Buffer[] = [];
          let end = 0;
          let syncedBytes = 0;
          for (const [at, byteCount] of appendBytes.entries()) {
            const data = bytes(byteCount, at);
            disk.write('s', data, end);
            all.push(data);
            end += byteCount;
            if (at === syncAfter) {
              await disk.sync(['s']);
              syncedBytes = end;
            }
          }
          // No close: whatever reached the file is a prefix of what was appended.
          const found = readFileSync(join(directory, 's'));
          const written = Buffer.concat(all);
          assert.ok(found.length >= syncedBytes, `${found.length} >= ${syncedBytes}`);
          const kept = Math.min(found.length, written.length);
          assert.ok(found.subarray(0, kept).equals(written.subarray(0, kept)));
          // Bytes past what was appended can only be a padded block's zeros.
          assert.ok(found.subarray(kept).every((byte) => byte === 0));
        });
      },
    ),
    { numRuns: 40 },
  );
});

test('the files work where direct writes are refused, through the page cache', async () => {
  await withDirectory(async (directory) => {
    const disk = new DiskStoreFiles(directory, { directWrites: false });
    disk.write('s', bytes(10000, 1), 0);
    disk.write('s', bytes(10, 2), 10000);
    const read = Buffer.alloc(10010);
    assert.equal(disk.read('s', read, 0), 10010);
    assert.ok(read.equals(Buffer.concat([bytes(10000, 1), bytes(10, 2)])));
    assert.equal(statSync(join(directory, 's')).size, 10010);
    disk.close();
  });
});

test('a direct write that fails is thrown at every later wait: the writer takes no write after it', async (t) => {
  await withDirectory(async (directory) => {
    if (!directWritesWork(join(directory, 'probe'))) {
      t.skip('this file system refuses O_DIRECT');
      return;
    }
    const writer = new DirectWriter(64 << 10, 2);
    const stage = writer.stages[0] as Buffer;
    stage.fill(9);
    const path = join(directory, 'f');
    writeFileSync(path, '');
    const readOnly = openSync(path, 'r');
    const writable = openSync(path, constants.O_WRONLY | constants.O_DIRECT);
    try {
      writer.submit(readOnly, stage, 0, 4096);
      // A failed system call, as node:fs reports one: the runtime stops the node on it.
      assert.throws(() => writer.wait(), {
        message: /direct write to the message store failed/,
        code: 'EBADF',
        syscall: 'write',
      });
      // The lost bytes are not in the file: nothing may be written as if they were.
      assert.throws(() => writer.wait(), /direct write to the message store failed/);
      assert.throws(
        () => writer.submit(writable, stage, 0, 4096),
        /direct write to the message store failed/,
      );
      assert.equal(readFileSync(path).length, 0);
    } finally {
      closeSync(readOnly);
      closeSync(writable);
      writer.close();
    }
  });
});

/** A writer that sends the next stage it is given to a descriptor that refuses writes. */
class LosingWriter extends DirectWriter {
  loseNext = false;

  constructor(
    stageBytes: number,
    private readonly refusing: number,
  ) {
    super(stageBytes, 2);
  }

  override submit(fd: number, stage: Buffer, offset: number, length: number): void {
    const lose = this.loseNext;
    this.loseNext = false;
    super.submit(lose ? this.refusing : fd, stage, offset, length);
  }
}

test('an appender whose stage write was lost appends and settles no more, and reads what it was given', async (t) => {
  await withDirectory(async (directory) => {
    if (!directWritesWork(join(directory, 'probe'))) {
      t.skip('this file system refuses O_DIRECT');
      return;
    }
    const path = join(directory, 'f');
    writeFileSync(path, '');
    const refusing = openSync(path, 'r');
    const writer = new LosingWriter(stageBytes, refusing);
    const readFile = (buffer: Buffer, offset: number) => {
      const fd = openSync(path, 'r');
      try {
        return readSync(fd, buffer, 0, buffer.length, offset);
      } finally {
        closeSync(fd);
      }
    };
    const appender = new DirectAppender(
      path,
      0,
      [writer.stages[0] as Buffer, writer.stages[1] as Buffer],
      writer,
      readFile,
    );
    try {
      writer.loseNext = true;
      appender.append(bytes(stageBytes, 1)); // a full stage: handed over, and lost
      appender.append(bytes(1000, 2));
      assert.throws(() => appender.settle(), /direct write to the message store failed/);
      // Going on would hand the next stage over and settle: the file would hold zeros where
      // the lost stage belongs, and a sync would make that hole durable.
      assert.throws(() => appender.append(bytes(stageBytes, 3)), /direct write/);
      assert.throws(() => appender.settle(), /direct write to the message store failed/);
      // What the appender took still reads back, from its stages.
      const expected = Buffer.concat([bytes(stageBytes, 1), bytes(1000, 2), bytes(stageBytes, 3)]);
      const taken = expected.subarray(0, appender.end);
      assert.ok(appender.end >= stageBytes + 1000);
      const actual = Buffer.alloc(taken.length);
      assert.equal(appender.read(actual, 0, readFile), taken.length);
      assert.ok(actual.equals(taken));
    } finally {
      appender.close();
      closeSync(refusing);
      writer.close();
    }
  });
});

test('files whose disk refuses a write throw it, and closed leave no descriptor open', (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'abcast-direct-'));
  try {
    if (!directWritesWork(join(directory, 'probe'))) {
      t.skip('this file system refuses O_DIRECT');
      return;
    }
    // A file size limit (ulimit -f, 256 or 512 KiB as the shell counts blocks) fails the
    // writes past it with EFBIG, in the writer thread and on the calling thread alike. The
    // child runs from \`node -e\` as a module: its writer thread must not take that flag.
    const child = `
      import { readdirSync, readlinkSync } from 'node:fs';
      import { DiskStoreFiles } from ${JSON.stringify(join(import.meta.dirname, '../../src/store/files.ts'))};
      const directory = ${JSON.stringify(directory)};
      const files = new DiskStoreFiles(directory, { directStageBytes: ${64 << 10} });
      const found = {};
      try {
        files.write('s', Buffer.alloc(40000, 1), 0);
        files.write('t', Buffer.alloc(100000, 1), 0);
        files.write('s', Buffer.alloc(${2 << 20}, 2), 40000);
        found.write = 'ok';
      } catch (error) {
        found.write = String(error);
      }
      try {
        files.close();
        found.close = 'ok';
      } catch (error) {
        found.close = String(error);
      }
      found.open = readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync('/proc/self/fd/' + fd).startsWith(directory);
        } catch {
          return false;
        }
      }).length;
      console.log(JSON.stringify(found));
    `;
    const run = spawnSync(
      'sh',
      [
        '-c',
        'ulimit -f 512 && exec "$0" "$@"',
        process.execPath,
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        child,
      ],
      // A hang bound: a wait for the writer that never returned would block the child.
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(run.status, 0, run.stderr);
    const found = JSON.parse(run.stdout) as { write: string; close: string; open: number };
    assert.match(found.write, /direct write to the message store failed|EFBIG/);
    assert.match(found.close, /direct write to the message store failed|EFBIG/);
    assert.equal(found.open, 0);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

const writerChild = fileURLToPath(new URL('./fixtures/writer-child.ts', import.meta.url));

/**
 * A writer child's bound. Its waits block its only thread, test timers with it, so a wait
 * that regressed to waiting forever is bounded here, by killing the child.
 */
const writerChildMsMax = 60_000;
/** Each test's own bound, past the child's: the test fails rather than hangs. */
const writerTestMsMax = writerChildMsMax + 30_000;

/** Runs `scenario` of fixtures/writer-child.ts; null (the test skipped) without O_DIRECT. */
async function runWriterChild(t: TestContext, scenario: Scenario): Promise<Report | null> {
  const directory = mkdtempSync(join(tmpdir(), 'abcast-direct-'));
  try {
    if (!directWritesWork(join(directory, 'probe'))) {
      t.skip('this file system refuses O_DIRECT');
      return null;
    }
    const child = promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', writerChild, scenario, directory],
      { encoding: 'utf8', timeout: writerChildMsMax, killSignal: 'SIGKILL' },
    );
    const { stdout } = await child.catch((error: { killed?: boolean; stderr?: string }) => {
      throw new Error(
        error.killed === true
          ? `${scenario}: still waiting for its writer after ${writerChildMsMax} ms (killed)`
          : `${scenario}: the child failed: ${error.stderr ?? String(error)}`,
      );
    });
    return JSON.parse(stdout) as Report;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/**
 * The steps before `failingStep` returned; it threw a failed system call, as node:fs shapes
 * one (the runtime stops the node: storage_failed), matching `message`; every later step
 * that waits threw that very error, and idle and close returned.
 */
function assertStoppedForGood(report: Report, failingStep: string, message: RegExp): void {
  const failingAt = report.steps.findIndex((step) => step.step === failingStep);
  assert.ok(failingAt > 0, `a step named ${failingStep}: ${JSON.stringify(report.steps)}`);
  for (const step of report.steps.slice(0, failingAt)) {
    assert.equal(step.threw, false, `${step.step} before the failure: ${step.message}`);
  }
  const failure = report.steps[failingAt];
  assert.equal(failure?.threw, true, `${failingStep} throws`);
  assert.match(failure?.message ?? '', message);
  assert.equal(failure?.code, 'EIO');
  assert.equal(failure?.syscall, 'write');
  assert.equal(failure?.errno, -5);
  assert.equal(failure?.systemCallFailure, true);
  const later = report.steps.slice(failingAt + 1);
  assert.deepEqual(
    later.map((step) => step.step),
    ['wait again', 'submit again', 'idle', 'close', 'wait after close'],
  );
  for (const step of later) {
    const waits = step.step !== 'idle' && step.step !== 'close';
    assert.equal(step.threw, waits, `${step.step} ${waits ? 'throws' : 'returns'}`);
    if (waits) assert.equal(step.sameAsFirst, true, `${step.step} throws the first failure`);
  }
}

test('a writer thread that throws outside its write fails the wait for that write, and every later one', {
  timeout: writerTestMsMax,
}, async (t) => {
  const report = await runWriterChild(t, 'throws');
  if (report === null) return;
  assertStoppedForGood(
    report,
    'wait',
    /^EIO: the message store's writer thread stopped: Error: injected: the writer thread throws/,
  );
  assert.equal(report.fileBytes, 0);
});

test('a writer thread stopped while a write waits for it (as out of memory) fails that wait, and every later one', {
  timeout: writerTestMsMax,
}, async (t) => {
  const report = await runWriterChild(t, 'terminated');
  if (report === null) return;
  assertStoppedForGood(report, 'wait for it', /writer thread is gone/);
  assert.equal(report.fileBytes, 4096, 'the write before the stop, not the one after');
});

test('a writer thread that ended between writes fails the next submit before it is handed over', {
  timeout: writerTestMsMax,
}, async (t) => {
  const report = await runWriterChild(t, 'ended-between-writes');
  if (report === null) return;
  assertStoppedForGood(report, 'submit after the end', /writer thread exited/);
  assert.equal(report.fileBytes, 4096);
});

test('a writer thread that does not start in its bound fails the wait, and writes nothing if it starts after', {
  timeout: writerTestMsMax,
}, async (t) => {
  const report = await runWriterChild(t, 'never-starts');
  if (report === null) return;
  assertStoppedForGood(report, 'wait', /writer thread did not start within 300 ms/);
  assert.equal(report.fileBytes, 0);
});

/** A writer whose every write takes `slowWriteMs` longer, as on a slow disk. */
const slowWriteMs = 600;

class SlowWriter extends DirectWriter {
  protected override startThread(source: string, workerData: WriterThreadData): Worker {
    const prologue = `{
      const fs = require('node:fs');
      const writeSync = fs.writeSync;
      const pause = new Int32Array(new SharedArrayBuffer(4));
      fs.writeSync = (...args) => {
        Atomics.wait(pause, 0, 0, ${slowWriteMs});
        return writeSync(...args);
      };
    }\n`;
    return super.startThread(prologue + source, workerData);
  }

  /** Resolves once the thread has started; a thread that never does fails the test's bound. */
  async started(): Promise<void> {
    while (!this.threadHasStarted()) await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('a write slower than the wait slices and the start bound is waited for, not failed', {
  // Blocks this thread for the slow write, bounded by it.
  timeout: writerTestMsMax,
}, async (t) => {
  await withDirectory(async (directory) => {
    if (!directWritesWork(join(directory, 'probe'))) {
      t.skip('this file system refuses O_DIRECT');
      return;
    }
    // A start bound far below the write's time: it bounds the start, never a write. The
    // thread is let start first, however long a loaded machine takes to start one: only its
    // writes are the point here.
    const writer = new SlowWriter(64 << 10, 2, { threadStartMsMax: 100 });
    await writer.started();
    const stage = (writer.stages[0] as Buffer).fill(7);
    const path = join(directory, 'f');
    writeFileSync(path, '');
    const fd = openSync(path, constants.O_WRONLY | constants.O_DIRECT);
    try {
      writer.submit(fd, stage, 0, 4096);
      writer.wait();
      writer.submit(fd, stage, 4096, 4096);
      writer.wait();
      assert.ok(readFileSync(path).equals(Buffer.alloc(8192, 7)));
    } finally {
      writer.close();
      closeSync(fd);
    }
  });
});
