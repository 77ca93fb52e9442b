/**
 * Disk faults, applied to a stopped node's data directory (file-storage.ts describes the
 * layout: `wal-<seq>.wal` segments preallocated with zeros, each starting with a header record
 * that carries the hard state; `snapshot.bin`). What was written is found the way an
 * outsider would: a segment's records end where its trailing zeros begin.
 */
import { open, readdir, stat, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
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

/** The offset just past the last non-zero byte of a file (its written records). */
async function writtenBytes(path: string): Promise<number> {
  const handle = await open(path, 'r');
  try {
    const size = (await handle.stat()).size;
    const chunkBytes = 1 << 20;
    const buffer = Buffer.alloc(chunkBytes);
    for (let end = size; end > 0; end -= chunkBytes) {
      const start = Math.max(0, end - chunkBytes);
      const { bytesRead } = await handle.read(buffer, 0, end - start, start);
      for (let at = bytesRead - 1; at >= 0; at--) if (buffer[at] !== 0) return start + at + 1;
    }
    return 0;
  } finally {
    await handle.close();
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
      const path = join(dataDir, random.pick(names));
      const written = await writtenBytes(path);
      if (written === 0) return `nothing written in ${path}`;
      return flipByte(path, random.below(written), random);
    }
    case 'truncate-segment': {
      const written = await writtenBytes(newest);
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
