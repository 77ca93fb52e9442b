// Proves FileStorage recovers from what crashes leave and refuses what they cannot: zeros
// after the last record (preallocated space) are its clean end, a torn tail record is
// zeroed and reported, a damaged record elsewhere is reported and cut for repair (see
// repair.test.ts), while a missing segment, a damaged snapshot or stray data stop the open
// with a typed error naming the file (and byte offset). Damage is made by editing the files
// of a closed data directory.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { encodeRecord } from '../../src/storage/codec.ts';
import { StorageError } from '../../src/storage/errors.ts';
import { newIoCounters, writeFileAtomic } from '../../src/storage/fs-util.ts';
import { scanSegment } from '../../src/storage/segments.ts';
import { encodeSnapshotFile } from '../../src/storage/snapshot-file.ts';
import { type RaftStorage, STORAGE_FORMAT_VERSION } from '../../src/storage/types.ts';
import {
  entries,
  fileHarness,
  flipByte,
  hardState,
  plainEntries,
  recordOffsets,
  segmentPaths,
  snapshot,
  TEST_SEGMENT_BYTES_MAX,
} from './helpers.ts';

type FileHarness = Awaited<ReturnType<typeof fileHarness>>;

async function openFails(harness: FileHarness, code: string): Promise<StorageError> {
  const error = await harness.open().then(
    () => assert.fail(`open should fail with ${code}`),
    (reason: unknown) => reason,
  );
  assert.ok(error instanceof StorageError, String(error));
  assert.equal(error.code, code, error.message);
  return error;
}

/** Ten appends of two entries each, one record per append. */
async function writeTenAppends(storage: RaftStorage): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const first = round * 2 + 1;
    await storage.append({
      hardState: hardState(1, Math.max(0, first - 1)),
      snapshot: null,
      entries: entries(first, first + 1, 1, 40),
    });
  }
}

describe('FileStorage recovery', () => {
  let harness: FileHarness;
  beforeEach(async () => {
    harness = await fileHarness();
  });
  afterEach(async () => {
    await harness.cleanup();
  });

  it('cuts a torn tail record, reports it, and goes on appending after it', async () => {
    const { storage } = await harness.open();
    await writeTenAppends(storage);
    await storage.close();
    const [segment] = await segmentPaths(harness.dataDir);
    const scan = scanSegment(await readFile(segment!), segment!, true);
    const lastOffset = scan.records[scan.records.length - 1]!.offsetBytes;
    // The second half of its last record never reached the disk: the preallocated zeros
    // are still there, as a crash mid-write leaves them.
    const cutAt = lastOffset + Math.floor((scan.validBytes - lastOffset) / 2);
    const torn = await readFile(segment!);
    torn.fill(0, cutAt, scan.validBytes);
    await writeFile(segment!, torn);
    let damageEnd = torn.length;
    while (damageEnd > lastOffset && torn[damageEnd - 1] === 0) damageEnd -= 1;

    const { storage: again, persisted } = await harness.open();
    assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(1, 18, 1, 40)));
    assert.deepEqual(persisted.hardState, hardState(1, 16));
    assert.deepEqual(harness.events, [
      {
        type: 'tornTailTruncated',
        file: segment,
        offsetBytes: lastOffset,
        droppedBytes: damageEnd - lastOffset,
      },
    ]);
    // Writing resumes in the same segment, preallocated to its full size again.
    assert.equal((await stat(segment!)).size, TEST_SEGMENT_BYTES_MAX);
    await again.append({ hardState: null, snapshot: null, entries: entries(19, 19, 2, 40) });
    await again.close();
    const third = await harness.open();
    assert.equal(third.persisted.entries.length, 19);
    assert.equal(third.persisted.entries[18]?.term, 2);
    await third.storage.close();
    assert.deepEqual(await segmentPaths(harness.dataDir), [segment]);
  });

  it('reads zeros after the last record as its clean end, and garbage there as a torn tail', async () => {
    const { storage } = await harness.open();
    await writeTenAppends(storage);
    await storage.close();
    const [segment] = await segmentPaths(harness.dataDir);
    const original = await readFile(segment!);
    const { validBytes } = scanSegment(original, segment!, true);
    assert.equal(original.length, TEST_SEGMENT_BYTES_MAX, 'the segment is preallocated');
    assert.ok(validBytes < original.length / 4, 'zeros follow the records');
    const first = await harness.open();
    assert.equal(first.persisted.entries.length, 20);
    await first.storage.close();
    assert.deepEqual(harness.events, [], 'a zero tail is not a torn tail');

    // Garbage far into the zeros: a torn write whose early sectors never reached the disk.
    const garbage = Buffer.from('torn write garbage');
    const garbageAt = validBytes + 5000;
    const damaged = Buffer.from(original);
    garbage.copy(damaged, garbageAt);
    await writeFile(segment!, damaged);
    const second = await harness.open();
    assert.equal(second.persisted.entries.length, 20);
    await second.storage.close();
    assert.deepEqual(harness.events, [
      {
        type: 'tornTailTruncated',
        file: segment,
        offsetBytes: validBytes,
        droppedBytes: garbageAt + garbage.length - validBytes,
      },
    ]);
    // Zeroed, not cut: the preallocation stays.
    const repaired = await readFile(segment!);
    assert.equal(repaired.length, original.length);
    assert.ok(repaired.equals(original), 'the garbage is zeros again, the records untouched');
  });

  it('reports a flipped byte in an early record, naming the file and offset', async () => {
    const { storage } = await harness.open();
    await writeTenAppends(storage);
    await storage.close();
    const [segment] = await segmentPaths(harness.dataDir);
    const offsets = await recordOffsets(segment!);
    await flipByte(segment!, offsets[3]! + 30);
    const { storage: reopened, persisted } = await harness.open();
    await reopened.close();
    const damaged = harness.events.find((event) => event.type === 'walDamaged');
    assert.ok(damaged?.type === 'walDamaged');
    assert.equal(damaged.file, segment);
    assert.equal(damaged.offsetBytes, offsets[3]);
    assert.equal(persisted.damage?.firstLostIndex, 5);
  });

  it('reports damage to the last record when a valid record follows the damaged one', async () => {
    const { storage } = await harness.open();
    await writeTenAppends(storage);
    await storage.close();
    const [segment] = await segmentPaths(harness.dataDir);
    const offsets = await recordOffsets(segment!);
    await flipByte(segment!, offsets[offsets.length - 2]! + 5); // the length field
    const { storage: reopened, persisted } = await harness.open();
    await reopened.close();
    assert.deepEqual(persisted.damage, { firstLostIndex: 17, lastIndexSeen: 20, termBound: 1 });
  });

  it('refuses a damaged tail of a segment that is not the last one', async () => {
    const { storage } = await harness.open({ segmentBytesMax: 4096 });
    for (let round = 0; round < 6; round++) {
      const first = round * 10 + 1;
      await storage.append({
        hardState: null,
        snapshot: null,
        entries: entries(first, first + 9, 1, 100),
      });
    }
    await storage.close();
    const segments = await segmentPaths(harness.dataDir);
    assert.ok(segments.length >= 2, `rotated into ${segments.length} segments`);
    const scan = scanSegment(await readFile(segments[0]!), segments[0]!, false);
    await truncate(segments[0]!, scan.validBytes - 3);
    const error = await openFails(harness, 'CORRUPT_RECORD');
    assert.equal(error.details.file, segments[0]);
    assert.equal(error.details.offsetBytes, scan.records[scan.records.length - 1]!.offsetBytes);
  });

  it('refuses a segment truncated inside its records: not a torn write', async () => {
    const { storage } = await harness.open();
    await writeTenAppends(storage);
    await storage.close();
    const [segment] = await segmentPaths(harness.dataDir);
    const scan = scanSegment(await readFile(segment!), segment!, true);
    const cutRecord = scan.records[4]!.offsetBytes;
    // Cut inside the fifth record: a preallocated file never ends inside a record.
    await truncate(segment!, cutRecord + 20);
    const error = await openFails(harness, 'CORRUPT_RECORD');
    assert.equal(error.details.offsetBytes, cutRecord);
    assert.match(error.message, /truncated/);
  });

  it('repairs a data directory with a segment missing, and refuses one with none left', async () => {
    const { storage } = await harness.open({ segmentBytesMax: 4096 });
    for (let round = 0; round < 12; round++) {
      const first = round * 10 + 1;
      await storage.append({
        hardState: hardState(1, Math.max(0, first - 1), 'n2'),
        snapshot: null,
        entries: entries(first, first + 9, 1, 100),
      });
    }
    await storage.close();
    const segments = await segmentPaths(harness.dataDir);
    assert.ok(segments.length >= 3, `rotated into ${segments.length} segments`);
    const firstSegment = scanSegment(await readFile(segments[0]!), segments[0]!, false);
    const lastIndexKept = Math.max(
      ...firstSegment.records.flatMap((record) =>
        record.items.flatMap((item) =>
          item.type === 'entries' ? [item.entries.at(-1)!.index] : [],
        ),
      ),
    );
    await rm(segments[1]!);
    const { storage: repaired, persisted } = await harness.open({ segmentBytesMax: 4096 });
    assert.equal(persisted.entries.at(-1)?.index, lastIndexKept, 'the segment before the hole');
    assert.deepEqual(persisted.damage, {
      firstLostIndex: lastIndexKept + 1,
      lastIndexSeen: 120,
      termBound: 1,
    });
    assert.equal(persisted.hardState?.vote, 'n2', 'the vote, from the segments after the hole');
    await repaired.repairDone();
    await repaired.close();
    // Repaired, the directory keeps its hard state only in the WAL: with no segment left,
    // the vote is unknown.
    for (const segment of await segmentPaths(harness.dataDir)) await rm(segment);
    const error = await openFails(harness, 'CORRUPT_LOG');
    assert.match(error.message, /no WAL segment is left.*vote twice/);
  });

  it("rebuilds a missing or unreadable identity file; another node's is refused", async () => {
    const { storage } = await harness.open();
    await writeTenAppends(storage);
    await storage.close();
    const metaPath = join(harness.dataDir, 'meta.json');
    const meta = await readFile(metaPath);
    await rm(metaPath);
    const rebuilt = await harness.open();
    assert.equal(rebuilt.persisted.entries.length, 20);
    await rebuilt.storage.close();
    await writeFile(metaPath, meta.toString('utf8').replace('"n', '"m'));
    const again = await harness.open();
    assert.equal(again.persisted.entries.length, 20);
    await again.storage.close();
    const events = harness.events.filter((event) => event.type === 'metadataRebuilt');
    assert.equal(events.length, 2, 'each rebuild is reported');
    // A readable file of another node, checksum and all, is no flipped byte: refused.
    const other = await fileHarness();
    try {
      const { storage: elsewhere } = await other.open({ nodeId: 'n9' });
      await elsewhere.close();
      await writeFile(metaPath, await readFile(join(other.dataDir, 'meta.json')));
      await openFails(harness, 'WRONG_NODE');
    } finally {
      await other.cleanup();
    }
  });

  it('takes over a lock left by a dead process, and reports it', async () => {
    const { storage } = await harness.open();
    await storage.close();
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const deadPid = Number(child.stdout.toString());
    assert.ok(deadPid > 0, 'the child printed its pid');
    const lockPath = join(harness.dataDir, 'LOCK');
    await writeFile(lockPath, `${deadPid} somehost\n`);
    const { storage: again } = await harness.open();
    assert.deepEqual(harness.events, [{ type: 'staleLockRemoved', file: lockPath, pid: deadPid }]);
    assert.match(await readFile(lockPath, 'utf8'), new RegExp(`^${process.pid} `));
    await again.close();
    await rm(lockPath, { force: true });
  });

  it('refuses a lock held by a live process', async () => {
    const { storage } = await harness.open();
    await storage.close();
    // The parent of this test process is alive for the whole test.
    await writeFile(join(harness.dataDir, 'LOCK'), `${process.ppid} somehost\n`);
    const error = await openFails(harness, 'LOCKED');
    assert.equal(error.details.pid, process.ppid);
  });

  it("drops a stale log when a crash came between a leader's snapshot and the log reset", async () => {
    const { storage } = await harness.open();
    // Entries 1..20 in term 1, of which only 1..5 are committed.
    await storage.append({
      hardState: hardState(1, 5),
      snapshot: null,
      entries: entries(1, 20, 1),
    });
    await storage.close();
    // The snapshot file is written first; the crash lost the record that resets the log.
    await writeFileAtomic(
      join(harness.dataDir, 'snapshot.bin'),
      encodeSnapshotFile(snapshot(15, 3)),
      newIoCounters(),
    );
    const { storage: again, persisted } = await harness.open();
    assert.equal(persisted.snapshot?.meta.index, 15);
    assert.deepEqual(persisted.entries, []);
    assert.deepEqual(persisted.hardState, hardState(1, 15));
    assert.deepEqual(
      harness.events.find((event) => event.type === 'staleLogDiscarded'),
      { type: 'staleLogDiscarded', snapshotIndex: 15, firstIndex: 1, lastIndex: 20 },
    );
    await again.close();
  });

  // The drop must reach the disk: entries appended after the snapshot follow the stale ones
  // in the WAL, and the next open would otherwise replay them onto the stale log.
  for (const { stale, snapshotIndex } of [
    { stale: 'ends before the snapshot', snapshotIndex: 15 },
    { stale: 'ends at the snapshot in another term', snapshotIndex: 8 },
  ]) {
    it(`keeps what is appended after dropping a stale log that ${stale}`, async () => {
      const { storage } = await harness.open();
      await storage.append({
        hardState: hardState(1, 5),
        snapshot: null,
        entries: entries(1, 8, 1),
      });
      await storage.close();
      await writeFileAtomic(
        join(harness.dataDir, 'snapshot.bin'),
        encodeSnapshotFile(snapshot(snapshotIndex, 3)),
        newIoCounters(),
      );
      const { storage: again, persisted } = await harness.open();
      assert.deepEqual(persisted.entries, []);
      const appended = entries(snapshotIndex + 1, snapshotIndex + 3, 3);
      await again.append({
        hardState: hardState(3, snapshotIndex + 1),
        snapshot: null,
        entries: appended,
      });
      await again.close();
      const third = await harness.open();
      assert.equal(third.persisted.snapshot?.meta.index, snapshotIndex);
      assert.deepEqual(plainEntries(third.persisted.entries), plainEntries(appended));
      assert.deepEqual(third.persisted.hardState, hardState(3, snapshotIndex + 1));
      await third.storage.close();
    });
  }

  it("keeps what is appended after a second leader's snapshot whose log reset was lost", async () => {
    const { storage } = await harness.open();
    await storage.append({ hardState: hardState(3, 15), snapshot: snapshot(15, 3), entries: [] });
    await storage.close();
    // The log was reset to 15 and holds nothing; the crash lost the reset to 30.
    await writeFileAtomic(
      join(harness.dataDir, 'snapshot.bin'),
      encodeSnapshotFile(snapshot(30, 4)),
      newIoCounters(),
    );
    const { storage: again, persisted } = await harness.open();
    assert.deepEqual(persisted.entries, []);
    const appended = entries(31, 33, 4);
    await again.append({ hardState: hardState(4, 31), snapshot: null, entries: appended });
    await again.close();
    const third = await harness.open();
    assert.deepEqual(plainEntries(third.persisted.entries), plainEntries(appended));
    await third.storage.close();
  });

  it('keeps the log after a snapshot file when the log agrees with it', async () => {
    const { storage } = await harness.open();
    await storage.append({
      hardState: hardState(1, 5),
      snapshot: null,
      entries: entries(1, 20, 1),
    });
    await storage.close();
    await writeFileAtomic(
      join(harness.dataDir, 'snapshot.bin'),
      encodeSnapshotFile(snapshot(15, 1)),
      newIoCounters(),
    );
    const { storage: again, persisted } = await harness.open();
    assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(16, 20, 1)));
    await again.close();
  });

  it('refuses records whose indexes do not follow on from the log', async () => {
    const { storage } = await harness.open();
    await writeTenAppends(storage);
    await storage.close();
    const [segment] = await segmentPaths(harness.dataDir);
    const offsets = await recordOffsets(segment!);
    // Every record verifies, but entries 3..14 are gone from between them.
    const bytes = await readFile(segment!);
    const head = bytes.subarray(0, offsets[2]!);
    await writeFile(segment!, Buffer.concat([head, bytes.subarray(offsets[8]!)]));
    const error = await openFails(harness, 'CORRUPT_LOG');
    assert.equal(error.details.offsetBytes, offsets[2]);
    assert.match(error.message, /entries start at 15, the log continues at 3/);
  });

  it('refuses a commit hint beyond the recovered log (committed entries lost)', async () => {
    const { storage } = await harness.open();
    await storage.close();
    const segment = join(harness.dataDir, 'wal-00000000000000000001.wal');
    const records = [
      encodeRecord([{ type: 'segmentHeader', formatVersion: 1, segmentSeq: 1 }]),
      encodeRecord([{ type: 'entries', entries: entries(1, 3, 1) }]),
      encodeRecord([{ type: 'hardState', hardState: hardState(1, 10) }]),
    ];
    await writeFile(segment, Buffer.concat(records));
    const error = await openFails(harness, 'CORRUPT_LOG');
    assert.equal(error.details.commit, 10);
    assert.equal(error.details.lastIndex, 3);
  });

  it('refuses a segment written by a newer format', async () => {
    const { storage } = await harness.open();
    await storage.close();
    const segment = join(harness.dataDir, 'wal-00000000000000000001.wal');
    await writeFile(
      segment,
      encodeRecord([{ type: 'segmentHeader', formatVersion: 7, segmentSeq: 1 }]),
    );
    const error = await openFails(harness, 'FORMAT_TOO_NEW');
    assert.equal(
      error.message,
      `segment ${segment} was written in format 7; this release reads up to ${STORAGE_FORMAT_VERSION}`,
    );
  });

  it('rotates segments and deletes those a snapshot covers, keeping the rest readable', async () => {
    const { storage } = await harness.open({ segmentBytesMax: 4096 });
    for (let round = 0; round < 20; round++) {
      const first = round * 10 + 1;
      await storage.append({
        hardState: hardState(1, first - 1),
        snapshot: null,
        entries: entries(first, first + 9, 1, 200),
      });
    }
    const before = await segmentPaths(harness.dataDir);
    assert.ok(before.length >= 10, `${before.length} segments`);
    await storage.saveSnapshot(snapshot(150, 1));
    const after = await segmentPaths(harness.dataDir);
    assert.ok(after.length < before.length / 2, `${after.length} of ${before.length} kept`);
    assert.equal(storage.counters().segmentDeletedCount, before.length - after.length);
    await storage.append({ hardState: null, snapshot: null, entries: entries(201, 205, 2) });
    await storage.close();
    const { storage: again, persisted } = await harness.open({ segmentBytesMax: 4096 });
    assert.equal(persisted.snapshot?.meta.index, 150);
    assert.deepEqual(
      plainEntries(persisted.entries),
      plainEntries([...entries(151, 200, 1, 200), ...entries(201, 205, 2)]),
    );
    assert.deepEqual(persisted.hardState, hardState(1, 190));
    await again.close();
  });

  it('keeps the entries after the snapshot without the segment they were read from', async () => {
    // One segment, more than half full, so that its read is kept whole as replayed; a
    // snapshot leaves ten small entries of it in the log. Those must not hold the segment's
    // megabytes alive for as long as the log keeps them.
    const segmentBytesMax = 4 << 20;
    const { storage } = await harness.open({ segmentBytesMax });
    for (let round = 0; round < 25; round++) {
      const first = round * 500 + 1;
      await storage.append({
        hardState: hardState(1, first - 1),
        snapshot: null,
        entries: entries(first, first + 499, 1, 200),
      });
    }
    await storage.saveSnapshot(snapshot(12_490, 1));
    await storage.close();
    const { storage: again, persisted } = await harness.open({ segmentBytesMax });
    assert.deepEqual(
      plainEntries(persisted.entries),
      plainEntries(entries(12_491, 12_500, 1, 200)),
    );
    const heldBytes = [...new Set(persisted.entries.map((entry) => entry.data.buffer))].reduce(
      (sum, buffer) => sum + buffer.byteLength,
      0,
    );
    assert.ok(heldBytes < 1 << 20, `the ten entries hold ${heldBytes} bytes alive`);
    await again.close();
  });

  it('copies the kept entries out of a small segment too when told to leave no slack', async () => {
    // What the simulator sets, so that its small segments take the copy above.
    const segmentBytesMax = 64 << 10;
    const { storage } = await harness.open({ segmentBytesMax });
    await storage.append({
      hardState: hardState(1, 100),
      snapshot: null,
      entries: entries(1, 100, 1, 200),
    });
    await storage.saveSnapshot(snapshot(95, 1));
    await storage.close();
    const heldBy = (kept: readonly { data: Uint8Array }[]) =>
      [...new Set(kept.map((entry) => entry.data.buffer))].reduce(
        (sum, buffer) => sum + buffer.byteLength,
        0,
      );
    const byDefault = await harness.open({ segmentBytesMax });
    assert.deepEqual(
      plainEntries(byDefault.persisted.entries),
      plainEntries(entries(96, 100, 1, 200)),
    );
    assert.ok(heldBy(byDefault.persisted.entries) >= segmentBytesMax / 2, 'views by default');
    await byDefault.storage.close();
    const noSlack = await harness.open({ segmentBytesMax, keptEntriesCopySlackBytes: 0 });
    assert.deepEqual(
      plainEntries(noSlack.persisted.entries),
      plainEntries(entries(96, 100, 1, 200)),
    );
    // A copy of about 1 KB (in Node's 8 KiB pool for small buffers), not the segment's read.
    assert.ok(heldBy(noSlack.persisted.entries) <= 8192, 'copied with no slack');
    await noSlack.storage.close();
    for (const keptEntriesCopySlackBytes of [-1, 0.5, Number.NaN]) {
      await assert.rejects(harness.open({ keptEntriesCopySlackBytes }), (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.equal(error.code, 'INVALID_ARGUMENT');
        assert.match(error.message, /keptEntriesCopySlackBytes/);
        return true;
      });
    }
  });

  it("deletes every older segment once a leader's snapshot reset the log", async () => {
    const { storage } = await harness.open({ segmentBytesMax: 4096 });
    for (let round = 0; round < 10; round++) {
      const first = round * 10 + 1;
      await storage.append({
        hardState: null,
        snapshot: null,
        entries: entries(first, first + 9, 1, 200),
      });
    }
    assert.ok((await segmentPaths(harness.dataDir)).length >= 5, 'rotated into 5 segments or more');
    await storage.append({
      hardState: hardState(4, 500, 'n3'),
      snapshot: snapshot(500, 4),
      entries: [],
    });
    assert.equal((await segmentPaths(harness.dataDir)).length, 1);
    await storage.close();
    const { storage: again, persisted } = await harness.open({ segmentBytesMax: 4096 });
    assert.equal(persisted.snapshot?.meta.index, 500);
    assert.deepEqual(persisted.entries, []);
    assert.deepEqual(persisted.hardState, hardState(4, 500, 'n3'));
    await again.close();
  });

  it('recovers when the header of a fresh segment was torn', async () => {
    const { storage } = await harness.open({ segmentBytesMax: 4096 });
    for (let round = 0; round < 3; round++) {
      const first = round * 10 + 1;
      await storage.append({
        hardState: hardState(1, first - 1),
        snapshot: null,
        entries: entries(first, first + 9, 1, 200),
      });
    }
    await storage.close();
    const segments = await segmentPaths(harness.dataDir);
    const lastSeq = segments.length;
    const nextName = `wal-${String(lastSeq + 1).padStart(20, '0')}.wal`;
    await writeFile(join(harness.dataDir, nextName), Buffer.from([0x71, 0xa5, 0x5c]));
    const { storage: again, persisted } = await harness.open({ segmentBytesMax: 4096 });
    assert.equal(persisted.entries.length, 30);
    assert.ok(
      harness.events.some((event) => event.type === 'segmentDeleted'),
      'the torn segment was reported',
    );
    for (let round = 3; round < 6; round++) {
      const first = round * 10 + 1;
      await again.append({
        hardState: null,
        snapshot: null,
        entries: entries(first, first + 9, 1, 200),
      });
    }
    await again.close();
    const third = await harness.open({ segmentBytesMax: 4096 });
    assert.equal(third.persisted.entries.length, 60);
    await third.storage.close();
  });
});
