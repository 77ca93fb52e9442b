// The data-directory lock dies with its owner. A node started through a wrapper (as npx
// does) and killed with it may linger as a zombie until PID 1 reaps it, and kill(pid, 0)
// succeeds on a zombie; a pid may also be reused. The lock records the owner's start time
// and ignores zombies, so a restart at once takes the directory over, 20 rounds of 20.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { StorageError } from '../../src/storage/errors.ts';
import { FileStorage } from '../../src/storage/index.ts';

const HOLDER = fileURLToPath(new URL('./fixtures/lock-holder.ts', import.meta.url));
const procAvailable = (() => {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
})();

function open(dataDir: string) {
  return FileStorage.open({ dataDir, clusterId: 'lock', nodeId: 'n1', log: () => undefined });
}

function stateOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null;
  } catch {
    return null;
  }
}

function isRunning(state: string | null): boolean {
  return state !== null && state !== 'Z' && state !== 'X';
}

/**
 * A wrapper shell that starts the holder in the background and then becomes `sleep`, which
 * never reaps it: once the holder is killed it stays a zombie while the wrapper lives.
 */
async function startWrapped(
  dataDir: string,
): Promise<{ wrapper: ChildProcess; holderPid: number }> {
  const command = `"${process.execPath}" --import tsx "${HOLDER}" "${dataDir}" & echo "pid $!"; exec sleep 600`;
  const wrapper = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: wrapper.stdout as NodeJS.ReadableStream });
  let holderPid = 0;
  for await (const line of lines) {
    if (line.startsWith('pid ')) holderPid = Number(line.slice(4));
    if (line === 'locked') break;
  }
  assert.ok(holderPid > 0, 'the wrapper said its child');
  return { wrapper, holderPid };
}

test('a killed owner that lingers as a zombie does not hold the lock, 20 of 20', {
  skip: procAvailable ? false : 'needs /proc',
  timeout: 240_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-lock-'));
  try {
    for (let round = 1; round <= 20; round++) {
      const dataDir = join(root, `round-${round}`);
      const { wrapper, holderPid } = await startWrapped(dataDir);
      try {
        // A live owner holds it.
        const refused = await open(dataDir).then(
          () => assert.fail('opened a directory a live process holds'),
          (error: unknown) => error,
        );
        assert.ok(refused instanceof StorageError && refused.code === 'LOCKED', String(refused));
        process.kill(holderPid, 'SIGKILL');
        // Odd rounds restart while the owner is a zombie, even ones after the wrapper died
        // too (the zombie then waits for PID 1, or is gone).
        if (round % 2 === 0) wrapper.kill('SIGKILL');
        // SIGKILL lands asynchronously: wait until the kernel says the owner is dead (a
        // zombie, or gone), as a supervisor waits for its child's exit.
        for (let tries = 0; isRunning(stateOf(holderPid)) && tries < 500; tries++) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        if (round % 2 === 1) assert.equal(stateOf(holderPid), 'Z', 'the killed owner is a zombie');
        const storage = await open(dataDir);
        await storage.storage.close();
      } finally {
        wrapper.kill('SIGKILL');
      }
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a lock left by an earlier process with this pid, or by a reused pid, is taken over', async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-lock-'));
  try {
    const dataDir = join(root, 'data');
    const first = await open(dataDir);
    await first.storage.close();
    // Our own pid, started at another time (a container restarted with the same pid).
    await writeFile(join(dataDir, 'LOCK'), `${process.pid} host 1\n`);
    const again = await open(dataDir);
    await again.storage.close();
    if (procAvailable) {
      // A live process (PID 1), recorded with a start time that is not its own.
      await writeFile(join(dataDir, 'LOCK'), '1 host 123456789\n');
      const reused = await open(dataDir);
      await reused.storage.close();
      // The same live process with its true start time holds it.
      const stat = readFileSync('/proc/1/stat', 'utf8');
      const started = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      await writeFile(join(dataDir, 'LOCK'), `1 host ${started}\n`);
      const held = await open(dataDir).then(
        () => assert.fail('opened a directory a live process holds'),
        (error: unknown) => error,
      );
      assert.ok(held instanceof StorageError && held.code === 'LOCKED', String(held));
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
