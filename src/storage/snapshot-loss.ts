/**
 * A snapshot file that fails verification. The snapshot is the base the log grows from (its
 * index and term) and the application state up to it; the WAL segments it covered are gone.
 * The node cannot rebuild either, but it need not refuse to start: like a corrupted WAL record
 * (recovery.ts), the loss is repaired from a leader (Alagappan et al., "Protocol-Aware
 * Recovery for Consensus-Based Storage", FAST 2018, §5). Everything from index 1 is lost: the
 * node keeps its term and vote (read from the WAL, which repeats them in every record), drops
 * its log, and receives the leader's snapshot and entries again, voting meanwhile only as
 * LogDamage allows. Without an intact hard state in the WAL the open refuses: a vote it held
 * may be lost.
 */
import { join } from 'node:path';
import type { Snapshot } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { type DamageRecord, mergeDamage, writeDamageFile } from './damage-file.ts';
import { ioError, StorageError } from './errors.ts';
import type { FileSystem } from './file-system.ts';
import { fsyncDirectory, type IoCounters } from './fs-util.ts';
import { surveyWal } from './recovery.ts';
import { readSnapshotFile, SNAPSHOT_FILE_NAME } from './snapshot-file.ts';
import type { StorageLogger } from './types.ts';

/** Where a damaged snapshot is kept for inspection; never read. */
export const DAMAGED_SNAPSHOT_FILE_NAME = `${SNAPSHOT_FILE_NAME}.damaged`;

/**
 * Reads the snapshot; a damaged one is recorded as lost in damage.json (merged with a damage
 * still being repaired), moved aside, and null returned: the caller then finds the pending
 * damage and cuts the whole WAL (its base is gone). Crash-safe in every step: damage.json is
 * durable before anything is removed, and an open that finds it again redoes the rest.
 */
export async function readSnapshotOrRecordLoss(options: {
  readonly files: FileSystem;
  readonly dataDir: string;
  readonly pending: DamageRecord | null;
  readonly log: StorageLogger;
  readonly counters: IoCounters;
}): Promise<Snapshot | null> {
  const { files, dataDir, pending, log, counters } = options;
  const path = join(dataDir, SNAPSHOT_FILE_NAME);
  try {
    return await readSnapshotFile(files, path);
  } catch (error) {
    if (!(error instanceof StorageError) || error.code !== 'CORRUPT_SNAPSHOT') throw error;
    const record = await describeLoss({ files, dataDir, pending, error });
    log({ type: 'snapshotDamaged', file: path, reason: error.message, ...record.damage });
    await writeDamageFile({ files, dataDir, record, counters });
    try {
      await files.rename(path, join(dataDir, DAMAGED_SNAPSHOT_FILE_NAME));
    } catch (renameError) {
      throw ioError('move the damaged snapshot aside', path, renameError);
    }
    await fsyncDirectory(files, dataDir, counters);
    return null;
  }
}

async function describeLoss(options: {
  readonly files: FileSystem;
  readonly dataDir: string;
  readonly pending: DamageRecord | null;
  readonly error: StorageError;
}): Promise<DamageRecord> {
  const { files, dataDir, pending, error } = options;
  const survey = await surveyWal(files, dataDir);
  const hardState = survey.hardState ?? pending?.hardState ?? null;
  if (hardState === null || survey.firstSegmentSeq === null) {
    throw new StorageError(
      'CORRUPT_SNAPSHOT',
      `${error.message}; no intact WAL record holds the hard state, so a vote this node cast ` +
        'may be lost: rebuild the node (docs/design.md, "Repair of a corrupted log")',
      { ...error.details },
    );
  }
  assert(Number.isSafeInteger(hardState.term), 'a hard state has a term');
  const lost = { firstLostIndex: 1, lastIndexSeen: survey.lastIndex, termBound: hardState.term };
  const damage = pending === null ? lost : mergeDamage(pending.damage, lost);
  return {
    damage,
    hardState: { term: hardState.term, vote: hardState.vote, commit: 0 },
    cut: { segmentSeq: survey.firstSegmentSeq, offsetBytes: 0 },
    truncated: false,
  };
}
