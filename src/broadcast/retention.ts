/**
 * Retention: which prefix of the order the cluster stops keeping. The leader decides it from
 * its own store (whole segments, with their log times and sizes) and its policy, and
 * commits the decision as a record (`$abcast/retention`, stream-state.ts); every node applies
 * the record at the same point of the log, moves its floor there and deletes its segments
 * that lie wholly before it. So every node serves the same retained range, whatever its own
 * segment boundaries, and the decision depends on log time (the clock recorded in the
 * entries), not on any node's wall clock.
 *
 * The segment being written is never dropped, so a quiet log keeps its last segment.
 */
import type { SegmentSummary } from '../store/index.ts';
import { assert } from '../util/assert.ts';
import type { BroadcastResult } from './pending.ts';
import { encodeStreamCommand, retentionTopic } from './stream-state.ts';

export interface RetentionPolicy {
  /** Messages older than this (in log time) go, by whole segments; null: no age limit. */
  readonly ageMs: number | null;
  /** The store keeps at most about this many bytes, oldest segments first; null: no limit. */
  readonly bytesMax: number | null;
}

export const retainForever: RetentionPolicy = { ageMs: null, bytesMax: null };

/**
 * The first position to keep under `policy`, given the store's segments in order (from the
 * retained floor) and the log's clock now; 0 when nothing is due to go.
 */
export function retentionCut(
  segments: readonly SegmentSummary[],
  policy: RetentionPolicy,
  logNowMs: number,
): number {
  let cut = 0;
  const candidates = segments.slice(0, -1); // never the segment being written
  if (policy.ageMs !== null) {
    for (const segment of candidates) {
      if (segment.lastLogTimeMs >= logNowMs - policy.ageMs) break;
      cut = segment.last + 1;
    }
  }
  if (policy.bytesMax !== null) {
    let totalBytes = segments.reduce((sum, segment) => sum + segment.sizeBytes, 0);
    for (const segment of candidates) {
      if (totalBytes <= policy.bytesMax) break;
      totalBytes -= segment.sizeBytes;
      cut = Math.max(cut, segment.last + 1);
    }
  }
  assert(cut === 0 || cut > (segments[0]?.first ?? 0), 'a cut drops one segment at least');
  return cut;
}

export interface RetentionDriverOptions {
  readonly policy: RetentionPolicy;
  /** Ticks between two looks at the store. */
  readonly checkIntervalTicks: number;
  readonly isLeader: () => boolean;
  /**
   * The store's segments from the floor on. A leader still backfilling has holes: it then
   * counts their bytes as none, so it keeps more than its limit, never less, and by age it
   * only cuts after a segment it holds, everything before which is older still (log time
   * never decreases along positions).
   */
  readonly segments: () => readonly SegmentSummary[];
  readonly retainedFrom: () => number;
  readonly logTimeMs: () => number;
  readonly propose: (topic: string, payload: Uint8Array) => Promise<BroadcastResult>;
  readonly onError: (error: unknown) => void;
  /**
   * Unsafe, for the simulator's checkers only: every node cuts its own store by its own
   * segments and wall clock, and nothing goes through the log, so nodes keep different
   * ranges. Null in every real node.
   */
  readonly unsafeLocal: UnsafeLocalRetention | null;
}

export interface UnsafeLocalRetention {
  readonly nowMs: () => number;
  readonly floor: () => number;
  readonly retainFrom: (position: number) => void;
}

export class RetentionDriver {
  private ticksSinceCheck = 0;
  private proposing = false;

  constructor(private readonly options: RetentionDriverOptions) {
    assert(options.checkIntervalTicks >= 1, 'retention checks at most once a tick');
  }

  tick(): void {
    const { policy } = this.options;
    if (policy.ageMs === null && policy.bytesMax === null) return;
    if (++this.ticksSinceCheck < this.options.checkIntervalTicks) return;
    this.ticksSinceCheck = 0;
    const local = this.options.unsafeLocal;
    if (local !== null) {
      const cut = retentionCut(this.options.segments(), policy, local.nowMs());
      if (cut > local.floor()) local.retainFrom(cut);
      return;
    }
    if (this.proposing || !this.options.isLeader()) return;
    const segments = this.options.segments();
    const cut = retentionCut(segments, policy, this.options.logTimeMs());
    if (cut <= this.options.retainedFrom()) return;
    this.proposing = true;
    const record = encodeStreamCommand({ op: 'retain', before: cut });
    this.options
      .propose(retentionTopic, record)
      .catch(this.options.onError)
      .finally(() => {
        this.proposing = false;
      });
  }
}
