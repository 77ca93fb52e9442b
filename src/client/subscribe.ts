/**
 * `client.subscribe()`: an async iterator over GET /v1/stream that survives the loss of the
 * node it reads from. When a stream breaks (the node stopped, the connection dropped, a
 * 503) it reconnects — to the next endpoint — with `Last-Event-ID` set to the last index
 * yielded, so the order goes on with no gap; an index at or below the last one is dropped
 * in case a node resends it, so none is yielded twice.
 */

import type { Client } from './client.ts';
import { ClientError } from './errors.ts';
import { classify, fetchFailure, pause } from './http.ts';
import { parseSse } from './sse.ts';

export interface SubscribeOptions {
  /** First index to yield (default 1). */
  readonly from?: number;
  readonly topic?: string;
  /** Ends the iteration quietly when aborted. */
  readonly signal?: AbortSignal;
}

/** One delivered message, as /v1/messages gives it. */
export interface Message {
  readonly index: number;
  readonly term: number;
  readonly payload: unknown;
  readonly client: string;
  readonly seq: number;
  readonly topic: string | null;
  readonly payloadBase64?: string;
}

export type Subscription = AsyncGenerator<Message, void, undefined>;

/** Where the subscription is: the last index yielded (0 before any). */
interface Cursor {
  lastIndex: number;
  readonly from: number;
}

export async function* subscribe(client: Client, options: SubscribeOptions): Subscription {
  const from = options.from ?? 1;
  if (!Number.isSafeInteger(from) || from < 1) {
    throw new ClientError(
      'invalid_argument',
      { field: 'from' },
      `from takes an integer >= 1, got ${from}`,
    );
  }
  const signal = AbortSignal.any([client.signal, ...(options.signal ? [options.signal] : [])]);
  const cursor: Cursor = { lastIndex: 0, from };
  let failingSinceMs: number | null = null;
  let lastReason = 'no attempt';
  for (let attempt = 0; !signal.aborted; attempt++) {
    const endpoint = client.endpointAt(attempt);
    const stream = await open(endpoint, cursor, options.topic, signal);
    if (stream.kind === 'fatal') {
      if (signal.aborted) return;
      throw stream.error;
    }
    if (stream.kind === 'ok') {
      client.worked(endpoint);
      failingSinceMs = null;
      const ended = yield* read(stream.value, cursor, signal);
      if (signal.aborted) return;
      lastReason = `${endpoint} ${ended}`;
      attempt = 0; // a stream that worked resets the backoff; reconnect to the next endpoint
    } else {
      lastReason = stream.reason;
    }
    failingSinceMs ??= Date.now();
    if (Date.now() - failingSinceMs > client.settings.unavailableAfterMs) {
      throw new ClientError(
        'unavailable',
        { lastIndex: cursor.lastIndex, lastReason },
        `no endpoint served the stream for ${client.settings.unavailableAfterMs} ms (${lastReason})`,
      );
    }
    await pause(
      client.delayMs(attempt, stream.kind === 'retry' ? stream.retryAfterMs : null),
      signal,
    );
  }
}

type Opened =
  | { readonly kind: 'ok'; readonly value: ReadableStream<Uint8Array> }
  | { readonly kind: 'fatal'; readonly error: ClientError }
  | { readonly kind: 'retry'; readonly reason: string; readonly retryAfterMs: number | null };

async function open(
  endpoint: string,
  cursor: Cursor,
  topic: string | undefined,
  signal: AbortSignal,
): Promise<Opened> {
  const query = new URLSearchParams({ from: String(cursor.from) });
  if (topic !== undefined) query.set('topic', topic);
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (cursor.lastIndex > 0) headers['last-event-id'] = String(cursor.lastIndex);
  try {
    const response = await fetch(`${endpoint}/v1/stream?${query}`, { headers, signal });
    if (!response.ok) return await classify(endpoint, response);
    if (response.body === null)
      return { kind: 'retry', reason: `${endpoint} sent no body`, retryAfterMs: null };
    return { kind: 'ok', value: response.body };
  } catch (error) {
    return fetchFailure(endpoint, error, signal);
  }
}

/** Yields the stream's messages until it ends or breaks; returns why it ended. */
async function* read(
  body: ReadableStream<Uint8Array>,
  cursor: Cursor,
  signal: AbortSignal,
): AsyncGenerator<Message, string, undefined> {
  const decoder = new TextDecoder();
  let buffer = '';
  const reader = body.getReader();
  try {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) return 'ended the stream';
      const events: Message[] = [];
      buffer = parseSse(buffer + decoder.decode(chunk.value, { stream: true }), (event) => {
        if (event.event === 'error') return errorEvent(event.data.join('\n'));
        const message = JSON.parse(event.data.join('\n')) as Message;
        if (typeof message.index !== 'number')
          throw new ClientError('protocol', { data: event.data }, 'a stream event without index');
        events.push(message);
      });
      for (const message of events) {
        if (message.index <= cursor.lastIndex) continue; // resent after a reconnect
        cursor.lastIndex = message.index;
        yield message;
        if (signal.aborted) return 'aborted';
      }
    }
  } catch (error) {
    if (error instanceof ClientError && error.code !== 'node_stopped') throw error;
    return error instanceof Error ? error.message : String(error);
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** An `event: error` ends the stream: `compacted` ends the subscription, the rest fail over. */
function errorEvent(data: string): void {
  let fields: Record<string, unknown> = {};
  try {
    fields = JSON.parse(data) as Record<string, unknown>;
  } catch {
    fields = { message: data };
  }
  const code = typeof fields.error === 'string' ? fields.error : 'node_stopped';
  if (code === 'compacted') throw new ClientError('compacted', fields);
  throw new ClientError('node_stopped', fields);
}
