// Proves FileStorage and MemoryStorage keep the same contract: appends, suffix overwrites,
// hard state, snapshots and compaction, refused requests, ordering, close and reopen, by
// running one suite of scenarios against each and reopening to read back what was stored.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { StorageError } from '../../src/storage/errors.ts';
import {
  type AppendRequest,
  type RaftStorage,
  STORAGE_FORMAT_VERSION,
} from '../../src/storage/types.ts';
import {
  entries,
  entry,
  HARNESSES,
  type Harness,
  hardState,
  plainEntries,
  snapshot,
} from './helpers.ts';

const append = (storage: RaftStorage, request: Partial<AppendRequest>): Promise<void> =>
  storage.append({ hardState: null, snapshot: null, entries: [], ...request });

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<StorageError> {
  const error = await promise.then(
    () => assert.fail(`expected a ${code} StorageError`),
    (reason: unknown) => reason,
  );
  assert.ok(error instanceof StorageError, `a StorageError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  return error;
}

for (const { name, make } of HARNESSES) {
  describe(`${name} conformance`, () => {
    let harness: Harness;
    beforeEach(async () => {
      harness = await make();
    });
    afterEach(async () => {
      await harness.cleanup();
    });

    async function reopen(storage: RaftStorage) {
      await storage.close();
      return harness.open();
    }

    it('starts empty, remembers it was created, and reopens empty', async () => {
      const first = await harness.open();
      assert.equal(first.created, true);
      assert.deepEqual(first.persisted, {
        hardState: null,
        snapshot: null,
        entries: [],
        appliedIndex: 0,
      });
      assert.deepEqual(first.metadata, {
        formatVersion: STORAGE_FORMAT_VERSION,
        clusterId: 'cluster-test',
        nodeId: 'n1',
      });
      const second = await reopen(first.storage);
      assert.equal(second.created, false);
      assert.deepEqual(second.persisted.entries, []);
      await second.storage.close();
    });

    it('keeps appended entries and the newest hard state across a reopen', async () => {
      const { storage } = await harness.open();
      await append(storage, { hardState: hardState(1, 0, 'n1'), entries: entries(1, 3, 1) });
      await append(storage, { entries: entries(4, 5, 1) });
      await append(storage, { hardState: hardState(1, 4, 'n1') });
      const { storage: again, persisted } = await reopen(storage);
      assert.deepEqual(persisted.hardState, hardState(1, 4, 'n1'));
      assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(1, 5, 1)));
      assert.equal(persisted.appliedIndex, 0);
      await again.close();
    });

    it('overwrites a conflicting suffix from the first new index', async () => {
      const { storage } = await harness.open();
      await append(storage, { hardState: hardState(1, 2), entries: entries(1, 6, 1) });
      await append(storage, { hardState: hardState(2, 2), entries: entries(4, 4, 2) });
      const { storage: again, persisted } = await reopen(storage);
      const expected = [...entries(1, 3, 1), ...entries(4, 4, 2)];
      assert.deepEqual(plainEntries(persisted.entries), plainEntries(expected));
      // The log goes on from the overwrite, and it survives a second reopen.
      await append(again, { entries: entries(5, 7, 2) });
      const third = await reopen(again);
      assert.deepEqual(
        plainEntries(third.persisted.entries),
        plainEntries([...expected, ...entries(5, 7, 2)]),
      );
      await third.storage.close();
    });

    it('stores entry kinds and empty or large data unchanged', async () => {
      const { storage } = await harness.open();
      const list = [
        entry(1, 1, 0, 'noop'),
        entry(2, 1, 5, 'config'),
        entry(3, 1, 70_000),
        entry(4, 1, 4096),
        entry(5, 1, 4095),
      ];
      await append(storage, { entries: list });
      const { storage: again, persisted } = await reopen(storage);
      assert.deepEqual(plainEntries(persisted.entries), plainEntries(list));
      await again.close();
    });

    it('compacts the log up to a saved snapshot and raises the commit hint to it', async () => {
      const { storage } = await harness.open();
      await append(storage, { hardState: hardState(2, 3, 'n2'), entries: entries(1, 10, 2) });
      await storage.saveSnapshot(snapshot(6, 2));
      const { storage: again, persisted } = await reopen(storage);
      assert.deepEqual(persisted.snapshot?.meta, snapshot(6, 2).meta);
      assert.deepEqual(Array.from(persisted.snapshot?.data ?? []), Array.from(snapshot(6, 2).data));
      assert.equal(persisted.appliedIndex, 6);
      assert.deepEqual(persisted.hardState, hardState(2, 6, 'n2'));
      assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(7, 10, 2)));
      // Compacting the whole log leaves an empty log that continues after the snapshot.
      await again.saveSnapshot(snapshot(10, 2));
      await append(again, { entries: entries(11, 11, 3) });
      const third = await reopen(again);
      assert.equal(third.persisted.snapshot?.meta.index, 10);
      assert.deepEqual(plainEntries(third.persisted.entries), plainEntries(entries(11, 11, 3)));
      await third.storage.close();
    });

    it("replaces the whole log with a leader's snapshot, then appends after it", async () => {
      const { storage } = await harness.open();
      await append(storage, { hardState: hardState(1, 2), entries: entries(1, 5, 1) });
      await append(storage, {
        snapshot: snapshot(20, 3),
        entries: entries(21, 22, 3),
        hardState: hardState(3, 20, 'n2'),
      });
      const { storage: again, persisted } = await reopen(storage);
      assert.equal(persisted.snapshot?.meta.index, 20);
      assert.deepEqual(persisted.hardState, hardState(3, 20, 'n2'));
      assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(21, 22, 3)));
      await again.close();
    });

    it("accepts a leader's snapshot inside the log and still drops the log after it", async () => {
      const { storage } = await harness.open();
      await append(storage, { hardState: hardState(1, 2), entries: entries(1, 8, 1) });
      await append(storage, { snapshot: snapshot(4, 1), hardState: hardState(2, 4) });
      const { storage: again, persisted } = await reopen(storage);
      assert.equal(persisted.snapshot?.meta.index, 4);
      assert.deepEqual(persisted.entries, []);
      await again.close();
    });

    it('refuses invalid appends with INVALID_ARGUMENT and stays usable', async () => {
      const { storage } = await harness.open();
      await append(storage, { hardState: hardState(3, 4, 'n1'), entries: entries(1, 6, 2) });
      const refused: [string, Partial<AppendRequest>][] = [
        ['a gap after the log', { entries: entries(8, 8, 3) }],
        ['index 0', { entries: [entry(0, 3)] }],
        ['a term lower than the one before', { entries: entries(7, 7, 1) }],
        ['terms going down inside', { entries: [entry(7, 3), entry(8, 2)] }],
        ['not dense', { entries: [entry(7, 3), entry(9, 3)] }],
        ['overwriting a committed entry', { entries: entries(4, 4, 3) }],
        ['cutting committed entries off', { entries: [entry(3, 2)] }],
        ['the term going back', { hardState: hardState(2, 4) }],
        ['the commit going back', { hardState: hardState(3, 3, 'n1') }],
        ['a second vote in a term', { hardState: hardState(3, 4, 'n2') }],
        ['a commit beyond the log', { hardState: hardState(3, 9, 'n1') }],
        ['an unknown kind', { entries: [{ ...entry(7, 3), kind: 'bogus' as 'normal' }] }],
        ['data that is not bytes', { entries: [{ ...entry(7, 3), data: 'x' as never }] }],
        ['a negative term', { hardState: hardState(-1, 0) }],
        ["a leader's snapshot below the commit", { snapshot: snapshot(3, 2) }],
        [
          'a snapshot with a bad configuration',
          { snapshot: { ...snapshot(9, 3), meta: { index: 9, term: 3, config: null as never } } },
        ],
      ];
      for (const [what, request] of refused) {
        await rejectsWith(append(storage, request), 'INVALID_ARGUMENT').catch((error: unknown) => {
          throw new Error(`${what}: ${String(error)}`);
        });
      }
      await rejectsWith(storage.append(null as never), 'INVALID_ARGUMENT');
      // Nothing refused was written, and the storage goes on.
      await append(storage, { hardState: hardState(4, 6, null), entries: entries(7, 7, 4) });
      const { storage: again, persisted } = await reopen(storage);
      assert.deepEqual(persisted.hardState, hardState(4, 6, null));
      assert.deepEqual(
        plainEntries(persisted.entries),
        plainEntries([...entries(1, 6, 2), ...entries(7, 7, 4)]),
      );
      await again.close();
    });

    it('accepts re-appending identical committed entries and a vote in a new term', async () => {
      const { storage } = await harness.open();
      await append(storage, { hardState: hardState(1, 2, 'n1'), entries: entries(1, 3, 1) });
      await append(storage, { hardState: hardState(2, 2, 'n3'), entries: entries(2, 4, 1) });
      const { storage: again, persisted } = await reopen(storage);
      assert.deepEqual(persisted.hardState, hardState(2, 2, 'n3'));
      assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(1, 4, 1)));
      await again.close();
    });

    it('refuses snapshots that do not fit the log', async () => {
      const { storage } = await harness.open();
      await append(storage, { hardState: hardState(2, 2), entries: entries(1, 5, 2) });
      await storage.saveSnapshot(snapshot(2, 2));
      await rejectsWith(storage.saveSnapshot(snapshot(6, 2)), 'INVALID_ARGUMENT'); // beyond
      await rejectsWith(storage.saveSnapshot(snapshot(4, 1)), 'INVALID_ARGUMENT'); // wrong term
      await rejectsWith(storage.saveSnapshot(snapshot(1, 2)), 'INVALID_ARGUMENT'); // older
      await rejectsWith(
        storage.saveSnapshot({ ...snapshot(3, 2), data: [1, 2] as never }),
        'INVALID_ARGUMENT',
      );
      await storage.saveSnapshot(snapshot(2, 2)); // the same index again replaces it
      const { storage: again, persisted } = await reopen(storage);
      assert.equal(persisted.snapshot?.meta.index, 2);
      assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(3, 5, 2)));
      await again.close();
    });

    it('applies appends and snapshots in call order, resolving them in that order', async () => {
      const { storage } = await harness.open();
      const resolved: string[] = [];
      const track = (label: string, promise: Promise<void>) =>
        promise.then(() => {
          resolved.push(label);
        });
      await Promise.all([
        track('a', append(storage, { hardState: hardState(1, 3), entries: entries(1, 4, 1) })),
        track('s', storage.saveSnapshot(snapshot(3, 1))),
        track('b', append(storage, { entries: entries(5, 6, 1) })),
        track('c', append(storage, { hardState: hardState(1, 6) })),
      ]);
      assert.deepEqual(resolved, ['a', 's', 'b', 'c']);
      const { storage: again, persisted } = await reopen(storage);
      assert.equal(persisted.snapshot?.meta.index, 3);
      assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(4, 6, 1)));
      assert.deepEqual(persisted.hardState, hardState(1, 6));
      await again.close();
    });

    it('coalesces concurrent appends into far fewer fsyncs (group commit)', async () => {
      const { storage } = await harness.open();
      const appendCount = 500;
      const before = storage.counters();
      await Promise.all(
        Array.from({ length: appendCount }, (_, offset) =>
          append(storage, { entries: [entry(offset + 1, 1, 256)] }),
        ),
      );
      const after = storage.counters();
      const fsyncCount = after.fsyncCount - before.fsyncCount;
      assert.equal(after.appendCount - before.appendCount, appendCount);
      assert.equal(after.entryCount - before.entryCount, appendCount);
      assert.ok(fsyncCount >= 1, 'at least one fsync covers the appends');
      assert.ok(fsyncCount * 20 < appendCount, `${fsyncCount} fsyncs for ${appendCount} appends`);
      assert.ok(after.recordCount - before.recordCount < 25, 'few records');
      const { storage: again, persisted } = await reopen(storage);
      assert.equal(persisted.entries.length, appendCount);
      await again.close();
    });

    it('refuses appends beyond the queue bound with OVERLOADED, writing none of them', async () => {
      const { storage: first } = await harness.open();
      await first.close();
      const { storage } = await harness.open({ queuedAppendsMax: 4 });
      const accepted = [1, 2, 3, 4].map((index) => append(storage, { entries: [entry(index, 1)] }));
      await rejectsWith(append(storage, { entries: [entry(5, 1)] }), 'OVERLOADED');
      await Promise.all(accepted);
      await append(storage, { entries: [entry(5, 1)] }); // the queue drained: accepted again
      const { storage: again, persisted } = await reopen(storage);
      assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(1, 5, 1)));
      await again.close();
    });

    it('flushes queued appends on close, then refuses with CLOSED; close is idempotent', async () => {
      const { storage } = await harness.open();
      const pending = append(storage, { entries: entries(1, 3, 1) });
      const closing = storage.close();
      await rejectsWith(append(storage, { entries: entries(4, 4, 1) }), 'CLOSED');
      await rejectsWith(storage.saveSnapshot(snapshot(1, 1)), 'CLOSED');
      await pending;
      await closing;
      await storage.close();
      const { storage: again, persisted } = await harness.open();
      assert.equal(persisted.entries.length, 3);
      await again.close();
    });

    it('refuses a second open while the first holds the directory', async () => {
      const { storage } = await harness.open();
      await rejectsWith(harness.open(), 'LOCKED');
      await storage.close();
      const { storage: again } = await harness.open();
      await again.close();
    });

    it('refuses another cluster, another node and a newer format', async () => {
      const { storage } = await harness.open();
      await storage.close();
      await rejectsWith(harness.open({ clusterId: 'other-cluster' }), 'WRONG_CLUSTER');
      await rejectsWith(harness.open({ nodeId: 'n9' }), 'WRONG_NODE');
      await harness.setFormatVersion(STORAGE_FORMAT_VERSION + 1);
      await rejectsWith(harness.open(), 'FORMAT_TOO_NEW');
      await harness.setFormatVersion(1);
      const { storage: again } = await harness.open(); // refusals released the lock
      await again.close();
    });

    it('counts appends, entries, records and bytes', async () => {
      const { storage } = await harness.open();
      await append(storage, { entries: entries(1, 10, 1, 100) });
      await storage.saveSnapshot(snapshot(5, 1, 64));
      const counters = storage.counters();
      assert.equal(counters.appendCount, 1);
      assert.equal(counters.entryCount, 10);
      assert.ok(counters.recordCount >= 1, 'a record was written');
      assert.ok(counters.walWrittenBytes > 1000, 'the entries were written');
      assert.ok(counters.snapshotWrittenBytes >= 64, 'the snapshot was written');
      await storage.close();
    });
  });
}
