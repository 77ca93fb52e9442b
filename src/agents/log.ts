/**
 * What the agents need from the total order, and nothing more: append a JSON value under a
 * topic exactly once, follow one topic in order, and a linearizable read index. The SDK
 * client (./client-log.ts), an in-process node (./node-log.ts) and an in-memory log for
 * tests and single-process use (./memory-log.ts) all provide it.
 */
import { invalidArgument } from './errors.ts';

/** One message of the log, as every replica sees it. */
export interface LogEntry {
  /** Position in the total order: dense from 1 across all topics, the same on every node. */
  readonly position: number;
  /**
   * The log's clock at this entry, in ms since the Unix epoch: non-decreasing along
   * positions and the same on every replica, so decisions taken on it (lease expiry) agree.
   */
  readonly time: number;
  /** The session that sent it; null for an anonymous message. */
  readonly client: string | null;
  readonly topic: string | null;
  /** The JSON value that was appended. */
  readonly payload: unknown;
}

/**
 * What following a topic yields: entries of the topic, and `passed` marks saying that every
 * position up to `position` has gone by (the positions in between belong to other topics).
 */
export type LogEvent =
  | { readonly kind: 'entry'; readonly entry: LogEntry }
  | { readonly kind: 'passed'; readonly position: number };

export interface AppendAnswer {
  /** The entry's position; null only when a retry found it delivered too long ago to say. */
  readonly position: number | null;
  readonly duplicate: boolean;
}

export interface FollowOptions {
  readonly from: number;
  /** One topic or several; with several, the entries of all of them in one order. */
  readonly topics: readonly string[];
  readonly signal: AbortSignal;
}

export interface SharedLog {
  /** Appends exactly once; resolves once the entry is committed, with its position. */
  append(payload: unknown, topic: string): Promise<AppendAnswer>;
  /**
   * Entries of `topics` from position `from` on, in order, each once, waiting for new ones;
   * ends quietly when `signal` aborts; throws when the log cannot go on (positions no
   * longer kept, the node stopped, no endpoint for too long).
   */
  follow(options: FollowOptions): AsyncIterable<LogEvent>;
  /**
   * A position that includes every entry acknowledged anywhere before the call (ReadIndex):
   * a reader that has passed it has seen everything a linearizable read must see.
   */
  readIndex(): Promise<number>;
  /** True when `client` is a session this log appends under, so its answers are awaited. */
  isOwnSession(client: string | null): boolean;
}

/** Topics the agents use: a printable name of at most 200 bytes, not starting with `$`. */
export function checkTopic(topic: unknown, field = 'topic'): string {
  if (
    typeof topic !== 'string' ||
    topic.length === 0 ||
    Buffer.byteLength(topic) > 200 ||
    topic.startsWith('$') ||
    hasControlCharacter(topic)
  ) {
    throw invalidArgument(
      field,
      `${field} must be a string of 1–200 bytes without control characters, not starting with $`,
    );
  }
  return topic;
}

function hasControlCharacter(text: string): boolean {
  for (let at = 0; at < text.length; at++) if (text.charCodeAt(at) < 0x20) return true;
  return false;
}
