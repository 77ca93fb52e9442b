// Proves how FileStorage meets the faults a simulated disk injects. A failed fdatasync (EIO)
// stops the storage for good with an IO StorageError (fsyncgate: the pages may be gone while
// reads still return them, so nothing more is written to that file), and a reopen after a
// power cut still holds every acknowledged append. A full disk (ENOSPC) is an IO error too.
// Latent corruption at rest (a flipped bit, a zeroed sector, anywhere) never crashes an open:
// it either opens or fails with a typed StorageError; damage to a record of an earlier
// segment is reported for repair (persisted.damage) and to the snapshot CORRUPT_SNAPSHOT. What it may also do,
// silently, is drop the tail of the last segment (indistinguishable from a torn write).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SimFileSystem } from '../../src/sim/sim-file-system.ts';
import { StorageError } from '../../src/storage/errors.ts';
import type { FileStorage } from '../../src/storage/file-storage.ts';
import { Prng } from '../../src/util/prng.ts';
import { entries, hardState, plainEntries, snapshot } from './helpers.ts';
import { openOnSimDisk, SIM_DATA_DIR, testEnvironment } from './sim-disk.ts';

function simDisk(seed: number, capacityBytes?: number) {
  const prng = new Prng(seed);
  const files = new SimFileSystem({
    prng: prng.fork(),
    ...(capacityBytes === undefined ? {} : { capacityBytes }),
  });
  const environment = testEnvironment(prng.fork());
  const open = () => openOnSimDisk(files, environment, { directoryLock: 'none' });
  return { files, open };
}

async function storageError(promise: Promise<unknown>): Promise<StorageError> {
  const error = await promise.then(
    () => assert.fail('expected a StorageError'),
    (reason: unknown) => reason,
  );
  assert.ok(error instanceof StorageError, `a StorageError, got ${String(error)}`);
  return error;
}

/** Twenty appends of two 100-byte entries: several 4 KiB segments. */
async function fillLog(storage: FileStorage): Promise<void> {
  for (let round = 0; round < 20; round++) {
    const first = round * 2 + 1;
    await storage.append({
      hardState: hardState(1, first - 1),
      snapshot: null,
      entries: entries(first, first + 1, 1, 100),
    });
  }
}

const TYPED_OPEN_FAILURES = [
  'CORRUPT_RECORD',
  'CORRUPT_LOG',
  'CORRUPT_SNAPSHOT',
  'CORRUPT_METADATA',
  'WRONG_CLUSTER',
  'WRONG_NODE',
  'FORMAT_TOO_NEW',
];

describe('FileStorage on a faulty simulated disk', () => {
  it('stops for good with IO after a failed fdatasync, and keeps what was acknowledged', async () => {
    const { files, open } = simDisk(1);
    const { storage } = await open();
    await storage.append({ hardState: hardState(1, 0), snapshot: null, entries: entries(1, 3, 1) });
    files.setFaults({ datasyncErrorProbability: 1 });
    const failed = await storageError(
      storage.append({ hardState: null, snapshot: null, entries: entries(4, 4, 1) }),
    );
    assert.equal(failed.code, 'IO');
    assert.equal(failed.details.systemCode, 'EIO');
    files.setFaults({ datasyncErrorProbability: 0 });
    const writtenBytes = files.counters().writtenBytes;
    // The disk works again, but the storage cannot know what reached it: it refuses.
    const refused = await storageError(
      storage.append({ hardState: null, snapshot: null, entries: entries(4, 4, 1) }),
    );
    assert.equal(refused, failed, 'every later call gets the same IO error');
    assert.equal(await storageError(storage.saveSnapshot(snapshot(2, 1))), failed);
    assert.equal(files.counters().writtenBytes, writtenBytes, 'nothing more was written');
    files.powerCut();
    const { storage: again, persisted } = await open();
    assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(1, 3, 1)));
    await again.close();
  });

  it('fails an append with IO (ENOSPC) when the disk is full', async () => {
    const { open } = simDisk(2, 5 * 4096);
    const { storage } = await open();
    let failure: StorageError | null = null;
    // Bounded: the disk holds five segments at most.
    for (let round = 0; round < 200 && failure === null; round++) {
      const first = round * 2 + 1;
      await storage
        .append({ hardState: null, snapshot: null, entries: entries(first, first + 1, 1, 300) })
        .catch((error: unknown) => {
          assert.ok(error instanceof StorageError);
          failure = error;
        });
    }
    assert.ok(failure !== null, 'the disk fills up');
    const error: StorageError = failure;
    assert.equal(error.code, 'IO');
    assert.equal(error.details.systemCode, 'ENOSPC');
  });

  it('reports a record damaged in an earlier segment for repair', async () => {
    const { files, open } = simDisk(3);
    const { storage } = await open();
    await fillLog(storage);
    await storage.close();
    const first = `${SIM_DATA_DIR}/wal-00000000000000000001.wal`;
    // Byte 100 lies inside the first records (the header record and the first append).
    const handle = await files.open(first, 'readWrite');
    const byte = new Uint8Array(1);
    await handle.read(byte, 100);
    await handle.write([new Uint8Array([byte[0]! ^ 0x10])], 100);
    await handle.datasync();
    await handle.close();
    const { storage: reopened, persisted } = await open();
    await reopened.close();
    assert.equal(persisted.damage?.firstLostIndex, 1, 'the first append was hit');
    assert.equal(persisted.damage?.lastIndexSeen, 40);
    assert.equal(persisted.entries.length, 0);
  });

  it('repairs a snapshot with a flipped bit: the whole log is lost, term and vote kept', async () => {
    const { files, open } = simDisk(4);
    const { storage } = await open();
    await fillLog(storage);
    await storage.saveSnapshot(snapshot(10, 1, 2000));
    await storage.close();
    assert.ok(files.flipBit(`${SIM_DATA_DIR}/snapshot.bin`) !== null);
    const { storage: again, persisted } = await open();
    assert.equal(persisted.snapshot, null);
    assert.equal(persisted.entries.length, 0);
    assert.deepEqual(persisted.damage, { firstLostIndex: 1, lastIndexSeen: 40, termBound: 1 });
    await again.close();
  });

  it('opens, or fails with a typed error, whatever latent corruption hits', async () => {
    const outcomes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.boolean(),
        async (seed, flip) => {
          const { files, open } = simDisk(seed);
          const { storage } = await open();
          await fillLog(storage);
          await storage.saveSnapshot(snapshot(6, 1));
          await storage.close();
          const hit = flip ? files.flipBit() : files.zeroSector();
          assert.ok(hit !== null, 'a file was corrupted');
          const outcome = await open().then(
            async ({ storage: again, persisted }) => {
              await again.close();
              return persisted.damage === undefined ? 'opened' : 'repairing';
            },
            (error: unknown) => {
              assert.ok(error instanceof StorageError, `a typed error, not ${String(error)}`);
              assert.ok(TYPED_OPEN_FAILURES.includes(error.code), error.message);
              return error.code;
            },
          );
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        },
      ),
      { numRuns: 80, seed: 0xc0de },
    );
    assert.ok((outcomes.get('repairing') ?? 0) > 0, JSON.stringify([...outcomes]));
  });
});
