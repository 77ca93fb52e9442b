// Proves what only the in-memory twin offers tests of the runtime: `crash()` drops what was
// not yet written and frees the disk, and an injected write failure stops the storage for
// good (fail-stop) while the disk keeps exactly what was acknowledged before.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StorageError } from '../../src/storage/errors.ts';
import { MemoryStorage } from '../../src/storage/memory-storage.ts';
import { CLUSTER_ID, entries, hardState, memoryHarness, NODE_ID, plainEntries } from './helpers.ts';

async function rejection(promise: Promise<unknown>): Promise<StorageError> {
  const error = await promise.then(
    () => assert.fail('expected a rejection'),
    (reason: unknown) => reason,
  );
  assert.ok(error instanceof StorageError, String(error));
  return error;
}

describe('MemoryStorage', () => {
  it('crash() drops unwritten appends and releases the disk', async () => {
    const harness = memoryHarness();
    const { storage } = await MemoryStorage.open({
      disk: harness.disk,
      clusterId: CLUSTER_ID,
      nodeId: NODE_ID,
    });
    await storage.append({ hardState: hardState(1, 0), snapshot: null, entries: entries(1, 3, 1) });
    const lost = storage.append({ hardState: null, snapshot: null, entries: entries(4, 5, 1) });
    storage.crash();
    assert.equal((await rejection(lost)).code, 'CLOSED');
    const { storage: again, persisted } = await harness.open();
    assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(1, 3, 1)));
    await again.close();
  });

  it('fail-stops after an injected write failure', async () => {
    const harness = memoryHarness();
    const { storage } = await harness.open();
    await storage.append({ hardState: hardState(1, 0), snapshot: null, entries: entries(1, 2, 1) });
    harness.disk.failNextWrites(1);
    const failed = storage.append({ hardState: null, snapshot: null, entries: entries(3, 3, 1) });
    const queued = storage.append({ hardState: null, snapshot: null, entries: entries(4, 4, 1) });
    assert.equal((await rejection(failed)).code, 'IO');
    assert.equal((await rejection(queued)).code, 'IO');
    const later = storage.append({ hardState: null, snapshot: null, entries: entries(3, 3, 1) });
    assert.equal((await rejection(later)).code, 'IO');
    await storage.close();
    const { storage: again, persisted } = await harness.open();
    assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(1, 2, 1)));
    await again.close();
  });

  it('keeps its disk immune to later mutation of appended data', async () => {
    const harness = memoryHarness();
    const { storage } = await harness.open();
    const list = entries(1, 1, 1);
    await storage.append({ hardState: null, snapshot: null, entries: list });
    list[0]!.data.fill(0);
    await storage.close();
    const { storage: again, persisted } = await harness.open();
    assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(1, 1, 1)));
    await again.close();
  });
});
