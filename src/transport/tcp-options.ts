/**
 * Options of `TcpTransport`, their defaults and their checks. Every limit has a unit in its
 * name and says what happens when it is reached.
 */
import type { NodeId } from '../raft/types.ts';
import { type HostPort, parseAddress } from './address.ts';
import { TransportError } from './errors.ts';
import { lengthPrefixBytes, packetBytesLimit } from './framing.ts';
import { chunkHeaderBytesMax } from './snapshot-stream.ts';
import type { TlsCredentials } from './tls.ts';
import type { TransportLogger } from './types.ts';
import { checkNodeId, checkString } from './validate.ts';
import { clusterIdBytesMax } from './wire.ts';

export interface TcpTransportOptions {
  readonly nodeId: NodeId;
  /** Both ends of a link must agree on it; it keeps two clusters on one network apart. */
  readonly clusterId: string;
  /** "host:port" to listen on; port 0 picks a free port (read it back from `address()`). */
  readonly listenAddress: string;
  readonly logger: TransportLogger;
  /** Largest packet on the wire; a peer announcing a larger one is disconnected. */
  readonly frameBytesMax?: number;
  /** Queue plus socket buffer per peer; frames that do not fit are dropped and counted. */
  readonly peerBufferBytesMax?: number;
  /** Largest snapshot a peer may stream to us (and that we stream); larger ones are refused. */
  readonly snapshotBytesMax?: number;
  /** Data bytes per snapshot chunk; clamped to what fits a frame. */
  readonly snapshotChunkBytesMax?: number;
  /** Bytes handed to one socket and not yet taken by the kernel before we stop and wait. */
  readonly socketBufferBytesMax?: number;
  readonly reconnectDelayMsMin?: number;
  readonly reconnectDelayMsMax?: number;
  /** Connect plus Hello/Welcome must finish within this, on both sides. */
  readonly handshakeTimeoutMs?: number;
  /** An open link whose socket buffer makes no progress this long is torn down and redialled. */
  readonly writeStallTimeoutMs?: number;
  /** Inbound connections that have not finished their handshake; extra ones are closed. */
  readonly pendingConnectionCountMax?: number;
  /** Of those, from one remote IP address; extra ones from it are closed. */
  readonly pendingConnectionsPerAddressMax?: number;
  /** Uniform in [0, 1), for reconnect jitter. */
  readonly random?: () => number;
  /**
   * Mutual TLS (./tls.ts): every link, both ways, is TLS with these credentials, and a peer
   * is admitted only with a certificate from their CA that names the node its Hello claims.
   * The certificate must name this node. Null or absent: plain TCP, for loopback and tests.
   */
  readonly tls?: TlsCredentials | null;
}

export const tcpTransportDefaults = {
  frameBytesMax: 4 * 1024 * 1024,
  peerBufferBytesMax: 16 * 1024 * 1024,
  snapshotBytesMax: 1024 * 1024 * 1024,
  snapshotChunkBytesMax: 1024 * 1024,
  socketBufferBytesMax: 1024 * 1024,
  reconnectDelayMsMin: 50,
  reconnectDelayMsMax: 5_000,
  handshakeTimeoutMs: 5_000,
  writeStallTimeoutMs: 15_000,
  pendingConnectionCountMax: 64,
  pendingConnectionsPerAddressMax: 8,
} as const;

export interface ResolvedTcpOptions {
  readonly nodeId: NodeId;
  readonly clusterId: string;
  readonly listen: HostPort;
  readonly logger: TransportLogger;
  readonly frameBytesMax: number;
  readonly peerBufferBytesMax: number;
  readonly snapshotBytesMax: number;
  readonly snapshotChunkBytesMax: number;
  readonly socketBufferBytesMax: number;
  readonly reconnectDelayMsMin: number;
  readonly reconnectDelayMsMax: number;
  readonly handshakeTimeoutMs: number;
  readonly writeStallTimeoutMs: number;
  readonly pendingConnectionCountMax: number;
  readonly pendingConnectionsPerAddressMax: number;
  readonly random: () => number;
  readonly tls: TlsCredentials | null;
}

const socketBufferBytesMin = 64 * 1024;

/** A Hello or a reply must fit this before the peer is trusted with `frameBytesMax`. */
export const handshakeBytesMax = 2048;

function positiveInteger(
  options: TcpTransportOptions,
  name: keyof typeof tcpTransportDefaults,
  min: number,
  max: number,
): number {
  const value = options[name] ?? tcpTransportDefaults[name];
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new TransportError('INVALID_OPTIONS', `${name} is an integer in [${min}, ${max}]`, {
      option: name,
      value: typeof value === 'number' ? value : String(value),
    });
  }
  return value;
}

function checkIdentity(options: TcpTransportOptions): void {
  try {
    checkNodeId(options.nodeId, 'nodeId');
    checkString(options.clusterId, 'clusterId', clusterIdBytesMax);
  } catch (error) {
    throw new TransportError('INVALID_OPTIONS', (error as Error).message);
  }
  const logger = options.logger as Partial<TransportLogger> | undefined;
  if (
    typeof logger?.info !== 'function' ||
    typeof logger.warn !== 'function' ||
    typeof logger.error !== 'function'
  ) {
    throw new TransportError('INVALID_OPTIONS', 'logger has info, warn and error methods');
  }
  const certifiedNodeId = options.tls?.certifiedNodeId;
  if (certifiedNodeId !== undefined && certifiedNodeId !== options.nodeId) {
    // Every peer would refuse it; saying so here names the wrong file at once.
    throw new TransportError(
      'INVALID_TLS',
      `the TLS certificate names node ${JSON.stringify(certifiedNodeId)}, not ${JSON.stringify(options.nodeId)}`,
    );
  }
}

export function resolveTcpOptions(options: TcpTransportOptions): ResolvedTcpOptions {
  checkIdentity(options);
  const frameBytesMax = positiveInteger(
    options,
    'frameBytesMax',
    handshakeBytesMax,
    packetBytesLimit,
  );
  const reconnectDelayMsMin = positiveInteger(options, 'reconnectDelayMsMin', 1, 3_600_000);
  const chunkBytes = positiveInteger(options, 'snapshotChunkBytesMax', 1, packetBytesLimit);
  return {
    nodeId: options.nodeId,
    clusterId: options.clusterId,
    listen: parseAddress(options.listenAddress, true),
    logger: options.logger,
    frameBytesMax,
    peerBufferBytesMax: positiveInteger(
      options,
      'peerBufferBytesMax',
      frameBytesMax + lengthPrefixBytes,
      Number.MAX_SAFE_INTEGER,
    ),
    snapshotBytesMax: positiveInteger(options, 'snapshotBytesMax', 1, Number.MAX_SAFE_INTEGER),
    snapshotChunkBytesMax: Math.min(chunkBytes, frameBytesMax - chunkHeaderBytesMax),
    // At least Node's own 16 KiB high-water mark, so that stopping at this bound always
    // means a 'drain' event is coming to resume the flush.
    socketBufferBytesMax: positiveInteger(
      options,
      'socketBufferBytesMax',
      socketBufferBytesMin,
      Number.MAX_SAFE_INTEGER,
    ),
    reconnectDelayMsMin,
    reconnectDelayMsMax: positiveInteger(
      options,
      'reconnectDelayMsMax',
      reconnectDelayMsMin,
      3_600_000,
    ),
    handshakeTimeoutMs: positiveInteger(options, 'handshakeTimeoutMs', 1, 3_600_000),
    writeStallTimeoutMs: positiveInteger(options, 'writeStallTimeoutMs', 1, 3_600_000),
    pendingConnectionCountMax: positiveInteger(options, 'pendingConnectionCountMax', 1, 1_000_000),
    pendingConnectionsPerAddressMax: positiveInteger(
      options,
      'pendingConnectionsPerAddressMax',
      1,
      1_000_000,
    ),
    random: options.random ?? Math.random,
    tls: options.tls ?? null,
  };
}
