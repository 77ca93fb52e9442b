/**
 * One simulated machine: its disk (a SimFileSystem that outlives crashes) and, while it is
 * up, one incarnation of the real stack on it — FileStorage over that disk, a BroadcastNode,
 * and the HTTP routes in process — on the simulated network and clock. A crash ends the
 * incarnation (its timers and I/O never complete) and cuts the power: unsynced writes are
 * lost or torn. A restart opens the same disk the way production does.
 */

import type { DeliveredMessage } from '../../broadcast/deliveries.ts';
import type { BroadcastError } from '../../broadcast/errors.ts';
import {
  BroadcastNode,
  type defaultNodeTuning,
  type NodeLogger,
  type NodeObserver,
  type UnsafeOptions,
} from '../../broadcast/node.ts';
import type { Configuration, Entry, HardState, NodeId, Ready, Snapshot } from '../../raft/types.ts';
import type { AuthSource } from '../../server/access.ts';
import { Backfill } from '../../server/backfill.ts';
import { BinaryServer } from '../../server/binary-server.ts';
import type { ServerContext, ServerSettings } from '../../server/context.ts';
import { HttpMetrics } from '../../server/http-metrics.ts';
import { InProcessServer } from '../../server/in-process.ts';
import { PeerReads } from '../../server/peers.ts';
import { FileStorage } from '../../storage/file-storage.ts';
import { MessageStore } from '../../store/store.ts';
import { assert } from '../../util/assert.ts';
import type { Prng } from '../../util/prng.ts';
import { SimFileError, type SimFileSystem } from '../sim-file-system.ts';
import { SimStoreFiles } from '../sim-store-files.ts';
import { AckedLog } from './acked-log.ts';
import { type BinaryNetwork, simBinaryPort } from './binary-network.ts';
import { simEnvironment } from './environment.ts';
import type { ClientNetwork } from './exchange.ts';
import type { StoreMix } from './mix.ts';
import type { RaftWatch } from './raft-watch.ts';
import { Life, type SimScheduler } from './scheduler.ts';
import { type RuntimeNetwork, SimTransport } from './transport.ts';

export const silentLogger: NodeLogger = { info() {}, warn() {}, error() {} };

/** 'failed': stopped for good, its disk found corrupt or short of what it acknowledged. */
export type HostState = 'down' | 'starting' | 'up' | 'failed';

/** The runtime's tuning, every field of `defaultNodeTuning`, chosen per seed. */
export type NodeTuning = { readonly [Key in keyof typeof defaultNodeTuning]: number };

/** What the world learns from a host, for the checkers and the trace. */
export interface HostEvents {
  started(host: NodeHost, lastPosition: number): void;
  delivered(host: NodeHost, message: DeliveredMessage, afterSnapshot: boolean): void;
  /** The node applied a Ready with a leader's snapshot; its positions now run to `lastPosition`. */
  snapshotInstalled(host: NodeHost, lastPosition: number): void;
  /**
   * The node stopped itself (its storage failed or would not open, or it hit a bug): a crash
   * the world did not cause. `storage`: a storage error, not the node's own assertion.
   */
  failed(host: NodeHost, reason: string, storage: boolean): void;
  /** Recovery found less than the storage had acknowledged; the node is not started. */
  lostAcknowledged(host: NodeHost, detail: string): void;
  /** Backfill is about to keep `messages`, fetched from a peer and checked. */
  filled(host: NodeHost, messages: readonly DeliveredMessage[]): void;
  note(host: NodeHost, text: string): void;
}

export interface NodeHostOptions {
  readonly id: NodeId;
  readonly index: number;
  readonly disk: SimFileSystem;
  readonly scheduler: SimScheduler;
  readonly network: RuntimeNetwork;
  readonly clientNetwork: ClientNetwork;
  readonly prng: Prng;
  readonly tuning: NodeTuning;
  /** The core's election guards (Pre-Vote, CheckQuorum), on or off for the whole run. */
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** The initial configuration; null for a machine that joins later. */
  readonly bootstrap: Configuration | null;
  /** This machine's clock rate (drift); its wall clock's offset is `clockOffsetMs`. */
  readonly clockRate: number;
  readonly clockOffsetMs: number;
  readonly peers: ReadonlyMap<NodeId, string>;
  readonly events: HostEvents;
  /** The core's invariants, fed from the node's observer; outlives incarnations. */
  readonly watch: RaftWatch;
  readonly unsafe: UnsafeOptions;
  readonly storageUnsafe: 'ackBeforeDatasync' | null;
  readonly segmentBytesMax: number;
  /** The cluster's identities: every request is authenticated, as with `--auth`; or none. */
  readonly auth: AuthSource | null;
  /** The message store's segments and the retention every node is given. */
  readonly store: StoreMix;
  /** Where clients reach the nodes' binary ports, and the window each port grants. */
  readonly binaryNetwork: BinaryNetwork;
  readonly binaryWindowRequests: number;
  /** How long a binary connection with nothing in flight may send nothing (drawn per seed). */
  readonly binaryIdleTimeoutMs: number;
  /** Where backfill and forwarded reads reach the other machines' HTTP routes. */
  readonly peerNetwork: ClientNetwork;
  /** Every machine's id: backfill asks the others. */
  readonly machineIds: readonly NodeId[];
  /** Sent with every backfill request (a read-everything token, with auth on). */
  readonly backfillHeaders: Readonly<Record<string, string>>;
}

const dataDir = '/data';
/** Beside the WAL, as production keeps it (src/broadcast/start.ts). */
const storeDir = '/data/messages';
/** Positions per backfill request: small, so a hole takes several pages. */
const backfillPageCount = 16;
const backfillIdleMs = 100;

export class NodeHost {
  readonly id: NodeId;
  readonly index: number;
  readonly acked = new AckedLog();
  state: HostState = 'down';
  node: BroadcastNode | null = null;
  private life: Life | null = null;
  private server: InProcessServer | null = null;
  incarnation = 0;
  /** How far this machine's wall clock is off the true virtual time; the nemesis moves it. */
  clockOffsetMs = 0;

  constructor(private readonly options: NodeHostOptions) {
    this.id = options.id;
    this.index = options.index;
    this.clockOffsetMs = options.clockOffsetMs;
  }

  get watch(): RaftWatch {
    return this.options.watch;
  }

  get disk(): SimFileSystem {
    return this.options.disk;
  }

  /** Boots a new incarnation from the disk; resolves once it serves (or failed to start). */
  async start(): Promise<void> {
    if (this.state === 'failed') return;
    assert(this.state === 'down', 'a node starts from down');
    this.state = 'starting';
    this.incarnation++;
    const life = new Life(`${this.id}#${this.incarnation}`);
    this.life = life;
    const environment = simEnvironment({
      scheduler: this.options.scheduler,
      life,
      prng: this.options.prng.fork(),
      clockOffsetMs: () => this.clockOffsetMs,
      clockRate: this.options.clockRate,
    });
    const { events } = this.options;
    let opened: Awaited<ReturnType<typeof FileStorage.open>>;
    try {
      opened = await FileStorage.open({
        dataDir,
        clusterId: 'sim',
        nodeId: this.id,
        log: () => undefined,
        files: this.options.disk,
        environment,
        directoryLock: 'none',
        segmentBytesMax: this.options.segmentBytesMax,
        // The simulator's segments are small: without this, recovery's copy of the entries
        // it keeps (for real segments of megabytes) would never run here. With it, it runs
        // whenever they are less than half their segment's buffer, views are kept otherwise.
        keptEntriesCopySlackBytes: 0,
        ...(this.options.storageUnsafe === null ? {} : { unsafe: this.options.storageUnsafe }),
      });
    } catch (error) {
      if (this.life !== life) return;
      this.state = 'down';
      this.life = null;
      life.end();
      events.failed(this, `storage did not open: ${(error as Error).message}`, true);
      return;
    }
    if (this.life !== life) {
      void opened.storage.close().catch(() => undefined);
      return;
    }
    const loss = this.acked.lossIn(this.id, opened.persisted);
    if (loss !== null) {
      void opened.storage.close().catch(() => undefined);
      this.state = 'down';
      this.life = null;
      life.end();
      events.lostAcknowledged(this, loss);
      return;
    }
    const damage = opened.persisted.damage ?? null;
    if (damage !== null) {
      const bound = damage.lastIndexSeen ?? '?';
      events.note(this, `repairs its log from ${damage.firstLostIndex} (up to ${bound})`);
    }
    let store: MessageStore;
    try {
      store = new MessageStore({
        files: new SimStoreFiles(this.options.disk, storeDir),
        segmentBytesMax: this.options.store.segmentBytesMax,
      });
    } catch (error) {
      this.abortStart(life, opened.storage, 'the message store did not open', error);
      return;
    }
    this.acked.reset(opened.persisted);
    this.options.watch.started(opened.persisted);
    const transport = new SimTransport(this.id, life, this.options.network);
    let node: BroadcastNode;
    try {
      node = new BroadcastNode(
        {
          ...this.options.tuning,
          preVote: this.options.preVote,
          checkQuorum: this.options.checkQuorum,
          id: this.id,
          bootstrap: this.options.bootstrap,
          initialPeers: this.options.peers,
          logger: silentLogger,
          environment,
          observer: this.observer(life),
          unsafe: this.options.unsafe,
          deliveries: { store, backfill: true, retainBytesMax: null },
          retention: this.options.store.retention,
        },
        opened.storage,
        transport,
        opened.persisted,
      );
    } catch (error) {
      // Restoring the store to the snapshot may sync it (a frame cut in place), and a faulty
      // disk may fail that sync: the node stops, as it would on any failed sync.
      this.abortStart(life, opened.storage, 'the message store did not restore', error);
      return;
    }
    await transport.start();
    this.node = node;
    const peerUrls = this.options.machineIds
      .filter((id) => id !== this.id)
      .map((id) => `http://${id}/`);
    const peerReads = new PeerReads(
      peerUrls,
      this.options.peerNetwork.exchangeFor(this.id, life),
      this.options.tuning.requestTimeoutMs,
    );
    const context: ServerContext = {
      node,
      settings: serverSettings(
        this.options.tuning,
        this.options.peers,
        this.options.binaryIdleTimeoutMs,
      ),
      metrics: new HttpMetrics(),
      logger: silentLogger,
      environment,
      auth: this.options.auth,
      peerReads,
      // Offered in /v1/status, as a node listening on a binary port offers it: the SDK
      // given HTTP endpoints moves to it (protocol-upgrade.ts).
      binaryEndpoint: { url: `abcast://${this.id}:${simBinaryPort}` },
    };
    this.server = new InProcessServer(context);
    // The real binary port, through the same dispatcher as the in-process HTTP routes.
    const binary = new BinaryServer({
      context,
      dispatcher: this.server.dispatcher,
      tls: null,
      windowRequests: this.options.binaryWindowRequests,
    });
    this.options.clientNetwork.attach(this.id, this.server, life);
    this.options.binaryNetwork.attach(this.id, life, (end) => binary.acceptConnection(end));
    this.options.peerNetwork.attach(this.id, this.server, life);
    this.state = 'up';
    events.started(this, node.lastPosition);
    node.start();
    this.startBackfill(node, peerReads, environment);
  }

  /** A start that failed once the WAL was open: the incarnation ends, its WAL closed. */
  private abortStart(
    life: Life,
    storage: { close(): Promise<void> },
    what: string,
    error: unknown,
  ): void {
    void storage.close().catch(() => undefined);
    this.state = 'down';
    this.life = null;
    life.end();
    const onDisk = error instanceof SimFileError;
    this.options.events.failed(this, `${what}: ${(error as Error).message}`, onDisk);
  }

  /** The real backfill, its pages checked against what was delivered before it keeps them. */
  private startBackfill(
    node: BroadcastNode,
    peers: PeerReads,
    environment: ReturnType<typeof simEnvironment>,
  ): void {
    const { events } = this.options;
    new Backfill({
      node: {
        id: node.id,
        missingRanges: () => node.missingRanges(),
        fill: (messages) => {
          events.filled(this, messages);
          return node.fill(messages);
        },
      },
      peers,
      environment,
      logger: silentLogger,
      pageCount: backfillPageCount,
      idleIntervalMs: backfillIdleMs,
      headers: { ...this.options.backfillHeaders },
    }).start();
  }

  private observer(life: Life): NodeObserver {
    const { events, watch } = this.options;
    const live = () => this.life === life && life.isAlive;
    // After a leader's snapshot is restored, the node's next delivery resumes after the
    // snapshot's last position, skipping what the snapshot holds.
    let restoring = false;
    return {
      readyTaken: (ready: Ready) => {
        if (!live()) return;
        this.acked.taken(ready);
        watch.taken(ready);
      },
      readyDurable: (ready: Ready, hardStateWritten: HardState | null) => {
        if (!live()) return;
        this.acked.durable();
        watch.durable(ready, hardStateWritten);
        if (ready.snapshot !== null) {
          this.acked.installSnapshot(ready.snapshot);
          restoring = true;
          events.note(this, `installs a snapshot at index ${ready.snapshot.meta.index}`);
        }
        this.acked.append(ready.entriesToAppend);
        if (hardStateWritten !== null) this.acked.hardState = hardStateWritten;
      },
      readyApplied: (ready: Ready) => {
        if (!live()) return;
        watch.applied(ready);
        if (ready.snapshot === null) return;
        // The deliveries of this Ready, if any, have resumed after the snapshot; the next
        // ones must follow on from them (or from the snapshot's last position).
        restoring = false;
        assert(this.node !== null, 'a live incarnation has its node');
        events.snapshotInstalled(this, this.node.lastPosition);
      },
      appliedDuringWrite: (entries: readonly Entry[]) => {
        if (!live()) return;
        watch.appliedDuringWrite(entries);
      },
      compacted: (snapshot: Snapshot) => {
        if (!live()) return;
        this.acked.compact(snapshot);
        watch.compacted(snapshot);
      },
      delivered: (message: DeliveredMessage) => {
        if (!live()) return;
        events.note(this, `delivers ${message.position} (index ${message.index})`);
        events.delivered(this, message, restoring);
        restoring = false;
      },
      stopped: (reason: BroadcastError) => {
        if (!live()) return;
        // The process exits: what it wrote stays in the page cache, no power is cut.
        this.end({ powerCut: false });
        events.failed(this, reason.message, reason.code === 'storage_failed');
      },
    };
  }

  /** Kills the incarnation and cuts the power to its disk. */
  crash(): void {
    this.end({ powerCut: true });
  }

  /** Stops the incarnation for good: its disk is not to be trusted until repair lands. */
  fail(): void {
    this.end({ powerCut: false });
    this.state = 'failed';
  }

  /** Holds the incarnation's timers and inbound work until `untilMs` (a paused process). */
  pause(untilMs: number): void {
    if (this.life !== null) this.life.pausedUntilMs = untilMs;
  }

  private end(how: { readonly powerCut: boolean }): void {
    if (this.state === 'down' || this.state === 'failed') return;
    this.life?.end();
    this.life = null;
    this.options.clientNetwork.detach(this.id);
    this.options.binaryNetwork.detach(this.id);
    this.options.peerNetwork.detach(this.id);
    this.node = null;
    this.server = null;
    this.state = 'down';
    if (how.powerCut) this.options.disk.powerCut();
  }
}

function serverSettings(
  tuning: NodeTuning,
  peers: ReadonlyMap<NodeId, string>,
  binaryIdleTimeoutMs: number,
): ServerSettings {
  return {
    payloadBytesMax: tuning.payloadBytesMax,
    bodyBytesMax: tuning.payloadBytesMax + (64 << 10),
    requestTimeoutMs: tuning.requestTimeoutMs,
    retryAfterSeconds: 1,
    keepAliveIntervalMs: 15_000,
    streamsMax: 64,
    streamsPerIdentityMax: 64,
    messagesLimitDefault: 100,
    messagesLimitMax: 1000,
    messagesScanMax: 10_000,
    messagesPageBytesMax: 4 << 20,
    connectionsMax: 4096,
    binaryIdleTimeoutMs,
    streamStallTimeoutMs: 300_000,
    peers,
  };
}
