// Proves that WAL segments are preallocated and that recovery reads them right: a segment is
// zero-filled at its full size before its first record and keeps that size, the next one is
// filled in the background so that rotation under load never waits, zeros after the last
// record are a clean end while a torn record before them is zeroed and reported, damage
// followed by a valid record is still refused (also across 64 MiB of zeros), and neither a
// spare nor a never-written segment disturbs recovery. Files are inspected and edited
// between opens; the 64 MiB cases scan buffers in memory.
import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { encodeRecord, recordSeed, type WalItem } from '../../src/storage/codec.ts';
import { StorageError } from '../../src/storage/errors.ts';
import { SPARE_SEGMENT_FILE_NAME } from '../../src/storage/preallocation.ts';
import { scanSegment, segmentFileName } from '../../src/storage/segments.ts';
import { type RaftStorage, STORAGE_FORMAT_VERSION } from '../../src/storage/types.ts';
import {
  entries,
  entry,
  fileHarness,
  hardState,
  plainEntries,
  TEST_SEGMENT_BYTES_MAX,
} from './helpers.ts';

type FileHarness = Awaited<ReturnType<typeof fileHarness>>;
const MIB = 1024 * 1024;

async function segmentPaths(dataDir: string): Promise<string[]> {
  const names = (await readdir(dataDir)).filter((name) => name.endsWith('.wal')).sort();
  return names.map((name) => join(dataDir, name));
}

async function fileSize(path: string): Promise<number | null> {
  return stat(path).then(
    (found) => found.size,
    () => null,
  );
}

async function openFails(harness: FileHarness, code: string): Promise<StorageError> {
  const error = await harness.open().then(
    () => assert.fail(`open should fail with ${code}`),
    (reason: unknown) => reason,
  );
  assert.ok(error instanceof StorageError, String(error));
  assert.equal(error.code, code, error.message);
  return error;
}

/** Polls `condition` every few milliseconds until it holds, or fails at the deadline. */
async function waitFor(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Appends entries first..last (one per append, `byteCount` each) with one in flight. */
async function appendOneByOne(
  storage: RaftStorage,
  first: number,
  last: number,
  byteCount: number,
): Promise<void> {
  for (let index = first; index <= last; index++) {
    await storage.append({
      hardState: null,
      snapshot: null,
      entries: [entry(index, 1, byteCount)],
    });
  }
}

describe('preallocated WAL segments', () => {
  let harness: FileHarness;
  beforeEach(async () => {
    harness = await fileHarness();
  });
  afterEach(async () => {
    await harness.cleanup();
  });

  it('creates each segment at its full size before its first record, and keeps that size', async () => {
    const segmentBytesMax = 64 * 1024;
    const { storage } = await harness.open({ segmentBytesMax });
    const [first] = await segmentPaths(harness.dataDir);
    assert.equal(await fileSize(first!), segmentBytesMax, 'preallocated at open');
    assert.equal(scanSegment(await readFile(first!), first!, true).records.length, 1);
    await appendOneByOne(storage, 1, 40, 4000);
    const segments = await segmentPaths(harness.dataDir);
    assert.ok(segments.length >= 3, `rotated into ${segments.length} segments`);
    for (const path of segments) assert.equal(await fileSize(path), segmentBytesMax, path);
    const counters = storage.counters();
    assert.ok(counters.walPreallocatedBytes >= segments.length * segmentBytesMax);
    await storage.close();
    assert.equal(await fileSize(join(harness.dataDir, SPARE_SEGMENT_FILE_NAME)), null);
    const { storage: again, persisted } = await harness.open({ segmentBytesMax });
    assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(1, 40, 1, 4000)));
    await again.close();
  });

  it('writes a record larger than a segment alone into a fresh segment, growing it', async () => {
    const segmentBytesMax = 8192;
    const { storage } = await harness.open({ segmentBytesMax });
    await appendOneByOne(storage, 1, 1, 100);
    await appendOneByOne(storage, 2, 2, 20_000);
    await appendOneByOne(storage, 3, 3, 100);
    await storage.close();
    const segments = await segmentPaths(harness.dataDir);
    assert.equal(segments.length, 3, 'the large record moved on, and so did the next one');
    assert.equal(await fileSize(segments[0]!), segmentBytesMax);
    assert.ok((await fileSize(segments[1]!))! > 20_000, 'the fresh segment grew');
    assert.equal(await fileSize(segments[2]!), segmentBytesMax);
    const { storage: again, persisted } = await harness.open({ segmentBytesMax });
    assert.deepEqual(
      plainEntries(persisted.entries),
      plainEntries([entry(1, 1, 100), entry(2, 1, 20_000), entry(3, 1, 100)]),
    );
    await again.close();
  });

  it('zeroes and reports a torn record before the zeros, keeping the preallocation', async () => {
    const { storage } = await harness.open();
    await appendOneByOne(storage, 1, 10, 300);
    await storage.close();
    const [segment] = await segmentPaths(harness.dataDir);
    const original = await readFile(segment!);
    const { validBytes } = scanSegment(original, segment!, true);
    // Half of an 11th record, then the zeros the write never reached.
    const record = encodeRecord([{ type: 'entries', entries: [entry(11, 1, 300)] }], recordSeed(1));
    const tornBytes = Math.floor(record.length / 2);
    const torn = Buffer.from(original);
    record.copy(torn, validBytes, 0, tornBytes);
    await writeFile(segment!, torn);
    const { storage: again, persisted } = await harness.open();
    assert.equal(persisted.entries.length, 10);
    assert.deepEqual(harness.events, [
      {
        type: 'tornTailTruncated',
        file: segment,
        offsetBytes: validBytes,
        droppedBytes: tornBytes,
      },
    ]);
    assert.ok((await readFile(segment!)).equals(original), 'zeroed in place, size kept');
    await appendOneByOne(again, 11, 12, 300);
    await again.close();
    const third = await harness.open();
    assert.deepEqual(plainEntries(third.persisted.entries), plainEntries(entries(1, 12, 1, 300)));
    await third.storage.close();
  });

  it('reads a torn record whose first sectors never reached the disk as a torn tail', async () => {
    const { storage } = await harness.open();
    await appendOneByOne(storage, 1, 5, 300);
    await storage.close();
    const [segment] = await segmentPaths(harness.dataDir);
    const original = await readFile(segment!);
    const { validBytes } = scanSegment(original, segment!, true);
    const record = encodeRecord([{ type: 'entries', entries: [entry(6, 1, 3000)] }], recordSeed(1));
    const damaged = Buffer.from(original);
    record.copy(damaged, validBytes + 1024, 1024); // the header and first KiB stay zero
    await writeFile(segment!, damaged);
    const { storage: again, persisted } = await harness.open();
    assert.equal(persisted.entries.length, 5);
    assert.equal(harness.events.length, 1);
    assert.equal(harness.events[0]?.type, 'tornTailTruncated');
    await again.close();
  });

  it('refuses a damaged record followed by a valid one in a preallocated segment', async () => {
    const { storage } = await harness.open();
    await appendOneByOne(storage, 1, 10, 300);
    await storage.close();
    const [segment] = await segmentPaths(harness.dataDir);
    const bytes = await readFile(segment!);
    const offsets = scanSegment(bytes, segment!, true).records.map((record) => record.offsetBytes);
    bytes[offsets[9]! + 40] = bytes[offsets[9]! + 40]! ^ 0x01; // the last but one record
    await writeFile(segment!, bytes);
    const error = await openFails(harness, 'CORRUPT_RECORD');
    assert.equal(error.details.file, segment);
    assert.equal(error.details.offsetBytes, offsets[9]);
    assert.match(error.message, /a valid record follows/);
  });

  it('scans 64 MiB of zeros for a valid record after damage, and finds one at the far end', () => {
    const path = '/virtual/wal-00000000000000000001.wal';
    const header: WalItem = { type: 'segmentHeader', formatVersion: 2, segmentSeq: 1 };
    const records = [encodeRecord([header]), ...[1, 2, 3].map((index) => recordOf(index))];
    const file = Buffer.alloc(64 * MIB);
    let offset = 0;
    for (const record of records) offset += record.copy(file, offset);
    const clean = scanSegment(file, path, true);
    assert.equal(clean.records.length, 4);
    assert.equal(clean.tornBytes, 0, 'zeros are the clean end');

    const torn = recordOf(4);
    torn.copy(file, offset, 0, torn.length - 10);
    const tornScan = scanSegment(file, path, true);
    assert.equal(tornScan.validBytes, offset);
    assert.ok(tornScan.tornBytes > 0 && tornScan.tornBytes <= torn.length - 10);

    // A valid record 60 MiB further: the damage is not a torn tail.
    const farAt = 60 * MIB + 3;
    recordOf(5).copy(file, farAt);
    assert.throws(
      () => scanSegment(file, path, true),
      (error: unknown) =>
        error instanceof StorageError &&
        error.code === 'CORRUPT_RECORD' &&
        error.details.offsetBytes === offset &&
        error.message.includes(`valid record follows at ${farAt}`),
    );
  });

  it('refuses damage after the last record of a segment that is not the last one', () => {
    const path = '/virtual/wal-00000000000000000001.wal';
    const file = Buffer.alloc(MIB);
    let offset = encodeRecord([{ type: 'segmentHeader', formatVersion: 2, segmentSeq: 1 }]).copy(
      file,
    );
    offset += recordOf(1).copy(file, offset);
    assert.equal(scanSegment(file, path, false).tornBytes, 0, 'zeros end it cleanly');
    file[offset + 100] = 7;
    assert.throws(
      () => scanSegment(file, path, false),
      (error: unknown) => error instanceof StorageError && error.code === 'CORRUPT_RECORD',
    );
  });

  it('ignores and replaces a spare left behind, and drops a last segment never written', async () => {
    const { storage } = await harness.open();
    await appendOneByOne(storage, 1, 5, 300);
    await storage.close();
    const [segment] = await segmentPaths(harness.dataDir);
    // A spare left by a crash, holding a header of its own and a stray record.
    const sparePath = join(harness.dataDir, SPARE_SEGMENT_FILE_NAME);
    const spare = Buffer.alloc(TEST_SEGMENT_BYTES_MAX);
    encodeRecord([{ type: 'segmentHeader', formatVersion: 2, segmentSeq: 2 }]).copy(spare);
    await writeFile(sparePath, spare);
    // And a segment that was preallocated under its final name but never written.
    const neverWritten = join(harness.dataDir, segmentFileName(2));
    await writeFile(neverWritten, Buffer.alloc(TEST_SEGMENT_BYTES_MAX));
    const { storage: again, persisted } = await harness.open();
    assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(1, 5, 1, 300)));
    assert.deepEqual(harness.events, [
      { type: 'segmentDeleted', file: neverWritten, reason: 'it holds no record' },
    ]);
    assert.equal(await fileSize(sparePath), null, 'the leftover spare is gone');
    await appendOneByOne(again, 6, 7, 300);
    await again.close();
    assert.deepEqual(await segmentPaths(harness.dataDir), [segment]);
    const third = await harness.open();
    assert.equal(third.persisted.entries.length, 7);
    await third.storage.close();
  });

  it('refuses a segment without records before the last one', async () => {
    const { storage } = await harness.open({ segmentBytesMax: 4096 });
    await appendOneByOne(storage, 1, 6, 1500);
    await storage.close();
    const segments = await segmentPaths(harness.dataDir);
    assert.ok(segments.length >= 3, `rotated into ${segments.length} segments`);
    await writeFile(segments[1]!, Buffer.alloc(4096));
    const error = await openFails(harness, 'CORRUPT_RECORD');
    assert.equal(error.details.file, segments[1]);
  });

  it('fills the next segment in the background, so rotation under load never waits', async () => {
    const segmentBytesMax = MIB;
    const { storage } = await harness.open({ segmentBytesMax });
    const sparePath = join(harness.dataDir, SPARE_SEGMENT_FILE_NAME);
    assert.equal(await fileSize(sparePath), null, 'no spare while the segment is mostly empty');
    await appendOneByOne(storage, 1, 140, 4000); // past half of the first segment
    await waitFor(async () => (await fileSize(sparePath)) === segmentBytesMax, 'the spare');
    // Appends keep flowing, one at a time, across several rotations.
    await appendOneByOne(storage, 141, 1300, 4000);
    const counters = storage.counters();
    assert.ok(counters.segmentCreatedCount >= 5, `${counters.segmentCreatedCount} segments`);
    assert.equal(counters.segmentSpareMissCount, 0, 'no rotation waited for zeros');
    await storage.close();
    const { storage: again, persisted } = await harness.open({ segmentBytesMax });
    assert.equal(persisted.entries.length, 1300);
    assert.deepEqual(
      plainEntries(persisted.entries.slice(-2)),
      plainEntries(entries(1299, 1300, 1, 4000)),
    );
    await again.close();
  });

  it('closes while the spare is being filled, leaving no spare behind', async () => {
    const segmentBytesMax = 16 * MIB;
    const { storage } = await harness.open({ segmentBytesMax });
    await storage.append({ hardState: null, snapshot: null, entries: [entry(1, 1, 8 * MIB)] });
    await storage.close();
    assert.equal(await fileSize(join(harness.dataDir, SPARE_SEGMENT_FILE_NAME)), null);
    const { storage: again, persisted } = await harness.open({ segmentBytesMax });
    assert.equal(persisted.entries.length, 1);
    await again.close();
  });

  it('refuses a segment size below 4 KiB or above 1 GiB', async () => {
    for (const segmentBytesMax of [1024, 2 ** 30 + 1, 5000.5]) {
      const error = await harness.open({ segmentBytesMax }).then(
        () => assert.fail(`segmentBytesMax ${segmentBytesMax} was accepted`),
        (reason: unknown) => reason,
      );
      assert.ok(error instanceof StorageError && error.code === 'INVALID_ARGUMENT', String(error));
    }
  });

  it('reads a format-1 directory, preallocates its last segment and marks it the current format', async () => {
    const { storage } = await harness.open();
    await storage.close();
    const [segment] = await segmentPaths(harness.dataDir);
    // Format 1: records back to back, the file no longer than them.
    const records = [
      encodeRecord([{ type: 'segmentHeader', formatVersion: 1, segmentSeq: 1 }]),
      encodeRecord([
        { type: 'entries', entries: entries(1, 3, 1) },
        { type: 'hardState', hardState: hardState(1, 2) },
      ]),
    ];
    await writeFile(segment!, Buffer.concat(records));
    await harness.setFormatVersion(1);
    const { storage: again, persisted, metadata } = await harness.open();
    assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(1, 3, 1)));
    assert.equal(metadata.formatVersion, STORAGE_FORMAT_VERSION);
    const meta = JSON.parse(await readFile(join(harness.dataDir, 'meta.json'), 'utf8'));
    assert.equal(meta.formatVersion, STORAGE_FORMAT_VERSION, 'an older release now refuses it');
    assert.equal(await fileSize(segment!), TEST_SEGMENT_BYTES_MAX, 'preallocated to full size');
    await again.append({ hardState: hardState(1, 4), snapshot: null, entries: entries(4, 4, 1) });
    await again.close();
    const third = await harness.open();
    assert.deepEqual(plainEntries(third.persisted.entries), plainEntries(entries(1, 4, 1)));
    assert.deepEqual(harness.events, []);
    await third.storage.close();
  });
});

function recordOf(index: number): Buffer {
  return encodeRecord([{ type: 'entries', entries: [entry(index, 1, 200)] }]);
}
