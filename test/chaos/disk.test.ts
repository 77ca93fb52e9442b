// The chaos suite's disk faults (src/chaos/disk.ts) land in a segment's records. A recycled
// segment (format 3) holds its file's earlier records after its own, so its records do not
// end where its last nonzero byte is: a fault aimed below that would mostly hit stale bytes
// no reader looks at, and the suite would report a fault that never happened.
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { injectDiskFault } from '../../src/chaos/disk.ts';
import { nonZeroEnd, scanSegment, segmentFormat } from '../../src/storage/segments.ts';
import { Prng } from '../../src/util/prng.ts';
import { entry, fileHarness, hardState, segmentPaths, snapshot } from '../storage/helpers.ts';

type FileHarness = Awaited<ReturnType<typeof fileHarness>>;
const SEGMENT_BYTES = 16 * 1024;

/** A closed directory whose newest segment is a recycled file with stale bytes after its records. */
async function recycledNewest(harness: FileHarness): Promise<{ path: string; recordsEnd: number }> {
  const { storage } = await harness.open({ segmentBytesMax: SEGMENT_BYTES });
  let index = 1;
  for (let round = 0; round < 20; round++) {
    for (const last = index + 25; index < last; index++) {
      await storage.append({
        hardState: hardState(1, index),
        snapshot: null,
        entries: [entry(index, 1, 700)],
      });
    }
    await storage.saveSnapshot(snapshot(index - 5, 1));
    if (storage.counters().segmentRecycledCount < 2) continue;
    const paths = await segmentPaths(harness.dataDir);
    const newest = paths[paths.length - 1]!;
    const bytes = await readFile(newest);
    const seq = Number(/wal-(\d+)\.wal$/.exec(newest)![1]);
    if (!segmentFormat(bytes, seq).recycled) continue;
    const recordsEnd = scanSegment(bytes, newest, true).validBytes;
    // Stale bytes well past the records, so that a fault drawn below them would miss.
    if (nonZeroEnd(bytes, recordsEnd) < recordsEnd + SEGMENT_BYTES / 4) continue;
    await storage.close();
    return { path: newest, recordsEnd };
  }
  await storage.close();
  assert.fail('no recycled newest segment with stale bytes after its records');
}

describe('chaos disk faults', () => {
  let harness: FileHarness;
  beforeEach(async () => {
    harness = await fileHarness();
  });
  afterEach(async () => {
    await harness.cleanup();
  });

  it('truncates a recycled newest segment inside its records, not in its stale bytes', async () => {
    const { path, recordsEnd } = await recycledNewest(harness);
    const detail = await injectDiskFault(harness.dataDir, 'truncate-segment', new Prng(7));
    const sizeBytes = (await stat(path)).size;
    assert.ok(sizeBytes < recordsEnd, `${detail}; the records end at ${recordsEnd}`);
  });

  it('flips a bit of a record of a recycled segment, not of its stale bytes', async () => {
    await recycledNewest(harness);
    const paths = await segmentPaths(harness.dataDir);
    const contents = await Promise.all(paths.map((path) => readFile(path)));
    const recordsEnds = paths.map(
      (path, position) =>
        scanSegment(contents[position]!, path, position === paths.length - 1).validBytes,
    );
    // A few draws, as the suite makes over a run, each undone before the next.
    for (let seed = 1; seed <= 12; seed++) {
      const detail = await injectDiskFault(harness.dataDir, 'wal-byte', new Prng(seed));
      for (const [position, path] of paths.entries()) {
        const after = await readFile(path);
        const changed = after.findIndex((byte, offset) => byte !== contents[position]![offset]);
        if (changed === -1) continue;
        assert.ok(
          changed < recordsEnds[position]!,
          `${detail}; records end at ${recordsEnds[position]}`,
        );
        await writeFile(path, contents[position]!);
      }
    }
  });
});
