/**
 * The simulated disk's public vocabulary: its errors, the operations a fault hook sees, the
 * fault probabilities, its options and counters (sim-file-system.ts implements them).
 */
import type { Prng } from '../util/prng.ts';

export type SimFileErrorCode =
  | 'ENOENT'
  | 'EEXIST'
  | 'EISDIR'
  | 'ENOTDIR'
  | 'EXDEV'
  | 'EBADF'
  | 'ENOSPC'
  | 'EIO';

/** Thrown like node:fs errors: callers match on the POSIX `code`. */
export class SimFileError extends Error {
  constructor(
    readonly code: SimFileErrorCode,
    readonly syscall: string,
    readonly path: string,
    reason: string,
  ) {
    super(`${code}: ${reason}, ${syscall} '${path}'`);
    this.name = 'SimFileError';
  }
}

/** What an operation is, so the simulator can give each kind its own latency. */
export type SimFileOperation =
  | 'open'
  | 'read'
  | 'write'
  | 'datasync'
  | 'close'
  | 'stat'
  | 'readFile'
  | 'rename'
  | 'link'
  | 'unlink'
  | 'readdir'
  | 'makeDirectory'
  | 'syncDirectory';

/** Probabilities in [0, 1]; may be changed at any time through `setFaults`. */
export interface SimDiskFaults {
  /** Per unsynced write at datasync: reported durable, never reaches the disk. */
  readonly lostWriteProbability: number;
  /** Per unsynced write at datasync: reaches the disk 1 to 8 sectors from where it belongs. */
  readonly misdirectedWriteProbability: number;
  /** Per datasync: fails with EIO, and the file's unsynced writes are dropped. */
  readonly datasyncErrorProbability: number;
}

export const NO_DISK_FAULTS: SimDiskFaults = Object.freeze({
  lostWriteProbability: 0,
  misdirectedWriteProbability: 0,
  datasyncErrorProbability: 0,
});

export interface SimFileSystemOptions {
  /** The only source of randomness: which sectors survive a power cut, which faults hit. */
  readonly prng: Prng;
  /** The unit a power cut keeps or loses: 512 (a sector, the default) or 4096 (a page). */
  readonly sectorBytes?: number;
  /** Bytes of file content the disk holds; a write past it fails with ENOSPC. Default: no bound. */
  readonly capacityBytes?: number;
  readonly faults?: Partial<SimDiskFaults>;
  /**
   * Runs `fire` after `delayMs` of virtual time: the simulator's event queue. Default: on a
   * microtask, every delay ignored.
   */
  readonly schedule?: (delayMs: number, fire: () => void) => void;
  /** The virtual latency of each operation given to `schedule`; default 0. */
  readonly delayMs?: (operation: SimFileOperation) => number;
}

export interface SimFileSystemCounters {
  readonly datasyncCount: number;
  readonly directorySyncCount: number;
  /** Bytes given to `write`, zeros included. */
  readonly writtenBytes: number;
  readonly powerCutCount: number;
  /** Unsynced sectors a power cut dropped (a torn write loses some of its sectors). */
  readonly lostSectorCount: number;
  /** Unsynced directory changes a power cut dropped. */
  readonly lostDirectoryChangeCount: number;
  readonly lostWriteCount: number;
  readonly misdirectedWriteCount: number;
  readonly datasyncErrorCount: number;
  readonly noSpaceErrorCount: number;
  readonly bitFlipCount: number;
  readonly zeroedSectorCount: number;
  /** Every fault above, together. */
  readonly faultCount: number;
}

/** Where a latent corruption landed. */
export interface CorruptionReport {
  readonly path: string;
  readonly offsetBytes: number;
}
