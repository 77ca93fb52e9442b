/**
 * The server's options, their defaults and checks, and the context every front (node:http or
 * in process) serves from: one node, its settings, metrics, logger and environment.
 */
import { BroadcastError } from '../broadcast/errors.ts';
import type { NodeLogger } from '../broadcast/node.ts';
import type { HttpExchange } from '../client/exchange.ts';
import { nodeExchange } from '../client/node-exchange.ts';
import type { NodeId } from '../raft/types.ts';
import { streamRecordPayloadBytesMax } from '../transport/stream-records.ts';
import type { Environment } from '../util/environment.ts';
import type { AuthSource } from './access.ts';
import type { ProcessMemory, ServedNode, ServerContext, ServerSettings } from './context.ts';
import { HttpMetrics } from './http-metrics.ts';
import { PeerReads } from './peers.ts';

export interface ServerOptions {
  readonly node: ServedNode;
  readonly logger: NodeLogger;
  /** The clock and timers the server uses; the simulator passes its own. */
  readonly environment: Environment;
  /** Node id → address of every member this node knows; shown in /v1/status. */
  readonly peers?: Readonly<Record<NodeId, string>>;
  /** Largest payload (its JSON text, UTF-8 bytes); default 1 MiB. */
  readonly payloadBytesMax?: number;
  /** No request stays unanswered longer; default 10 s. */
  readonly requestTimeoutMs?: number;
  /** The Retry-After of every 503; default 1 s. */
  readonly retryAfterSeconds?: number;
  /** Keep-alive comments on idle event streams; default 15 s. */
  readonly keepAliveIntervalMs?: number;
  /** Event streams open at once; beyond it a new one gets 503 `overloaded`; default 1024. */
  readonly streamsMax?: number;
  /** Event streams one identity may hold open on this node (with --auth); default 64. */
  readonly streamsPerIdentityMax?: number;
  /** Largest page of GET /v1/messages (a larger `limit` is cut to it); default 1000. */
  readonly messagesLimitMax?: number;
  /** Payload bytes in one page of GET /v1/messages (one message at least); default 4 MiB. */
  readonly messagesPageBytesMax?: number;
  /** HTTP connections open at once; beyond it new ones are closed at accept; default 4096. */
  readonly connectionsMax?: number;
  /**
   * A binary-port connection with nothing in flight that sends nothing for this long is
   * closed with a goAway `idle_timeout`; default 5 minutes, at most `timeoutMsMax`.
   */
  readonly binaryIdleTimeoutMs?: number;
  /**
   * An event stream (GET /v1/stream) whose reader has taken nothing for this long while
   * events wait for it is cut, checked at each keep-alive; default 5 minutes.
   */
  readonly streamStallTimeoutMs?: number;
  /** Identities and their rights (auth.ts); absent: every request may do everything. */
  readonly auth?: AuthSource | null;
  /** Node id → base URL of its HTTP API ("http://10.0.0.2:8001"): the dashboard shows them all. */
  readonly httpPeers?: Readonly<Record<NodeId, string>>;
  /** The other nodes' HTTP base URLs: reads of positions not held here go there. */
  readonly peerUrls?: readonly string[];
  /**
   * How requests reach `peerUrls`: default node:http(s) trusting the system's CAs; a node
   * on TLS passes one trusting the cluster CA, the simulator its client network.
   */
  readonly peerExchange?: HttpExchange;
  /** Headers for calls to peers (a token on a cluster with `--auth`). */
  readonly peerHeaders?: Readonly<Record<string, string>>;
  /**
   * The process's memory, read at each scrape of /metrics: the node:http front passes
   * `process.memoryUsage`; absent (the simulator, whose runs must not vary with it): not shown.
   */
  readonly processMemory?: () => ProcessMemory;
}

/** Room in a request body for the fields around the payload (client, seq, topic, spaces). */
const envelopeBytesMax = 64 << 10;

export const defaultHttpSettings = {
  payloadBytesMax: 1 << 20,
  requestTimeoutMs: 10_000,
  retryAfterSeconds: 1,
  keepAliveIntervalMs: 15_000,
  streamsMax: 1024,
  streamsPerIdentityMax: 64,
  messagesLimitMax: 1000,
  messagesPageBytesMax: 4 << 20,
  connectionsMax: 4096,
  // Longer than node:http's keep-alive (5 s): a pipelining client keeps one connection per
  // node and pauses between bursts, and a reconnect costs it a handshake and a hello. Five
  // minutes frees the slot of a client that has gone quiet without costing a live one much.
  binaryIdleTimeoutMs: 300_000,
  // A reader that has taken nothing for five minutes is gone (a process stopped in a
  // debugger, a host that vanished without a reset): its stream slot and buffered piece go
  // back, where before they were held until the node restarted.
  streamStallTimeoutMs: 300_000,
} as const;

/**
 * The longest timeout a setting may give, 2^31 - 1 ms (about 24 days): the longest a Node
 * timer holds. A longer delay does not fail but fires after 1 ms.
 */
export const timeoutMsMax = 2_147_483_647;

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new BroadcastError('invalid_argument', `${name} must be a positive integer`, {
      field: name,
    });
  }
  return value;
}

/** A positive integer of milliseconds that a timer holds (`timeoutMsMax`). */
function timeoutSetting(name: string, value: number | undefined, fallback: number): number {
  const timeoutMs = positiveInteger(name, value, fallback);
  if (timeoutMs > timeoutMsMax) {
    throw new BroadcastError(
      'invalid_argument',
      `${name} must be at most ${timeoutMsMax} (about 24 days), the longest a timer holds`,
      { field: name },
    );
  }
  return timeoutMs;
}

/**
 * The payload limit, at most what a stream record carries: a node that took a larger
 * payload could store it but never stream it to a records reader (the SDK's subscription),
 * which would stop at that position for good.
 */
function payloadLimit(value: number | undefined): number {
  const payloadBytesMax = positiveInteger(
    'payloadBytesMax',
    value,
    defaultHttpSettings.payloadBytesMax,
  );
  if (payloadBytesMax > streamRecordPayloadBytesMax) {
    throw new BroadcastError(
      'invalid_argument',
      `payloadBytesMax must be at most ${streamRecordPayloadBytesMax} (16 MiB), the largest payload a message stream carries`,
      { field: 'payloadBytesMax' },
    );
  }
  return payloadBytesMax;
}

function settingsFrom(options: ServerOptions): ServerSettings {
  const payloadBytesMax = payloadLimit(options.payloadBytesMax);
  const messagesLimitMax = positiveInteger(
    'messagesLimitMax',
    options.messagesLimitMax,
    defaultHttpSettings.messagesLimitMax,
  );
  return {
    payloadBytesMax,
    bodyBytesMax: payloadBytesMax + envelopeBytesMax,
    requestTimeoutMs: positiveInteger(
      'requestTimeoutMs',
      options.requestTimeoutMs,
      defaultHttpSettings.requestTimeoutMs,
    ),
    retryAfterSeconds: positiveInteger(
      'retryAfterSeconds',
      options.retryAfterSeconds,
      defaultHttpSettings.retryAfterSeconds,
    ),
    keepAliveIntervalMs: positiveInteger(
      'keepAliveIntervalMs',
      options.keepAliveIntervalMs,
      defaultHttpSettings.keepAliveIntervalMs,
    ),
    streamsMax: positiveInteger('streamsMax', options.streamsMax, defaultHttpSettings.streamsMax),
    streamsPerIdentityMax: positiveInteger(
      'streamsPerIdentityMax',
      options.streamsPerIdentityMax,
      defaultHttpSettings.streamsPerIdentityMax,
    ),
    messagesLimitDefault: Math.min(100, messagesLimitMax),
    messagesLimitMax,
    messagesScanMax: Math.max(10_000, messagesLimitMax),
    messagesPageBytesMax: positiveInteger(
      'messagesPageBytesMax',
      options.messagesPageBytesMax,
      defaultHttpSettings.messagesPageBytesMax,
    ),
    connectionsMax: positiveInteger(
      'connectionsMax',
      options.connectionsMax,
      defaultHttpSettings.connectionsMax,
    ),
    binaryIdleTimeoutMs: timeoutSetting(
      'binaryIdleTimeoutMs',
      options.binaryIdleTimeoutMs,
      defaultHttpSettings.binaryIdleTimeoutMs,
    ),
    streamStallTimeoutMs: timeoutSetting(
      'streamStallTimeoutMs',
      options.streamStallTimeoutMs,
      defaultHttpSettings.streamStallTimeoutMs,
    ),
    peers: new Map(Object.entries(options.peers ?? {})),
  };
}

/** The context to serve `options.node` from; refuses settings that are not positive integers. */
export function createServerContext(options: ServerOptions): ServerContext {
  const settings = settingsFrom(options);
  const peerExchange = options.peerExchange ?? nodeExchange(options.environment);
  return {
    node: options.node,
    settings,
    metrics: new HttpMetrics(),
    logger: options.logger,
    environment: options.environment,
    auth: options.auth ?? null,
    httpPeers: new Map(Object.entries(options.httpPeers ?? {})),
    peerCalls: { exchange: peerExchange, headers: options.peerHeaders ?? {} },
    binaryEndpoint: { url: null },
    ...(options.processMemory === undefined ? {} : { processMemory: options.processMemory }),
    peerReads:
      options.peerUrls === undefined || options.peerUrls.length === 0
        ? null
        : new PeerReads(options.peerUrls, peerExchange, settings.requestTimeoutMs),
  };
}
