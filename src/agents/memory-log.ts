/**
 * A total order inside one process: for tests of the agents and for single-process use.
 * It keeps every entry (nothing is compacted) and stamps log time from an injected clock,
 * made non-decreasing as a real cluster's log time is. Each `session()` is one client of
 * the log, with its own session id, as a process connected through the SDK would be.
 */
import { assert } from '../util/assert.ts';
import { AgentError } from './errors.ts';
import {
  type AppendAnswer,
  checkTopic,
  type FollowOptions,
  type LogEntry,
  type LogEvent,
  type SharedLog,
} from './log.ts';

interface StoredEntry {
  readonly position: number;
  readonly time: number;
  readonly client: string;
  readonly topic: string;
  readonly payloadText: string;
}

function entryOf(stored: StoredEntry): LogEntry {
  const { payloadText, ...rest } = stored;
  return { ...rest, payload: JSON.parse(payloadText) };
}

export interface MemoryLogOptions {
  /** Wall clock in ms; tests pass a virtual one. */
  readonly clockMs?: () => number;
}

export class MemoryLog {
  private readonly entries: StoredEntry[] = [];
  private waiters: (() => void)[] = [];
  private lastTimeMs = 0;
  private sessionCount = 0;
  private readonly clockMs: () => number;

  constructor(options: MemoryLogOptions = {}) {
    this.clockMs = options.clockMs ?? Date.now;
  }

  /** A new client of this log, appending under its own session id. */
  session(clientId = `mem.${++this.sessionCount}`): SharedLog {
    return new MemoryLogSession(this, clientId);
  }

  get lastPosition(): number {
    return this.entries.length;
  }

  /** Every entry so far, in order (copies). */
  all(): LogEntry[] {
    return this.entries.map(entryOf);
  }

  append(payload: unknown, topic: string, client: string): AppendAnswer {
    checkTopic(topic);
    const text = JSON.stringify(payload);
    if (text === undefined) {
      throw new AgentError('invalid_argument', 'the payload is not a JSON value', {
        field: 'payload',
      });
    }
    this.lastTimeMs = Math.max(this.lastTimeMs, this.clockMs());
    // Stored as JSON text, as the cluster stores it: every reader parses its own copy, so
    // no reader shares an object with the writer or with another reader.
    this.entries.push({
      position: this.entries.length + 1,
      time: this.lastTimeMs,
      client,
      topic,
      payloadText: text,
    });
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
    return { position: this.entries.length, duplicate: false };
  }

  async *follow(options: FollowOptions): AsyncGenerator<LogEvent> {
    assert(Number.isSafeInteger(options.from) && options.from >= 1, 'from is a position >= 1');
    let next = options.from;
    const topics = new Set(options.topics);
    while (!options.signal.aborted) {
      let skipped = false;
      while (next <= this.entries.length) {
        const stored = this.entries[next - 1] as StoredEntry;
        next += 1;
        if (topics.has(stored.topic)) yield { kind: 'entry', entry: entryOf(stored) };
        else skipped = true;
        if (options.signal.aborted) return;
      }
      if (skipped) {
        yield { kind: 'passed', position: next - 1 };
        // Entries may have come while the consumer handled the mark: look before sleeping.
        continue;
      }
      await this.changed(options.signal);
    }
  }

  private changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        signal.removeEventListener('abort', wake);
        resolve();
      };
      this.waiters.push(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }
}

class MemoryLogSession implements SharedLog {
  constructor(
    private readonly log: MemoryLog,
    private readonly clientId: string,
  ) {}

  async append(payload: unknown, topic: string): Promise<AppendAnswer> {
    return this.log.append(payload, topic, this.clientId);
  }

  follow(options: FollowOptions): AsyncIterable<LogEvent> {
    return this.log.follow(options);
  }

  async readIndex(): Promise<number> {
    return this.log.lastPosition;
  }

  isOwnSession(client: string | null): boolean {
    return client === this.clientId;
  }
}
