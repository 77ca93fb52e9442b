/**
 * A repairing node that hears from no leader may be waiting for one that cannot be elected:
 * when the undamaged voters are no majority, only an operator can bring the lost entries back
 * (docs/design.md, "When the entries cannot be had"). The node keeps waiting, since a leader
 * may yet come, but says so as an error, with what it lost, so that the
 * operator does not have to guess why the cluster stands still: first after 10 s without a
 * leader (many election timeouts), then once a minute.
 */
import type { LogDamage } from '../raft/types.ts';
import { assert } from '../util/assert.ts';

export const repairStallFirstReportMs = 10_000;
export const repairStallLogIntervalMs = 60_000;

export interface RepairStall {
  readonly damage: LogDamage;
  readonly leaderlessMs: number;
}

export class RepairWatch {
  /** When the node last had a leader, or began watching; null while it has one. */
  private leaderlessSinceMs: number | null;
  /** When the last error was reported, or null if none since the leader was lost. */
  private lastReportMs: number | null = null;

  constructor(nowMs: number) {
    assert(Number.isFinite(nowMs), 'the watch starts at a time');
    this.leaderlessSinceMs = nowMs;
  }

  /** Called every tick; returns a stall to report, at most once per interval. */
  observe(options: {
    readonly nowMs: number;
    readonly hasLeader: boolean;
    readonly damage: LogDamage | null;
  }): RepairStall | null {
    const { nowMs, hasLeader, damage } = options;
    if (damage === null || hasLeader) {
      this.leaderlessSinceMs = null;
      return null;
    }
    if (this.leaderlessSinceMs === null) {
      this.leaderlessSinceMs = nowMs;
      this.lastReportMs = null;
    }
    const leaderlessMs = nowMs - this.leaderlessSinceMs;
    const due =
      this.lastReportMs === null
        ? leaderlessMs >= repairStallFirstReportMs
        : nowMs - this.lastReportMs >= repairStallLogIntervalMs;
    if (!due) return null;
    this.lastReportMs = nowMs;
    assert(leaderlessMs >= repairStallFirstReportMs, 'a stall lasts a while');
    return { damage, leaderlessMs };
  }
}

/** The error line: what is lost, why nothing happens, and where the recovery steps are. */
export function describeRepairStall(stall: RepairStall): string {
  const { damage } = stall;
  return (
    `repair stalled: no leader for ${Math.round(stall.leaderlessMs / 1000)} s. This node lost ` +
    `log entries from ${damage.firstLostIndex} on (term ${damage.termBound} or earlier) and ` +
    `votes only for a candidate whose log ends in a term above ${damage.termBound}. If the ` +
    'nodes not damaged cannot form a majority, nobody can be elected and the cluster waits ' +
    'instead of delivering wrongly: bring back undamaged nodes, or follow docs/design.md, ' +
    '"When the entries cannot be had"'
  );
}
