// The small disks of the full-disk fault (root only; skipped otherwise): a ballast leaves at
// most the headroom asked for, so the next write past it fails with ENOSPC; deleting it gives
// the space back; unmountAll undoes every mount; and a process that exits with mounts left
// — as a chaos run that fails or is interrupted would — unmounts them on its way out.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isRoot, TmpfsMounts, tmpfsRefusal } from '../../src/chaos/tmpfs.ts';

const skip = isRoot() ? false : 'mounting a tmpfs needs root';

async function mountPoints(): Promise<string[]> {
  const table = await readFile('/proc/mounts', 'utf8');
  return table.split('\n').map((line) => line.split(' ')[1] ?? '');
}

test('a filled tmpfs refuses the next write, takes it once freed, and is unmounted', {
  skip,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-tmpfs-'));
  const mounts = new TmpfsMounts(4 * 1024 * 1024);
  try {
    const dir = join(root, 'disk');
    await mounts.mount(dir);
    assert.ok((await mountPoints()).includes(dir));
    await mounts.fill(dir, 8 * 1024);
    assert.ok((await mounts.freeBytes(dir)) <= 8 * 1024);
    const big = Buffer.alloc(64 * 1024);
    await assert.rejects(writeFile(join(dir, 'wal'), big), { code: 'ENOSPC' });
    await mounts.free(dir);
    await writeFile(join(dir, 'wal'), big);
    assert.deepEqual(await mounts.unmountAll(), []);
    assert.ok(!(await mountPoints()).includes(dir));
  } finally {
    await mounts.unmountAll();
    await rm(root, { recursive: true, force: true });
  }
});

test('the probe says whether a tmpfs can be mounted here, and leaves nothing mounted', async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-tmpfs-'));
  try {
    const refusal = await tmpfsRefusal(join(root, 'probe'));
    if (isRoot()) assert.equal(refusal, null);
    else assert.match(refusal ?? '', /needs root/);
    assert.ok(!(await mountPoints()).includes(join(root, 'probe')));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a process that exits with mounts left unmounts them', { skip }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-tmpfs-'));
  const dir = join(root, 'disk');
  const module = fileURLToPath(new URL('../../src/chaos/tmpfs.ts', import.meta.url));
  const script = `import { TmpfsMounts } from ${JSON.stringify(module)};
const mounts = new TmpfsMounts(1024 * 1024);
await mounts.mount(${JSON.stringify(dir)});
console.log('mounted');
process.exit(3);`;
  try {
    const child = promisify(execFile)(process.execPath, [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script,
    ]);
    const failure = await child.then(
      () => null,
      (error: { code?: number; stdout?: string }) => error,
    );
    assert.equal(failure?.code, 3);
    assert.match(failure?.stdout ?? '', /mounted/);
    assert.ok(!(await mountPoints()).includes(dir));
  } finally {
    await promisify(execFile)('umount', ['-l', dir]).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  }
});
