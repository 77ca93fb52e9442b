/** What one run did, for the CLI's summary and sweep throughput figures. */
import type { FaultMix } from './fault-mix.ts';
import type { SimViolation } from './violation.ts';

export interface RunStats {
  steps: number;
  ticks: number;
  messagesSent: number;
  messagesLost: number;
  crashes: number;
  restarts: number;
  partitions: number;
  pauses: number;
  leaderTerms: number;
  configChanges: number;
  transfers: number;
  campaigns: number;
  compactions: number;
  snapshotsInstalled: number;
  acknowledged: number;
  positions: number;
  committedIndex: number;
  reads: number;
  retries: number;
}

export interface RunResult {
  readonly seed: number;
  readonly mix: FaultMix;
  /** The first property violated, or null when the run passed. */
  readonly violation: SimViolation | null;
  /** Folded from every event: equal for two runs exactly when they went the same way. */
  readonly fingerprint: number;
  readonly stats: RunStats;
}

export function emptyStats(): RunStats {
  return {
    steps: 0,
    ticks: 0,
    messagesSent: 0,
    messagesLost: 0,
    crashes: 0,
    restarts: 0,
    partitions: 0,
    pauses: 0,
    leaderTerms: 0,
    configChanges: 0,
    transfers: 0,
    campaigns: 0,
    compactions: 0,
    snapshotsInstalled: 0,
    acknowledged: 0,
    positions: 0,
    committedIndex: 0,
    reads: 0,
    retries: 0,
  };
}
