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
  /** The client's first session id; every later one is `<it>~<n>`. */
  private readonly baseSession: string;

  constructor(
    private readonly client: Client,
    private readonly options: ClientLogOptions = {},
  ) {
    this.baseSession = client.baseClientId;
  }

  async append(payload: unknown, topic: string): Promise<AppendAnswer> {
    try {
      const answer = await this.client.broadcast(payload, { topic });
      return { position: answer.position, duplicate: answer.duplicate };
    } finally {
    }
  }

  /**
   * The subscription yields messages, while progress arrives by callback whenever the
   * stream idles: both are merged here, in the order the stream gave them. One topic is
   * filtered by the node; several are read from the unfiltered stream and filtered here.
   * Each read of the subscription gets one reaction, not one per wakeup: a long idle spell
   * full of progress marks must not pile reactions onto the read that is still pending.
   */
  async *follow(options: FollowOptions): AsyncGenerator<LogEvent> {
    const single = options.topics.length === 1 ? options.topics[0] : undefined;
    const topics = new Set(options.topics);
    const inbox = new Inbox();
    const subscription = this.client.subscribe({
      from: options.from,
      ...(single === undefined ? {} : { topic: single }),
      signal: options.signal,
      ...(this.options.readFrom === undefined ? {} : { endpoint: this.options.readFrom }),
      onProgress: (position) => inbox.progress(position),
    });
    try {
      inbox.read(subscription.next());
      for (;;) {
        const item = await inbox.take();
        if (item.kind === 'passed') {
          yield item;
          continue;
        }
        if (item.step.done) return;
        inbox.read(subscription.next());
        const message = item.step.value;
        if (message.topic !== null && topics.has(message.topic)) {
          yield { kind: 'entry', entry: entryOf(message) };
        } else {
          yield { kind: 'passed', position: message.position };
        }
      }
    } finally {
      inbox.close();
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
    position: message.position,
    time: message.time,
    client: message.client,
    topic: message.topic,
    payload: message.payload,
  };
}

type InboxItem =
  | { readonly kind: 'passed'; readonly position: number }
  | { readonly kind: 'step'; readonly step: IteratorResult<Message, void> };

/**
 * Where the subscription's one pending read and its progress marks meet. A mark noted before
 * the read settles comes out first: the stream calls `onProgress` before it yields what
 * follows the mark, and a mark never runs ahead of an entry still to be yielded.
 */
class Inbox {
  private passedPosition = 0;
  private settled:
    | { readonly step: IteratorResult<Message, void> }
    | { readonly error: unknown }
    | null = null;
  private wake: (() => void) | null = null;
  private closed = false;

  progress(position: number): void {
    this.passedPosition = Math.max(this.passedPosition, position);
    this.notify();
  }

  /** Takes over the subscription's next read: one reaction for its whole life. */
  read(next: Promise<IteratorResult<Message, void>>): void {
    next.then(
      (step) => this.settle({ step }),
      (error: unknown) => this.settle({ error }),
    );
  }

  async take(): Promise<InboxItem> {
    for (;;) {
      if (this.passedPosition > 0) {
        const position = this.passedPosition;
        this.passedPosition = 0;
        return { kind: 'passed', position };
      }
      const settled = this.settled;
      if (settled !== null) {
        this.settled = null;
        if ('error' in settled) throw settled.error;
        return { kind: 'step', step: settled.step };
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  close(): void {
    this.closed = true;
    this.notify();
  }

  private settle(settled: NonNullable<Inbox['settled']>): void {
    if (this.closed) return;
    this.settled = settled;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
