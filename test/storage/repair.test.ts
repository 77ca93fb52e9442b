// Proves that FileStorage repairs a corrupted WAL record instead of refusing to open, and
// never silently: it returns the intact prefix with a description of the loss (the first lost
// index, the highest index the log may have held, the term bound), cuts the damaged records
// durably before anything is appended, and reports the same loss at every open until the
// repair is done. Crashes in the middle of the repair are replayed by building the states
// they leave (damage.json written, cut not yet made or made but not finished) by hand.
import assert from 'node:assert/strict';
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { PersistedState } from '../../src/raft/types.ts';
import { DAMAGE_FILE_NAME, readDamageFile } from '../../src/storage/damage-file.ts';
import { newIoCounters } from '../../src/storage/fs-util.ts';
import { nodeFileSystem } from '../../src/storage/node-file-system.ts';
import { cutWal } from '../../src/storage/recovery.ts';
import { scanSegment } from '../../src/storage/segments.ts';
import type { RaftStorage, StorageEvent } from '../../src/storage/types.ts';
import {
  entries,
  fileHarness,
  flipByte,
  hardState,
  recordOffsets,
  segmentPaths,
  snapshot,
} from './helpers.ts';

type FileHarness = Awaited<ReturnType<typeof fileHarness>>;

/** Ten appends of two entries each (1..20, term 2), one record per append, commit trailing. */
async function writeTenAppends(storage: RaftStorage): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const first = round * 2 + 1;
    await storage.append({
      hardState: hardState(2, Math.max(0, first - 1), 'n2'),
      snapshot: null,
      entries: entries(first, first + 1, 2, 40),
    });
  }
}

function lastIndexOf(persisted: PersistedState): number {
  return persisted.entries[persisted.entries.length - 1]?.index ?? 0;
}

function eventsOf(harness: FileHarness, type: StorageEvent['type']): StorageEvent[] {
  return harness.events.filter((event) => event.type === type);
}

describe('FileStorage repair of a corrupted WAL record', () => {
  let harness: FileHarness;
  beforeEach(async () => {
    harness = await fileHarness();
  });
  afterEach(async () => {
    await harness.cleanup();
  });

  /** Writes 1..20 and flips a byte inside the record holding entries 5 and 6. */
  async function damagedDirectory(): Promise<{ segment: string; cutBytes: number }> {
    const { storage } = await harness.open();
    await writeTenAppends(storage);
    await storage.close();
    const [segment] = await segmentPaths(harness.dataDir);
    // Record 0 is the segment header, record k (k >= 1) holds entries 2k-1 and 2k.
    const offsets = await recordOffsets(segment!);
    await flipByte(segment!, offsets[3]! + 30);
    return { segment: segment!, cutBytes: offsets[3]! };
  }

  it('keeps the intact prefix, reports the loss and cuts the damaged records', async () => {
    const { segment, cutBytes } = await damagedDirectory();
    const { storage, persisted } = await harness.open();
    assert.deepEqual(persisted.damage, { firstLostIndex: 5, lastIndexSeen: 20, termBound: 2 });
    assert.equal(lastIndexOf(persisted), 4, 'entries 1..4 are the intact prefix');
    // Term and vote from the newest record; the commit hint the prefix itself vouched for.
    assert.deepEqual(persisted.hardState, { term: 2, vote: 'n2', commit: 2 });
    const [damaged] = eventsOf(harness, 'walDamaged');
    assert.ok(damaged?.type === 'walDamaged');
    assert.equal(damaged.file, segment);
    assert.equal(damaged.offsetBytes, cutBytes);
    // Cut: nothing verifies after the prefix any more, and the records written since follow.
    const scan = scanSegment(await readFile(segment), segment, true);
    assert.equal(scan.damage, null);
    assert.equal(scan.records.length, 4, 'header, two appends, and the repair record');
    await storage.append({ hardState: null, snapshot: null, entries: entries(5, 6, 3, 40) });
    await storage.close();
    const again = await harness.open();
    assert.deepEqual(again.persisted.damage, persisted.damage, 'reported until repaired');
    assert.equal(lastIndexOf(again.persisted), 6, 'what was appended after the cut stays');
    assert.equal(eventsOf(harness, 'repairPending').length, 1);
    await again.storage.repairDone();
    await again.storage.close();
    const repaired = await harness.open();
    assert.equal(repaired.persisted.damage, undefined);
    assert.equal(lastIndexOf(repaired.persisted), 6);
    await repaired.storage.close();
  });

  /**
   * Opens a damaged directory once (the repair runs), rebuilds the state a crash in the
   * middle of it leaves (damage.json durable and unfinished; with `cutMade`, the WAL already
   * cut), and requires the next open to reach the same state.
   */
  async function reopensAfterCrash(cutMade: boolean): Promise<void> {
    await damagedDirectory();
    const copy = `${harness.dataDir}-copy`;
    await cp(harness.dataDir, copy, { recursive: true });
    const { persisted: expected, storage } = await harness.open();
    await storage.close();
    const record = await readDamageFile(nodeFileSystem, harness.dataDir);
    assert.ok(record?.truncated);
    const unfinished = { ...record, truncated: false };
    await writeFile(join(copy, DAMAGE_FILE_NAME), JSON.stringify(unfinished));
    if (cutMade) {
      const counters = newIoCounters();
      await cutWal({
        files: nodeFileSystem,
        dataDir: copy,
        cut: record.cut,
        log: () => undefined,
        counters,
      });
    }
    await cp(copy, harness.dataDir, { recursive: true, force: true });
    const reopened = await harness.open();
    assert.deepEqual(reopened.persisted, expected);
    await reopened.storage.close();
  }

  it('reopens to the same state after a crash before the cut', async () => {
    await reopensAfterCrash(false);
  });

  it('reopens to the same state after a crash in the middle of the cut', async () => {
    // The cut is made, but neither the hard state nor the record say so yet.
    await reopensAfterCrash(true);
  });

  it('removes the segments after a damaged one and bounds the loss by their records', async () => {
    const { storage } = await harness.open({ segmentBytesMax: 4096 });
    for (let round = 0; round < 12; round++) {
      const first = round * 10 + 1;
      await storage.append({
        hardState: hardState(3, first - 1, 'n1'),
        snapshot: null,
        entries: entries(first, first + 9, 3, 100),
      });
    }
    await storage.close();
    const segments = await segmentPaths(harness.dataDir);
    assert.ok(segments.length >= 3, `rotated into ${segments.length} segments`);
    const offsets = await recordOffsets(segments[0]!);
    await flipByte(segments[0]!, offsets[1]! + 40); // entries 1..10
    const { storage: reopened, persisted } = await harness.open({ segmentBytesMax: 4096 });
    assert.deepEqual(persisted.damage, { firstLostIndex: 1, lastIndexSeen: 120, termBound: 3 });
    assert.equal(persisted.entries.length, 0);
    assert.deepEqual(persisted.hardState, { term: 3, vote: 'n1', commit: 0 });
    assert.deepEqual(await segmentPaths(harness.dataDir), [segments[0]]);
    await reopened.close();
  });

  it('knows the vote of a damaged record from the next one, which repeats it', async () => {
    const { storage } = await harness.open();
    await storage.append({ hardState: null, snapshot: null, entries: entries(1, 2, 1) });
    await storage.append({ hardState: hardState(2, 0, 'n2'), snapshot: null, entries: [] });
    await storage.append({ hardState: null, snapshot: null, entries: entries(3, 4, 2) });
    await storage.close();
    // Record 2 is the only one that sets the vote; record 3 repeats it (this release writes
    // the hard state into every record), so the damage is repairable. Without a hard state
    // after the damage, recovery refuses with CORRUPT_RECORD: the vote could be cast twice.
    const [segment] = await segmentPaths(harness.dataDir);
    const offsets = await recordOffsets(segment!);
    await flipByte(segment!, offsets[2]! + 12);
    const { storage: reopened, persisted } = await harness.open();
    assert.deepEqual(persisted.hardState, { term: 2, vote: 'n2', commit: 0 });
    assert.deepEqual(persisted.damage, { firstLostIndex: 3, lastIndexSeen: 4, termBound: 2 });
    await reopened.close();
  });

  it('drops the whole log, keeps term and vote, on a corrupted snapshot', async () => {
    const { storage } = await harness.open();
    await writeTenAppends(storage);
    await storage.saveSnapshot(snapshot(12, 2));
    await storage.close();
    const path = join(harness.dataDir, 'snapshot.bin');
    await flipByte(path, 50);
    const { storage: reopened, persisted } = await harness.open();
    assert.equal(persisted.snapshot, null);
    assert.equal(
      persisted.entries.length,
      0,
      'the log grew from the lost snapshot: all of it goes',
    );
    assert.equal(persisted.appliedIndex, 0);
    assert.deepEqual(persisted.hardState, { term: 2, vote: 'n2', commit: 0 });
    assert.deepEqual(persisted.damage, { firstLostIndex: 1, lastIndexSeen: 20, termBound: 2 });
    const [event] = eventsOf(harness, 'snapshotDamaged');
    assert.ok(event?.type === 'snapshotDamaged' && /checksum/.test(event.reason));
    assert.ok((await readdir(harness.dataDir)).includes('snapshot.bin.damaged'));
    // A leader's snapshot and entries come next; the repair is reported until done.
    await reopened.append({
      hardState: hardState(3, 0, null),
      snapshot: null,
      entries: entries(1, 3, 3, 40),
    });
    await reopened.close();
    const again = await harness.open();
    assert.deepEqual(again.persisted.damage, persisted.damage);
    assert.equal(lastIndexOf(again.persisted), 3);
    assert.equal(again.persisted.hardState?.term, 3);
    await again.storage.close();
  });

  it('finishes a repair that cut the whole WAL and crashed before the next segment', async () => {
    const { storage } = await harness.open();
    await writeTenAppends(storage);
    await storage.saveSnapshot(snapshot(12, 2));
    await storage.close();
    await flipByte(join(harness.dataDir, 'snapshot.bin'), 50);
    const first = await harness.open();
    await first.storage.close();
    // The crash: damage.json durable and unfinished, every segment already removed.
    const record = await readDamageFile(nodeFileSystem, harness.dataDir);
    assert.ok(record !== null);
    await writeFile(
      join(harness.dataDir, DAMAGE_FILE_NAME),
      JSON.stringify({ ...record, truncated: false }),
    );
    for (const segment of await segmentPaths(harness.dataDir)) await rm(segment);
    const again = await harness.open();
    assert.deepEqual(again.persisted.damage, first.persisted.damage);
    assert.deepEqual(again.persisted.hardState, first.persisted.hardState);
    assert.equal(again.persisted.entries.length, 0);
    await again.storage.close();
  });

  it('refuses a corrupted snapshot with no WAL segment left: the vote is unknown', async () => {
    const { storage } = await harness.open();
    await writeTenAppends(storage);
    await storage.saveSnapshot(snapshot(12, 2));
    await storage.close();
    await flipByte(join(harness.dataDir, 'snapshot.bin'), 50);
    // Every record repeats the hard state: only with no segment left is it unknown.
    for (const segment of await segmentPaths(harness.dataDir)) await rm(segment);
    await assert.rejects(harness.open(), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'CORRUPT_LOG');
      assert.match(error.message, /no WAL segment is left/);
      return true;
    });
  });
});
