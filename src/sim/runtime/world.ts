/**
 * A simulated run of the code users run: N real BroadcastNodes with the real WAL code over
 * simulated disks, their HTTP routes in process and their binary ports over simulated TCP,
 * and real SDK clients, on one virtual clock and one seed. In the fault phase the nemesis
 * (nemesis.ts) crashes machines (cutting their disks' power), partitions and pauses them,
 * sets their clocks off, changes the membership, moves leadership and rots a minority's
 * disks, while the networks lose, delay and duplicate frames, requests and answers, and
 * faulty disks lose, misdirect and refuse writes. Then the liveness phase heals everything,
 * restarts every machine, stops faults, and each client sends one more broadcast: all must
 * succeed and every healthy member must deliver everything within a budget. The checkers
 * look at every step: the core's invariants (raft-watch.ts), the frames
 * (frame-checker.ts), and the broadcast as nodes and clients see it (delivery-checker.ts).
 */
import type { UnsafeOptions } from '../../broadcast/node.ts';
import { type UnsafeVariant, unsafeVariants } from '../../raft/core.ts';
import type { Configuration, NodeId } from '../../raft/types.ts';
import type { Frame } from '../../transport/types.ts';
import { assert } from '../../util/assert.ts';
import { Prng } from '../../util/prng.ts';
import { Checker } from '../checkers.ts';
import { perfectNetwork, SimNetwork, shuffle } from '../network.ts';
import { NO_DISK_FAULTS, SimFileSystem } from '../sim-file-system.ts';
import { type Property, type SimViolation, ViolationContext } from '../violation.ts';
import { BinaryNetwork } from './binary-network.ts';
import { type ClientPath, Workload } from './clients.ts';
import { DeliveryChecker } from './delivery-checker.ts';
import { ClientNetwork, calmClientNetwork, type RunFrames, runFrameCall } from './exchange.ts';
import { FrameChecker } from './frame-checker.ts';
import { simAuth } from './identities.ts';
import {
  type ClientMix,
  describeRuntimeMix,
  drawRuntimeMix,
  type Profile,
  type RuntimeMix,
} from './mix.ts';
import { type NemesisCounts, type NemesisWorld, RuntimeNemesis } from './nemesis.ts';
import { NodeHost, type NodeTuning } from './node-host.ts';
import { RaftWatch } from './raft-watch.ts';
import { Life, SimScheduler, settle } from './scheduler.ts';
import { StoreChecker, type StoreView } from './store-checker.ts';
import { SubscriberChecker } from './subscriber-checker.ts';
import { type SubscriberPlan, Subscribers } from './subscribers.ts';
import { RuntimeNetwork } from './transport.ts';

const layerUnsafeVariants = [
  'answerBeforeCommit',
  'dropSessionsOnRestore',
  'deliverSeqGapAtOnce',
  'ackBeforeDatasync',
  'moveSentMessage',
  'ignoreSessionOwner',
  'retainLocally',
] as const;

/** Deliberately broken core, node, WAL and SDK variants, for tests of the checkers only. */
export type RuntimeUnsafe = (typeof layerUnsafeVariants)[number] | UnsafeVariant;

export const runtimeUnsafeVariants: readonly RuntimeUnsafe[] = [
  ...layerUnsafeVariants,
  ...unsafeVariants,
];

export interface RuntimeRunOptions {
  readonly seed: number;
  readonly nodeCount?: number | null;
  /** default: each seed draws a shape; broad, elections, figure8, calm fix one. */
  readonly profile?: Profile;
  /** default mixed: seeds draw shared client ids and barriers; plain: no seed does. */
  readonly clients?: ClientMix;
  readonly unsafe?: RuntimeUnsafe | null;
  readonly faultPhaseMs?: number;
  readonly traceSink?: ((line: string) => void) | null;
  /**
   * Every node's WAL segment size instead of the drawn one: small segments rotate often, and
   * with the snapshots' compaction their files are recycled (stale records after new ones).
   */
  readonly walSegmentBytes?: number | null;
}

export interface RuntimeRunStats extends NemesisCounts {
  steps: number;
  virtualMs: number;
  /** Machines with faulty disks that stopped themselves, or were stopped for good. */
  diskStops: number;
  positions: number;
  calls: number;
  /** Broadcasts refused because another client's session held their client id. */
  foreignRefusals: number;
  barriers: number;
  framesSent: number;
  framesLost: number;
  /** broadcastRun frames the SDK clients sent to a node (the binary port's way). */
  runFramesSent: number;
  /** Connections SDK clients opened to nodes' real binary ports, and those reset. */
  binaryConnections: number;
  binaryResets: number;
  /** SDK subscribers, the messages they yielded and the progress marks they passed. */
  subscribers: number;
  subscriberMessages: number;
  subscriberProgressMarks: number;
  /** Terms in which some node led, and log indexes committed, as the core's checker saw. */
  leaderTerms: number;
  committedIndex: number;
}

export interface RuntimeRunResult {
  readonly seed: number;
  readonly mix: RuntimeMix;
  readonly violation: SimViolation | null;
  readonly stats: RuntimeRunStats;
}

export const defaultFaultPhaseMs = 8_000;
const livenessBudgetMs = 60_000;
const eventsMax = 2_000_000;
const stepsMax = 3_000_000;
/** Mixed into the seed for the tokens' own generator. */
const authSeedSalt = 0x7a0c3e11;
/** Mixed into the seed for the peers' network and the store checker's samples. */
const storeSeedSalt = 0x5701e5a1;
const runFramesSeedSalt = 0x2f7a61c3;
const probeDelaySeedSalt = 0x5c1e0b97;
const binarySeedSalt = 0x6b1a4e0d;
const subscriberSeedSalt = 0x3d5b9f27;
const binaryDeadlineSeedSalt = 0x1e93c47b;

/** The SDK clients' deadlines. */
const clientBounds = { requestTimeoutMs: 500, unavailableAfterMs: 5_000, abandonAfterMs: 20_000 };
/** Steps between two samples of what the nodes' stores serve. */
const storeSampleEverySteps = 1024;
/** A supervisor restarts a node that stopped itself on a faulty disk after this long. */
const restartAfterStopMs = 100;
/** Records the first violation instead of throwing it into the code under test. */
class RecordingContext extends ViolationContext {
  first: SimViolation | null = null;

  override fail(property: Property, detail: string, nodes: readonly NodeId[]): void {
    if (this.disabled.has(property)) return;
    this.first ??= this.violation(property, detail, nodes);
  }
}

export async function runRuntimeSeed(options: RuntimeRunOptions): Promise<RuntimeRunResult> {
  const world = new RuntimeWorld(options);
  return world.run();
}

class RuntimeWorld {
  private readonly prng: Prng;
  private readonly nemesis: RuntimeNemesis;
  /** Machines whose disks misbehave beyond a power cut's losses: a minority, by id. */
  private readonly faultyDisks = new Set<NodeId>();
  private readonly initialConfig: Configuration;
  readonly mix: RuntimeMix;
  private readonly context: RecordingContext;
  private readonly scheduler: SimScheduler;
  private readonly network: SimNetwork;
  private readonly clientNetwork: ClientNetwork;
  /** Node to node HTTP (backfill, forwarded reads): the clients' faults, its own draws. */
  private readonly peerNetwork: ClientNetwork;
  /** Where some clients reach the nodes' real binary ports, over simulated TCP. */
  private readonly binaryNetwork: BinaryNetwork;
  private readonly checker: DeliveryChecker;
  private readonly storeChecker: StoreChecker;
  private readonly frameChecker: FrameChecker;
  private readonly coreChecker: Checker;
  private readonly hosts: NodeHost[] = [];
  private readonly workload: Workload;
  private readonly subscribers: Subscribers;
  private readonly subscriberChecker: SubscriberChecker;
  private readonly worldLife = new Life('world');
  private readonly stats: RuntimeRunStats = {
    steps: 0,
    virtualMs: 0,
    crashes: 0,
    partitions: 0,
    pauses: 0,
    clockJumps: 0,
    memberChanges: 0,
    transfers: 0,
    campaigns: 0,
    corruptions: 0,
    diskStops: 0,
    positions: 0,
    calls: 0,
    foreignRefusals: 0,
    barriers: 0,
    framesSent: 0,
    framesLost: 0,
    runFramesSent: 0,
    binaryConnections: 0,
    binaryResets: 0,
    subscribers: 0,
    subscriberMessages: 0,
    subscriberProgressMarks: 0,
    leaderTerms: 0,
    committedIndex: 0,
  };
  private faultsOn = true;
  private readonly unsafe: RuntimeUnsafe | null;
  private readonly trace: ((line: string) => void) | null;

  constructor(private readonly options: RuntimeRunOptions) {
    assert(options.seed >>> 0 === options.seed, 'seeds are u32');
    this.prng = new Prng(options.seed);
    const profile = options.profile ?? 'default';
    const clients = options.clients ?? 'mixed';
    const drawn = drawRuntimeMix(this.prng.fork(), {
      profile,
      nodeCount: options.nodeCount ?? null,
      clients,
    });
    // Set after the draw, so that every other draw of the seed stays as it was.
    const walSegmentBytes = options.walSegmentBytes ?? null;
    this.mix = walSegmentBytes === null ? drawn : { ...drawn, segmentBytesMax: walSegmentBytes };
    const nemesisPrng = this.prng.fork();
    this.unsafe = options.unsafe ?? null;
    this.trace = options.traceSink ?? null;
    this.context = new RecordingContext({
      seed: options.seed,
      nodeCount: options.nodeCount ?? null,
      unsafe: options.unsafe ?? null,
      profile: profile === 'default' ? null : profile,
      clients: clients === 'mixed' ? null : clients,
      walSegmentBytes: options.walSegmentBytes ?? null,
    });
    this.scheduler = new SimScheduler(this.prng.fork(), eventsMax);
    const machineCount = this.mix.nodeCount + this.mix.spareCount;
    this.network = new SimNetwork(machineCount, this.prng.fork(), this.mix.network);
    const machines = Array.from({ length: machineCount }, (_, index) => `n${index + 1}`);
    const ids = machines.slice(0, this.mix.nodeCount);
    this.initialConfig = { voters: ids, learners: [] };
    const diskOrder = shuffle(this.prng.fork(), ids);
    for (const id of diskOrder.slice(0, this.mix.faultyDiskCount)) this.faultyDisks.add(id);
    const runtimeNetwork = new RuntimeNetwork(
      this.scheduler,
      this.network,
      (id) => {
        const index = machines.indexOf(id);
        return index < 0 ? null : index;
      },
      this.mix.msPerTick,
      (event) => {
        if (event.kind === 'sent') {
          this.stats.framesSent++;
          this.frameChecker.onSent(event.frame);
          this.onFrameSent(event.frame);
        } else if (event.kind === 'lost') this.stats.framesLost++;
      },
    );
    this.clientNetwork = new ClientNetwork(this.scheduler, this.prng.fork(), (event) => {
      if (event.kind === 'request' && event.fate === 'sent' && event.what === runFrameCall) {
        this.stats.runFramesSent++;
      }
    });
    this.clientNetwork.faults = this.mix.clientNetwork;
    // Generators of their own, so that adding them changed no other draw.
    const storePrng = new Prng((options.seed ^ storeSeedSalt) >>> 0);
    const machineIndex = (id: string) => machines.indexOf(id);
    this.peerNetwork = new ClientNetwork(
      this.scheduler,
      storePrng.fork(),
      () => undefined,
      (from, to) => this.network.linkUp(machineIndex(from), machineIndex(to)),
    );
    this.peerNetwork.faults = this.mix.clientNetwork;
    // A generator of its own, so that adding the binary port changed no other draw.
    const binaryPrng = new Prng((options.seed ^ binarySeedSalt) >>> 0);
    this.binaryNetwork = new BinaryNetwork(
      this.scheduler,
      binaryPrng.fork(),
      this.clientNetwork,
      (text) => this.note(text),
    );
    // Small windows make calls wait for a slot, as a node granting few would.
    const binaryWindowRequests = binaryPrng.pick([1, 2, 4, 1024]);
    // Short idle timeouts close connections between a client's calls (goAway idle_timeout),
    // and the SDK must send what crossed the goAway again on a new one; the default one
    // never fires in a run. A generator of its own, so that drawing it changed no other draw.
    const binaryIdleTimeoutMs = new Prng((options.seed ^ binaryDeadlineSeedSalt) >>> 0).pick([
      300_000, 300_000, 2_000, 300,
    ]);
    this.checker = new DeliveryChecker(this.context);
    this.storeChecker = new StoreChecker(
      this.context,
      (position) => this.checker.deliveredAt(position),
      storePrng.fork(),
    );
    this.coreChecker = new Checker(this.context, new Set(machines));
    this.subscriberChecker = new SubscriberChecker(
      this.context,
      (position) => this.checker.deliveredAt(position),
      () => this.checker.lastPosition,
    );
    // A generator of its own, so that adding subscribers changed no other draw.
    const subscriberPrng = new Prng((options.seed ^ subscriberSeedSalt) >>> 0);
    const subscriberPlans = clients === 'plain' ? [] : drawSubscriberPlans(subscriberPrng.fork());
    const topicPrng = subscriberPrng.fork();
    const topicOf = subscriberPlans.some((plan) => plan.topic !== null)
      ? () => topicPrng.pick(broadcastTopics)
      : null;
    this.frameChecker = new FrameChecker(this.context, (id) => {
      const host = this.hosts.find((candidate) => candidate.id === id);
      return host === undefined || host.state !== 'up' ? null : host.acked;
    });
    const tuning = this.tuning();
    // Tokens come from a generator of their own, so that adding them changed no other draw.
    // Plain clients are the workload from before identities: no authentication at all.
    const auth =
      clients === 'plain' ? null : simAuth(new Prng((options.seed ^ authSeedSalt) >>> 0));
    const peers = new Map(ids.map((id) => [id, `${id}:7000`] as const));
    for (const [index, id] of machines.entries()) {
      const hostPrng = this.prng.fork();
      const drift = this.mix.clockDriftMax;
      const skew = this.mix.clockSkewMsMax;
      this.hosts.push(
        new NodeHost({
          id,
          index,
          disk: this.makeDisk(hostPrng.fork(), this.faultyDisks.has(id)),
          scheduler: this.scheduler,
          network: runtimeNetwork,
          clientNetwork: this.clientNetwork,
          prng: hostPrng.fork(),
          tuning,
          preVote: this.mix.preVote,
          checkQuorum: this.mix.checkQuorum,
          bootstrap: index < this.mix.nodeCount ? this.initialConfig : null,
          clockRate: drift === 0 ? 1 : 1 - drift + 2 * drift * hostPrng.next(),
          clockOffsetMs: skew === 0 ? 0 : hostPrng.between(-skew, skew),
          peers,
          events: this.hostEvents(),
          watch: new RaftWatch(id, this.coreChecker, this.context),
          unsafe: this.nodeUnsafe(),
          storageUnsafe: this.unsafe === 'ackBeforeDatasync' ? this.unsafe : null,
          segmentBytesMax: this.mix.segmentBytesMax,
          auth: auth?.source ?? null,
          store: this.mix.store,
          peerNetwork: this.peerNetwork,
          binaryNetwork: this.binaryNetwork,
          binaryWindowRequests,
          binaryIdleTimeoutMs,
          machineIds: machines,
          backfillHeaders: auth === null ? {} : { authorization: `Bearer ${auth.backfillToken}` },
        }),
      );
    }
    this.workload = new Workload({
      scheduler: this.scheduler,
      checker: this.checker,
      mix: this.mix,
      payloadBytesMax: tuning.payloadBytesMax,
      bounds: clientBounds,
      prng: this.prng.fork(),
      network: this.clientNetwork,
      // Every machine, as a deployment lists its hosts: the initial members may all be
      // removed or stopped for good while machines added later carry the cluster, and an SDK
      // that knows none of those could not reach it (seed 0xc7d3).
      nodeIds: machines,
      tokens: auth?.tokens ?? null,
      note: (text) => this.note(text),
      unsafe: this.unsafe === 'moveSentMessage' ? this.unsafe : null,
      binaryNetwork: this.binaryNetwork,
      pathOf: this.clientPathChooser(options.seed, machines, binaryPrng.fork(), clients),
      topicOf,
    });
    this.subscribers = new Subscribers({
      scheduler: this.scheduler,
      checker: this.subscriberChecker,
      plans: subscriberPlans,
      prng: subscriberPrng.fork(),
      nodeIds: machines,
      token: auth?.tokens[0] ?? null,
      bounds: clientBounds,
      binaryNetwork: this.binaryNetwork,
      clientNetwork: this.clientNetwork,
      deliveredCount: () => this.checker.lastPosition,
      note: (text) => this.note(text),
    });
    this.stats.subscribers = subscriberPlans.length;
    this.nemesis = new RuntimeNemesis(this.nemesisWorld(), nemesisPrng);
    runtimeNetwork.holdBack = (frame, deliver) => this.nemesis.holdVoteAnswer(frame, deliver);
  }

  /**
   * How each client reaches the nodes, in the order the workload connects them. Some
   * (always one of the ordinary clients, so that every seed runs it) over the real binary
   * port on simulated TCP, half of those given HTTP endpoints and moving to the port as
   * the SDK does by default; the others in process, most sending their runs as broadcastRun
   * frames through the protocol's codec, some as batch requests. `--clients plain` keeps
   * the worlds from before the binary port: all in process.
   */
  private clientPathChooser(
    seed: number,
    machines: readonly NodeId[],
    prng: Prng,
    clients: ClientMix,
  ): () => ClientPath {
    const runFramesOf = this.runFramesChooser(seed, machines);
    const surelyBinary = clients === 'plain' ? -1 : prng.below(this.mix.clientCount);
    let index = 0;
    return () => {
      const binary = index === surelyBinary || (clients !== 'plain' && prng.chance(1 / 3));
      index++;
      if (binary) return { kind: 'binary', upgrade: prng.chance(1 / 2) };
      return { kind: 'inProcess', runFrames: runFramesOf() };
    };
  }

  /**
   * How an in-process client sends its runs: most as the SDK does over the binary port
   * (broadcastRun frames through the protocol's codec), some as over HTTP (batch requests),
   * and now and then with one machine playing a build that lacks the frame, as in a rolling
   * upgrade. A generator of its own, so that the choice changes no other draw.
   */
  private runFramesChooser(seed: number, machines: readonly NodeId[]): () => RunFrames | null {
    const prng = new Prng((seed ^ runFramesSeedSalt) >>> 0);
    const probePrng = new Prng((seed ^ probeDelaySeedSalt) >>> 0);
    // A slow probe waits up to past the SDK's deadline: its runs may time out instead.
    const probeDelayMs = () =>
      probePrng.chance(1 / 2) ? 0 : probePrng.between(0, 2 * clientBounds.requestTimeoutMs);
    return () => {
      if (prng.chance(1 / 3)) return null;
      const older = prng.chance(1 / 4) ? [prng.pick(machines)] : [];
      return { nodesWithoutFrame: new Set(older), probeDelayMs };
    };
  }

  /**
   * A machine's disk: every one loses or tears unsynced writes at a power cut; a faulty one
   * also loses and misdirects writes, fails datasyncs and fills up, as the mix says.
   */
  private makeDisk(prng: Prng, faulty: boolean): SimFileSystem {
    const mix = this.mix;
    const latencyPrng = prng.fork();
    return new SimFileSystem({
      prng: prng.fork(),
      sectorBytes: mix.sectorBytes,
      schedule: (delayMs: number, fire: () => void) => {
        this.scheduler.schedule(delayMs, this.worldLife, fire);
      },
      delayMs: (operation) =>
        operation === 'datasync' ? latencyPrng.between(0, mix.datasyncMsMax) : 0,
      ...(faulty ? { faults: mix.diskFaults, capacityBytes: mix.faultyDiskBytesMax } : {}),
    });
  }

  private nemesisWorld(): NemesisWorld {
    const world = this;
    return {
      mix: this.mix,
      scheduler: this.scheduler,
      life: this.worldLife,
      hosts: this.hosts,
      network: this.network,
      clientNetwork: this.clientNetwork,
      counts: this.stats,
      get faultsOn() {
        return world.faultsOn;
      },
      committedConfig: () => this.committedConfig(),
      isFaultyDisk: (host) => this.faultyDisks.has(host.id),
      startHost: (host) => void this.startHost(host),
      note: (text) => this.note(text),
    };
  }

  /**
   * No machine the nemesis removed came back into the committed configuration: it never asks
   * to add one again, so a return is the leader adding it back from its own table.
   */
  private checkRemovedStayOut(): void {
    for (const id of this.nemesis.removedIds()) {
      const back = this.coreChecker.record.returnOf(id);
      if (back === null) continue;
      this.context.fail(
        'membership',
        `${id} left the configuration at index ${back.leftAtIndex} and was back at ${back.backAtIndex}`,
        [id],
      );
      return;
    }
  }

  /** The configuration the committed log ends with (the initial one until a change). */
  private committedConfig(): Configuration {
    const record = this.coreChecker.record;
    return record.latestConfigIndex === 0 ? this.initialConfig : record.latestConfig();
  }

  /** A Raft message leaving a live node goes to its watch; forwarding frames do not. */
  private onFrameSent(frame: Frame): void {
    if (frame.type === 'Forward' || frame.type === 'ForwardResult') return;
    const host = this.hosts.find((candidate) => candidate.id === frame.from);
    assert(host !== undefined, 'frames come from known nodes');
    host.watch.sent(frame);
    this.nemesis.afterSent(frame);
  }

  /** The node's broken variant, if the run plants one there or in the core. */
  private nodeUnsafe(): UnsafeOptions {
    const unsafe = this.unsafe;
    if ((unsafeVariants as readonly string[]).includes(unsafe ?? '')) {
      return { core: unsafe as UnsafeVariant };
    }
    return unsafe === 'answerBeforeCommit' ||
      unsafe === 'dropSessionsOnRestore' ||
      unsafe === 'deliverSeqGapAtOnce' ||
      unsafe === 'ignoreSessionOwner' ||
      unsafe === 'retainLocally'
      ? { [unsafe]: true }
      : {};
  }

  private tuning(): NodeTuning {
    const mix = this.mix;
    return {
      tickIntervalMs: mix.msPerTick,
      electionTimeoutTicks: mix.electionTimeoutTicks,
      heartbeatIntervalTicks: mix.heartbeatIntervalTicks,
      batchBytesMax: mix.batchBytesMax,
      payloadBytesMax: 2048,
      pendingMessagesMax: 10_000,
      pendingBytesMax: 4 << 20,
      sessionsMax: 1_000,
      sessionsPerIdentityMax: 1_000,
      requestTimeoutMs: 1_000,
      retryIntervalMs: 200,
      snapshotIntervalBytes: mix.snapshotIntervalBytes,
      retainBytesMax: 1 << 20,
      sessionTtlMs: 3_600_000,
      inflightAppendsMax: mix.inflightAppendsMax,
      appendBytesMax: mix.appendBytesMax,
    };
  }

  private hostEvents() {
    return {
      started: (host: NodeHost, lastPosition: number) => {
        this.checker.onNodeStarted(host.id, lastPosition);
        this.note(
          `${host.id} starts (incarnation ${host.incarnation}), delivered up to ${lastPosition}`,
        );
      },
      delivered: (
        host: NodeHost,
        message: Parameters<DeliveryChecker['onDelivered']>[1],
        afterSnapshot: boolean,
      ) => {
        this.checker.onDelivered(host.id, message, afterSnapshot);
      },
      snapshotInstalled: (host: NodeHost, lastPosition: number) => {
        this.checker.onSnapshotInstalled(host.id, lastPosition);
      },
      filled: (host: NodeHost, messages: Parameters<StoreChecker['onFilled']>[1]) => {
        this.storeChecker.onFilled(host.id, messages);
      },
      failed: (host: NodeHost, reason: string, storage: boolean) =>
        this.onFailed(host, reason, storage),
      lostAcknowledged: (host: NodeHost, detail: string) => {
        if (!this.faultyDisks.has(host.id)) {
          this.context.fail('durability', detail, [host.id]);
          return;
        }
        // A faulty disk lost acknowledged writes that recovery did not report (reported damage
        // is repaired from a leader: see AckedLog.lossIn): the node must not run on them, and
        // nothing can tell it what to repair, so it stays out; a majority keeps them.
        host.fail();
        this.stats.diskStops++;
        this.note(
          `${host.id} stays down for good: its faulty disk lost what it acknowledged (${detail})`,
        );
      },
      note: (host: NodeHost, text: string) => this.note(`${host.id} ${text}`),
    };
  }

  /**
   * A node stopped itself. A bug anywhere, or a healthy disk failing, is a violation. A faulty
   * disk's error is the node doing right (it must stop using storage after an EIO): it
   * restarts from what is durable, as a supervisor would restart it, unless its storage
   * would not even open (corruption recovery cannot repair: a snapshot, the metadata, or a
   * WAL record without a hard state after it), then it stays down for good. A corrupted WAL
   * record it can repair opens, and the node repairs from a leader (docs/design.md).
   */
  private onFailed(host: NodeHost, reason: string, storage: boolean): void {
    this.note(`${host.id} stops itself: ${reason}`);
    if (!storage || !this.faultyDisks.has(host.id)) {
      this.context.fail('no crash', `${host.id}: ${reason}`, [host.id]);
      return;
    }
    this.stats.diskStops++;
    if (host.state === 'starting' || reason.startsWith('storage did not open')) {
      host.fail();
      this.note(`${host.id} stays down for good: its storage does not open`);
      return;
    }
    this.scheduler.schedule(restartAfterStopMs, this.worldLife, () => {
      if (host.state === 'down') void this.startHost(host);
    });
  }

  private note(text: string): void {
    if (this.trace !== null) this.trace(`${String(this.scheduler.nowMs).padStart(7)} ${text}`);
  }

  async run(): Promise<RuntimeRunResult> {
    this.note(describeRuntimeMix(this.mix));
    try {
      for (const host of this.hosts) if (host.index < this.mix.nodeCount) void this.startHost(host);
      this.workload.begin(this.worldLife);
      this.subscribers.begin(this.worldLife);
      this.nemesis.begin();
      const faultPhaseMs = this.options.faultPhaseMs ?? defaultFaultPhaseMs;
      await this.runUntil(faultPhaseMs, () => false);
      if (this.context.first === null) await this.livenessPhase();
      if (this.context.first === null) this.checker.checkAllPromisesKept();
      if (this.context.first === null) this.storeChecker.checkSettled(this.storeViews());
      if (this.context.first === null) this.checkRemovedStayOut();
    } catch (error) {
      this.context.fail('no crash', `the simulation threw: ${(error as Error).stack ?? error}`, []);
    } finally {
      // Counted before the end's crashes reset every connection left.
      this.stats.binaryConnections = this.binaryNetwork.counts.connections;
      this.stats.binaryResets = this.binaryNetwork.counts.resets;
      this.workload.close();
      this.subscribers.close();
      for (const host of this.hosts) host.crash();
      this.scheduler.clear();
    }
    this.stats.virtualMs = this.scheduler.nowMs;
    this.stats.positions = this.checker.lastPosition;
    this.stats.calls = this.checker.callCount;
    this.stats.foreignRefusals = this.workload.counts.foreignRefusals;
    this.stats.barriers = this.workload.counts.barriers;
    this.stats.subscriberMessages = this.subscriberChecker.counts.messages;
    this.stats.subscriberProgressMarks = this.subscriberChecker.counts.progressMarks;
    this.stats.leaderTerms = this.coreChecker.leaderCount;
    this.stats.committedIndex = this.coreChecker.record.length;
    return {
      seed: this.options.seed,
      mix: this.mix,
      violation: this.context.first,
      stats: this.stats,
    };
  }

  private async startHost(host: NodeHost): Promise<void> {
    await host.start();
  }

  /** Steps until `untilMs`, a violation, or `done()`; true when done() held. */
  private async runUntil(untilMs: number, done: () => boolean): Promise<boolean> {
    // A call may wait unavailableAfterMs for an in-flight slot (slots stay taken while
    // earlier messages are still being sent), then as long again for an answer.
    const bounds = this.workload.bounds;
    const boundMs = 2 * bounds.unavailableAfterMs + bounds.requestTimeoutMs * 4 + 2_000;
    while (this.context.first === null) {
      if (done()) return true;
      if (!this.scheduler.runNext(untilMs)) return done();
      await settle();
      this.stats.steps++;
      this.context.step = this.stats.steps;
      this.context.tick = this.scheduler.nowMs;
      assert(this.stats.steps < stepsMax, 'a run ends within a bounded number of steps');
      if (this.stats.steps % storeSampleEverySteps === 0) {
        this.storeChecker.sample(this.storeViews(this.hosts));
      }
      if (this.stats.steps % 256 === 0) {
        const overdue = this.checker.overdue(this.scheduler.nowMs, boundMs);
        if (overdue.length > 0) {
          this.context.fail(
            'liveness',
            `a broadcast has not settled within ${boundMs} ms: ${overdue.slice(0, 3).join(', ')}`,
            [],
          );
        }
      }
    }
    return false;
  }

  // ------------------------------------------------------------ liveness

  private async livenessPhase(): Promise<void> {
    this.faultsOn = false;
    this.network.heal();
    this.network.faults = { ...perfectNetwork, latencyTicksMax: this.mix.network.latencyTicksMax };
    this.clientNetwork.heal();
    this.clientNetwork.faults = calmClientNetwork;
    this.peerNetwork.faults = calmClientNetwork;
    for (const host of this.hosts) {
      host.disk.setFaults(NO_DISK_FAULTS);
      host.pause(0);
      if (host.state === 'down') void this.startHost(host);
    }
    this.note('liveness phase: network healed, faults stop, every machine runs');
    const startMs = this.scheduler.nowMs;
    this.workload.finish();
    const reached = await this.runUntil(startMs + livenessBudgetMs, () => {
      if (!this.workload.allFinalResolved || this.workload.outstanding !== 0) return false;
      const required = this.requiredHosts();
      return (
        required.every((host) => host.state === 'up') &&
        this.checker.lagging(required.map((host) => host.id)).length === 0 &&
        this.storeChecker.unsettled(this.storeViews()) === null &&
        // Wherever they read: a removed machine left running ends its streams with no_leader
        // (broadcast/leader-watch.ts), so its subscribers go on elsewhere with no one's help.
        this.subscriberChecker.lagging().length === 0
      );
    });
    if (!reached && this.context.first === null) {
      const required = this.requiredHosts();
      const caughtUp =
        required.every((host) => host.state === 'up') &&
        this.checker.lagging(required.map((host) => host.id)).length === 0;
      const unsettled = caughtUp ? this.storeChecker.unsettled(this.storeViews()) : null;
      if (unsettled !== null) {
        this.context.fail(
          'retained range',
          `${this.scheduler.nowMs - startMs} ms after faults stopped: ${unsettled}`,
          required.map((host) => host.id),
        );
        return;
      }
      const lagging = this.checker.lagging(required.map((host) => host.id));
      const subscribersBehind = this.subscriberChecker.lagging();
      const down = required.filter((host) => host.state !== 'up').map((host) => host.id);
      this.context.fail(
        'liveness',
        `${this.scheduler.nowMs - startMs} ms after faults stopped: ${this.checker.lastPosition} positions delivered; lagging: ${lagging.join(', ') || 'none'}; down: ${down.join(', ') || 'none'}; clients waiting: ${this.workload.describeWaiting() || 'none'}; outstanding calls ${this.workload.outstanding}; subscribers behind: ${subscribersBehind.join(', ') || 'none'}`,
        lagging,
      );
    }
  }

  /** The running nodes among `hosts` (default: the required ones), for the store checker. */
  private storeViews(hosts: readonly NodeHost[] = this.requiredHosts()): StoreView[] {
    const views: StoreView[] = [];
    for (const host of hosts) {
      if (host.state === 'up' && host.node !== null) views.push({ id: host.id, node: host.node });
    }
    return views;
  }

  /**
   * Who must deliver everything once faults stop: the members of the committed
   * configuration on healthy disks. A faulty disk's machine may have stopped for good (at
   * most a minority), and a removed machine need not follow the log any more.
   */
  private requiredHosts(): NodeHost[] {
    const config = this.committedConfig();
    const members = new Set([...config.voters, ...config.learners]);
    return this.hosts.filter((host) => members.has(host.id) && !this.faultyDisks.has(host.id));
  }
}

/** The topics the workload's broadcasts carry when some subscriber reads one (none: no topic). */
const broadcastTopics = [undefined, 'red', 'blue'] as const;

/**
 * The seed's subscriber: from position 1 or from about where the order is when it starts,
 * reading everything or the topic `red` only, over the binary ports or over HTTP. One a
 * seed keeps the sweep's time within about a tenth more.
 */
function drawSubscriberPlans(prng: Prng): SubscriberPlan[] {
  return [
    {
      name: 's0',
      start: prng.chance(1 / 2) ? 'first' : 'later',
      topic: prng.chance(1 / 3) ? 'red' : null,
      startMs: prng.between(0, defaultFaultPhaseMs / 2),
      path: prng.chance(1 / 2) ? 'binary' : 'http',
    },
  ];
}
