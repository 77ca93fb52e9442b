/**
 * Real `RaftCore` instances wired to the manual network and in-memory storage, processing every
 * Ready the moment it exists: persist, queue messages, deliver, advance. Each Ready is written
 * into the transcript (state changes, overwritten entries, messages, deliveries, read states)
 * and checked against the Ready contract and the safety facts of scenario-checks.ts.
 */
import { decodeConfiguration } from '../../src/raft/config.ts';
import { type CoreOptions, RaftCore, type UnsafeVariant } from '../../src/raft/core.ts';
import type {
  Configuration,
  HardState,
  Message,
  MessageType,
  NodeId,
  Ready,
  Role,
  SoftState,
} from '../../src/raft/types.ts';
import { assert } from '../../src/util/assert.ts';
import { Prng } from '../../src/util/prng.ts';
import {
  DeliveryLedger,
  deliveredFact,
  LeaderRegistry,
  logMismatch,
  type TermView,
} from './scenario-checks.ts';
import { formatConfig, formatEntries, formatMessage } from './scenario-format.ts';
import { anyMessage, type MessageFilter, ScenarioNetwork } from './scenario-network.ts';
import { ContractViolation, ScenarioApp, ScenarioStorage } from './scenario-storage.ts';

/** A core that keeps producing Readies without input is broken; stop it at this many. */
const readyRoundsMax = 1_000;
/** `stabilize` gives up (and says so) after this many deliveries. */
export const stabilizeDeliveriesMax = 20_000;

/** A mistake in the scenario script itself, reported with its line; never a core bug. */
export class ScenarioError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScenarioError';
  }
}

export interface ClusterSettings {
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly appendBytesMax: number;
  readonly inflightAppendsMax: number;
  readonly unsafe: UnsafeVariant | null;
  readonly seed: number;
}

/** What the transcript shows; toggled by the `trace` command. */
export interface TraceSettings {
  messages: boolean;
  heartbeats: boolean;
  appends: boolean;
}

interface ShownState {
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly leaderId: NodeId | null;
}

export class ScenarioNode {
  core: RaftCore | null = null;
  readonly storage = new ScenarioStorage();
  app = new ScenarioApp();
  shown: ShownState = { role: 'follower', term: 0, vote: null, leaderId: null };
  shownConfig = '';

  constructor(
    readonly id: NodeId,
    /** The configuration it starts with when its disk is empty; null for a joining node. */
    readonly bootstrap: Configuration | null,
  ) {}

  get up(): boolean {
    return this.core !== null;
  }
}

const heartbeatTypes: readonly MessageType[] = ['Heartbeat', 'HeartbeatResponse'];

export class ScenarioCluster {
  readonly lines: string[] = [];
  readonly nodes = new Map<NodeId, ScenarioNode>();
  readonly network = new ScenarioNetwork();
  readonly trace: TraceSettings = { messages: true, heartbeats: true, appends: false };
  /** Messages the cores produced, by type, since the last `stats reset`. */
  readonly sentCounts = new Map<MessageType, number>();
  /** While set, only `!!` lines reach the transcript (quiet setup such as `cluster leader=`). */
  silent = false;
  private readonly ledger = new DeliveryLedger();
  private readonly leaders = new LeaderRegistry();
  private readonly reportedGaps = new Set<string>();
  private readonly prng: Prng;

  constructor(readonly settings: ClusterSettings) {
    this.prng = new Prng(settings.seed);
  }

  emit(line: string): void {
    if (!this.silent) this.lines.push(line);
  }

  violation(text: string): void {
    this.lines.push(`!! ${text}`);
  }

  node(id: NodeId): ScenarioNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new ScenarioError(`no node ${id}`);
    return node;
  }

  upNode(id: NodeId): ScenarioNode & { core: RaftCore } {
    const node = this.node(id);
    if (node.core === null) throw new ScenarioError(`node ${id} is down`);
    return node as ScenarioNode & { core: RaftCore };
  }

  sortedIds(): NodeId[] {
    return [...this.nodes.keys()].sort();
  }

  upIds(): NodeId[] {
    return this.sortedIds().filter((id) => this.node(id).up);
  }

  addNode(id: NodeId, bootstrap: Configuration | null): ScenarioNode {
    if (this.nodes.has(id)) throw new ScenarioError(`node ${id} already exists`);
    const node = new ScenarioNode(id, bootstrap);
    this.nodes.set(id, node);
    return node;
  }

  private coreOptions(node: ScenarioNode): CoreOptions {
    // Each incarnation draws its own stream, so a restart does not shift the others' timeouts.
    const random = this.prng.fork();
    return {
      nodeId: node.id,
      electionTimeoutTicks: this.settings.electionTimeoutTicks,
      heartbeatIntervalTicks: this.settings.heartbeatIntervalTicks,
      random: () => random.next(),
      preVote: this.settings.preVote,
      checkQuorum: this.settings.checkQuorum,
      appendBytesMax: this.settings.appendBytesMax,
      inflightAppendsMax: this.settings.inflightAppendsMax,
      bootstrap: node.bootstrap,
      unsafe: this.settings.unsafe,
    };
  }

  /** Builds a core from the node's disk alone, as after a crash, and processes its Ready. */
  start(node: ScenarioNode): void {
    assert(node.core === null, 'a node starts only when it is down');
    const persisted = node.storage.persisted(node.app.appliedIndex);
    try {
      node.core = new RaftCore(this.coreOptions(node), persisted);
    } catch (error) {
      this.violation(`${node.id} cannot start: ${describe(error)}`);
      return;
    }
    const status = node.core.status();
    node.shown = {
      role: status.role,
      term: node.storage.hardState?.term ?? 0,
      vote: node.storage.hardState?.vote ?? null,
      leaderId: status.leaderId,
    };
    node.shownConfig = formatConfig(status.config);
    this.process(node);
  }

  crash(node: ScenarioNode): void {
    node.core = null;
    this.network.discardTo(node.id);
  }

  /** Runs one input against a node's core and processes the Readies it causes. */
  /** `report` sees the result before the Readies are written, so it reads in causal order. */
  input<T>(
    node: ScenarioNode,
    action: (core: RaftCore) => T,
    report?: (result: T) => void,
  ): T | undefined {
    const core = node.core;
    if (core === null) throw new ScenarioError(`node ${node.id} is down`);
    let result: T;
    try {
      result = action(core);
    } catch (error) {
      this.stopAfterFailure(node, error);
      return undefined;
    }
    report?.(result);
    this.process(node);
    return result;
  }

  /** A stopped node is safer than a wrong one: a core that throws is taken down, loudly. */
  private stopAfterFailure(node: ScenarioNode, error: unknown): void {
    if (error instanceof ScenarioError) throw error;
    this.violation(`${node.id} stopped: ${describe(error)}`);
    this.crash(node);
  }

  process(node: ScenarioNode): void {
    const core = node.core;
    if (core === null) return;
    try {
      for (let round = 0; core.hasReady(); round++) {
        if (round >= readyRoundsMax) throw new ContractViolation('Readies never run out');
        const ready = core.ready();
        this.handleReady(node, ready);
        core.advance(ready);
      }
      this.checkQuiet(node, core);
    } catch (error) {
      this.stopAfterFailure(node, error);
    }
  }

  private handleReady(node: ScenarioNode, ready: Ready): void {
    this.reportState(node, ready.softState, ready.hardState);
    if (ready.snapshot !== null) {
      node.storage.installSnapshot(ready.snapshot);
      const meta = ready.snapshot.meta;
      this.emit(
        `${node.id}: install snapshot ${meta.index}/${meta.term} ${formatConfig(meta.config)}`,
      );
    }
    const overwritten = node.storage.append(ready.entriesToAppend);
    if (overwritten.length > 0) this.emit(`${node.id}: overwrite ${formatEntries(overwritten)}`);
    if (this.trace.appends && ready.entriesToAppend.length > 0) {
      this.emit(`${node.id}: append ${formatEntries(ready.entriesToAppend)}`);
    }
    if (ready.hardState !== null) node.storage.writeHardState(ready.hardState);
    for (const message of ready.messagesToSend) this.send(node, message);
    if (ready.snapshot !== null) this.restoreApp(node, ready);
    this.deliver(node, ready);
    for (const read of ready.readStates) {
      this.emit(`${node.id}: read ${read.requestId} index=${read.index ?? 'refused'}`);
    }
  }

  private reportState(node: ScenarioNode, soft: SoftState | null, hard: HardState | null): void {
    const previous = node.shown;
    const next: ShownState = {
      role: soft === null ? previous.role : soft.role,
      leaderId: soft === null ? previous.leaderId : soft.leaderId,
      term: hard === null ? previous.term : hard.term,
      vote: hard === null ? previous.vote : hard.vote,
    };
    const changed =
      next.role !== previous.role ||
      next.term !== previous.term ||
      next.vote !== previous.vote ||
      next.leaderId !== previous.leaderId;
    if (!changed) return;
    node.shown = next;
    this.emit(`${node.id}: ${formatShown(next)}`);
    if (next.role === 'leader') {
      const problem = this.leaders.record(node.id, next.term);
      if (problem !== null) this.violation(problem);
    }
  }

  private send(node: ScenarioNode, message: Message): void {
    this.sentCounts.set(message.type, (this.sentCounts.get(message.type) ?? 0) + 1);
    if (message.from !== node.id) this.violation(`${node.id} sent a message from ${message.from}`);
    const lost = this.lossReason(message);
    if (this.traced(message)) {
      this.emit(`${formatMessage(message)}${lost === null ? '' : ` [dropped: ${lost}]`}`);
    }
    if (lost === null) this.network.enqueue(message);
  }

  private lossReason(message: Message): string | null {
    const target = this.nodes.get(message.to);
    if (target === undefined) return 'no such node';
    if (target.core === null) return `${message.to} down`;
    if (!this.network.connected(message.from, message.to)) return 'partition';
    return null;
  }

  private traced(message: Message): boolean {
    return this.trace.messages && (this.trace.heartbeats || !heartbeatTypes.includes(message.type));
  }

  private restoreApp(node: ScenarioNode, ready: Ready): void {
    const snapshot = ready.snapshot;
    assert(snapshot !== null, 'restoring needs a snapshot');
    node.app.restore(snapshot.meta, snapshot.data);
    for (const item of node.app.items) {
      const fact = { index: item.index, term: item.term, content: `data ${item.data}` };
      const problem = this.ledger.record(node.id, fact, node.shown.term);
      if (problem !== null) this.violation(problem);
    }
  }

  /** Delivered entries must be the next ones, durable, and the same everywhere. */
  private deliver(node: ScenarioNode, ready: Ready): void {
    if (ready.entriesToDeliver.length === 0) return;
    for (const entry of ready.entriesToDeliver) {
      if (entry.index !== node.app.appliedIndex + 1) {
        throw new ContractViolation(`delivered ${entry.index} after ${node.app.appliedIndex}`);
      }
      if (node.storage.termAt(entry.index) !== entry.term) {
        throw new ContractViolation(`delivered ${entry.index}/${entry.term} is not durable`);
      }
      const problem = this.ledger.record(node.id, deliveredFact(entry), node.shown.term);
      if (problem !== null) this.violation(problem);
      node.app.apply(entry);
    }
    this.emit(`${node.id}: deliver ${formatEntries(ready.entriesToDeliver)}`);
  }

  /** Once quiet, the core must agree with what its Readies said and what its disk holds. */
  private checkQuiet(node: ScenarioNode, core: RaftCore): void {
    const status = core.status();
    const shown = node.shown;
    if (
      status.role !== shown.role ||
      status.term !== shown.term ||
      status.vote !== shown.vote ||
      status.leaderId !== shown.leaderId
    ) {
      this.violation(
        `${node.id} is ${formatShown(status)} but its Readies said ${formatShown(shown)}`,
      );
      node.shown = { ...status };
    }
    const config = formatConfig(status.config);
    if (config !== node.shownConfig) {
      node.shownConfig = config;
      this.emit(`${node.id}: config ${config}`);
    }
    const problem = logMismatch(node.storage, coreTermView(core));
    if (problem !== null) this.violation(`${node.id}: ${problem}`);
    if (status.appliedIndex !== node.app.appliedIndex) {
      this.violation(
        `${node.id}: core applied ${status.appliedIndex}, app ${node.app.appliedIndex}`,
      );
    }
    if (status.role === 'leader') this.checkLeaderCompleteness(node, core);
  }

  /** Raft §5.4.1: a leader holds every entry committed in an earlier term. */
  private checkLeaderCompleteness(node: ScenarioNode, core: RaftCore): void {
    const view = coreTermView(core);
    for (const fact of this.ledger.requiredOfLeader(node.shown.term, view.snapshotIndex)) {
      if (view.termAt(fact.index) !== fact.term) {
        // Once per leader, term and index: the same gap would otherwise repeat every step.
        const key = `${node.id}/${node.shown.term}/${fact.index}`;
        if (this.reportedGaps.has(key)) return;
        this.reportedGaps.add(key);
        this.violation(`leader ${node.id} lacks delivered entry ${fact.index}/${fact.term}`);
        return;
      }
    }
  }

  /** Delivers the matching queued messages, oldest first; returns how many were taken. */
  deliverQueued(filter: MessageFilter, countMax: number): number {
    const taken = this.network.take(filter, countMax);
    for (const message of taken) this.deliverOne(message);
    return taken.length;
  }

  /** A partition or crash that came after the send loses the message on arrival. */
  private deliverOne(message: Message): void {
    const lost = this.lossReason(message);
    const target = this.nodes.get(message.to);
    if (lost !== null || target === undefined) {
      if (this.traced(message)) this.emit(`dropped ${formatMessage(message)} (${lost})`);
      return;
    }
    this.input(target, (core) => core.step(message));
  }

  /** Delivers until no matching message is queued; false if it had to give up. */
  stabilize(filter: MessageFilter = anyMessage): boolean {
    let deliveredCount = 0;
    while (this.network.peek(filter).length > 0) {
      if (deliveredCount >= stabilizeDeliveriesMax) {
        this.violation(`not stable after ${deliveredCount} deliveries`);
        return false;
      }
      deliveredCount += this.deliverQueued(filter, stabilizeDeliveriesMax);
    }
    return true;
  }

  /**
   * Ticks each node once per round; a `(tick k)` line marks rounds that did something. With
   * `settle`, every round ends by delivering all queued messages, as on a working network.
   */
  tick(ids: readonly NodeId[], roundCount: number, settle: boolean): void {
    for (let round = 1; round <= roundCount; round++) {
      const mark = this.lines.length;
      for (const id of ids) {
        const node = this.node(id);
        if (node.up) this.input(node, (core) => core.tick());
      }
      if (settle && !this.stabilize()) return;
      if (roundCount > 1 && this.lines.length > mark && !this.silent) {
        this.lines.splice(mark, 0, `(tick ${round})`);
      }
    }
  }

  /** The configuration in force at `index`: the newest config entry at or before it. */
  configAt(node: ScenarioNode, index: number): Configuration {
    const storage = node.storage;
    let config = storage.snapshot?.meta.config ?? null;
    for (const entry of storage.entries) {
      if (entry.index > index) break;
      if (entry.kind === 'config') config = decodeConfiguration(entry.data);
    }
    if (config === null) throw new ScenarioError(`${node.id} has no configuration at ${index}`);
    return config;
  }
}

function coreTermView(core: RaftCore): TermView {
  const view = core.log();
  return {
    snapshotIndex: view.snapshotIndex,
    lastIndex: view.snapshotIndex + view.entries.length,
    termAt: (index) =>
      index === view.snapshotIndex
        ? view.snapshotTerm
        : view.entries[index - view.snapshotIndex - 1]?.term,
  };
}

export function formatShown(state: ShownState): string {
  return (
    `${state.role} term=${state.term} vote=${state.vote ?? 'none'} ` +
    `leader=${state.leaderId ?? 'none'}`
  );
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
