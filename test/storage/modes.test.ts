// The data directory holds every message: a fresh one is readable by the node's user alone.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileStorage } from '../../src/storage/index.ts';

test('a new data directory is 0700 and every file in it 0600', async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-modes-'));
  const previousMask = process.umask(0o022);
  try {
    const dataDir = join(root, 'nested', 'data');
    const opened = await FileStorage.open({
      dataDir,
      clusterId: 'modes',
      nodeId: 'n1',
      log: () => undefined,
      segmentBytesMax: 1 << 20,
    });
    await opened.storage.append({
      hardState: { term: 1, vote: 'n1', commit: 0 },
      snapshot: null,
      entries: [{ index: 1, term: 1, kind: 'normal', data: new Uint8Array(8) }],
    });
    await opened.storage.close();
    assert.equal((await stat(dataDir)).mode & 0o777, 0o700);
    const names = await readdir(dataDir, { recursive: true });
    assert.ok(names.length > 0);
    for (const name of names) {
      const info = await stat(join(dataDir, name));
      assert.equal(info.mode & 0o777, info.isDirectory() ? 0o700 : 0o600, name);
    }
  } finally {
    process.umask(previousMask);
    await rm(root, { recursive: true, force: true });
  }
});
