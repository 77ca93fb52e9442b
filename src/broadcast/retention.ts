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
 *
 * Per-topic overrides (`--retention-topic orders=7d`) give a topic an age of its own, in log
 * time, or `forever`. Segments mix topics, and go only whole, so a topic's age acts two ways:
 * - a segment holding a message its topic still keeps is never dropped, whatever the
 *   policy above says (a longer age, or forever, holds the segments back);
 * - a read of the topic below its own floor (the first message of the topic within its age,
 *   `topicFloor`) is `compacted`, with that floor, even where the segment is still on disk
 *   (a shorter age hides the topic's older messages; other topics' messages there stay).
 * The floor is a function of the log (its positions and log times) and of the overrides,
 * which every node is given alike, so every node at one log index answers the same.
 */
import type { SegmentSummary, TopicPage } from '../store/index.ts';
import { assert } from '../util/assert.ts';
import type { BroadcastResult } from './pending.ts';
import { encodeStreamCommand, retentionTopic } from './stream-state.ts';

export interface RetentionPolicy {
  /** Messages older than this (in log time) go, by whole segments; null: no age limit. */
  readonly ageMs: number | null;
  /** The store keeps at most about this many bytes, oldest segments first; null: no limit. */
  readonly bytesMax: number | null;
  /** Topic → how long its messages are kept in log time (null: forever); see above. */
  readonly topics?: Readonly<Record<string, number | null>>;
}

export const retainForever: RetentionPolicy = { ageMs: null, bytesMax: null };

/** Whether a message of `topic` is still kept by its own age at `logNowMs`. */
function topicKeeps(ageMs: number | null, lastLogTimeMs: number, logNowMs: number): boolean {
  return ageMs === null || lastLogTimeMs >= logNowMs - ageMs;
}

/**
 * The first position to keep under `policy`, given the store's segments in order (from the
 * retained floor) and the log's clock now; 0 when nothing is due to go.
 */
export function retentionCut(
  segments: readonly SegmentSummary[],
  policy: RetentionPolicy,
  logNowMs: number,
  holdsTopic: (segment: SegmentSummary, topic: string) => boolean = () => false,
): number {
  const cut = policyCut(segments, policy, logNowMs);
  if (cut === 0) return 0;
  // A segment that holds a message its topic still keeps stops the cut: whole segments only.
  const overrides = Object.entries(policy.topics ?? {});
  for (const segment of segments) {
    if (segment.last >= cut) break;
    const held = overrides.some(
      ([topic, ageMs]) =>
        topicKeeps(ageMs, segment.lastLogTimeMs, logNowMs) && holdsTopic(segment, topic),
    );
    if (held) return segment.first > (segments[0]?.first ?? 0) ? segment.first : 0;
  }
  return cut;
}

function policyCut(
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
  /** Whether the segment that begins at `segment.first` holds a message of `topic`. */
  readonly holdsTopic: (segment: SegmentSummary, topic: string) => boolean;
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
      const cut = retentionCut(this.options.segments(), policy, local.nowMs(), () => false);
      if (cut > local.floor()) local.retainFrom(cut);
      return;
    }
    if (this.proposing || !this.options.isLeader()) return;
    const segments = this.options.segments();
    const cut = retentionCut(segments, policy, this.options.logTimeMs(), this.options.holdsTopic);
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

/** What `topicFloor` reads: the message store (src/store/store.ts). */
export interface TopicFloorStore {
  summaries(): SegmentSummary[];
  readTopic(topic: string, from: number, limit: number, positionsMax: number): TopicPage;
}

/** Messages of the topic read per step of the search for its floor. */
const floorPageCount = 64;

/**
 * The first position at or after `from` that holds a message of `topic` at least as recent
 * as `cutoffMs` in log time, or `lastPosition + 1` when none does: the topic's floor. Log
 * time never decreases along positions, so segments wholly older than the cutoff are
 * skipped without reading them, and the search reads one segment's messages of the topic at
 * most. Returns `{ hole }` instead when a position it must look at is not held here.
 */
export function topicFloor(
  store: TopicFloorStore,
  search: {
    readonly topic: string;
    readonly from: number;
    readonly lastPosition: number;
    readonly cutoffMs: number;
  },
): { readonly floor: number } | { readonly hole: number } {
  const { topic, lastPosition, cutoffMs } = search;
  let cursor = search.from;
  for (const segment of store.summaries()) {
    if (segment.last < cursor) continue;
    if (segment.first > cursor || segment.lastLogTimeMs >= cutoffMs) break;
    cursor = segment.last + 1;
  }
  // Bounded: each page moves the cursor forward, up to lastPosition.
  while (cursor <= lastPosition) {
    const page = store.readTopic(topic, cursor, floorPageCount, lastPosition - cursor + 1);
    const kept = page.messages.find((message) => message.logTimeMs >= cutoffMs);
    if (kept !== undefined) return { floor: kept.position };
    if (page.next <= cursor) return { hole: cursor };
    cursor = page.next;
  }
  return { floor: lastPosition + 1 };
}
