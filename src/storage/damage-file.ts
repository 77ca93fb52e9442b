/**
 * `damage.json`: what a corrupted WAL cost this node, kept until the node has its entries back
 * from a leader. Recovery writes it BEFORE it truncates the damaged records (see
 * recovery.ts): a crash in the middle of the truncation, or any later restart until the
 * repair ends, still reports the loss, so entries are never dropped silently (Alagappan et
 * al., "Protocol-Aware Recovery for Consensus-Based Storage", FAST 2018, §5.2). It also
 * holds the latest hard state, read from intact records after the damage that the truncation
 * removes.
 */
import { join } from 'node:path';
import type { HardState, LogDamage } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { ioError, StorageError } from './errors.ts';
import type { FileSystem } from './file-system.ts';
import {
  fsyncDirectory,
  type IoCounters,
  readFileIfPresent,
  removeIfPresent,
  replaceFileAtomically,
} from './fs-util.ts';

export const DAMAGE_FILE_NAME = 'damage.json';

export interface DamageRecord {
  readonly damage: LogDamage;
  /** The newest hard state the WAL held, intact after the damage. */
  readonly hardState: HardState;
  /** Where the WAL is cut: the damaged record and everything after it go. */
  readonly cut: { readonly segmentSeq: number; readonly offsetBytes: number };
  /** False until the cut is durable and the hard state rewritten after it. */
  readonly truncated: boolean;
}

export async function readDamageFile(
  files: FileSystem,
  dataDir: string,
): Promise<DamageRecord | null> {
  const path = join(dataDir, DAMAGE_FILE_NAME);
  let bytes: Buffer | null;
  try {
    bytes = await readFileIfPresent(files, path);
  } catch (error) {
    throw ioError('read damage record', path, error);
  }
  if (bytes === null) return null;
  const record = parseDamage(bytes.toString('utf8'));
  if (record === null) {
    throw new StorageError('CORRUPT_METADATA', `damage record ${path} is unreadable`, {
      file: path,
    });
  }
  return record;
}

export async function writeDamageFile(options: {
  readonly files: FileSystem;
  readonly dataDir: string;
  readonly record: DamageRecord;
  readonly counters: IoCounters;
}): Promise<void> {
  const { files, dataDir, record, counters } = options;
  assert(parseDamage(JSON.stringify(record)) !== null, 'a damage record reads back');
  await replaceFileAtomically({
    files,
    path: join(dataDir, DAMAGE_FILE_NAME),
    chunks: [Buffer.from(`${JSON.stringify(record, null, 2)}\n`, 'utf8')],
    counters,
  });
}

/** The repair is over: the node holds every entry it may have acknowledged again. */
export async function removeDamageFile(
  files: FileSystem,
  dataDir: string,
  counters: IoCounters,
): Promise<void> {
  await removeIfPresent(files, join(dataDir, DAMAGE_FILE_NAME));
  await fsyncDirectory(files, dataDir, counters);
}

/**
 * Two damages at once (one found while an earlier one is still being repaired): the node
 * repairs until both are covered.
 */
export function mergeDamage(older: LogDamage, newer: LogDamage): LogDamage {
  const bounds = [older.lastIndexSeen, newer.lastIndexSeen];
  return {
    firstLostIndex: Math.min(older.firstLostIndex, newer.firstLostIndex),
    lastIndexSeen: bounds.includes(null) ? null : Math.max(...(bounds as number[])),
    termBound: Math.max(older.termBound, newer.termBound),
  };
}

function parseDamage(text: string): DamageRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const record = value as Partial<DamageRecord> | null;
  const damage = record?.damage;
  const hardState = record?.hardState;
  const cut = record?.cut;
  const natural = (number: unknown): boolean =>
    typeof number === 'number' && Number.isSafeInteger(number) && number >= 0;
  const valid =
    damage !== undefined &&
    natural(damage.firstLostIndex) &&
    (damage.lastIndexSeen === null || natural(damage.lastIndexSeen)) &&
    natural(damage.termBound) &&
    hardState !== undefined &&
    natural(hardState.term) &&
    natural(hardState.commit) &&
    (hardState.vote === null || typeof hardState.vote === 'string') &&
    cut !== undefined &&
    natural(cut.segmentSeq) &&
    natural(cut.offsetBytes) &&
    typeof record?.truncated === 'boolean';
  return valid ? (record as DamageRecord) : null;
}
