/** The one-line JSON a chaos run ends with (also summary.json and the report's table). */
import type { CheckResult } from './checker.ts';

export interface ChaosSummary {
  readonly seed: number;
  readonly nodes: number;
  readonly seconds: number;
  readonly acknowledged: number;
  readonly failed: number;
  readonly unknown: number;
  readonly unknownDelivered: number;
  readonly barriers: number;
  readonly delivered: number;
  readonly faults: Readonly<Record<string, number>>;
  readonly longestUnavailabilityMs: number;
  readonly recoveryMs: number | null;
  readonly damagedNodes: readonly string[];
  readonly violations: number;
  readonly violationCounts: CheckResult['violationCounts'];
  /** What `abcast verify` said of the live members at the end (a difference is a violation). */
  readonly verify: string;
  readonly notes: readonly string[];
  readonly out: string | null;
}
