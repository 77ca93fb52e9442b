/**
 * `startNode`: the library entry point. Opens (or recovers) the data directory, connects to
 * the peers over TCP and starts the runtime.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { makeConfiguration } from '../raft/config.ts';
import type { NodeId } from '../raft/types.ts';
import { FileStorage } from '../storage/file-storage.ts';
import type { StorageEvent } from '../storage/types.ts';
import { DiskStoreFiles, defaultSegmentBytesMax, MessageStore } from '../store/index.ts';
import { TcpTransport } from '../transport/tcp.ts';
import type { TlsCredentials } from '../transport/tls.ts';
import { systemEnvironment } from '../util/system-environment.ts';
import { BroadcastError } from './errors.ts';
import {
  BroadcastNode,
  type BroadcastNodeOptions,
  defaultNodeTuning,
  type NodeLogger,
} from './node.ts';

export interface StartNodeOptions
  extends Partial<Omit<BroadcastNodeOptions, 'id' | 'bootstrap' | 'logger' | 'environment'>> {
  /** This node's id; must be a key of `peers`. */
  readonly id: NodeId;
  readonly dataDir: string;
  /** "host:port" the node listens on for its peers. */
  readonly listen: string;
  /** Every initial member, this node included: id → "host:port". */
  readonly peers: Readonly<Record<NodeId, string>>;
  /** Nodes of one cluster share it; a data directory or peer of another cluster is refused. */
  readonly clusterId?: string;
  readonly logger?: NodeLogger;
  /** pino level when no logger is given; default "info". */
  readonly logLevel?: string;
  /**
   * Joining a running cluster: start with an empty configuration and wait to be added
   * (`addMember` on any member); `peers` then lists the current members and this node.
   */
  readonly join?: boolean;
  /** WAL segment size; default 64 MiB. */
  readonly segmentBytesMax?: number;
  /** Message store segment size (retention deletes whole segments); default 64 MiB. */
  readonly storeSegmentBytesMax?: number;
  /**
   * Mutual TLS between the nodes (src/transport/tls.ts); the certificate must name this
   * node. Keep the object to rotate the files: `update` applies to new connections.
   */
  readonly peerTls?: TlsCredentials;
}

export async function startNode(options: StartNodeOptions): Promise<BroadcastNode> {
  const peers = new Map(Object.entries(options.peers));
  if (!peers.has(options.id)) {
    throw new BroadcastError(
      'invalid_argument',
      `the peer list does not include the node itself (${options.id})`,
      {
        field: 'peers',
      },
    );
  }
  const tuning = tuningFrom(options);
  // The largest Append carries appendBytesMax of entries, or one batch of up to
  // batchBytesMax plus one payload: frames must fit it, or it could never replicate.
  const largestAppendBytes = Math.max(
    tuning.appendBytesMax,
    tuning.batchBytesMax + tuning.payloadBytesMax,
  );
  const frameBytesMax = Math.max(4 << 20, largestAppendBytes + (64 << 10));
  const clusterId = options.clusterId ?? 'abcast';
  const logger: NodeLogger =
    options.logger ?? pino({ name: 'abcast', level: options.logLevel ?? 'info' });
  const { storage, persisted } = await FileStorage.open({
    dataDir: options.dataDir,
    clusterId,
    nodeId: options.id,
    ...(options.segmentBytesMax === undefined ? {} : { segmentBytesMax: options.segmentBytesMax }),
    log: (event) => logger.warn({ node: options.id, ...event }, describeStorageEvent(event)),
  });
  // The message store sits beside the WAL, in its own folder: the WAL ignores it.
  const store = new MessageStore({
    files: new DiskStoreFiles(join(options.dataDir, 'messages')),
    segmentBytesMax: options.storeSegmentBytesMax ?? defaultSegmentBytesMax,
  });
  const transport = new TcpTransport({
    nodeId: options.id,
    clusterId,
    listenAddress: options.listen,
    logger,
    frameBytesMax,
    tls: options.peerTls ?? null,
  });
  try {
    await store.syncFound();
    transport.setPeers(peers);
    await transport.start();
  } catch (error) {
    await transport.close();
    await storage.close();
    store.close();
    throw error;
  }
  const node = new BroadcastNode(
    {
      ...tuning,
      id: options.id,
      bootstrap: options.join === true ? null : makeConfiguration([...peers.keys()], []),
      initialPeers: peers,
      deliveries: { store, backfill: true, retainBytesMax: null },
      ...(options.retention === undefined ? {} : { retention: options.retention }),
      ...(options.compactTopics === undefined ? {} : { compactTopics: options.compactTopics }),
      logger,
      // A process runs on the real clock; the simulator builds its nodes itself.
      environment: systemEnvironment,
    },
    storage,
    transport,
    persisted,
  );
  node.start();
  return node;
}

/** The runtime's tuning: the defaults, overridden by whichever of them `options` sets. */
function tuningFrom(options: StartNodeOptions): typeof defaultNodeTuning {
  const tuning: Record<string, number> = { ...defaultNodeTuning };
  for (const key of Object.keys(defaultNodeTuning)) {
    const value = (options as unknown as Record<string, unknown>)[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new BroadcastError('invalid_argument', `${key} must be a positive number`, {
        field: key,
      });
    }
    tuning[key] = value;
  }
  return tuning as typeof defaultNodeTuning;
}

/**
 * What an operator reads in the log. Damage gets a sentence of its own: what was lost, that
 * the node repairs it from the leader, and where the recovery steps are when it cannot.
 */
function describeStorageEvent(event: StorageEvent): string {
  if (
    event.type !== 'walDamaged' &&
    event.type !== 'repairPending' &&
    event.type !== 'snapshotDamaged'
  ) {
    return `storage: ${event.type}`;
  }
  const seen =
    event.lastIndexSeen === null ? '' : ` (it held at least up to ${event.lastIndexSeen})`;
  const found =
    event.type === 'walDamaged'
      ? `corrupted WAL record in ${event.file} at byte ${event.offsetBytes} (${event.reason})`
      : event.type === 'snapshotDamaged'
        ? `${event.reason} (kept as ${event.file}.damaged; the whole log is dropped with it)`
        : 'the damage found at an earlier start is not repaired yet';
  return (
    `storage: ${found}: log entries from ${event.firstLostIndex} on may be lost${seen}, ` +
    `in term ${event.termBound} or earlier. Repairing: this node does not campaign, and votes ` +
    `only for a candidate whose log ends in a term above ${event.termBound}, until a leader ` +
    'of such a term has sent its log again. If no leader can be elected without this node ' +
    '(a majority damaged), the cluster stops instead of delivering wrongly: see ' +
    'docs/design.md, "Repair of a corrupted log"'
  );
}
