/**
 * GET /v1/stream?from=N[&topic=T]: Server-Sent Events, one event per delivered message
 * (`id:` its position, `data:` the message JSON), following new deliveries until the client
 * goes away. `Last-Event-ID` resumes right after the position it names.
 *
 * Memory stays bounded whatever the consumer's pace: the next event is written only after
 * the consumer took the previous ones (`write` returning false means wait for `drained`), and
 * the messages themselves stay in the node's bounded delivery log. A consumer that falls
 * behind what the node keeps gets an `error` event (`compacted`) and the stream ends.
 *
 * With a topic, positions of other topics are skipped; once the stream has caught up with
 * what the node has delivered, a `progress` event names the last position passed, so a
 * reader knows it has seen everything up to there. Unfiltered streams never need one: every
 * position is an event.
 *
 * A node that has heard from no leader for several election timeouts (cut off, or removed
 * and no longer sent the log) ends its streams with an `error` event (`no_leader`) and
 * refuses new ones with 503 `no_leader` until it hears one again, so that its readers resume
 * on a node that goes on; one that lags behind a leader it hears keeps them.
 */

import { leaseMsMax, leaseMsMin, memberNameProblem } from '../../broadcast/consumer-groups.ts';
import type { DeliveredMessage } from '../../broadcast/deliveries.ts';
import { BroadcastError } from '../../broadcast/errors.ts';
import { consumerNameProblem } from '../../broadcast/stream-state.ts';
import { emptyLayout, layoutOf, type RecordLayout } from '../../store/index.ts';
import type { Environment, Timer } from '../../util/environment.ts';
import { checkSubscribe } from '../access.ts';
import { checkConsumerKind, deadlineFeed, groupFeed, type Handed } from '../consumer-feed.ts';
import type { RouteContext, ServerContext } from '../context.ts';
import { failureReason, HttpError, invalidArgument, toHttpError } from '../errors.ts';
import type { StreamWriter } from '../exchange.ts';
import { toWireMessage } from '../messages.ts';
import { acceptsRecords, RecordsFormat, SseFormat, type StreamFormat } from '../stream-format.ts';
import { integerParameter, queryParameters, topicParameter } from '../validate.ts';
import { forwardedHeaders } from './messages.ts';

function startPosition(context: RouteContext, query: ReadonlyMap<string, string>): number {
  const text = context.request.headers['last-event-id'];
  if (text !== undefined) {
    // EventSource reconnects with the URL it was given and this header: the header wins.
    // The stream starts at the next position, which must be exact in a double too.
    if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text) + 1)) {
      throw invalidArgument(
        'Last-Event-ID',
        `the Last-Event-ID header must be a position from 0 to ${Number.MAX_SAFE_INTEGER - 1}`,
      );
    }
    return Number(text) + 1;
  }
  return integerParameter(query.get('from'), 'from', {
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    fallback: 1,
  });
}

/**
 * Calls `fire` every `intervalMs` until cancelled. Environment timers fire once, so each
 * firing arms the next.
 */
function every(environment: Environment, intervalMs: number, fire: () => void): Timer {
  let timer: Timer | null = null;
  let cancelled = false;
  const arm = () => {
    timer = environment.setTimer(intervalMs, () => {
      if (cancelled) return;
      fire();
      arm();
    });
  };
  arm();
  return {
    cancel: () => {
      cancelled = true;
      timer?.cancel();
    },
  };
}

function isNotHeld(error: unknown): boolean {
  return error instanceof BroadcastError && error.code === 'not_held';
}

/** Throws compacted for a start below the retained range (or the topic's); not_held only without peers. */
function checkStart(context: RouteContext, from: number, topic: string | undefined): void {
  const { node } = context.server;
  try {
    // A topic kept for less than the log (--retention-topic) has a floor of its own, which
    // its read checks as GET /v1/messages?topic= does: the same answer on every node.
    if (topic === undefined) node.read(from, 1);
    else node.readTopic(topic, from, 1, 1);
  } catch (error) {
    if (!isNotHeld(error) || (context.server.peerReads ?? null) === null) throw error;
  }
}

/** A member's lease unless the stream asks for another (`leaseMs`). */
const defaultLeaseMs = 10_000;

/** Positions fetched from a peer at a time while this node lacks them. */
const peerPageCount = 4096;

/** Where the order goes: each message, as its stored record or (from a peer) as a message. */
interface OrderSink {
  /** A record of this node's store (its body a view valid only during the call). */
  stored(body: Buffer): void;
  message(message: DeliveredMessage): void;
}

/**
 * The order from `from` on, into `sink`, a dense batch per step: from this node's store,
 * and where it has a hole it is still backfilling, from a peer's (checked records, kept here
 * too, so the hole shrinks).
 */
async function* orderFrom(
  context: RouteContext,
  from: number,
  sink: OrderSink,
  signal: AbortSignal,
): AsyncGenerator<void> {
  const { node } = context.server;
  const peers = context.server.peerReads ?? null;
  let cursor = from;
  // Positions are dense: each record taken moves the cursor by one.
  const take = (body: Buffer) => {
    cursor++;
    sink.stored(body);
    return body.length;
  };
  for (;;) {
    try {
      for await (const _count of node.deliveryRecords({ from: cursor, signal, take })) yield;
      return;
    } catch (error) {
      if (!isNotHeld(error) || peers === null) throw error;
      const page = await peers.records(cursor, peerPageCount, {
        signal,
        headers: forwardedHeaders(context),
      });
      if (page === null || page.messages.length === 0) throw error;
      node.fill(page.messages.filter((message) => message.position <= node.lastPosition));
      for (const message of page.messages) sink.message(message);
      cursor = (page.messages.at(-1) as DeliveredMessage).position + 1;
      yield;
    }
  }
}

/** True when the body's topic (where `layout` says) is `topicBytes`. */
function topicIs(body: Buffer, layout: RecordLayout, topicBytes: Buffer): boolean {
  const { topicStart, topicEnd } = layout;
  return (
    topicEnd - topicStart === topicBytes.length &&
    body.compare(topicBytes, 0, topicBytes.length, topicStart, topicEnd) === 0
  );
}

/** Open streams by identity name, per server: what `streamsPerIdentityMax` bounds. */
const streamsByServer = new WeakMap<ServerContext, Map<string, number>>();

function openStreamsByIdentity(server: ServerContext): Map<string, number> {
  let counts = streamsByServer.get(server);
  if (counts === undefined) {
    counts = new Map();
    streamsByServer.set(server, counts);
  }
  return counts;
}

/**
 * With `consumer=NAME`, a stream starts after the consumer's cursor, as the log holds it now
 * (after a barrier, so an ack made through another node is seen); a reconnection's
 * `Last-Event-ID` still wins, since it says what this subscription already saw.
 */
async function consumerStart(
  context: RouteContext,
  query: ReadonlyMap<string, string>,
): Promise<number | null> {
  const name = query.get('consumer');
  if (name === undefined) return null;
  const problem = consumerNameProblem(name);
  if (problem !== null) throw invalidArgument('consumer', problem);
  if (query.has('from')) throw invalidArgument('from', 'give either from or consumer, not both');
  if (context.request.headers['last-event-id'] !== undefined) return null;
  const { node } = context.server;
  await context.within(node.barrier());
  return (node.consumer(name)?.position ?? 0) + 1;
}

/**
 * The feed of a stream that waits for acks: a group member's (`member`), or a consumer's
 * with an ack deadline; null for a plain stream of the order.
 */
async function ackedFeed(
  context: RouteContext,
  query: ReadonlyMap<string, string>,
  topic: string | undefined,
  signal: AbortSignal,
): Promise<AsyncGenerator<Handed> | null> {
  const name = query.get('consumer');
  const member = query.get('member');
  if (name === undefined) {
    if (member !== undefined) throw invalidArgument('member', 'member needs consumer');
    return null;
  }
  const { server } = context;
  const leaseMs = integerParameter(query.get('leaseMs'), 'leaseMs', {
    min: leaseMsMin,
    max: leaseMsMax,
    fallback: defaultLeaseMs,
  });
  if (member !== undefined) {
    const problem = memberNameProblem(member);
    if (problem !== null) throw invalidArgument('member', problem);
    checkConsumerKind(server, name, true);
    return groupFeed(server, { name, member, leaseMs, topic, signal });
  }
  checkConsumerKind(server, name, false);
  if (server.node.streamState.settings(name).ackDeadlineMs === null) return null;
  const from = (server.node.consumer(name)?.position ?? 0) + 1;
  return deadlineFeed(server, { name, from, topic, signal });
}

/** A handed-out message as its event: the message, how often handed, and its slot. */
function handedEvent(handed: Handed): string {
  const wire = {
    ...toWireMessage(handed.message),
    deliveryCount: handed.deliveryCount,
    redelivered: handed.redelivered,
    ...(handed.slot === null ? {} : { slot: handed.slot }),
  };
  return `id: ${handed.message.position}\ndata: ${JSON.stringify(wire)}\n\n`;
}

/**
 * A node that has heard from no leader for several election timeouts no longer follows the
 * order (cut off, or removed and no longer sent the log): its streams would stay open on
 * keep-alives and never go on. It says so retryably, and the SDK resumes on another node.
 */
function noLeader(): HttpError {
  return new HttpError(
    503,
    'no_leader',
    'this node has heard from no leader for several election timeouts; read from another node',
    {},
    true,
  );
}

/**
 * The stream's signal: the request's, and aborted with no_leader when the node loses its
 * leader (`watch` registers that; its detach goes in the route's finally).
 */
function streamSignal(context: RouteContext): {
  readonly signal: AbortSignal;
  readonly watch: () => () => void;
} {
  const stop = new AbortController();
  const request = context.signal;
  if (request.aborted) stop.abort(request.reason);
  else request.addEventListener('abort', () => stop.abort(request.reason), { once: true });
  const { node } = context.server;
  const watch = () => {
    const detach = node.onLeaderLost?.(() => stop.abort(noLeader())) ?? (() => {});
    // Lost while the route awaited (a consumer's barrier, a feed's start): end at once.
    if (node.leaderLost === true) stop.abort(noLeader());
    return detach;
  };
  return { signal: stop.signal, watch };
}

export async function streamRoute(context: RouteContext): Promise<void> {
  const { node, settings, metrics, environment } = context.server;
  const query = queryParameters(context.url, ['from', 'topic', 'consumer', 'member', 'leaseMs']);
  if (node.leaderLost === true) throw noLeader();
  const { signal, watch } = streamSignal(context);
  const from = (await consumerStart(context, query)) ?? startPosition(context, query);
  const topic = topicParameter(query);
  const feed = await ackedFeed(context, query, topic, signal);
  checkSubscribe(context.identity, topic);
  if (metrics.openStreamCount >= settings.streamsMax) {
    throw new HttpError(
      503,
      'overloaded',
      `${settings.streamsMax} event streams are open`,
      { streamsMax: settings.streamsMax },
      true,
    );
  }
  // One identity may not take every stream of the node from the others.
  const byIdentity = openStreamsByIdentity(context.server);
  const identity = context.identity?.name ?? null;
  if (identity !== null && (byIdentity.get(identity) ?? 0) >= settings.streamsPerIdentityMax) {
    throw new HttpError(
      503,
      'overloaded',
      `${identity} has ${settings.streamsPerIdentityMax} event streams open on this node`,
      { streamsPerIdentityMax: settings.streamsPerIdentityMax },
      true,
    );
  }
  // Refuse a start that is no longer kept before committing to a 200 (a feed starts at its
  // consumer's cursors, kept or not: it goes on from the retained floor).
  if (feed === null) checkStart(context, from, topic);
  // Handed events carry fields of their own: those streams stay Server-Sent Events.
  const format: StreamFormat =
    feed === null && acceptsRecords(context.request.headers.accept)
      ? new RecordsFormat()
      : new SseFormat();
  const stream = context.startStream(200, {
    'content-type': format.contentType,
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  format.opening(settings.retryAfterSeconds * 1000);
  writeTaken(stream, format);
  metrics.streamOpened(stream);
  if (identity !== null) byIdentity.set(identity, (byIdentity.get(identity) ?? 0) + 1);
  // When the route began to wait for the reader to take what was written (null: not waiting).
  let readerAwaitedSinceMs: number | null = null;
  const keepAlive = every(environment, settings.keepAliveIntervalMs, () => {
    if (stream.gone) return;
    if (readerAwaitedSinceMs !== null) {
      const waitedMs = environment.monotonicMs() - readerAwaitedSinceMs;
      // A reader that takes nothing for this long is gone, or as good as: without a cut
      // its socket would hold the stream's slot and its last piece until the node restarts.
      if (waitedMs >= settings.streamStallTimeoutMs) {
        context.server.logger.warn(
          { url: context.request.url, waitedMs, identity },
          'event stream cut: its reader took nothing for the stall timeout',
        );
        metrics.streamStalled();
        stream.destroy();
        return;
      }
    }
    if (stream.behind) return;
    format.keepAlive();
    writeTaken(stream, format);
  });
  const readerTook = async (): Promise<void> => {
    metrics.streamDrainWait();
    readerAwaitedSinceMs = environment.monotonicMs();
    try {
      await stream.drained(signal);
    } finally {
      readerAwaitedSinceMs = null;
    }
  };
  let ending: HttpError | null = null;
  const unwatch = watch();
  // The last id written (a message's or a progress event's): progress is due once the
  // stream has passed positions beyond it, and only when it has caught up, so one event
  // stands for however many positions a catch-up skipped.
  let lastIdWritten = from - 1;
  try {
    if (feed !== null) {
      for await (const handed of feed) {
        metrics.streamEvent();
        if (!stream.write(handedEvent(handed))) await readerTook();
      }
    }
    // A batch's events are written a piece at a time, and the next piece waits until the
    // consumer took the previous ones: memory stays within a batch read from the store or
    // so per stream, and the socket's within a piece, whatever the consumer's pace.
    let events = 0;
    /** A position not sent: a progress event is due for it once the stream caught up. */
    const passOver = (position: number) => {
      if (position < node.lastPosition || position <= lastIdWritten) return;
      format.progress(position);
      lastIdWritten = position;
      events++;
    };
    const layout = emptyLayout();
    const topicBytes = topic === undefined ? null : Buffer.from(topic, 'utf8');
    const sink: OrderSink = {
      stored: (body) => {
        layoutOf(body, layout);
        // A compacted position is passed like another topic's: its message is gone.
        if (!layout.compacted && (topicBytes === null || topicIs(body, layout, topicBytes))) {
          format.stored(body, layout);
          lastIdWritten = layout.position;
          events++;
        } else passOver(layout.position);
      },
      message: (message) => {
        if ((topic === undefined || message.topic === topic) && message.compacted !== true) {
          format.message(message);
          lastIdWritten = message.position;
          events++;
        } else passOver(message.position);
      },
    };
    for await (const _batch of feed === null ? orderFrom(context, from, sink, signal) : []) {
      if (events === 0) continue;
      metrics.streamEvent(events);
      events = 0;
      for (const piece of format.take()) {
        if (!stream.write(piece)) await readerTook();
      }
    }
    // Without an abort, the iterator ends only when the node stops.
    ending = toHttpError(new BroadcastError('node_stopped', 'the node stopped'));
  } catch (error) {
    ending = toHttpError(error);
    if (ending.code === 'internal') {
      const reason = failureReason(error);
      context.server.logger.error({ url: context.request.url, reason }, 'event stream failed');
    }
  } finally {
    unwatch();
    keepAlive.cancel();
    metrics.streamClosed(stream);
    if (identity !== null) {
      const left = (byIdentity.get(identity) ?? 1) - 1;
      if (left === 0) byIdentity.delete(identity);
      else byIdentity.set(identity, left);
    }
    endStream(stream, signal, ending, format);
  }
}

/** Writes what `format` gathered; false once the consumer is behind. */
function writeTaken(stream: StreamWriter, format: StreamFormat): boolean {
  let keepUp = true;
  for (const chunk of format.take()) keepUp = stream.write(chunk);
  return keepUp;
}

/**
 * Ends a stream with an error event saying why, when there is someone to tell: a client
 * that left hears nothing, and a client that stopped reading is cut off rather than waited
 * for, since its socket would never drain.
 */
function endStream(
  stream: StreamWriter,
  signal: AbortSignal,
  ending: HttpError | null,
  format: StreamFormat,
): void {
  // The server closing aborts with an HttpError; a client that went away with a plain Error.
  const reason = signal.aborted ? signal.reason : ending;
  if (stream.gone) return;
  if (stream.behind) {
    stream.destroy();
    return;
  }
  if (reason instanceof HttpError) {
    format.error(reason);
    writeTaken(stream, format);
  }
  stream.end();
}
