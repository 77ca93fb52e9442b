/**
 * The agents on an in-process node (`startNode` from 'abcast'): appends go through the
 * node's own session, so its internal retries are exactly-once, and following reads the
 * node's delivery log directly, without HTTP.
 */
import { ownSessionPrefix } from '../broadcast/message-rules.ts';
import type { BroadcastNode } from '../broadcast/node.ts';
import type { AppendAnswer, FollowOptions, LogEvent, SharedLog } from './log.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A payload as the HTTP API shows it: its JSON value, or null for bytes that are not JSON. */
function decodePayload(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch {
    return null;
  }
}

export class NodeLog implements SharedLog {
  private readonly ownPrefix: string;

  constructor(private readonly node: BroadcastNode) {
    // The node's own session ids share a prefix; a new one after an expiry keeps it.
    this.ownPrefix = ownSessionPrefix(node.id);
  }

  async append(payload: unknown, topic: string): Promise<AppendAnswer> {
    const bytes = Buffer.from(JSON.stringify(payload));
    const result = await this.node.broadcast(bytes, { topic });
    return { position: result.position, duplicate: result.duplicate };
  }

  async *follow(options: FollowOptions): AsyncGenerator<LogEvent> {
    const topics = new Set(options.topics);
    for await (const message of this.node.deliveries({
      from: options.from,
      signal: options.signal,
    })) {
      if (!topics.has(message.topic)) {
        // Only when nothing else is ready: one mark per catch-up, not one per message.
        if (message.position === this.node.lastPosition) {
          yield { kind: 'passed', position: message.position };
        }
        continue;
      }
      yield {
        kind: 'entry',
        entry: {
          position: message.position,
          time: message.logTimeMs,
          client: message.clientId === '' ? null : message.clientId,
          topic: message.topic,
          payload: decodePayload(message.payload),
        },
      };
    }
  }

  readIndex(): Promise<number> {
    return this.node.barrier();
  }

  isOwnSession(client: string | null): boolean {
    return client?.startsWith(this.ownPrefix) ?? false;
  }
}
