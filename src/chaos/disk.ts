/**
 * Disk faults, applied to a stopped node's data directory (file-storage.ts describes the
 * layout: `wal-<seq>.wal` segments preallocated with zeros, each starting with a header record
 * that carries the hard state; `snapshot.bin`). A fault lands in a segment's records, found
 * with the storage's own scan: a recycled segment (format 3) holds its file's earlier records
 * after its own, bytes no reader looks at, so its last nonzero byte is not where its records
 * end.
 */
import { open, readdir, stat, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { nodeFileSystem } from '../storage/node-file-system.ts';
import { readSegmentFile, scanSegment } from '../storage/segments.ts';
import type { Prng } from '../util/prng.ts';

export type DiskFaultVariant =
  | 'wal-byte'
  | 'hard-state-byte'
  | 'truncate-segment'
  | 'delete-segment'
  | 'snapshot-byte';

export const diskFaultVariants: readonly DiskFaultVariant[] = [
  'wal-byte',
  'hard-state-byte',
  'truncate-segment',
  'delete-segment',
  'snapshot-byte',
];

/** The header record (hard state) fits in the first bytes of a segment. */
const segmentHeaderBytes = 48;

async function segments(dataDir: string): Promise<string[]> {
  const names = await readdir(dataDir);
  return names.filter((name) => /^wal-\d+\.wal$/.test(name)).sort();
}

/**
 * The end of a segment's valid records (where recovery stops reading), or of its last
 * nonzero byte when even its first record cannot be read.
 */
async function writtenBytes(path: string, isLast: boolean): Promise<number> {
  const { bytes, contentBytes } = await readSegmentFile(nodeFileSystem, path);
  try {
    const { validBytes } = scanSegment(bytes, path, isLast, contentBytes, true);
    return validBytes > 0 ? validBytes : contentBytes;
  } catch {
    return contentBytes; // an undecodable record: damaged already, anywhere will do
  }
}

async function flipByte(path: string, offset: number, random: Prng): Promise<string> {
  const handle = await open(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    byte[0] = (byte[0] as number) ^ (1 << random.below(8));
    await handle.write(byte, 0, 1, offset);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  return `flipped a bit of byte ${offset} in ${path}`;
}

/** Applies `variant` to the data directory; says what it did (a variant with no target falls back to a WAL byte). */
export async function injectDiskFault(
  dataDir: string,
  variant: DiskFaultVariant,
  random: Prng,
): Promise<string> {
  const names = await segments(dataDir);
  if (names.length === 0) return 'no WAL segment to damage';
  const newest = join(dataDir, names.at(-1) as string);
  switch (variant) {
    case 'snapshot-byte': {
      const path = join(dataDir, 'snapshot.bin');
      const size = await stat(path).then(
        (info) => info.size,
        () => 0,
      );
      if (size > 0) return flipByte(path, random.below(size), random);
      return injectDiskFault(dataDir, 'wal-byte', random);
    }
    case 'hard-state-byte':
      return flipByte(newest, random.below(segmentHeaderBytes), random);
    case 'wal-byte': {
      const name = random.pick(names);
      const path = join(dataDir, name);
      const written = await writtenBytes(path, name === names.at(-1));
      if (written === 0) return `nothing written in ${path}`;
      return flipByte(path, random.below(written), random);
    }
    case 'truncate-segment': {
      const written = await writtenBytes(newest, true);
      const length = random.below(Math.max(1, written));
      await truncate(newest, length);
      return `truncated ${newest} to ${length} of ${written} written bytes`;
    }
    case 'delete-segment': {
      const path = join(dataDir, random.pick(names));
      await unlink(path);
      return `deleted ${path} (${names.length} segments)`;
    }
  }
}
