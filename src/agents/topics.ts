/**
 * Publish/subscribe with ONE order across topics, and no state machine: a topic is a plain
 * log topic, so a subscriber to several topics gets their messages interleaved in the log's
 * total order — the same interleaving for every subscriber, in every process — and a message
 * published by anyone (the SDK, `POST /v1/broadcast` with a topic, an in-process node) is
 * delivered like one published here.
 *
 * `publish` is exactly-once through the log's client sessions (a retried request is not
 * published twice). A subscription pulls from the log as its consumer reads, so a slow
 * consumer costs no memory here; it only falls behind, and fails (details.reason
 * `compacted`) if the cluster stops keeping the positions it still needs.
 */
import { AgentError, invalidArgument } from './errors.ts';
import { checkTopic, type SharedLog } from './log.ts';
import { type LogSource, toSharedLog } from './source.ts';

/** Topics one subscription may name. */
export const subscribeTopicsMax = 64;

export interface TopicMessage {
  readonly topic: string;
  /** Position in the total order: later across all topics means later here. */
  readonly position: number;
  /** The log's clock at this message (ms since the Unix epoch). */
  readonly time: number;
  readonly payload: unknown;
  /** The publishing session; null for an anonymous message. */
  readonly client: string | null;
}

export interface SubscribeOptions {
  /**
   * The first position to deliver; resume with the last delivered index + 1. Default: from
   * now on (none acknowledged before the call; every one published after `ready`).
   */
  readonly from?: number;
  /** Ends the subscription quietly. */
  readonly signal?: AbortSignal;
}

export interface TopicsOptions {
  /** The SDK client, an in-process node, or any SharedLog. */
  readonly log: LogSource;
}

export class Topics {
  private readonly log: SharedLog;

  constructor(options: TopicsOptions) {
    this.log = toSharedLog(options?.log);
  }

  /** Publishes `payload` (a JSON value) on `topic`; resolves with its position once committed. */
  async publish(topic: string, payload: unknown): Promise<number> {
    checkTopic(topic);
    let text: string | undefined;
    try {
      text = JSON.stringify(payload);
    } catch (error) {
      throw invalidArgument('payload', `the payload is not JSON: ${(error as Error).message}`);
    }
    if (text === undefined) throw invalidArgument('payload', 'the payload is not a JSON value');
    const answer = await this.log.append(JSON.parse(text), topic);
    if (answer.position === null) {
      throw new AgentError(
        'unknown_outcome',
        'the message was published long ago and its position is no longer remembered',
        { topic },
      );
    }
    return answer.position;
  }

  /**
   * Messages of `topics`, in the one total order across them. Without `from`, it starts at
   * the read index at the call + 1: nothing acknowledged before the call is delivered, and
   * everything published after `ready` resolves is; await `ready` before relying on that.
   */
  subscribe(topics: readonly string[], options: SubscribeOptions = {}): TopicSubscription {
    const names = checkTopics(topics);
    if (options.from !== undefined && (!Number.isSafeInteger(options.from) || options.from < 1)) {
      throw invalidArgument('from', 'from must be a log position (integer >= 1)');
    }
    // Asked now, not at the first next(): "from now on" means from this call.
    const ready =
      options.from === undefined
        ? this.log.readIndex().then((index) => index + 1)
        : Promise.resolve(options.from);
    ready.catch(() => undefined); // surfaced by the iteration, not as an unhandled rejection
    return new TopicSubscription(ready, this.follow(names, ready, options.signal));
  }

  private async *follow(
    topics: readonly string[],
    from: Promise<number>,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<TopicMessage> {
    const stop = new AbortController();
    const onAbort = () => stop.abort(signal?.reason);
    if (signal?.aborted) return;
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const events = this.log.follow({ from: await from, topics, signal: stop.signal });
      for await (const event of events) {
        if (event.kind !== 'entry') continue;
        const { entry } = event;
        yield {
          topic: entry.topic as string,
          position: entry.position,
          time: entry.time,
          payload: entry.payload,
          client: entry.client,
        };
      }
    } catch (error) {
      if (stop.signal.aborted) return;
      throw followFailure(error);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      stop.abort(); // the consumer stopped reading (break, return): stop following
    }
  }
}

/** The messages of a subscription, and when it is in place. */
export class TopicSubscription implements AsyncIterable<TopicMessage> {
  constructor(
    /** The first position the subscription delivers, once known. */
    readonly ready: Promise<number>,
    private readonly messages: AsyncGenerator<TopicMessage>,
  ) {}

  /** Iterable once: leaving a loop (break, return, throw) ends the subscription. */
  [Symbol.asyncIterator](): AsyncGenerator<TopicMessage> {
    return this.messages;
  }
}

function checkTopics(topics: unknown): string[] {
  if (!Array.isArray(topics) || topics.length === 0 || topics.length > subscribeTopicsMax) {
    throw invalidArgument('topics', `topics must be a list of 1–${subscribeTopicsMax} topic names`);
  }
  return [...new Set(topics.map((topic, at) => checkTopic(topic, `topics[${at}]`)))];
}

function followFailure(error: unknown): unknown {
  const code = (error as { code?: unknown })?.code;
  if (code === 'compacted') {
    return new AgentError(
      'stopped',
      'the cluster no longer keeps the positions this subscription needs next: subscribe again from a later position',
      { reason: 'compacted' },
      { cause: error },
    );
  }
  return error;
}
