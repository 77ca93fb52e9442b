/**
 * The identity of a data directory (`meta.json`): format version, cluster id and node id.
 * Written once, atomically, on first use; checked on every open, so a node can never start
 * on another node's or another cluster's log, nor on a format it does not understand. A
 * checksum (absent in files of older releases) tells a flipped byte from another identity:
 * an unreadable file is rebuilt from the identity the node is started with (file-storage.ts),
 * since it holds nothing else, while a readable one of another node is refused.
 */
import { join } from 'node:path';
import { crc32 } from '../util/crc32.ts';
import { formatTooNew, ioError, StorageError } from './errors.ts';
import type { FileSystem } from './file-system.ts';
import { type IoCounters, readFileIfPresent, replaceFileAtomically } from './fs-util.ts';
import { STORAGE_FORMAT_VERSION, type StorageMetadata } from './types.ts';

export const METADATA_FILE_NAME = 'meta.json';

export async function readMetadata(
  files: FileSystem,
  dataDir: string,
): Promise<StorageMetadata | null> {
  const path = join(dataDir, METADATA_FILE_NAME);
  let bytes: Buffer | null;
  try {
    bytes = await readFileIfPresent(files, path);
  } catch (error) {
    throw ioError('read metadata', path, error);
  }
  return bytes === null ? null : parseMetadata(bytes.toString('utf8'), path);
}

function parseMetadata(text: string, path: string): StorageMetadata {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = null;
  }
  const record = (typeof value === 'object' && value !== null ? value : {}) as Record<
    string,
    unknown
  >;
  const { formatVersion, clusterId, nodeId, checksum } = record;
  if (
    typeof formatVersion !== 'number' ||
    !Number.isSafeInteger(formatVersion) ||
    typeof clusterId !== 'string' ||
    typeof nodeId !== 'string' ||
    (checksum !== undefined && checksum !== metadataChecksum({ formatVersion, clusterId, nodeId }))
  ) {
    throw new StorageError('CORRUPT_METADATA', `metadata file ${path} is unreadable`, {
      file: path,
    });
  }
  return { formatVersion, clusterId, nodeId };
}

export async function writeMetadata(
  files: FileSystem,
  dataDir: string,
  metadata: StorageMetadata,
  counters: IoCounters,
): Promise<void> {
  const { formatVersion, clusterId, nodeId } = metadata;
  const checked = { formatVersion, clusterId, nodeId, checksum: metadataChecksum(metadata) };
  const text = `${JSON.stringify(checked, null, 2)}\n`;
  await replaceFileAtomically({
    files,
    path: join(dataDir, METADATA_FILE_NAME),
    chunks: [Buffer.from(text, 'utf8')],
    counters,
  });
}

/** Refuses a directory of a newer format, another cluster or another node, in that order. */
export function checkMetadata(
  found: StorageMetadata,
  expected: { readonly clusterId: string; readonly nodeId: string; readonly dataDir: string },
): void {
  const { dataDir } = expected;
  if (found.formatVersion > STORAGE_FORMAT_VERSION) {
    throw formatTooNew(dataDir, found.formatVersion, STORAGE_FORMAT_VERSION, { dataDir });
  }
  if (found.clusterId !== expected.clusterId) {
    throw new StorageError(
      'WRONG_CLUSTER',
      `${dataDir} belongs to cluster ${found.clusterId}, not ${expected.clusterId}`,
      { dataDir, found: found.clusterId, expected: expected.clusterId },
    );
  }
  if (found.nodeId !== expected.nodeId) {
    throw new StorageError(
      'WRONG_NODE',
      `${dataDir} belongs to node ${found.nodeId}, not ${expected.nodeId}`,
      { dataDir, found: found.nodeId, expected: expected.nodeId },
    );
  }
}

export function metadataChecksum(metadata: StorageMetadata): number {
  const { formatVersion, clusterId, nodeId } = metadata;
  return crc32(Buffer.from(JSON.stringify([formatVersion, clusterId, nodeId]), 'utf8'));
}
