// Recycled WAL segments (wal-writer.ts): a segment a snapshot covers becomes the file of a
// later segment instead of being deleted, and keeps its earlier records after the new ones.
// These tests show that those stale records are never read as the new segment's (even when
// their indexes would continue its log), that a torn write over them ends the log quietly,
// that damage followed by a valid record of the segment is still damage, that a recycled
// segment which is not the last must end with its seal, and that format-2 directories
// (zero-filled, unseeded) still open and are recycled safely.
import assert from 'node:assert/strict';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Entry } from '../../src/raft/types.ts';
import { encodeRecord, recordSeed, type WalItem } from '../../src/storage/codec.ts';
import { StorageError } from '../../src/storage/errors.ts';
import {
  nonZeroEnd,
  scanSegment,
  segmentFileName,
  segmentFormat,
} from '../../src/storage/segments.ts';
import { type RaftStorage, STORAGE_FORMAT_VERSION } from '../../src/storage/types.ts';
import {
  entries,
  entry,
  fileHarness,
  hardState,
  plainEntries,
  segmentPaths,
  snapshot,
} from './helpers.ts';

type FileHarness = Awaited<ReturnType<typeof fileHarness>>;
const SEGMENT_BYTES = 16 * 1024;
/** Sizes vary, so that a segment's records never end where its file's earlier ones did. */
function entryBytes(index: number): number {
  return 500 + ((index * 389) % 1000);
}

function entryAt(index: number): Entry {
  return entry(index, 1, entryBytes(index));
}

function entriesFrom(first: number, last: number): Entry[] {
  return Array.from({ length: last - first + 1 }, (_, offset) => entryAt(first + offset));
}

async function appendOneByOne(storage: RaftStorage, from: number, to: number): Promise<void> {
  for (let index = from; index <= to; index++) {
    await storage.append({
      hardState: hardState(1, index),
      snapshot: null,
      entries: [entryAt(index)],
    });
  }
}

function seqOf(path: string): number {
  return Number(/wal-(\d+)\.wal$/.exec(path)![1]);
}

/**
 * Writes entries 1..120 with a snapshot at 45 in between (it covers the first segments, whose
 * files the later segments reuse), closes, and returns the segment paths, oldest first.
 */
async function writeWithRecycling(harness: FileHarness): Promise<string[]> {
  const { storage } = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
  await appendOneByOne(storage, 1, 60);
  await storage.saveSnapshot(snapshot(45, 1));
  const recycledFiles = (await readdir(harness.dataDir)).filter((name) =>
    name.startsWith('wal-recycle-'),
  );
  assert.ok(recycledFiles.length > 0, 'the covered segments are kept for reuse');
  await appendOneByOne(storage, 61, 100);
  await storage.saveSnapshot(snapshot(90, 1));
  await appendOneByOne(storage, 101, 150);
  const counters = storage.counters();
  assert.ok(counters.segmentRecycledCount >= 2, JSON.stringify(counters));
  await storage.close();
  const names = await readdir(harness.dataDir);
  assert.deepEqual(
    names.filter((name) => name.endsWith('.tmp')),
    [],
    'a close leaves no spare',
  );
  return segmentPaths(harness.dataDir);
}

function entriesRecord(list: Entry[], seed: number): Buffer {
  return encodeRecord([{ type: 'entries', entries: list }], seed);
}

describe('recycled WAL segments', () => {
  let harness: FileHarness;
  beforeEach(async () => {
    harness = await fileHarness();
  });
  afterEach(async () => {
    await harness.cleanup();
  });

  it('makes new segments from covered ones, with stale bytes after the records, and reopens', async () => {
    const segments = await writeWithRecycling(harness);
    const last = segments[segments.length - 1]!;
    let recycledCount = 0;
    let staleCount = 0;
    for (const path of segments) {
      const bytes = await readFile(path);
      const format = segmentFormat(bytes, seqOf(path));
      assert.equal(format.seed, recordSeed(seqOf(path)), 'new segments are seeded');
      if (!format.recycled) continue;
      recycledCount += 1;
      const scan = scanSegment(bytes, path, path === last);
      if (nonZeroEnd(bytes, scan.validBytes) > scan.validBytes) staleCount += 1;
      const items = scan.records[scan.records.length - 1]!.items;
      if (path !== last)
        assert.ok(
          items.some((item) => item.type === 'sealed'),
          'sealed',
        );
    }
    assert.ok(recycledCount >= 2, `${recycledCount} recycled segments`);
    assert.ok(staleCount >= 1, 'the earlier life follows the records');
    const { storage, persisted } = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
    assert.deepEqual(plainEntries(persisted.entries), plainEntries(entriesFrom(91, 150)));
    assert.deepEqual(persisted.hardState, hardState(1, 150));
    assert.deepEqual(
      harness.events.filter((event) => event.type !== 'segmentDeleted'),
      [],
      'stale bytes are no torn tail',
    );
    await appendOneByOne(storage, 151, 170);
    await storage.close();
    const again = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
    assert.deepEqual(plainEntries(again.persisted.entries), plainEntries(entriesFrom(91, 170)));
    await again.storage.close();
  });

  it('never reads a stale record as one of the new segment, even when its indexes continue the log', () => {
    // The file's earlier life as segment 4 (itself recycled): a header, entries 1-4, 5-6.
    const oldHeader: WalItem[] = [
      { type: 'segmentHeader', formatVersion: STORAGE_FORMAT_VERSION, segmentSeq: 4 },
      { type: 'recycled' },
    ];
    const newHeader: WalItem[] = [
      { type: 'segmentHeader', formatVersion: STORAGE_FORMAT_VERSION, segmentSeq: 5 },
      { type: 'recycled' },
    ];
    const stale = (seed: number) =>
      Buffer.concat([
        encodeRecord(oldHeader, recordSeed(4)),
        entriesRecord(entries(1, 4, 1, 50), recordSeed(4)),
        entriesRecord(entries(5, 6, 1, 50), seed),
        Buffer.alloc(4096, 0x77),
      ]);
    // Its life as segment 5: a header and entries 1-4 of the same sizes, so the stale record
    // of entries 5-6 starts exactly where the new records end.
    const fresh = Buffer.concat([
      encodeRecord(newHeader, recordSeed(5)),
      entriesRecord(entries(1, 4, 1, 50), recordSeed(5)),
    ]);
    const path = join('/nowhere', segmentFileName(5));
    for (const [seed, what] of [
      [recordSeed(4), 'seeded for segment 4'],
      [0, 'unseeded (format 2)'],
    ] as const) {
      const file = stale(seed);
      fresh.copy(file, 0);
      const scan = scanSegment(file, path, true);
      assert.equal(scan.records.length, 2, what);
      assert.equal(scan.validBytes, fresh.length, what);
      assert.equal(scan.tornBytes, 0, what);
      assert.equal(scan.damage, null, what);
    }
    // Control: a record seeded for segment 5 there is read, so the seed is what keeps the
    // stale one out.
    const file = stale(recordSeed(5));
    fresh.copy(file, 0);
    assert.equal(scanSegment(file, path, true).records.length, 3);
  });

  it('opens a directory whose recycled segment holds stale records that continue its log', async () => {
    const { storage } = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
    await storage.close();
    const [first] = await segmentPaths(harness.dataDir);
    const header = (seq: number): WalItem[] => [
      { type: 'segmentHeader', formatVersion: STORAGE_FORMAT_VERSION, segmentSeq: seq },
      { type: 'recycled' },
      { type: 'hardState', hardState: hardState(1, 0) },
    ];
    const withHardState = (list: Entry[], commit: number, seq: number) =>
      encodeRecord(
        [
          { type: 'entries', entries: list },
          { type: 'hardState', hardState: hardState(1, commit) },
        ],
        recordSeed(seq),
      );
    // Segment 2 over the file of segment 1: the same records up to entry 3, then the old
    // life's entries 4-5, committed, which the new life never wrote.
    const bytes = Buffer.alloc(SEGMENT_BYTES);
    Buffer.concat([
      encodeRecord(header(1), recordSeed(1)),
      withHardState(entries(1, 3, 1, 40), 3, 1),
      withHardState(entries(4, 5, 1, 40), 5, 1),
    ]).copy(bytes);
    Buffer.concat([
      encodeRecord(header(2), recordSeed(2)),
      withHardState(entries(1, 3, 1, 40), 3, 2),
    ]).copy(bytes);
    await rm(first!);
    await writeFile(join(harness.dataDir, segmentFileName(2)), bytes);
    const { storage: again, persisted } = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
    assert.deepEqual(plainEntries(persisted.entries), plainEntries(entries(1, 3, 1, 40)));
    assert.deepEqual(persisted.hardState, hardState(1, 3));
    assert.deepEqual(harness.events, []);
    await again.close();
  });

  it('reads a torn write over stale bytes as the end of the log, and writes on over it', async () => {
    const segments = await writeWithRecycling(harness);
    const last = segments[segments.length - 1]!;
    const bytes = await readFile(last);
    assert.ok(segmentFormat(bytes, seqOf(last)).recycled, 'the last segment is recycled');
    const { validBytes } = scanSegment(bytes, last, true);
    const record = entriesRecord([entryAt(151)], recordSeed(seqOf(last)));
    record.copy(bytes, validBytes, 0, Math.floor(record.length / 2));
    await writeFile(last, bytes);
    const { storage, persisted } = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
    assert.equal(persisted.entries[persisted.entries.length - 1]!.index, 150);
    assert.deepEqual(
      harness.events.filter((event) => event.type !== 'segmentDeleted'),
      [],
      'nothing reported: stale and torn bytes look alike, and neither was acknowledged',
    );
    await appendOneByOne(storage, 151, 155);
    await storage.close();
    const again = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
    assert.deepEqual(plainEntries(again.persisted.entries), plainEntries(entriesFrom(91, 155)));
    await again.storage.close();
  });

  it('refuses a recycled segment truncated inside its records', async () => {
    const segments = await writeWithRecycling(harness);
    const last = segments[segments.length - 1]!;
    const bytes = await readFile(last);
    const { records } = scanSegment(bytes, last, true);
    assert.ok(records.length >= 3, 'a header and at least two records');
    const cut = records[records.length - 1]!.offsetBytes + 20;
    await writeFile(last, bytes.subarray(0, cut));
    const error = await harness.open({ segmentBytesMax: SEGMENT_BYTES }).then(
      () => assert.fail('the open should refuse a truncated segment'),
      (reason: unknown) => reason,
    );
    assert.ok(error instanceof StorageError && error.code === 'CORRUPT_RECORD', String(error));
    assert.match(error.message, /truncated/);
  });

  it('still finds damage followed by a valid record of the same recycled segment', async () => {
    const segments = await writeWithRecycling(harness);
    const last = segments[segments.length - 1]!;
    const bytes = await readFile(last);
    const { records } = scanSegment(bytes, last, true);
    assert.ok(records.length >= 3, 'a header and at least two records');
    const damaged = records[1]!.offsetBytes + 40;
    bytes[damaged] = bytes[damaged]! ^ 0x01;
    await writeFile(last, bytes);
    assert.throws(
      () => scanSegment(bytes, last, true),
      (error: unknown) =>
        error instanceof StorageError &&
        error.code === 'CORRUPT_RECORD' &&
        /a valid record follows/.test(error.message),
    );
    // The node repairs it (docs/design.md): the open reports the damage, never drops it quietly.
    const opened = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
    assert.ok(
      harness.events.some((event) => event.type === 'walDamaged'),
      JSON.stringify(harness.events),
    );
    await opened.storage.close();
  });

  it('reads a recycled segment that is not the last and lost its seal as damage', async () => {
    const segments = await writeWithRecycling(harness);
    let target: string | null = null;
    for (const path of segments.slice(0, -1)) {
      if (segmentFormat(await readFile(path), seqOf(path)).recycled) target = path;
    }
    assert.ok(target !== null, 'a recycled segment that is not the last');
    const bytes = await readFile(target);
    const { records } = scanSegment(bytes, target, false);
    const seal = records[records.length - 1]!;
    assert.deepEqual(seal.items, [{ type: 'sealed' }]);
    // The seal is lost (a torn or dropped write would leave the stale bytes it covered).
    bytes[seal.offsetBytes + 12] = bytes[seal.offsetBytes + 12]! ^ 0xff;
    assert.throws(
      () => scanSegment(bytes, target, false),
      (error: unknown) =>
        error instanceof StorageError &&
        error.code === 'CORRUPT_RECORD' &&
        /not the seal/.test(error.message),
    );
    // As the last segment, the same bytes are a clean end (a crash before the next segment).
    assert.equal(scanSegment(bytes, target, true).damage, null);
  });

  it('reads a torn seal written past the end of a grown recycled segment as its end', async () => {
    // A record too big for a recycled segment that holds only its header grows its file; the
    // seal written at the next rotation then grows it again, and a power cut can keep its
    // header without its body. Nothing after the seal was ever written: not a truncation.
    const { storage } = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
    await appendOneByOne(storage, 1, 60);
    await storage.saveSnapshot(snapshot(45, 1));
    // Big entries, each the first record of a new segment, until one goes into a recycled file.
    let index = 61;
    while (storage.counters().segmentRecycledCount === 0) {
      await storage.append({
        hardState: hardState(1, index),
        snapshot: null,
        entries: [entry(index, 1, SEGMENT_BYTES + 100)],
      });
      index += 1;
    }
    await storage.close();
    const segments = await segmentPaths(harness.dataDir);
    const last = segments[segments.length - 1]!;
    const bytes = await readFile(last);
    assert.ok(segmentFormat(bytes, seqOf(last)).recycled, 'the last segment is recycled');
    const scan = scanSegment(bytes, last, true);
    assert.equal(scan.records.length, 2, 'its header and the big record');
    assert.equal(scan.validBytes, bytes.length, 'the big record grew the file');
    const seal = encodeRecord([{ type: 'sealed' }], recordSeed(seqOf(last)));
    await writeFile(last, Buffer.concat([bytes, seal.subarray(0, seal.length - 1)]));
    const { storage: reopened, persisted } = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
    assert.equal(persisted.entries[persisted.entries.length - 1]!.index, index - 1);
    await appendOneByOne(reopened, index, index + 5);
    await reopened.close();
    const again = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
    assert.equal(again.persisted.entries[again.persisted.entries.length - 1]!.index, index + 5);
    await again.storage.close();
  });

  it('opens a format-2 directory, marks it format 3 and recycles its unseeded segment safely', async () => {
    const { storage } = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
    await storage.close();
    const [segment] = await segmentPaths(harness.dataDir);
    // Format 2: unseeded records in a zero-filled segment.
    const format2 = Buffer.alloc(SEGMENT_BYTES);
    Buffer.concat([
      encodeRecord([{ type: 'segmentHeader', formatVersion: 2, segmentSeq: 1 }]),
      ...[1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((index) =>
        encodeRecord([
          { type: 'entries', entries: [entryAt(index)] },
          { type: 'hardState', hardState: hardState(1, index) },
        ]),
      ),
    ]).copy(format2);
    await writeFile(segment!, format2);
    await harness.setFormatVersion(2);
    const opened = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
    assert.deepEqual(plainEntries(opened.persisted.entries), plainEntries(entriesFrom(1, 10)));
    assert.equal(opened.metadata.formatVersion, STORAGE_FORMAT_VERSION);
    assert.deepEqual(harness.events, []);
    await appendOneByOne(opened.storage, 11, 40);
    await opened.storage.saveSnapshot(snapshot(30, 1));
    await appendOneByOne(opened.storage, 41, 100);
    assert.ok(opened.storage.counters().segmentRecycledCount >= 1);
    await opened.storage.close();
    const again = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
    assert.deepEqual(plainEntries(again.persisted.entries), plainEntries(entriesFrom(31, 100)));
    await again.storage.close();
  });
});
