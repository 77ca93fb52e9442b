/**
 * A SharedLog over a MemoryLog session that misbehaves the way a real cluster may, driven by
 * a seeded PRNG so that a seed replays a run: appends whose answer is lost after the entry
 * went in (the caller hears an error, the log holds the entry), followers that lag by a
 * random number of turns of the event loop, and followers that fail over and are handed
 * again entries they already had (a reconnect that resumes from an older position).
 * Everything is driven by promises, not timers, so the interleaving is a function of the
 * seed.
 */
import type { AppendAnswer, FollowOptions, LogEvent, SharedLog } from '../../src/agents/log.ts';
import type { Prng } from '../../src/util/prng.ts';

export interface ChaosSettings {
  /** Chance that an append's answer is lost although the entry was appended. */
  readonly lostAnswerChance: number;
  /** Chance, per event, that the follower fails over and resumes from an earlier position. */
  readonly rewindChance: number;
  /** Most event-loop turns a follower lags before an event. */
  readonly lagTurnsMax: number;
}

export class ChaosLog implements SharedLog {
  lostAnswerCount = 0;
  rewindCount = 0;

  constructor(
    private readonly inner: SharedLog,
    private readonly random: Prng,
    private readonly settings: ChaosSettings,
  ) {}

  async append(payload: unknown, topic: string): Promise<AppendAnswer> {
    await this.lag();
    const answer = await this.inner.append(payload, topic);
    if (this.random.chance(this.settings.lostAnswerChance)) {
      this.lostAnswerCount += 1;
      throw Object.assign(new Error('the connection dropped before the answer'), {
        code: 'unavailable',
      });
    }
    await this.lag();
    return answer;
  }

  async *follow(options: FollowOptions): AsyncGenerator<LogEvent> {
    let from = options.from;
    let seen = options.from - 1;
    while (!options.signal.aborted) {
      let rewound = false;
      for await (const event of this.inner.follow({ ...options, from })) {
        await this.lag();
        if (options.signal.aborted) return;
        yield event;
        seen = Math.max(seen, event.kind === 'entry' ? event.entry.position : event.position);
        if (this.random.chance(this.settings.rewindChance)) {
          // A failover to a node that resumes a few positions back: duplicates follow.
          this.rewindCount += 1;
          from = Math.max(options.from, seen - this.random.below(5));
          rewound = true;
          break;
        }
      }
      if (!rewound) return;
    }
  }

  readIndex(): Promise<number> {
    return this.inner.readIndex();
  }

  isOwnSession(client: string | null): boolean {
    return this.inner.isOwnSession(client);
  }

  private async lag(): Promise<void> {
    for (let turns = this.random.below(this.settings.lagTurnsMax + 1); turns > 0; turns--) {
      await Promise.resolve();
    }
  }
}
