/**
 * The production FileSystem over `node:fs/promises`: the one file in src/storage that
 * touches the real disk. Errors pass through unchanged, with their POSIX `code`.
 */
import { constants } from 'node:fs';
import {
  link,
  mkdir,
  type FileHandle as NodeFileHandle,
  open,
  readdir,
  readFile,
  rename,
  unlink,
} from 'node:fs/promises';
import { assert } from '../util/assert.ts';
import type { FileHandle, FileSystem, OpenMode } from './file-system.ts';

const NODE_FLAGS: Readonly<Record<OpenMode, string | number>> = {
  read: 'r',
  readWrite: 'r+',
  // One system call per durable record, so one trip through libuv's thread pool instead of
  // two (write, then fdatasync): on ext4 an O_DSYNC write runs the same range sync and cache
  // flush as fdatasync does before it returns.
  readWriteDurable: constants.O_RDWR | constants.O_DSYNC,
  createExclusive: 'wx',
  createOrTruncate: 'w',
};

/** Bounds the retries of a write the kernel took only part of (rare for regular files). */
const PARTIAL_WRITE_RETRIES_MAX = 64;

class NodeHandle implements FileHandle {
  constructor(private readonly handle: NodeFileHandle) {}

  async write(chunks: readonly Uint8Array[], positionBytes: number): Promise<void> {
    assert(Number.isSafeInteger(positionBytes) && positionBytes >= 0, 'writes go at an offset');
    let remaining = [...chunks];
    let position = positionBytes;
    // Bounded: each pass writes at least one byte, or gives up at the bound.
    for (let attempt = 0; remaining.length > 0; attempt++) {
      assert(attempt < PARTIAL_WRITE_RETRIES_MAX, 'a write completes within its retry bound');
      const { bytesWritten } = await this.handle.writev(remaining, position);
      position += bytesWritten;
      remaining = skipBytes(remaining, bytesWritten);
    }
  }

  async read(target: Uint8Array, positionBytes: number): Promise<number> {
    const { bytesRead } = await this.handle.read(target, 0, target.length, positionBytes);
    return bytesRead;
  }

  async sizeBytes(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** What is left of `chunks` after their first `byteCount` bytes. */
function skipBytes(chunks: readonly Uint8Array[], byteCount: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  let skipped = byteCount;
  for (const chunk of chunks) {
    if (skipped >= chunk.length) {
      skipped -= chunk.length;
      continue;
    }
    rest.push(skipped === 0 ? chunk : chunk.subarray(skipped));
    skipped = 0;
  }
  return rest.filter((chunk) => chunk.length > 0);
}

async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const privateFileMode = 0o600;
const privateDirectoryMode = 0o700;

export const nodeFileSystem: FileSystem = Object.freeze({
  // The log holds every message: readable by the node's own user alone (the umask may
  // only take more away). A file that exists keeps its mode.
  open: async (path: string, mode: OpenMode) =>
    new NodeHandle(await open(path, NODE_FLAGS[mode], privateFileMode)),
  readFile: (path: string) => readFile(path),
  rename: (from: string, to: string) => rename(from, to),
  link: (from: string, to: string) => link(from, to),
  unlink: (path: string) => unlink(path),
  readdir: (path: string) => readdir(path),
  makeDirectory: async (path: string) =>
    (await mkdir(path, { recursive: true, mode: privateDirectoryMode })) ?? null,
  syncDirectory,
});
