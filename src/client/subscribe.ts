/**
 * `client.subscribe()`: an async iterator over GET /v1/stream that survives the loss of the
 * node it reads from. When a stream breaks (the node stopped, the connection dropped, a
 * 503, or the node ended it with `no_leader`: it no longer follows the order) it reconnects
 * — to the other endpoints first, to that one last — with `Last-Event-ID` set to the last
 * position yielded, so the order goes on with no gap; a position at or below the last one is
 * dropped in case a node resends it, so none is yielded twice. The wire calls a position `index`
 * (docs/api.md); what this yields calls it `position`.
 *
 * With a topic, the node skips other topics' positions and says so with `progress` events
 * once it has caught up: the cursor moves to them too (never back), so a failover resumes
 * after the skipped positions, and `onProgress` tells the caller how far the order has gone.
 */

import { isUtf8 } from 'node:buffer';
import {
  type StreamRecord,
  StreamRecordReader,
  streamRecordsType,
} from '../transport/stream-records.ts';
import { assert } from '../util/assert.ts';
import { ConsumerAcks, GroupAcks } from './consumer-acks.ts';
import { ClientError, refusal } from './errors.ts';
import type { HttpExchangeResponse } from './exchange.ts';
import { classify, fetchFailure, onAnyAbort, pause } from './http.ts';
import type { StreamAnswer } from './node-exchange.ts';
import type { Settings } from './settings.ts';
import { parseSse, type SseEvent } from './sse.ts';
import { checkTopic } from './topics.ts';

/** What a subscription uses of its client (./client.ts implements it). */
export interface SubscriptionHost {
  readonly settings: Settings;
  /** Aborts when the client closes. */
  readonly signal: AbortSignal;
  /** The endpoint to try at `attempt`: the leader or the one that last worked first. */
  endpointAt(attempt: number): string;
  /** `endpoint` answered: try it first from now on. */
  worked(endpoint: string): void;
  /** How long to wait after a failed attempt before the next one. */
  delayMs(attempt: number, retryAfterMs: number | null): number;
  /** POST /v1/consumers/:name/ack; resolves with the consumer's cursor after it. */
  ackConsumer(name: string, position: number): Promise<number>;
  /** POST /v1/consumers/:name/ack {member, slots}: a group member's acks. */
  ackGroup(name: string, member: string, slots: Readonly<Record<string, number>>): Promise<void>;
}

export interface SubscribeOptions {
  /** First position to yield (default 1). */
  readonly from?: number;
  readonly topic?: string;
  /** Ends the iteration quietly when aborted. */
  readonly signal?: AbortSignal;
  /**
   * Called when the stream says every position up to `position` has been passed (with a
   * topic, the positions of other topics were skipped): nothing of the topic at or below
   * `position` is still to come. Called in order with the messages, with increasing
   * positions, only for a position beyond the last message yielded. An error it throws
   * ends the subscription.
   */
  readonly onProgress?: (position: number) => void;
  /**
   * The endpoint (one of the client's) to read from while it serves; the others take over
   * when it fails. By default the stream follows the leader the client found, which sees
   * each message first; pinning spreads readers over the nodes.
   */
  readonly endpoint?: string;
  /**
   * A durable consumer's name: the subscription starts after the last position acked under
   * that name, on whichever node (`from` may not be given too), and each message has an
   * `ack()`. Acks are committed through the log, so a consumer that crashes resumes, on any
   * node, right after what it acked: messages after the last ack come again.
   */
  readonly consumer?: string;
  /**
   * With `consumer`: this subscription is a member of the consumer group of that name. The
   * members share the group's work: the messages of one key all go to one live member, in
   * order, and each member acks its own (`message.ack()`). A member that stops (or crashes)
   * is given up when its lease runs out, and its unacknowledged messages go to the others,
   * in order, marked `redelivered`. Messages arrive in position order per key, not overall.
   */
  readonly member?: string;
  /** A member's lease, in ms (default 10 s): how long it may stay silent before it is gone. */
  readonly leaseMs?: number;
}

/** One delivered message, as /v1/messages gives it but for `position` (`index` there). */
export interface Message {
  readonly position: number;
  readonly term: number;
  readonly payload: unknown;
  readonly client: string;
  readonly seq: number;
  readonly topic: string | null;
  /**
   * The cluster's clock at this message as recorded in the log, in ms since the Unix epoch:
   * non-decreasing along positions and the same on every node (the wall clock of the leader
   * that built the entry, never moving back), so not necessarily any reader's clock.
   */
  readonly time: number;
  readonly payloadBase64?: string;
  /** The key it was broadcast with; absent when none. */
  readonly key?: string;
  /**
   * True for a position of a compacted topic whose message a newer one with the same key
   * replaced (payload null). Streams skip such positions; page reads show them.
   */
  readonly compacted?: true;
  /**
   * On a stream that waits for acks (a group member, or a consumer with an ack deadline):
   * how many times this message was handed out to this subscription's stream, and whether it
   * may have been handed out before (to this stream, or to a member that is gone).
   */
  readonly deliveryCount?: number;
  readonly redelivered?: boolean;
  /** A group member's message: its slot (the key's hash), what its ack covers. */
  readonly slot?: number;
  /**
   * With `consumer`: records that everything up to this message is processed. Resolves once
   * the log holds it; acks are coalesced, so acking each message costs little.
   */
  readonly ack?: () => Promise<void>;
}

export type Subscription = AsyncGenerator<Message, void, undefined>;

/** Where the subscription is: the last position yielded or passed (0 before any). */
interface Cursor {
  lastPosition: number;
  readonly from: number;
}

/** What one stream event says: a message, or that every position up to one was passed. */
type StreamItem =
  | { readonly kind: 'message'; readonly message: Message }
  | { readonly kind: 'progress'; readonly position: number };

/**
 * Refuses options of the wrong type, as plain JavaScript can pass them, by field: a signal
 * that is not one failed as a TypeError, and later threw again, uncaught, when the
 * subscription took its listener off.
 */
function checkShape(options: SubscribeOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new ClientError('invalid_argument', 'subscribe takes an options object', {
      field: 'options',
    });
  }
  const wrong = (field: string, expected: string) =>
    new ClientError('invalid_argument', `${field} takes ${expected}`, { field });
  // A reserved topic is refused here, not only by type: the node takes it as a filter that
  // matches nothing a reader is given, and the subscription would wait forever.
  checkTopic(options.topic);
  for (const field of ['consumer', 'member'] as const) {
    const value = options[field];
    if (value !== undefined && (typeof value !== 'string' || value === '')) {
      throw wrong(field, 'a non-empty string');
    }
  }
  const { signal } = options;
  if (
    signal !== undefined &&
    (typeof signal !== 'object' ||
      signal === null ||
      typeof signal.addEventListener !== 'function' ||
      typeof signal.aborted !== 'boolean')
  ) {
    throw wrong('signal', 'an AbortSignal');
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw wrong('onProgress', 'a function');
  }
}

export async function* subscribe(
  client: SubscriptionHost,
  options: SubscribeOptions,
): Subscription {
  checkShape(options);
  const from = options.from ?? 1;
  if (options.consumer !== undefined && options.from !== undefined) {
    throw new ClientError('invalid_argument', 'give either from or consumer, not both', {
      field: 'from',
    });
  }
  if (!Number.isSafeInteger(from) || from < 1) {
    throw new ClientError('invalid_argument', `from takes an integer >= 1, got ${from}`, {
      field: 'from',
    });
  }
  const pinned = pinnedAt(client, options.endpoint);
  // Listeners taken off at the end rather than AbortSignal.any, which on Node 20 leaves an
  // entry in the client's long-lived signal for every subscription ever opened.
  const stop = new AbortController();
  const detach = onAnyAbort(options.signal ? [client.signal, options.signal] : client.signal, () =>
    stop.abort(),
  );
  const signal = stop.signal;
  try {
    const cursor: Cursor = { lastPosition: 0, from };
    const acks = acksOf(client, options);
    let failingSinceMs: number | null = null;
    let lastReason = 'no attempt';
    /** Where the last stream that worked ended: tried last in each round after. */
    let endedAt: string | null = null;
    for (let attempt = 0; !signal.aborted; attempt++) {
      const endpoint = endpointFor({ client, pinned, endedAt, attempt });
      const stream = await open(client.settings, endpoint, cursor, options, signal);
      if (stream.kind === 'fatal') {
        if (signal.aborted) return;
        throw stream.error;
      }
      if (stream.kind === 'ok') {
        // A pinned reader says nothing about where broadcasts should go.
        if (pinned === null) client.worked(endpoint);
        failingSinceMs = null;
        // Read here rather than in a generator of its own: each level of generators costs
        // promises per message, and a catch-up yields hundreds of thousands a second.
        let ended = 'aborted';
        const source =
          stream.records === true
            ? new RecordsReader(stream.value)
            : new StreamReader(stream.value);
        try {
          reading: for (;;) {
            const items = await source.next();
            if (typeof items === 'string') {
              ended = items;
              break;
            }
            for (const item of items) {
              // At or below the cursor: resent after a reconnect, or a lagging node's progress.
              if (item.kind === 'progress') {
                if (item.position <= cursor.lastPosition) continue;
                cursor.lastPosition = item.position;
                options.onProgress?.(item.position);
                continue;
              }
              // A stream that waits for acks hands a message out again on purpose, and a group
              // member's positions rise per key, not overall: only the log's cursors decide.
              if (item.message.deliveryCount === undefined) {
                if (item.message.position <= cursor.lastPosition) continue;
                cursor.lastPosition = item.message.position;
              }
              yield withAck(item.message, acks);
              if (signal.aborted) break reading;
            }
          }
        } finally {
          source.cancel();
        }
        if (signal.aborted) return;
        lastReason = `${endpoint} ${ended}`;
        // A stream that worked resets the backoff, and this endpoint counts as the round's
        // first attempt: the others come next, then it again (it may be the only one alive).
        // A node that ended the stream because it lost its leader would take the stream
        // back, and hold it without going on, if it came first.
        endedAt = endpoint;
        attempt = 0;
      } else {
        lastReason = stream.reason;
      }
      const { environment } = client.settings;
      failingSinceMs ??= environment.nowMs();
      if (environment.nowMs() - failingSinceMs > client.settings.unavailableAfterMs) {
        throw new ClientError(
          'unavailable',
          `no endpoint served the stream for ${client.settings.unavailableAfterMs} ms (${lastReason})`,
          { lastPosition: cursor.lastPosition, lastReason },
        );
      }
      await pause(
        environment,
        client.delayMs(attempt, stream.kind === 'retry' ? stream.retryAfterMs : null),
        signal,
      );
    }
  } finally {
    detach();
  }
}

/** How a subscription's messages are acked: by cursor, per group slot, or not at all. */
type Acks =
  | { readonly kind: 'cursor'; readonly acks: ConsumerAcks }
  | { readonly kind: 'group'; readonly acks: GroupAcks };

function acksOf(client: SubscriptionHost, options: SubscribeOptions): Acks | null {
  const { consumer, member } = options;
  if (consumer === undefined) {
    if (member !== undefined) {
      throw new ClientError('invalid_argument', 'member needs consumer', { field: 'member' });
    }
    return null;
  }
  if (member === undefined) {
    const acks = new ConsumerAcks(consumer, (name, position) => client.ackConsumer(name, position));
    return { kind: 'cursor', acks };
  }
  const acks = new GroupAcks(consumer, member, (name, who, slots) =>
    client.ackGroup(name, who, slots),
  );
  return { kind: 'group', acks };
}

/** The message with its `ack()`, when the subscription acks. */
function withAck(message: Message, acks: Acks | null): Message {
  if (acks === null) return message;
  const { position, slot } = message;
  if (acks.kind === 'cursor') return { ...message, ack: () => acks.acks.ack(position) };
  if (slot === undefined) {
    throw new ClientError('protocol', 'a group member stream sent a message without slot', {
      position,
    });
  }
  return { ...message, ack: () => acks.acks.ack(slot, position) };
}

/**
 * The endpoint to try at `attempt`: in the client's order (the leader or the one that last
 * worked first), or from the pinned one on; once a stream ended, that endpoint moves to the
 * front of the order, where attempt 0 (the stream itself) stands for it, and the rest follow.
 */
function endpointFor(options: {
  readonly client: SubscriptionHost;
  readonly pinned: number | null;
  readonly endedAt: string | null;
  readonly attempt: number;
}): string {
  const { client, pinned, endedAt, attempt } = options;
  const { endpoints } = client.settings;
  const usual = (at: number) =>
    pinned === null
      ? client.endpointAt(at)
      : (endpoints[(pinned + at) % endpoints.length] as string);
  assert(Number.isSafeInteger(attempt) && attempt >= 0, 'attempts count from 0');
  const slot = attempt % endpoints.length;
  if (endedAt === null) return usual(slot);
  const order = [endedAt];
  for (let at = 0; at < endpoints.length; at++) {
    const endpoint = usual(at);
    if (!order.includes(endpoint)) order.push(endpoint);
  }
  const endpoint = order[slot % order.length];
  assert(endpoint !== undefined, 'a round has an endpoint for each attempt');
  return endpoint;
}

/** Where in the client's endpoints a pinned subscription reads first; null when unpinned. */
function pinnedAt(client: SubscriptionHost, endpoint: string | undefined): number | null {
  if (endpoint === undefined) return null;
  const at = client.settings.endpoints.indexOf(String(endpoint).replace(/\/+$/, ''));
  if (at < 0) {
    throw new ClientError(
      'invalid_argument',
      `endpoint must be one of the client's endpoints (${client.settings.endpoints.join(', ')})`,
      { field: 'endpoint', endpoint },
    );
  }
  return at;
}

type Opened =
  | {
      readonly kind: 'ok';
      readonly value: ReadableStream<Uint8Array>;
      /** Stream records (transport/stream-records.ts) rather than Server-Sent Events. */
      readonly records?: boolean;
    }
  | { readonly kind: 'fatal'; readonly error: ClientError }
  | { readonly kind: 'retry'; readonly reason: string; readonly retryAfterMs: number | null };

async function open(
  settings: Settings,
  endpoint: string,
  cursor: Cursor,
  options: SubscribeOptions,
  signal: AbortSignal,
): Promise<Opened> {
  // A consumer's first stream starts after its cursor; a reconnection after what it saw.
  const query = new URLSearchParams(
    options.consumer === undefined ? { from: String(cursor.from) } : { consumer: options.consumer },
  );
  if (options.member !== undefined) query.set('member', options.member);
  if (options.leaseMs !== undefined) query.set('leaseMs', String(options.leaseMs));
  if (options.topic !== undefined) query.set('topic', options.topic);
  // Records where the node speaks them (it sends one message's stored payload as it is, and
  // this decodes it without parsing text around it); events from a node that does not.
  const headers: Record<string, string> = { accept: `${streamRecordsType}, text/event-stream` };
  if (cursor.lastPosition > 0) headers['last-event-id'] = String(cursor.lastPosition);
  try {
    const response = await settings.openStream(`${endpoint}/v1/stream?${query}`, headers, signal);
    if (response.status < 200 || response.status >= 300) {
      return classify(endpoint, await wholeAnswer(response));
    }
    const records = (response.headers['content-type'] ?? '').startsWith(streamRecordsType);
    return { kind: 'ok', value: response.body, records };
  } catch (error) {
    return fetchFailure(endpoint, error, signal);
  }
}

/** A refused stream's answer, read whole for classify. */
async function wholeAnswer(response: StreamAnswer): Promise<HttpExchangeResponse> {
  const body = await new Response(response.body).text().catch(() => '');
  return { status: response.status, headers: response.headers, body };
}

/**
 * The events of one stream, a chunk at a time. Only the stream's own failures are caught
 * here (they end this stream, and the subscription fails over); the caller's code runs
 * outside, so what it throws is never mistaken for a broken stream.
 */
class StreamReader {
  private readonly decoder = new TextDecoder();
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private buffer = '';
  private readonly end = new StreamEnd();

  constructor(body: ReadableStream<Uint8Array>) {
    this.reader = body.getReader();
  }

  /** The next chunk's items, or why the stream ended. */
  async next(): Promise<StreamItem[] | string> {
    const ended = this.end.take();
    if (ended !== null) return ended;
    const items: StreamItem[] = [];
    try {
      const chunk = await this.reader.read();
      if (chunk.done) return 'ended the stream';
      const text = this.buffer + this.decoder.decode(chunk.value, { stream: true });
      this.buffer = parseSse(text, (event) => {
        const item = streamItem(event);
        if (item !== null) items.push(item);
      });
      return items;
    } catch (error) {
      return this.end.after(items, error);
    }
  }

  cancel(): void {
    this.reader.cancel().catch(() => {});
  }
}

/**
 * How a stream's reader ends. A node that ends a stream (`event: error`, or a records error
 * item) writes the error after the messages before it, and one read may hold both: those
 * messages are handed out first and the end comes with the next call, so the next node need
 * not send them again. A failure of the stream's own is its end, as a reason; any other
 * error (`compacted`, a protocol error) ends the subscription, thrown once the items before
 * it were handed out.
 */
class StreamEnd {
  private pending: ClientError | string | null = null;

  /** What `next()` returns once `error` ended the read that had found `items` so far. */
  after(items: StreamItem[], error: unknown): StreamItem[] | string {
    const end = ended(error);
    if (items.length === 0) return reasonOrThrow(end);
    this.pending = end;
    return items;
  }

  /** The end left from the call before, or null. */
  take(): string | null {
    const end = this.pending;
    if (end === null) return null;
    this.pending = null;
    return reasonOrThrow(end);
  }
}

function ended(error: unknown): ClientError | string {
  if (error instanceof ClientError && error.code !== 'node_stopped') return error;
  return error instanceof Error ? error.message : String(error);
}

function reasonOrThrow(end: ClientError | string): string {
  if (typeof end === 'string') return end;
  throw end;
}

/**
 * The items of a stream of records, a chunk at a time: the same items as the events give,
 * built straight from the bytes, with a message's payload parsed as the node would.
 */
class RecordsReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly records = new StreamRecordReader();
  private items: StreamItem[] = [];
  private readonly end = new StreamEnd();
  private readonly take = (record: StreamRecord) => {
    if (record.kind === 'message') this.items.push({ kind: 'message', message: toMessage(record) });
    else if (record.kind === 'progress') {
      if (!Number.isSafeInteger(record.position) || record.position < 1) {
        throw new ClientError('protocol', 'a progress item without a position', {});
      }
      this.items.push({ kind: 'progress', position: record.position });
    } else if (record.kind === 'error') errorEvent(record.json);
  };

  constructor(body: ReadableStream<Uint8Array>) {
    this.reader = body.getReader();
  }

  async next(): Promise<StreamItem[] | string> {
    const ended = this.end.take();
    if (ended !== null) return ended;
    this.items = [];
    try {
      const chunk = await this.reader.read();
      if (chunk.done) {
        return this.records.hasPartialItem ? 'cut the stream inside an item' : 'ended the stream';
      }
      this.records.push(chunk.value, this.take);
      return this.items;
    } catch (error) {
      return this.end.after(this.items, error);
    }
  }

  cancel(): void {
    this.reader.cancel().catch(() => {});
  }
}

type MessageRecord = Extract<StreamRecord, { kind: 'message' }>;

/** A message record as the Message the events give (the same fields, in the same order). */
function toMessage(record: MessageRecord): Message {
  const anonymous = record.clientId === '';
  const client = (anonymous ? null : record.clientId) as string;
  const seq = (anonymous ? null : record.seq) as number;
  const topic = record.topic === '' ? null : record.topic;
  const { position, term, time, key } = record;
  const { bytes, payloadStart, payloadEnd } = record;
  const payload = payloadOf(bytes, payloadStart, payloadEnd);
  const message: { -readonly [K in keyof Message]: Message[K] } =
    payload === undefined
      ? {
          position,
          term,
          payload: null,
          payloadBase64: bytes.toString('base64', payloadStart, payloadEnd),
          client,
          seq,
          topic,
          time,
        }
      : { position, term, payload, client, seq, topic, time };
  if (key !== undefined) message.key = key;
  return message;
}

const byteOrderMark = [0xef, 0xbb, 0xbf];

/**
 * The JSON value a payload holds, as the node's events give it (UTF-8 text of JSON, a
 * leading byte order mark ignored); undefined for bytes that are not (sent as base64).
 */
function payloadOf(bytes: Buffer, start: number, end: number): unknown {
  const bom =
    end - start >= 3 &&
    bytes[start] === byteOrderMark[0] &&
    bytes[start + 1] === byteOrderMark[1] &&
    bytes[start + 2] === byteOrderMark[2];
  const text = bytes.toString('utf8', bom ? start + 3 : start, end);
  // Bytes that are not UTF-8 decode to U+FFFD, so text without it needs no second pass; text
  // with it may still be UTF-8 (the character itself), which only the exact check tells.
  if (text.includes(replacementCharacter) && !isUtf8(bytes.subarray(start, end))) {
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const replacementCharacter = '\uFFFD';

/** One parsed event as an item; null for a named event this SDK does not know. */
function streamItem(event: SseEvent): StreamItem | null {
  const data = event.data.join('\n');
  if (event.event === 'error') return errorEvent(data);
  if (event.event === 'progress') {
    const { index } = JSON.parse(data) as { index?: unknown };
    if (!Number.isSafeInteger(index) || (index as number) < 1)
      throw new ClientError('protocol', 'a progress event without index', { data });
    return { kind: 'progress', position: index as number };
  }
  if (event.event !== undefined && event.event !== 'message') return null;
  const { index, ...fields } = JSON.parse(data) as Omit<Message, 'position'> & { index?: unknown };
  if (typeof index !== 'number')
    throw new ClientError('protocol', 'a stream event without index', { data: event.data });
  return { kind: 'message', message: { position: index, ...fields } };
}

/** An `event: error` ends the stream: `compacted` ends the subscription, the rest fail over. */
function errorEvent(data: string): never {
  let fields: Record<string, unknown> = {};
  try {
    fields = JSON.parse(data) as Record<string, unknown>;
  } catch {
    fields = { message: data };
  }
  const code = typeof fields.error === 'string' ? fields.error : 'node_stopped';
  if (code === 'compacted') throw refusal('compacted', fields);
  throw refusal('node_stopped', fields);
}
