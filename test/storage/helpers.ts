// Shared fixtures for the storage tests: entry builders, temporary directories, and one
// harness per implementation so that a conformance test runs against both.

import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry, EntryKind, HardState, Snapshot } from '../../src/raft/types.ts';
import { FileStorage } from '../../src/storage/file-storage.ts';
import type { QueueLimits } from '../../src/storage/group-commit.ts';
import { MemoryDisk, MemoryStorage } from '../../src/storage/memory-storage.ts';
import { scanSegment } from '../../src/storage/segments.ts';
import type { OpenedStorage, RaftStorage, StorageEvent } from '../../src/storage/types.ts';

export const CLUSTER_ID = 'cluster-test';
export const NODE_ID = 'n1';
/** Small segments, so that a crash test rotates and deletes segments often. */
export const CRASH_SEGMENT_BYTES_MAX = 16 * 1024;
/**
 * Segments of the file harness unless a test says otherwise: every open preallocates one
 * segment, and the 64 MiB default would make each open write 64 MiB of zeros.
 */
export const TEST_SEGMENT_BYTES_MAX = 256 * 1024;

/** Deterministic data for (index, term): a reader can check content without a copy. */
export function entryData(index: number, term: number, byteCount = 16): Uint8Array {
  const data = new Uint8Array(byteCount);
  let value = (index * 2654435761 + term * 40503) >>> 0;
  for (let offset = 0; offset < byteCount; offset++) {
    value = (Math.imul(value, 1103515245) + 12345) >>> 0;
    data[offset] = value >>> 24;
  }
  return data;
}

export function entry(
  index: number,
  term: number,
  byteCount = 16,
  kind: EntryKind = 'normal',
): Entry {
  return { index, term, kind, data: entryData(index, term, byteCount) };
}

/** Entries firstIndex..lastIndex, all in `term`. */
export function entries(
  firstIndex: number,
  lastIndex: number,
  term: number,
  byteCount = 16,
): Entry[] {
  const list: Entry[] = [];
  for (let index = firstIndex; index <= lastIndex; index++)
    list.push(entry(index, term, byteCount));
  return list;
}

export function hardState(term: number, commit: number, vote: string | null = null): HardState {
  return { term, vote, commit };
}

export function snapshot(index: number, term: number, byteCount = 32): Snapshot {
  return {
    meta: { index, term, config: { voters: ['n1', 'n2', 'n3'], learners: [] } },
    data: entryData(index, term + 1000, byteCount),
  };
}

/** Plain values, for deepEqual against a model (Buffers and Uint8Arrays compare by type). */
export function plainEntries(list: readonly Entry[]): unknown[] {
  return list.map((item) => ({ ...item, data: Array.from(item.data) }));
}

export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `abcast-${prefix}-`));
}

export async function removeDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

export interface HarnessOpenOptions extends Partial<QueueLimits> {
  readonly clusterId?: string;
  readonly nodeId?: string;
  readonly segmentBytesMax?: number;
  readonly keptEntriesCopySlackBytes?: number;
}

/** One storage implementation behind a uniform face, over one "data directory". */
export interface Harness {
  readonly name: string;
  readonly events: StorageEvent[];
  open(options?: HarnessOpenOptions): Promise<OpenedStorage<RaftStorage>>;
  /** Sets the identity's format version, as a newer release would have written it. */
  setFormatVersion(formatVersion: number): Promise<void>;
  cleanup(): Promise<void>;
}

export async function fileHarness(): Promise<Harness & { readonly dataDir: string }> {
  const root = await makeTempDir('file');
  const dataDir = join(root, 'data');
  const events: StorageEvent[] = [];
  return {
    name: 'FileStorage',
    dataDir,
    events,
    open: (options = {}) =>
      FileStorage.open({
        clusterId: CLUSTER_ID,
        nodeId: NODE_ID,
        segmentBytesMax: TEST_SEGMENT_BYTES_MAX,
        ...options,
        dataDir,
        log: (event) => events.push(event),
      }),
    setFormatVersion: async (formatVersion) => {
      const path = join(dataDir, 'meta.json');
      // As another release writes it: with no checksum of this one's.
      const { checksum: _, ...meta } = JSON.parse(await readFile(path, 'utf8')) as Record<
        string,
        unknown
      >;
      await writeFile(path, JSON.stringify({ ...meta, formatVersion }));
    },
    cleanup: () => removeDir(root),
  };
}

export function memoryHarness(): Harness & { readonly disk: MemoryDisk } {
  const disk = new MemoryDisk();
  return {
    name: 'MemoryStorage',
    disk,
    events: [],
    open: (options = {}) =>
      MemoryStorage.open({ clusterId: CLUSTER_ID, nodeId: NODE_ID, ...options, disk }),
    setFormatVersion: async (formatVersion) => {
      if (disk.metadata !== null) disk.metadata = { ...disk.metadata, formatVersion };
    },
    cleanup: async () => undefined,
  };
}

export const HARNESSES: readonly { readonly name: string; make(): Promise<Harness> }[] = [
  { name: 'FileStorage', make: fileHarness },
  {
    name: 'FileStorage on SimFileSystem',
    // Imported late: sim-disk.ts imports this file.
    make: async () => (await import('./sim-disk.ts')).simHarness(),
  },
  { name: 'MemoryStorage', make: async () => memoryHarness() },
];

/** The WAL segments of `dataDir`, oldest first. */
export async function segmentPaths(dataDir: string): Promise<string[]> {
  const names = (await readdir(dataDir)).filter((name) => name.endsWith('.wal')).sort();
  return names.map((name) => join(dataDir, name));
}

/** Byte offsets of the records in a segment, read with the storage's own scanner. */
export async function recordOffsets(path: string): Promise<number[]> {
  const scan = scanSegment(await readFile(path), path, true);
  return scan.records.map((record) => record.offsetBytes);
}

/** Damage at rest: one byte of `path` changes. */
export async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x5a;
  await writeFile(path, bytes);
}
