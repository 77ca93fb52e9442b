/**
 * A simulated run of the code users run: N real BroadcastNodes with the real WAL code over
 * simulated disks, their HTTP routes in process, and real SDK clients, on one virtual clock
 * and one seed. The fault phase crashes nodes (cutting their disks' power), partitions them,
 * loses, delays and duplicates frames, requests and answers. Then the liveness phase heals
 * everything, restarts every node, stops faults, and each client sends one more broadcast:
 * all must succeed and every node must deliver everything within a budget.
 */
import type { UnsafeOptions } from '../../broadcast/node.ts';
import type { NodeId } from '../../raft/types.ts';
import { assert } from '../../util/assert.ts';
import { Prng } from '../../util/prng.ts';
import { drawPartition, perfectNetwork, SimNetwork } from '../network.ts';
import { SimFileSystem } from '../sim-file-system.ts';
import { type Property, type SimViolation, ViolationContext } from '../violation.ts';
import { Workload } from './clients.ts';
import { DeliveryChecker } from './delivery-checker.ts';
import { ClientNetwork, calmClientNetwork } from './exchange.ts';
import { FrameChecker } from './frame-checker.ts';
import { describeRuntimeMix, drawRuntimeMix, type RuntimeMix } from './mix.ts';
import { NodeHost, type NodeTuning } from './node-host.ts';
import { Life, SimScheduler, settle } from './scheduler.ts';
import { RuntimeNetwork } from './transport.ts';

export const runtimeUnsafeVariants = [
  'answerBeforeCommit',
  'dropSessionsOnRestore',
  'deliverSeqGapAtOnce',
  'ackBeforeDatasync',
  'moveSentMessage',
] as const;

/** Deliberately broken node, WAL and SDK variants, for tests of the checkers only. */
export type RuntimeUnsafe = (typeof runtimeUnsafeVariants)[number];

export interface RuntimeRunOptions {
  readonly seed: number;
  readonly nodeCount?: number | null;
  readonly unsafe?: RuntimeUnsafe | null;
  readonly faultPhaseMs?: number;
  readonly traceSink?: ((line: string) => void) | null;
}

export interface RuntimeRunStats {
  steps: number;
  virtualMs: number;
  crashes: number;
  partitions: number;
  positions: number;
  calls: number;
  framesSent: number;
  framesLost: number;
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
  private readonly nemesisPrng: Prng;
  readonly mix: RuntimeMix;
  private readonly context: RecordingContext;
  private readonly scheduler: SimScheduler;
  private readonly network: SimNetwork;
  private readonly clientNetwork: ClientNetwork;
  private readonly checker: DeliveryChecker;
  private readonly frameChecker: FrameChecker;
  private readonly hosts: NodeHost[] = [];
  private readonly workload: Workload;
  private readonly worldLife = new Life('world');
  private readonly stats: RuntimeRunStats = {
    steps: 0,
    virtualMs: 0,
    crashes: 0,
    partitions: 0,
    positions: 0,
    calls: 0,
    framesSent: 0,
    framesLost: 0,
  };
  private faultsOn = true;
  private readonly unsafe: RuntimeUnsafe | null;
  private readonly trace: ((line: string) => void) | null;

  constructor(private readonly options: RuntimeRunOptions) {
    assert(options.seed >>> 0 === options.seed, 'seeds are u32');
    this.prng = new Prng(options.seed);
    this.mix = drawRuntimeMix(this.prng.fork(), options.nodeCount ?? null);
    this.nemesisPrng = this.prng.fork();
    this.unsafe = options.unsafe ?? null;
    this.trace = options.traceSink ?? null;
    this.context = new RecordingContext({
      seed: options.seed,
      nodeCount: options.nodeCount ?? null,
      unsafe: options.unsafe ?? null,
      profile: null,
      runtime: true,
    });
    this.scheduler = new SimScheduler(this.prng.fork(), eventsMax);
    this.network = new SimNetwork(this.mix.nodeCount, this.prng.fork(), this.mix.network);
    const ids = Array.from({ length: this.mix.nodeCount }, (_, index) => `n${index + 1}`);
    const runtimeNetwork = new RuntimeNetwork(
      this.scheduler,
      this.network,
      (id) => {
        const index = ids.indexOf(id);
        return index < 0 ? null : index;
      },
      this.mix.msPerTick,
      (event) => {
        if (event.kind === 'sent') {
          this.stats.framesSent++;
          this.frameChecker.onSent(event.frame);
        } else if (event.kind === 'lost') this.stats.framesLost++;
      },
    );
    this.clientNetwork = new ClientNetwork(this.scheduler, this.prng.fork(), () => undefined);
    this.clientNetwork.faults = this.mix.clientNetwork;
    this.checker = new DeliveryChecker(this.context);
    this.frameChecker = new FrameChecker(this.context, (id) => {
      const host = this.hosts.find((candidate) => candidate.id === id);
      return host === undefined || host.state !== 'up' ? null : host.acked;
    });
    const tuning = this.tuning();
    const peers = new Map(ids.map((id) => [id, `${id}:7000`] as const));
    for (const [index, id] of ids.entries()) {
      const diskPrng = this.prng.fork();
      const disk = new SimFileSystem({
        prng: diskPrng.fork(),
        sectorBytes: this.mix.sectorBytes,
        schedule: (delayMs: number, fire: () => void) => {
          this.scheduler.schedule(delayMs, this.worldLife, fire);
        },
        delayMs: (operation) =>
          operation === 'datasync' ? diskPrng.between(0, this.mix.datasyncMsMax) : 0,
      });
      this.hosts.push(
        new NodeHost({
          id,
          index,
          disk,
          scheduler: this.scheduler,
          network: runtimeNetwork,
          clientNetwork: this.clientNetwork,
          prng: this.prng.fork(),
          tuning,
          bootstrap: { voters: ids, learners: [] },
          peers,
          events: this.hostEvents(),
          unsafe: this.nodeUnsafe(),
          storageUnsafe: this.unsafe === 'ackBeforeDatasync' ? this.unsafe : null,
          segmentBytesMax: this.mix.segmentBytesMax,
        }),
      );
    }
    this.workload = new Workload(
      this.scheduler,
      this.checker,
      this.mix,
      tuning.payloadBytesMax,
      { requestTimeoutMs: 500, unavailableAfterMs: 5_000, abandonAfterMs: 20_000 },
      this.prng.fork(),
      this.clientNetwork,
      ids,
      (text) => this.note(text),
      this.unsafe === 'moveSentMessage' ? this.unsafe : null,
    );
  }

  private nodeUnsafe(): keyof UnsafeOptions | null {
    const unsafe = this.unsafe;
    return unsafe === 'answerBeforeCommit' ||
      unsafe === 'dropSessionsOnRestore' ||
      unsafe === 'deliverSeqGapAtOnce'
      ? unsafe
      : null;
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
      requestTimeoutMs: 1_000,
      retryIntervalMs: 200,
      snapshotIntervalBytes: mix.snapshotIntervalBytes,
      retainBytesMax: 1 << 20,
      sessionTtlMs: 3_600_000,
      inflightAppendsMax: 8,
      appendBytesMax: 8 << 10,
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
      failed: (host: NodeHost, reason: string) => {
        this.note(`${host.id} failed: ${reason}`);
        this.context.fail('no crash', `${host.id}: ${reason}`, [host.id]);
      },
      lostAcknowledged: (host: NodeHost, detail: string) => {
        this.context.fail('durability', detail, [host.id]);
      },
      note: (host: NodeHost, text: string) => this.note(`${host.id} ${text}`),
    };
  }

  private note(text: string): void {
    if (this.trace !== null) this.trace(`${String(this.scheduler.nowMs).padStart(7)} ${text}`);
  }

  async run(): Promise<RuntimeRunResult> {
    this.note(describeRuntimeMix(this.mix));
    try {
      for (const host of this.hosts) void this.startHost(host);
      this.workload.begin(this.worldLife);
      this.scheduleNemesis();
      const faultPhaseMs = this.options.faultPhaseMs ?? defaultFaultPhaseMs;
      await this.runUntil(faultPhaseMs, () => false);
      if (this.context.first === null) await this.livenessPhase();
      if (this.context.first === null) this.checker.checkAllPromisesKept();
    } catch (error) {
      this.context.fail('no crash', `the simulation threw: ${(error as Error).stack ?? error}`, []);
    } finally {
      this.workload.close();
      for (const host of this.hosts) host.crash();
      this.scheduler.clear();
    }
    this.stats.virtualMs = this.scheduler.nowMs;
    this.stats.positions = this.checker.lastPosition;
    this.stats.calls = this.checker.callCount;
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
    const boundMs =
      this.workload.bounds.unavailableAfterMs + this.workload.bounds.requestTimeoutMs * 4 + 2_000;
    while (this.context.first === null) {
      if (done()) return true;
      if (!this.scheduler.runNext(untilMs)) return done();
      await settle();
      this.stats.steps++;
      this.context.step = this.stats.steps;
      this.context.tick = this.scheduler.nowMs;
      assert(this.stats.steps < stepsMax, 'a run ends within a bounded number of steps');
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

  // ------------------------------------------------------------ nemesis

  private scheduleNemesis(): void {
    const delayMs = this.nemesisPrng.between(1, 2 * this.mix.nemesisIntervalMs);
    this.scheduler.schedule(delayMs, this.worldLife, () => {
      if (!this.faultsOn) return;
      this.nemesisAct();
      this.scheduleNemesis();
    });
  }

  private nemesisAct(): void {
    const mix = this.mix;
    const total = mix.crashWeight + mix.partitionWeight + mix.clientCutWeight;
    if (total === 0) return;
    let draw = this.nemesisPrng.below(total);
    if (draw < mix.crashWeight) {
      this.crashOne();
      return;
    }
    draw -= mix.crashWeight;
    if (draw < mix.partitionWeight) {
      this.partition();
      return;
    }
    this.cutClient();
  }

  private crashOne(): void {
    const up = this.hosts.filter((host) => host.state === 'up');
    if (up.length === 0) return;
    const host = this.nemesisPrng.pick(up);
    host.crash();
    this.stats.crashes++;
    this.note(`${host.id} crashes (power cut)`);
    const downMs = this.nemesisPrng.between(50, this.mix.downMsMax);
    this.scheduler.schedule(downMs, this.worldLife, () => {
      if (host.state === 'down') void this.startHost(host);
    });
  }

  private partition(): void {
    const indexes = this.hosts.map((host) => host.index);
    const kind = this.nemesisPrng.pick(['symmetric', 'one-way', 'isolate'] as const);
    const spec = drawPartition(this.nemesisPrng, kind, indexes, null);
    this.network.applyPartition(spec);
    this.stats.partitions++;
    this.note(`partition ${kind}: [${spec.side.join(',')}] / [${spec.other.join(',')}]`);
    const healMs = this.nemesisPrng.between(100, this.mix.partitionMsMax);
    this.scheduler.schedule(healMs, this.worldLife, () => {
      if (this.network.partition === spec) {
        this.network.heal();
        this.note('partition heals');
      }
    });
  }

  private cutClient(): void {
    const client = `c${this.nemesisPrng.below(this.mix.clientCount)}`;
    const host = this.nemesisPrng.pick(this.hosts);
    this.clientNetwork.cut(client, host.id);
    this.note(`${client} is cut off from ${host.id}`);
    const healMs = this.nemesisPrng.between(100, this.mix.partitionMsMax);
    this.scheduler.schedule(healMs, this.worldLife, () => {
      if (this.faultsOn) this.clientNetwork.heal();
    });
  }

  // ------------------------------------------------------------ liveness

  private async livenessPhase(): Promise<void> {
    this.faultsOn = false;
    this.network.heal();
    this.network.faults = { ...perfectNetwork, latencyTicksMax: this.mix.network.latencyTicksMax };
    this.clientNetwork.heal();
    this.clientNetwork.faults = calmClientNetwork;
    for (const host of this.hosts) if (host.state === 'down') void this.startHost(host);
    this.note('liveness phase: network healed, faults stop, every node runs');
    const startMs = this.scheduler.nowMs;
    this.workload.finish();
    const ids = this.hosts.map((host) => host.id);
    const reached = await this.runUntil(
      startMs + livenessBudgetMs,
      () =>
        this.workload.allFinalResolved &&
        this.workload.outstanding === 0 &&
        this.hosts.every((host) => host.state === 'up') &&
        this.checker.lagging(ids).length === 0,
    );
    if (!reached && this.context.first === null) {
      this.context.fail(
        'liveness',
        `${this.scheduler.nowMs - startMs} ms after faults stopped: ${this.checker.lastPosition} positions delivered; lagging: ${this.checker.lagging(ids).join(', ') || 'none'}; down: ${
          this.hosts
            .filter((host) => host.state !== 'up')
            .map((host) => host.id)
            .join(', ') || 'none'
        }; clients waiting: ${this.workload.describeWaiting() || 'none'}; outstanding calls ${this.workload.outstanding}`,
        this.checker.lagging(ids),
      );
    }
  }
}
