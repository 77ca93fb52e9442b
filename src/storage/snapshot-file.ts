/**
 * The snapshot file: one per data directory, replaced atomically. Layout (little-endian):
 *
 *   magic u32 | formatVersion u32 | crc32(rest of file) u32 |
 *   index u64 | term u64 | configLength u32 | dataLength u64 | config JSON | data
 *
 * A file that fails its checksum is an error, never skipped: the log before it may be gone.
 */
import type { Configuration, Snapshot } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { crc32 } from '../util/crc32.ts';
import { formatTooNew, ioError, StorageError } from './errors.ts';
import type { FileSystem } from './file-system.ts';
import { readFileIfPresent } from './fs-util.ts';
import { STORAGE_FORMAT_VERSION } from './types.ts';

export const SNAPSHOT_FILE_NAME = 'snapshot.bin';
const SNAPSHOT_MAGIC = 0xab5ca5a9;
const HEADER_BYTES = 4 + 4 + 4 + 8 + 8 + 4 + 8;
/** Snapshots are read back whole; keep them within one Buffer comfortably. */
export const SNAPSHOT_DATA_BYTES_MAX = 1 << 30;
const TWO_POW_32 = 0x1_0000_0000;

export function encodeSnapshotFile(snapshot: Snapshot): Uint8Array[] {
  const config = Buffer.from(JSON.stringify(snapshot.meta.config), 'utf8');
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(SNAPSHOT_MAGIC, 0);
  header.writeUInt32LE(STORAGE_FORMAT_VERSION, 4);
  writeU64(header, 12, snapshot.meta.index);
  writeU64(header, 20, snapshot.meta.term);
  header.writeUInt32LE(config.length, 28);
  writeU64(header, 32, snapshot.data.length);
  const checksum = crc32(snapshot.data, crc32(config, crc32(header.subarray(12))));
  header.writeUInt32LE(checksum, 8);
  return [header, config, snapshot.data];
}

/** Reads the snapshot at `path`; null when there is none. */
export async function readSnapshotFile(files: FileSystem, path: string): Promise<Snapshot | null> {
  let file: Buffer | null;
  try {
    file = await readFileIfPresent(files, path);
  } catch (error) {
    throw ioError('read snapshot', path, error);
  }
  return file === null ? null : decodeSnapshotFile(file, path);
}

export function decodeSnapshotFile(file: Buffer, path: string): Snapshot {
  const corrupt = (reason: string): StorageError =>
    new StorageError('CORRUPT_SNAPSHOT', `snapshot file ${path} is unreadable: ${reason}`, {
      file: path,
      reason,
    });
  if (file.length < HEADER_BYTES) throw corrupt('shorter than its header');
  if (file.readUInt32LE(0) !== SNAPSHOT_MAGIC) throw corrupt('bad magic');
  const formatVersion = file.readUInt32LE(4);
  if (formatVersion > STORAGE_FORMAT_VERSION) {
    throw formatTooNew(`snapshot file ${path}`, formatVersion, STORAGE_FORMAT_VERSION, {
      file: path,
    });
  }
  if (crc32(file.subarray(12)) !== file.readUInt32LE(8)) throw corrupt('checksum mismatch');
  const index = readU64(file, 12);
  const term = readU64(file, 20);
  const configLength = file.readUInt32LE(28);
  const dataLength = readU64(file, 32);
  if (HEADER_BYTES + configLength + dataLength !== file.length) throw corrupt('length mismatch');
  const configEnd = HEADER_BYTES + configLength;
  const config = parseConfiguration(file.subarray(HEADER_BYTES, configEnd).toString('utf8'));
  if (config === null || index < 1) throw corrupt('bad metadata');
  const snapshot = { meta: { index, term, config }, data: file.subarray(configEnd) };
  assert(snapshot.data.length === dataLength, 'the data fills the rest of the file');
  return snapshot;
}

function parseConfiguration(text: string): Configuration | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const isNodeList = (list: unknown): list is string[] =>
    Array.isArray(list) && list.every((node) => typeof node === 'string');
  if (typeof value !== 'object' || value === null) return null;
  const { voters, learners } = value as { voters?: unknown; learners?: unknown };
  if (!isNodeList(voters) || !isNodeList(learners)) return null;
  return { voters, learners };
}

function writeU64(buffer: Buffer, offset: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, 'a u64 field is a safe natural');
  buffer.writeUInt32LE(value % TWO_POW_32, offset);
  buffer.writeUInt32LE(Math.floor(value / TWO_POW_32), offset + 4);
}

function readU64(buffer: Buffer, offset: number): number {
  return buffer.readUInt32LE(offset + 4) * TWO_POW_32 + buffer.readUInt32LE(offset);
}
