/**
 * The simulated world: real RaftCore instances on simulated disks and a simulated network,
 * driven by one seed through virtual ticks. Every input to a core (tick, message, proposal,
 * fault) is one step; after each, the node's Readies are processed in the contract's order
 * (persist, then send, then deliver, then advance) with the checkers looking at each stage.
 *
 * A run has a fault phase, where the nemesis acts, and a liveness phase, where the network
 * heals, enough nodes restart for a quorum, faults stop, and everything acknowledged must
 * reach every live member within a tick budget.
 */
import { isMember } from '../raft/config.ts';
import { type CoreOptions, RaftCore, type UnsafeVariant } from '../raft/core.ts';
import {
  type Configuration,
  type Message,
  type NodeId,
  type Ready,
  type Role,
  type SoftState,
  sendableBeforePersist,
} from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { Prng } from '../util/prng.ts';
import { SimApp, SnapshotDataError } from './app.ts';
import { Checker } from './checkers.ts';
import { type ClientRequest, SimClients } from './clients.ts';
import { SimDisk } from './disk.ts';
import { EventQueue } from './event-queue.ts';
import { Draws, describeMix, drawFaultMix, type FaultMix, type Profile } from './fault-mix.ts';
import { ClientGateway } from './gateway.ts';
import {
  checkFinalLogs,
  livenessReached,
  livenessViolation,
  startLivenessPhase,
} from './liveness.ts';
import { nemesisAct } from './nemesis.ts';
import { SimNetwork } from './network.ts';
import { emptyStats, type RunResult, type RunStats } from './stats.ts';
import { describeMessage, messageTypeCode, roleLetter, Trace } from './trace.ts';
import { type Property, SimViolation, ViolationContext } from './violation.ts';

export interface WorldOptions {
  readonly seed: number;
  /** null: the seed draws 3, 5 or 7. */
  readonly nodeCount: number | null;
  readonly unsafe: UnsafeVariant | null;
  readonly profile: Profile;
  readonly faultPhaseTicks: number;
  readonly traceSink: ((line: string) => void) | null;
  /** Test-only: properties left unchecked, to prove another checker catches a bug. */
  readonly disabledProperties: readonly Property[];
  /** Test-only: the liveness phase keeps every node cut off, to prove liveness can fail. */
  readonly isolateInLivenessPhase: boolean;
}

export type NodeState = 'unborn' | 'up' | 'down' | 'stopped';

interface InFlightWrite {
  readonly ready: Ready;
  /** The messages still to send once the write is durable. */
  readonly late: readonly Message[];
}

interface AcceptedRequest {
  readonly request: ClientRequest;
  readonly term: number;
}

export interface SimNode {
  readonly index: number;
  readonly id: NodeId;
  readonly initialMember: boolean;
  readonly disk: SimDisk;
  state: NodeState;
  core: RaftCore | null;
  app: SimApp;
  /** Bumped on every start and crash, so events of an earlier life are recognised. */
  incarnation: number;
  /** A Ready whose writes are being fsynced; a crash loses it and its late messages. */
  writeInFlight: InFlightWrite | null;
  role: Role | null;
  pausedUntilTicks: number;
  clockSkipProbability: number;
  inbox: ClientRequest[];
  flushScheduled: boolean;
  /** Proposals this node accepted, by entry index, waiting for that index's delivery. */
  readonly pending: Map<number, AcceptedRequest[]>;
}

type SimEvent =
  | { readonly kind: 'tick'; readonly node: number }
  | {
      readonly kind: 'message';
      readonly message: Message;
      readonly from: number;
      readonly to: number;
    }
  | { readonly kind: 'fsync'; readonly node: number; readonly incarnation: number }
  | { readonly kind: 'flush'; readonly node: number; readonly incarnation: number }
  | { readonly kind: 'compact'; readonly node: number }
  | { readonly kind: 'restart'; readonly node: number; readonly incarnation: number }
  /** downTicks null: stop for good (removed from the configuration). */
  | { readonly kind: 'crash'; readonly node: number; readonly downTicks: number | null }
  | { readonly kind: 'client'; readonly client: number; readonly timer: number }
  | { readonly kind: 'nemesis' }
  | { readonly kind: 'heal'; readonly epoch: number }
  | { readonly kind: 'read' };

const eventCodes: Record<SimEvent['kind'], number> = {
  tick: 1,
  message: 2,
  fsync: 3,
  flush: 4,
  compact: 5,
  restart: 6,
  crash: 7,
  client: 8,
  nemesis: 9,
  heal: 10,
  read: 11,
};

/** Bounds that turn a runaway run into a reported failure instead of a hang. */
const STEPS_PER_TICK_MAX = 200_000;
const READIES_PER_PUMP_MAX = 10_000;
const EVENTS_MAX = 2_000_000;
const READS_OUTSTANDING_MAX = 32;

export class World {
  readonly mix: FaultMix;
  readonly context: ViolationContext;
  readonly checker: Checker;
  readonly trace: Trace;
  readonly network: SimNetwork;
  readonly nodes: SimNode[] = [];
  readonly clients: SimClients;
  private readonly gateway: ClientGateway;
  readonly stats: RunStats;
  readonly nemesisPrng: Prng;
  private readonly queue = new EventQueue<SimEvent>(EVENTS_MAX);
  private readonly nodeIndexById = new Map<NodeId, number>();
  readonly orderPrng: Prng;
  private readonly diskPrng: Prng;
  private readonly corePrng: Prng;
  private readonly initialConfig: Configuration;
  /** Seeds the clients' payloads, so the checkers can recompute them. */
  readonly salt: number;
  nowTicks = 0;
  phase: 'fault' | 'liveness' = 'fault';
  private livenessStartTicks = 0;
  private partitionEpoch = 0;
  private readCounter = 0;
  private readonly readsIssued: { readonly id: string; readonly atTicks: number }[] = [];
  private committedConfigIndex = 0;

  constructor(readonly options: WorldOptions) {
    const root = new Prng(options.seed);
    this.mix = drawFaultMix(new Draws(root.nextUint32()), {
      profile: options.profile,
      nodeCount: options.nodeCount,
      faultPhaseTicks: options.faultPhaseTicks,
    });
    this.orderPrng = root.fork();
    this.diskPrng = root.fork();
    this.corePrng = root.fork();
    this.nemesisPrng = root.fork();
    const networkPrng = root.fork();
    const clientPrng = root.fork();
    this.salt = root.nextUint32();
    this.context = new ViolationContext(
      {
        seed: options.seed,
        nodeCount: options.nodeCount,
        unsafe: options.unsafe,
        profile: options.profile === 'default' ? null : options.profile,
      },
      options.disabledProperties,
    );
    this.trace = new Trace(options.traceSink);
    const totalNodes = this.mix.nodeCount + this.mix.spareCount;
    const ids = Array.from({ length: totalNodes }, (_, index) => `n${index + 1}`);
    for (const [index, id] of ids.entries()) this.nodeIndexById.set(id, index);
    this.initialConfig = { voters: ids.slice(0, this.mix.nodeCount).sort(), learners: [] };
    this.checker = new Checker(
      this.context,
      {
        clientCount: this.mix.clientCount,
        salt: this.salt,
        payloadBytesMax: this.mix.payloadBytesMax,
      },
      new Set(ids),
    );
    this.network = new SimNetwork(totalNodes, networkPrng, this.mix.network);
    for (const id of ids) this.nodes.push(this.makeNode(id));
    this.stats = emptyStats();
    this.gateway = new ClientGateway(this);
    this.clients = new SimClients(this.gateway, clientPrng, {
      clientCount: this.mix.clientCount,
      thinkTicksMax: this.mix.clientThinkTicksMax,
      timeoutTicks: this.mix.clientTimeoutTicks,
    });
  }

  private makeNode(id: NodeId): SimNode {
    const index = this.nodeIndexById.get(id) as number;
    const skipMax = this.mix.clockSkipProbabilityMax;
    return {
      index,
      id,
      initialMember: index < this.mix.nodeCount,
      disk: new SimDisk(),
      state: 'unborn',
      core: null,
      app: SimApp.empty(),
      incarnation: 0,
      writeInFlight: null,
      role: null,
      pausedUntilTicks: 0,
      clockSkipProbability: skipMax > 0 ? this.diskPrng.next() * skipMax : 0,
      inbox: [],
      flushScheduled: false,
      pending: new Map(),
    };
  }

  // ------------------------------------------------------------ running

  run(): RunResult {
    let violation: SimViolation | null = null;
    try {
      this.boot();
      const endTicks = this.mix.faultPhaseTicks + this.mix.livenessTicksMax;
      for (this.nowTicks = 0; ; this.nowTicks++) {
        this.context.tick = this.nowTicks;
        if (this.nowTicks === this.mix.faultPhaseTicks) this.startLiveness();
        if (this.phase === 'liveness' && livenessReached(this)) break;
        if (this.nowTicks >= endTicks) throw livenessViolation(this, this.livenessStartTicks);
        this.runTick();
      }
      checkFinalLogs(this);
    } catch (error) {
      violation = this.asViolation(error);
    }
    this.queue.clear();
    return {
      seed: this.options.seed,
      mix: this.mix,
      violation,
      fingerprint: this.trace.fingerprint,
      stats: this.finishStats(),
    };
  }

  private asViolation(error: unknown): SimViolation {
    if (error instanceof SimViolation) return error;
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    const where = error instanceof Error ? (error.stack ?? '').split('\n')[1]?.trim() : '';
    return this.context.violation('no crash', `${text}${where ? ` (${where})` : ''}`, []);
  }

  private boot(): void {
    this.note(null, `world: ${describeMix(this.mix)}`);
    for (const node of this.nodes) if (node.initialMember) this.startNode(node);
    if (this.mix.nemesisGapTicksMax > 0)
      this.schedule(this.nemesisPrng.between(1, this.mix.nemesisGapTicksMax), { kind: 'nemesis' });
    for (const node of this.nodes) this.scheduleCompaction(node);
    if (this.mix.readGapTicksMax > 0)
      this.schedule(this.nowTicks + this.mix.readGapTicksMax, { kind: 'read' });
  }

  private runTick(): void {
    for (const node of this.nodes) {
      if (node.state === 'up') this.schedule(this.nowTicks, { kind: 'tick', node: node.index });
    }
    let stepsThisTick = 0;
    while (this.queue.peekTicks() <= this.nowTicks) {
      const event = this.queue.pop();
      this.stats.steps++;
      this.context.step = this.stats.steps;
      if (++stepsThisTick > STEPS_PER_TICK_MAX) {
        throw this.context.violation(
          'liveness',
          `more than ${STEPS_PER_TICK_MAX} steps in tick ${this.nowTicks}: an event storm`,
          [],
        );
      }
      this.dispatch(event);
    }
  }

  schedule(atTicks: number, event: SimEvent, first = false): void {
    assert(atTicks >= this.nowTicks, 'events are scheduled now or later');
    this.queue.push(atTicks, first ? -1 : this.orderPrng.nextUint32(), event);
  }

  private dispatch(event: SimEvent): void {
    const nodeIndex = 'node' in event ? event.node : 'to' in event ? event.to : -1;
    this.trace.fold(eventCodes[event.kind], nodeIndex, this.nowTicks);
    if (nodeIndex >= 0 && event.kind !== 'tick' && this.deferIfPaused(nodeIndex, event)) return;
    switch (event.kind) {
      case 'tick':
        this.onTick(this.node(event.node));
        break;
      case 'message':
        this.onMessage(event.message, event.from, event.to);
        break;
      case 'fsync':
        this.onFsync(this.node(event.node), event.incarnation);
        break;
      case 'flush':
        this.gateway.flush(this.node(event.node), event.incarnation);
        break;
      case 'compact':
        this.onCompact(this.node(event.node));
        break;
      case 'restart':
        this.onRestart(this.node(event.node), event.incarnation);
        break;
      case 'crash':
        this.crash(
          this.node(event.node),
          event.downTicks,
          event.downTicks === null ? 'stops (removed from the configuration)' : 'crashes',
        );
        break;
      case 'client':
        this.clients.onTimer(event.client, event.timer);
        break;
      case 'nemesis':
        this.onNemesis();
        break;
      case 'heal':
        this.onHeal(event.epoch);
        break;
      case 'read':
        this.onRead();
        break;
    }
  }

  /** A paused node handles nothing until it resumes: its events wait. */
  private deferIfPaused(nodeIndex: number, event: SimEvent): boolean {
    const node = this.node(nodeIndex);
    if (node.state !== 'up' || node.pausedUntilTicks <= this.nowTicks) return false;
    if (event.kind === 'crash' || event.kind === 'restart' || event.kind === 'compact')
      return false;
    this.schedule(node.pausedUntilTicks, event);
    return true;
  }

  node(index: number): SimNode {
    const node = this.nodes[index];
    assert(node !== undefined, 'a known node index');
    return node;
  }

  // ------------------------------------------------------------ node inputs

  private onTick(node: SimNode): void {
    if (node.state !== 'up' || node.pausedUntilTicks > this.nowTicks) return;
    if (node.clockSkipProbability > 0 && this.diskPrng.chance(node.clockSkipProbability)) return;
    (node.core as RaftCore).tick();
    this.pump(node);
  }

  private onMessage(message: Message, from: number, to: number): void {
    const node = this.node(to);
    if (node.state !== 'up' || !this.network.linkUp(from, to)) {
      this.stats.messagesLost++;
      if (this.trace.wantsLines)
        this.note(
          node,
          `lost ${describeMessage(message)} (${node.state === 'up' ? 'partitioned' : node.state})`,
        );
      return;
    }
    if (this.trace.wantsLines) this.note(node, `recv ${describeMessage(message)}`);
    (node.core as RaftCore).step(message);
    this.pump(node);
  }

  private onFsync(node: SimNode, incarnation: number): void {
    if (node.incarnation !== incarnation || node.state !== 'up') return;
    const write = node.writeInFlight;
    assert(write !== null, 'an fsync completes a write in flight');
    node.writeInFlight = null;
    this.completeReady(node, write.ready, write.late);
    this.pump(node);
  }

  private onRestart(node: SimNode, incarnation: number): void {
    if (node.state !== 'down' || node.incarnation !== incarnation) return;
    this.startNode(node);
  }

  // ------------------------------------------------------------ the Ready cycle

  /**
   * Processes Readies until the core has none or a write is in flight. Like the runtime, a
   * world may let a leader's replication messages leave before its own write is durable
   * (`sendableBeforePersist`, Raft thesis §10.2.1); everything else waits for the fsync.
   */
  pump(node: SimNode): void {
    for (let round = 0; ; round++) {
      const core = node.core;
      if (core === null || node.writeInFlight !== null || !core.hasReady()) return;
      assert(round < READIES_PER_PUMP_MAX, 'a node settles within a bounded number of Readies');
      const ready = core.ready();
      this.checker.onReady(node.id, ready, node.disk, node.app.appliedIndex);
      if (ready.softState !== null) this.onSoftState(node, core, ready.softState);
      const writes =
        ready.hardState !== null || ready.snapshot !== null || ready.entriesToAppend.length > 0;
      const delayTicks = writes ? this.diskPrng.between(0, this.mix.fsyncTicksMax) : 0;
      let late = ready.messagesToSend;
      if (this.mix.leaderSendsEarly && late.some(sendableBeforePersist)) {
        this.sendAll(node, late.filter(sendableBeforePersist), ' (before fsync)');
        late = late.filter((message) => !sendableBeforePersist(message));
      }
      if (delayTicks > 0) {
        node.writeInFlight = { ready, late };
        this.schedule(this.nowTicks + delayTicks, {
          kind: 'fsync',
          node: node.index,
          incarnation: node.incarnation,
        });
        return;
      }
      this.completeReady(node, ready, late);
    }
  }

  private completeReady(node: SimNode, ready: Ready, late: readonly Message[]): void {
    this.persist(node, ready);
    this.sendAll(node, late, '');
    this.deliverAll(node, ready);
    for (const readState of ready.readStates) {
      this.checker.onReadState(node.id, readState.requestId, readState.index);
    }
    (node.core as RaftCore).advance(ready);
  }

  private onSoftState(node: SimNode, core: RaftCore, softState: SoftState): void {
    node.role = softState.role;
    if (softState.role !== 'leader') {
      if (this.trace.wantsLines)
        this.note(node, `becomes ${softState.role}, leader ${softState.leaderId ?? 'unknown'}`);
      return;
    }
    const term = core.status().term;
    this.checker.onLeader(node.id, term, null);
    if (this.trace.wantsLines) this.note(node, `becomes leader of term ${term}`);
    this.maybeCrashAt(
      node,
      this.mix.crashPoints.afterElection,
      2 * this.mix.core.electionTimeoutTicks,
    );
  }

  private persist(node: SimNode, ready: Ready): void {
    const disk = node.disk;
    if (ready.snapshot !== null) {
      const index = ready.snapshot.meta.index;
      disk.installSnapshot(ready.snapshot, this.checker.record.prefixHashAt(index));
      this.stats.snapshotsInstalled++;
    }
    disk.append(ready.entriesToAppend);
    const previousCommit = disk.hardState?.commit ?? 0;
    if (ready.hardState !== null) disk.hardState = ready.hardState;
    this.checker.onDurable(node.id, ready.entriesToAppend, disk);
    if (ready.hardState !== null && node.role === 'leader') {
      this.checker.onLeaderCommit(node.id, previousCommit, ready.hardState, disk);
      if (ready.hardState.commit > previousCommit) {
        this.maybeCrashAt(
          node,
          this.mix.crashPoints.afterCommit,
          2 * this.mix.core.electionTimeoutTicks,
        );
      }
    }
    if (this.trace.wantsLines) this.notePersist(node, ready);
  }

  private notePersist(node: SimNode, ready: Ready): void {
    const parts: string[] = [];
    if (ready.snapshot !== null)
      parts.push(`snapshot ${ready.snapshot.meta.index}/${ready.snapshot.meta.term}`);
    const first = ready.entriesToAppend[0];
    const last = ready.entriesToAppend[ready.entriesToAppend.length - 1];
    if (first !== undefined && last !== undefined)
      parts.push(`entries ${first.index}..${last.index} (t${first.term}..t${last.term})`);
    const hardState = ready.hardState;
    if (hardState !== null)
      parts.push(`term ${hardState.term} vote ${hardState.vote ?? '-'} commit ${hardState.commit}`);
    if (parts.length > 0) this.note(node, `fsync ${parts.join(', ')}`);
  }

  private sendAll(node: SimNode, messages: readonly Message[], when: string): void {
    for (const message of messages) {
      this.checker.onSend(node.id, message, node.disk);
      const to = this.nodeIndexById.get(message.to) as number;
      this.trace.fold(messageTypeCode(message.type), node.index, to);
      const delays = this.network.plan(node.index, to);
      this.stats.messagesSent++;
      if (delays.length === 0) this.stats.messagesLost++;
      if (this.trace.wantsLines) {
        const lost = this.network.linkUp(node.index, to) ? ' (dropped)' : ' (cut by partition)';
        const fate = delays.length === 0 ? lost : delays.length > 1 ? ' (duplicated)' : '';
        this.note(node, `send ${describeMessage(message)}${when}${fate}`);
      }
      for (const delayTicks of delays) {
        this.schedule(this.nowTicks + delayTicks, {
          kind: 'message',
          message,
          from: node.index,
          to,
        });
      }
      if (message.type === 'VoteResponse' && message.granted) {
        // A quick bounce: back before the other candidates' requests arrive.
        this.maybeCrashAt(node, this.mix.crashPoints.afterVote, 2);
      }
    }
  }

  /**
   * A crash point: with the mix's probability, the node crashes before its next event and
   * stays down up to `downTicksMax` (0: the process bounces within the tick).
   */
  private maybeCrashAt(node: SimNode, probability: number, downTicksMax: number): void {
    if (this.phase !== 'fault' || probability === 0) return;
    if (!this.nemesisPrng.chance(probability)) return;
    const downTicks = this.nemesisPrng.between(0, downTicksMax);
    this.schedule(this.nowTicks, { kind: 'crash', node: node.index, downTicks }, true);
  }

  private deliverAll(node: SimNode, ready: Ready): void {
    if (ready.snapshot !== null) {
      node.app = this.appFrom(node, ready.snapshot);
      this.gateway.dropPendingThrough(node, ready.snapshot.meta.index);
      if (this.trace.wantsLines)
        this.note(
          node,
          `installs snapshot ${ready.snapshot.meta.index}, position ${node.app.lastPosition}`,
        );
    }
    for (const entry of ready.entriesToDeliver) {
      this.checker.onDeliver(node.id, entry, node.disk, node.app.appliedIndex);
      const applied = node.app.apply(entry);
      this.checker.onApplied(node.id, entry.index, node.app);
      this.trace.fold(100, node.index, entry.index);
      this.gateway.resolve(node, entry, applied);
    }
    const first = ready.entriesToDeliver[0];
    if (first !== undefined && this.trace.wantsLines) {
      this.note(
        node,
        `deliver ${first.index}..${node.app.appliedIndex}, position ${node.app.lastPosition}`,
      );
    }
    const configIndex = this.checker.record.latestConfigIndex;
    if (configIndex !== this.committedConfigIndex) {
      this.committedConfigIndex = configIndex;
      this.onCommittedConfig(this.checker.record.latestConfig());
    }
  }

  private appFrom(node: SimNode, snapshot: Parameters<typeof SimApp.fromSnapshot>[0]): SimApp {
    try {
      return SimApp.fromSnapshot(snapshot);
    } catch (error) {
      if (!(error instanceof SnapshotDataError)) throw error;
      throw this.context.violation(
        'snapshot state',
        `${node.id} cannot restore snapshot ${snapshot.meta.index}: ${error.message}`,
        [node.id],
      );
    }
  }

  // ------------------------------------------------------------ lifecycle

  coreOptions(node: SimNode): CoreOptions {
    const random = this.corePrng.fork();
    const tuning = this.mix.core;
    return {
      nodeId: node.id,
      electionTimeoutTicks: tuning.electionTimeoutTicks,
      heartbeatIntervalTicks: tuning.heartbeatIntervalTicks,
      random: () => random.next(),
      preVote: tuning.preVote,
      checkQuorum: tuning.checkQuorum,
      appendBytesMax: tuning.appendBytesMax,
      inflightAppendsMax: tuning.inflightAppendsMax,
      bootstrap: node.initialMember ? this.initialConfig : null,
      unsafe: this.options.unsafe,
    };
  }

  /** Starts a node from its disk alone: what a restart after a crash sees. */
  startNode(node: SimNode): void {
    assert(node.state !== 'up', 'only a stopped node starts');
    const appState = node.disk.appStateForRestart();
    node.app = appState === null ? SimApp.empty() : this.appFrom(node, appState);
    node.core = new RaftCore(this.coreOptions(node), node.disk.persisted());
    node.incarnation++;
    node.state = 'up';
    node.role = 'follower';
    node.writeInFlight = null;
    node.pausedUntilTicks = 0;
    node.inbox = [];
    node.flushScheduled = false;
    node.pending.clear();
    this.stats.restarts++;
    if (this.trace.wantsLines) {
      this.note(
        node,
        `starts (incarnation ${node.incarnation}, disk ${node.disk.snapshotIndex}..${node.disk.lastIndex}, applied ${node.app.appliedIndex})`,
      );
    }
    this.pump(node);
  }

  /** Loses the in-memory core, the unsynced write and every client request it held. */
  crash(node: SimNode, downTicks: number | null, verb: string): void {
    if (node.state !== 'up') return;
    const lostWrite = node.writeInFlight?.ready ?? null;
    node.state = downTicks === null ? 'stopped' : 'down';
    node.core = null;
    node.writeInFlight = null;
    node.incarnation++;
    node.role = null;
    this.gateway.dropAll(node);
    if (downTicks !== null) {
      this.stats.crashes++;
      this.schedule(this.nowTicks + downTicks, {
        kind: 'restart',
        node: node.index,
        incarnation: node.incarnation,
      });
    }
    if (this.trace.wantsLines) {
      const write =
        lostWrite === null
          ? ''
          : ` losing an unsynced write of ${lostWrite.entriesToAppend.length} entries`;
      this.note(node, `${verb}${write}${downTicks === null ? '' : ` for ${downTicks} ticks`}`);
    }
  }

  /** Brings a node back for a configuration change that names it. */
  ensureRunning(node: SimNode): void {
    if (node.state === 'unborn' || node.state === 'stopped') this.startNode(node);
  }

  /** Stops nodes the committed configuration removed (unless they linger as zombies). */
  private onCommittedConfig(config: Configuration): void {
    if (this.trace.wantsLines) this.note(null, `committed configuration ${JSON.stringify(config)}`);
    this.stats.configChanges++;
    const leader = this.leaderNode();
    const latest = leader === null ? config : (leader.core as RaftCore).status().config;
    for (const node of this.nodes) {
      if (node.state !== 'up' || isMember(config, node.id) || isMember(latest, node.id)) continue;
      if (this.phase === 'fault' && this.nemesisPrng.chance(this.mix.zombieProbability)) continue;
      // Not now: this runs inside some node's Ready, possibly the removed node's own.
      this.schedule(this.nowTicks, { kind: 'crash', node: node.index, downTicks: null }, true);
    }
  }

  /** The running leader of the highest durable term, if any. */
  leaderNode(): SimNode | null {
    let best: SimNode | null = null;
    for (const node of this.nodes) {
      if (node.state !== 'up' || node.role !== 'leader') continue;
      if (best === null || termOf(node) > termOf(best)) best = node;
    }
    return best;
  }

  upNodes(): SimNode[] {
    return this.nodes.filter((node) => node.state === 'up');
  }

  // ------------------------------------------------------------ periodic work

  private scheduleCompaction(node: SimNode): void {
    this.schedule(this.nowTicks + this.diskPrng.between(1, this.mix.compactGapTicksMax), {
      kind: 'compact',
      node: node.index,
    });
  }

  /**
   * Saves the application's state; usually compacts the log behind it too. Waits for the
   * outstanding Ready, since the core takes `compact` only between Readies.
   */
  private onCompact(node: SimNode): void {
    this.scheduleCompaction(node);
    if (node.state !== 'up' || node.writeInFlight !== null) return;
    const app = node.app;
    if (app.appliedIndex - node.disk.snapshotIndex < this.mix.compactEntriesMin) return;
    const snapshot = app.snapshot();
    this.checker.checkSnapshotState(node.id, snapshot);
    if (this.diskPrng.chance(this.mix.checkpointOnlyProbability)) {
      node.disk.appCheckpoint = snapshot;
      if (this.trace.wantsLines)
        this.note(node, `checkpoints the application at ${snapshot.meta.index}`);
      return;
    }
    node.disk.compact(snapshot);
    node.disk.appCheckpoint = null;
    (node.core as RaftCore).compact(snapshot);
    this.stats.compactions++;
    if (this.trace.wantsLines) this.note(node, `compacts through ${snapshot.meta.index}`);
    this.pump(node);
  }

  private onRead(): void {
    if (this.phase !== 'fault') return;
    this.schedule(this.nowTicks + this.orderPrng.between(1, this.mix.readGapTicksMax), {
      kind: 'read',
    });
    this.forgetOldReads();
    const candidates = this.upNodes();
    if (candidates.length === 0 || this.readsIssued.length >= READS_OUTSTANDING_MAX) return;
    const node = this.orderPrng.pick(candidates);
    const id = `r${++this.readCounter}`;
    this.checker.onReadIssued(id);
    this.readsIssued.push({ id, atTicks: this.nowTicks });
    this.stats.reads++;
    if (this.trace.wantsLines)
      this.note(node, `read ${id} (must cover index ${this.checker.ackedIndexMax})`);
    (node.core as RaftCore).readIndex(id);
    this.pump(node);
  }

  /** Reads whose node crashed are never answered; the checker forgets them in time. */
  private forgetOldReads(): void {
    const horizon = this.nowTicks - 20 * this.mix.core.electionTimeoutTicks;
    while (
      this.readsIssued.length > 0 &&
      (this.readsIssued[0] as { atTicks: number }).atTicks < horizon
    ) {
      const read = this.readsIssued.shift() as { id: string };
      this.checker.forgetRead(read.id);
    }
  }

  // ------------------------------------------------------------ faults

  private onNemesis(): void {
    if (this.phase !== 'fault') return;
    this.schedule(this.nowTicks + this.nemesisPrng.between(1, this.mix.nemesisGapTicksMax), {
      kind: 'nemesis',
    });
    nemesisAct(this);
  }

  /** Cuts links for a while; a later partition replaces an earlier one. */
  partitionFor(spec: Parameters<SimNetwork['applyPartition']>[0], durationTicks: number): void {
    this.network.applyPartition(spec);
    this.partitionEpoch++;
    this.stats.partitions++;
    this.schedule(this.nowTicks + durationTicks, { kind: 'heal', epoch: this.partitionEpoch });
    if (this.trace.wantsLines) {
      const name = (indexes: readonly number[]) =>
        indexes.map((index) => this.node(index).id).join(',');
      this.note(
        null,
        `partition ${spec.kind} {${name(spec.side)}} ${spec.kind === 'one-way' ? '-/->' : '|'} {${name(spec.other)}} for ${durationTicks} ticks`,
      );
    }
  }

  private onHeal(epoch: number): void {
    if (epoch !== this.partitionEpoch || this.network.partition === null) return;
    this.network.heal();
    if (this.trace.wantsLines) this.note(null, 'partition heals');
  }

  pause(node: SimNode, durationTicks: number): void {
    node.pausedUntilTicks = this.nowTicks + durationTicks;
    this.stats.pauses++;
    if (this.trace.wantsLines) this.note(node, `pauses for ${durationTicks} ticks`);
  }

  private startLiveness(): void {
    this.phase = 'liveness';
    this.livenessStartTicks = this.nowTicks;
    startLivenessPhase(this);
  }

  nodeIndexOf(id: NodeId): number | null {
    return this.nodeIndexById.get(id) ?? null;
  }

  private finishStats(): RunStats {
    const stats = this.stats;
    stats.ticks = this.nowTicks;
    stats.leaderTerms = this.checker.leaderCount;
    stats.acknowledged = this.clients.acknowledgedCount;
    stats.positions = this.checker.record.lastPosition;
    stats.committedIndex = this.checker.record.length;
    stats.retries = this.clients.retries;
    return stats;
  }

  // ------------------------------------------------------------ trace

  note(node: SimNode | null, text: string): void {
    if (!this.trace.wantsLines) return;
    const tick = String(this.nowTicks).padStart(6);
    const who = node === null ? '--' : `${node.id} ${roleLetter(node.role)}/${termOf(node)}`;
    this.trace.line(`${tick} ${who.padEnd(9)} ${text}`);
  }
}

function termOf(node: SimNode): number {
  return node.disk.hardState?.term ?? 0;
}
