/**
 * The agents through the SDK (`connect` from 'abcast/client'), from any process: appends are
 * the client's exactly-once broadcasts, following is a topic-filtered subscription that
 * fails over between nodes, and the read index is the cluster's `GET /v1/barrier`.
 */
import type { Client, Message } from '../client/index.ts';
import type { AppendAnswer, FollowOptions, LogEntry, LogEvent, SharedLog } from './log.ts';

export interface ClientLogOptions {
  /**
   * The endpoint replicas on this log read from while it serves (default: the leader the
   * client found, which sees commands first, so `submit` answers soonest). Pin readers to
   * different nodes to spread them; a follower learns of a commit a little later.
   */
  readonly readFrom?: string;
}

export class ClientLog implements SharedLog {
  /** The client's session id when the adapter was made; later ones add `~<n>` to it. */
  private readonly baseSession: string;

  constructor(
    private readonly client: Client,
    private readonly options: ClientLogOptions = {},
  ) {
    this.baseSession = client.clientId;
  }

  async append(payload: unknown, topic: string): Promise<AppendAnswer> {
    const answer = await this.client.broadcast(payload, { topic });
    return { index: answer.index, duplicate: answer.duplicate };
  }

  /**
   * The subscription yields messages, while progress arrives by callback whenever the
   * stream idles: both are merged here, in the order the stream gave them. One topic is
   * filtered by the node; several are read from the unfiltered stream and filtered here.
   */
  async *follow(options: FollowOptions): AsyncGenerator<LogEvent> {
    const single = options.topics.length === 1 ? options.topics[0] : undefined;
    const topics = new Set(options.topics);
    let passedIndex = 0;
    let wake: (() => void) | null = null;
    const subscription = this.client.subscribe({
      from: options.from,
      ...(single === undefined ? {} : { topic: single }),
      signal: options.signal,
      ...(this.options.readFrom === undefined ? {} : { endpoint: this.options.readFrom }),
      onProgress: (index) => {
        passedIndex = Math.max(passedIndex, index);
        wake?.();
      },
    });
    try {
      let next = subscription.next();
      for (;;) {
        const progressed = new Promise<null>((resolve) => {
          wake = () => resolve(null);
        });
        if (passedIndex > 0) {
          const index = passedIndex;
          passedIndex = 0;
          yield { kind: 'passed', index };
          continue;
        }
        const step = await Promise.race([next, progressed]);
        if (step === null) continue;
        if (step.done) return;
        next = subscription.next();
        const message = step.value;
        if (message.topic !== null && topics.has(message.topic)) {
          yield { kind: 'entry', entry: entryOf(message) };
        } else {
          yield { kind: 'passed', index: message.index };
        }
      }
    } finally {
      wake = null;
      void subscription.return(undefined).catch(() => undefined);
    }
  }

  readIndex(): Promise<number> {
    return this.client.barrier();
  }

  isOwnSession(client: string | null): boolean {
    return (
      client !== null && (client === this.baseSession || client.startsWith(`${this.baseSession}~`))
    );
  }
}

function entryOf(message: Message): LogEntry {
  return {
    index: message.index,
    time: message.time,
    client: message.client,
    topic: message.topic,
    payload: message.payload,
  };
}
