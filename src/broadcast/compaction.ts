/**
 * Compaction by key, for the topics configured so (like Kafka's compacted topics): the
 * newest message of each key stays for good; an older one with the same key is replaced, in
 * the message store, by its header alone, marked compacted. Positions never change: a read
 * of a compacted position says `compacted`, streams skip it.
 *
 * Decided from the log, so every node compacts the same:
 * - the state (`CompactionState`, part of the replicated stream state and its snapshots)
 *   follows, for each compacted topic, the newest position of every key, as messages are
 *   applied;
 * - the leader commits `$abcast/compaction` `{"topics": [...], "before": N}` once its store
 *   has sealed a segment past the last cut (`CompactionDriver`); every node applies it at the
 *   same point of the log, and from then on compacts every position before N whose key has
 *   a newer message (`isSuperseded`), whatever its own segment boundaries: in its sealed
 *   segments, a slice a tick (src/store/compaction.ts), so a position in the segment a node
 *   is still writing is compacted once that segment is sealed.
 * Keys are followed from the first record that names their topic (a leader with the topic
 * commits one at once): a message applied before it goes only once a newer one of its key
 * arrives after it. `GET /v1/consumers` shows the topics compacted.
 *
 * Give every node the same topics (`--compact-topic`): whichever leads decides, and a record
 * names the topics, so a leader without them stops compaction for the next cuts.
 */
import { assert } from '../util/assert.ts';
import type { BroadcastResult } from './pending.ts';

export const compactionTopic = '$abcast/compaction';

/** What `noteDelivered` answers for the first message of a key it follows. */
export const firstOfKey = -1;

/** Compacted topics one record names at most. */
export const compactTopicsMax = 64;
/** Keys followed at most over every compacted topic; a new key beyond it is never compacted. */
export const compactKeysMax = 1_000_000;

export interface CompactCommand {
  readonly op: 'compact';
  readonly topics: readonly string[];
  readonly before: number;
}

const isPosition = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

/** The record's command, or null when malformed (ignored alike everywhere). */
export function decodeCompactCommand(value: Record<string, unknown>): CompactCommand | null {
  const { topics, before } = value;
  if (!isPosition(before) || !Array.isArray(topics) || topics.length > compactTopicsMax) {
    return null;
  }
  if (!topics.every((topic) => typeof topic === 'string' && topic !== '')) return null;
  return { op: 'compact', topics: [...new Set(topics as string[])].sort(), before };
}

export interface CompactionJson {
  readonly topics: readonly string[];
  readonly before: number;
  /** Per topic, [key, newest position] pairs. */
  readonly latest: Readonly<Record<string, readonly (readonly [string, number])[]>>;
}

export class CompactionState {
  private topicSet = new Set<string>();
  private beforeValue = 1;
  private readonly latest = new Map<string, Map<string, number>>();
  private keyCount = 0;

  /** Positions before this are compacted where superseded. */
  get before(): number {
    return this.beforeValue;
  }

  get topics(): readonly string[] {
    return [...this.topicSet].sort();
  }

  get isInitial(): boolean {
    return this.topicSet.size === 0 && this.beforeValue === 1 && this.keyCount === 0;
  }

  /**
   * A delivered message: the newest of its key when its topic is compacted. Returns the
   * position it supersedes (the key's newest until now), 0 when none, or `firstOfKey` when
   * its key is followed from this message on: a message of the key applied before it was
   * followed (before its topic was compacted) is superseded now, wherever it lies. Hot path.
   */
  noteDelivered(topic: string, key: string | undefined, position: number): number {
    if (key === undefined || this.topicSet.size === 0 || !this.topicSet.has(topic)) return 0;
    let keys = this.latest.get(topic);
    if (keys === undefined) {
      keys = new Map();
      this.latest.set(topic, keys);
    }
    const superseded = keys.get(key);
    if (superseded === undefined) {
      if (this.keyCount >= compactKeysMax) return 0;
      this.keyCount++;
    }
    keys.set(key, position);
    return superseded ?? firstOfKey;
  }

  /** Whether the message at `position` has a newer one with its key: compaction may drop it. */
  isSuperseded(message: {
    readonly topic: string;
    readonly key?: string;
    readonly position: number;
  }): boolean {
    if (message.key === undefined || message.position >= this.beforeValue) return false;
    const newest = this.latest.get(message.topic)?.get(message.key);
    return newest !== undefined && newest > message.position;
  }

  /** Applies a committed record at a point where `lastPosition` is delivered. */
  apply(command: CompactCommand, lastPosition: number): void {
    assert(lastPosition >= 0, 'positions are not negative');
    const topics = new Set(command.topics);
    for (const topic of [...this.latest.keys()]) {
      if (topics.has(topic)) continue;
      this.keyCount -= this.latest.get(topic)?.size ?? 0;
      this.latest.delete(topic);
    }
    this.topicSet = topics;
    const before = Math.min(command.before, lastPosition + 1);
    if (before > this.beforeValue) this.beforeValue = before;
  }

  toJSON(): CompactionJson {
    const latest: Record<string, (readonly [string, number])[]> = {};
    for (const topic of [...this.latest.keys()].sort()) {
      latest[topic] = [...(this.latest.get(topic) as Map<string, number>)];
    }
    return { topics: this.topics, before: this.beforeValue, latest };
  }

  static fromJSON(value: CompactionJson): CompactionState {
    const state = new CompactionState();
    assert(isPosition(value.before) && value.before >= 1, 'a compaction cut is a position');
    state.topicSet = new Set(value.topics);
    state.beforeValue = value.before;
    for (const [topic, pairs] of Object.entries(value.latest)) {
      state.latest.set(topic, new Map(pairs));
      state.keyCount += pairs.length;
    }
    return state;
  }
}

export interface CompactionDriverOptions {
  /** The topics this node would compact; empty: it proposes nothing. */
  readonly topics: readonly string[];
  readonly checkIntervalTicks: number;
  readonly isLeader: () => boolean;
  /** The first position of the segment the store is writing: every earlier one is sealed. */
  readonly sealedBefore: () => number;
  /**
   * One bounded slice of the store's compaction to the applied cut, on every node, once a
   * tick (src/store/compaction.ts): never on the apply path.
   */
  readonly compactSlice: () => Promise<unknown> | null;
  readonly state: () => CompactionState;
  readonly propose: (topic: string, payload: Uint8Array) => Promise<BroadcastResult>;
  readonly onError: (error: unknown) => void;
}

/** The leader's side: commits a new cut once a segment was sealed past the last one. */
export class CompactionDriver {
  /** The first tick looks at once: keys are followed only from the first record on. */
  private ticksSinceCheck = Number.POSITIVE_INFINITY;
  private proposing = false;
  private readonly topics: readonly string[];

  constructor(private readonly options: CompactionDriverOptions) {
    assert(options.checkIntervalTicks >= 1, 'compaction checks at most once a tick');
    this.topics = [...new Set(options.topics)].sort();
  }

  tick(): void {
    this.options.compactSlice()?.catch(this.options.onError);
    if (this.topics.length === 0) return;
    if (++this.ticksSinceCheck < this.options.checkIntervalTicks) return;
    this.ticksSinceCheck = 0;
    if (this.proposing || !this.options.isLeader()) return;
    const state = this.options.state();
    const before = this.options.sealedBefore();
    const sameTopics = state.topics.join('\n') === this.topics.join('\n');
    // A new record when the topics change (the state starts following their keys), or when
    // a segment was sealed past the last cut.
    if (sameTopics && before <= state.before) return;
    this.proposing = true;
    const record = new TextEncoder().encode(JSON.stringify({ topics: this.topics, before }));
    this.options
      .propose(compactionTopic, record)
      .catch(this.options.onError)
      .finally(() => {
        this.proposing = false;
      });
  }
}
