/**
 * One small handler per scenario command. Handlers validate their arguments (a bad script is a
 * ScenarioError naming the line), act on the cluster, and write what happened to the
 * transcript. The command reference is in test/scenarios/README.md.
 */
import { encodeConfiguration } from '../../src/raft/config.ts';
import { type UnsafeVariant, unsafeVariants } from '../../src/raft/core.ts';
import type {
  ConfigChange,
  Configuration,
  Entry,
  NodeId,
  ProposalResult,
} from '../../src/raft/types.ts';
import { CommandArgs } from './scenario-args.ts';
import {
  formatShown,
  ScenarioCluster,
  ScenarioError,
  type ScenarioNode,
} from './scenario-cluster.ts';
import {
  encodeText,
  formatConfig,
  formatEntry,
  formatList,
  formatMessage,
} from './scenario-format.ts';
import { ScenarioApp } from './scenario-storage.ts';

export interface ScenarioContext {
  cluster: ScenarioCluster | null;
}

type Handler = (cluster: ScenarioCluster, args: CommandArgs) => void;

/** Node ids are small decimal numbers, so that `1->2` reads as it does in the Raft paper. */
const nodeCountMax = 9;
/** `log` prints logs up to this long in full (Figure 7's are 12). */
const logEntriesShownMax = 16;

function nodeArg(cluster: ScenarioCluster, args: CommandArgs): ScenarioNode {
  return cluster.node(args.word('node'));
}

/** The named nodes, or every node when none is named. */
function nodesArg(cluster: ScenarioCluster, args: CommandArgs): ScenarioNode[] {
  const words = args.rest();
  const ids = words.length === 0 ? cluster.sortedIds() : words;
  return ids.map((id) => cluster.node(id));
}

export function statusLine(node: ScenarioNode): string {
  if (node.core === null) {
    const hard = node.storage.hardState;
    return `${node.id}: down term=${hard?.term ?? 0} vote=${hard?.vote ?? 'none'} log=${logRange(node)}`;
  }
  const status = node.core.status();
  const snapshot = status.snapshotIndex === 0 ? '' : ` snapshot=${status.snapshotIndex}`;
  const repair = status.repairing;
  const repairing =
    repair === null
      ? ''
      : ` repairing lost=${repair.firstLostIndex}..${repair.lastIndexSeen ?? '?'} termBound=${repair.termBound}`;
  return (
    `${node.id}: ${formatShown(status)} commit=${status.commitIndex} ` +
    `applied=${status.appliedIndex} log=${status.firstIndex}..${status.lastIndex}${snapshot}${repairing}`
  );
}

function logRange(node: ScenarioNode): string {
  return `${node.storage.snapshotIndex + 1}..${node.storage.lastIndex}`;
}

/** `tick N [nodes]`: N ticks, messages stay queued; `run N [nodes]`: each tick then stabilize. */
function tick(cluster: ScenarioCluster, args: CommandArgs): void {
  const roundCount = args.natural('tick count');
  if (roundCount < 1 || roundCount > 1_000) throw new ScenarioError(`${args.name}: 1..1000 ticks`);
  const named = args.rest();
  for (const id of named) if (!cluster.node(id).up) throw new ScenarioError(`node ${id} is down`);
  cluster.tick(named.length === 0 ? cluster.upIds() : named, roundCount, args.name === 'run');
}

function campaign(cluster: ScenarioCluster, args: CommandArgs): void {
  const node = nodeArg(cluster, args);
  cluster.input(node, (core) => core.campaign());
}

function formatResult(node: ScenarioNode, what: string, result: ProposalResult): string {
  if (result.accepted) return `${node.id}: ${what} -> ${result.index}/${result.term}`;
  return `${node.id}: ${what} refused ${result.reason} leader=${result.leaderId ?? 'none'}`;
}

/** `count=K` proposes data1..dataK; accepted runs print as one line, refusals each. */
function propose(cluster: ScenarioCluster, args: CommandArgs): void {
  const node = nodeArg(cluster, args);
  const base = args.option('data');
  if (base === null || base.length === 0) throw new ScenarioError('propose: data= is required');
  const count = args.naturalOption('count', 1);
  if (count < 1 || count > 10_000) throw new ScenarioError('propose: count is 1..10000');
  const accepted: { data: string; index: number; term: number }[] = [];
  for (let number = 1; number <= count; number++) {
    const data = count === 1 ? base : `${base}${number}`;
    const result = cluster.input(
      node,
      (core) => core.propose(encodeText(data)),
      (outcome) => {
        if (count === 1 || !outcome.accepted)
          cluster.emit(formatResult(node, `propose ${data}`, outcome));
      },
    );
    if (result === undefined) return;
    if (result.accepted) accepted.push({ data, index: result.index, term: result.term });
  }
  const first = accepted[0];
  const last = accepted[accepted.length - 1];
  if (count > 1 && first !== undefined && last !== undefined) {
    cluster.emit(
      `${node.id}: propose ${first.data}..${last.data} -> ` +
        `${first.index}/${first.term}..${last.index}/${last.term} (${accepted.length} accepted)`,
    );
  }
}

function deliver(cluster: ScenarioCluster, args: CommandArgs): void {
  const filter = args.messageFilter(null);
  const countMax = args.naturalOption('count', Number.MAX_SAFE_INTEGER);
  const deliveredCount = cluster.deliverQueued(filter, countMax);
  if (deliveredCount === 0) cluster.emit('(no messages)');
}

function drop(cluster: ScenarioCluster, args: CommandArgs): void {
  const filter = args.messageFilter(null);
  const countMax = args.naturalOption('count', Number.MAX_SAFE_INTEGER);
  const dropped = cluster.network.take(filter, countMax);
  for (const message of dropped) cluster.emit(`dropped ${formatMessage(message)}`);
  if (dropped.length === 0) cluster.emit('(no messages)');
}

/** `delay` moves matching messages to the back of the queue; `duplicate` queues copies. */
function reorder(cluster: ScenarioCluster, args: CommandArgs): void {
  const filter = args.messageFilter(null);
  const countMax = args.naturalOption('count', Number.MAX_SAFE_INTEGER);
  const network = cluster.network;
  const touched =
    args.name === 'delay' ? network.delay(filter, countMax) : network.duplicate(filter, countMax);
  const verb = args.name === 'delay' ? 'delayed' : 'duplicated';
  for (const message of touched) cluster.emit(`${verb} ${formatMessage(message)}`);
  if (touched.length === 0) cluster.emit('(no messages)');
}

/** `partition 1 2 / 3 4`: groups split by `/`; nodes named nowhere form one more group. */
function partition(cluster: ScenarioCluster, args: CommandArgs): void {
  const groups: NodeId[][] = [[]];
  for (const word of args.rest()) {
    if (word === '/') groups.push([]);
    else groups[groups.length - 1]?.push(cluster.node(word).id);
  }
  if (groups.some((group) => group.length === 0)) {
    throw new ScenarioError('partition: every group names at least one node');
  }
  cluster.network.partition(groups);
}

function heal(cluster: ScenarioCluster): void {
  cluster.network.heal();
}

function stabilize(cluster: ScenarioCluster, args: CommandArgs): void {
  const within = args.rest();
  for (const id of within) cluster.node(id);
  const filter = args.messageFilter(within.length === 0 ? null : within);
  cluster.stabilize(filter);
}

function crash(cluster: ScenarioCluster, args: CommandArgs): void {
  for (const node of nodesArg(cluster, args)) {
    if (!node.up) throw new ScenarioError(`node ${node.id} is already down`);
    cluster.crash(node);
  }
}

/** `app=lost`: the application state is gone too; delivery restarts from the snapshot. */
function restart(cluster: ScenarioCluster, args: CommandArgs): void {
  const appLost = args.option('app');
  if (appLost !== null && appLost !== 'lost') throw new ScenarioError('restart: app=lost only');
  for (const node of nodesArg(cluster, args)) {
    if (node.up) throw new ScenarioError(`node ${node.id} is up; crash it first`);
    if (appLost !== null) {
      node.app = new ScenarioApp();
      const snapshot = node.storage.snapshot;
      if (snapshot !== null) node.app.restore(snapshot.meta, snapshot.data);
    }
    cluster.start(node);
    cluster.emit(statusLine(node));
  }
}

/**
 * `damage 3 from=5 [report=off] [stale=3,3] [seen=7]`: node 3 (down) loses its entries from
 * index 5 on, as a corrupted WAL record would take them, and restarts with the application
 * state rebuilt from the log. Reported (the default), the core repairs; `report=off` is the
 * unsafe storage that truncates silently. `stale` gives the terms of entries the lost records
 * had overwritten, back in the prefix from index 5. `seen` is the highest index intact
 * records after the damage showed (default: the log's last index); below it, the writes of
 * the entries after it were lost without a trace.
 */
function damage(cluster: ScenarioCluster, args: CommandArgs): void {
  const node = nodeArg(cluster, args);
  const fromIndex = args.naturalOption('from', 0);
  const reported = args.switchOption('report') ?? true;
  const stale = (args.listOption('stale') ?? []).map((text) => Number(text));
  const seenIndex = args.naturalOption('seen', node.storage.lastIndex);
  args.finish();
  if (stale.some((term) => !Number.isSafeInteger(term) || term < 1)) {
    throw new ScenarioError('damage: stale terms are positive integers');
  }
  if (node.up) throw new ScenarioError(`node ${node.id} is up; crash it first`);
  node.storage.loseEntriesFrom({ fromIndex, reported, stale, seenIndex });
  node.app = new ScenarioApp();
  const snapshot = node.storage.snapshot;
  if (snapshot !== null) node.app.restore(snapshot.meta, snapshot.data);
  cluster.start(node);
  cluster.emit(statusLine(node));
}

function status(cluster: ScenarioCluster, args: CommandArgs): void {
  for (const node of nodesArg(cluster, args)) {
    cluster.emit(statusLine(node));
    if (node.core === null) continue;
    const current = node.core.status();
    cluster.emit(`  config ${formatConfig(current.config)}`);
    if (current.transferTarget !== null) cluster.emit(`  transfer to ${current.transferTarget}`);
    for (const follower of current.progress) {
      cluster.emit(
        `  progress ${follower.id}: ${follower.state} match=${follower.matchIndex} ` +
          `next=${follower.nextIndex} inflight=${follower.inflightAppends}` +
          `${follower.recentlyActive ? ' active' : ''}`,
      );
    }
  }
}

function log(cluster: ScenarioCluster, args: CommandArgs): void {
  for (const node of nodesArg(cluster, args)) {
    const view =
      node.core === null
        ? {
            snapshotIndex: node.storage.snapshotIndex,
            snapshotTerm: node.storage.termAt(node.storage.snapshotIndex) ?? 0,
            entries: node.storage.entries,
          }
        : node.core.log();
    const parts: string[] = [];
    if (view.snapshotIndex > 0) parts.push(`snapshot=${view.snapshotIndex}/${view.snapshotTerm}`);
    parts.push(formatList(view.entries.map(formatEntry), logEntriesShownMax));
    const down = node.core === null ? ' (down)' : '';
    const text = parts.filter((part) => part.length > 0).join(' ');
    cluster.emit(`${node.id}: log${down} ${text || '(empty)'}`);
  }
}

/** What each node's application holds: the data delivered so far, in order. */
function app(cluster: ScenarioCluster, args: CommandArgs): void {
  for (const node of nodesArg(cluster, args)) {
    const items = node.app.items.map((item) => item.data);
    cluster.emit(
      `${node.id}: app applied=${node.app.appliedIndex} ${formatList(items, logEntriesShownMax) || '(empty)'}`,
    );
  }
}

/** The runtime's half of compaction: save a snapshot of applied state, then tell the core. */
function compact(cluster: ScenarioCluster, args: CommandArgs): void {
  const node = nodeArg(cluster, args);
  const index = args.natural('index');
  args.finish();
  if (!node.up) throw new ScenarioError(`node ${node.id} is down`);
  if (index > node.app.appliedIndex || index <= node.storage.snapshotIndex) {
    throw new ScenarioError(
      `compact: index must be in ${node.storage.snapshotIndex + 1}..${node.app.appliedIndex}`,
    );
  }
  const term = node.storage.termAt(index);
  if (term === undefined) throw new ScenarioError(`compact: ${node.id} has no entry ${index}`);
  const config = cluster.configAt(node, index);
  const snapshot = { meta: { index, term, config }, data: node.app.snapshotData(index) };
  node.storage.compact(snapshot);
  cluster.emit(`${node.id}: compact to ${index}/${term}`);
  cluster.input(node, (core) => core.compact(snapshot));
}

function transfer(cluster: ScenarioCluster, args: CommandArgs): void {
  const node = nodeArg(cluster, args);
  const target = args.option('to');
  if (target === null) throw new ScenarioError('transfer: to= is required');
  cluster.input(
    node,
    (core) => core.transferLeadership(target),
    (result) =>
      cluster.emit(`${node.id}: transfer to ${target} ${result.accepted ? 'accepted' : 'refused'}`),
  );
}

const configChangeTypes: Readonly<Record<string, ConfigChange['type']>> = {
  'add-learner': 'addLearner',
  'add-voter': 'addVoter',
  promote: 'promoteLearner',
  demote: 'demoteVoter',
  remove: 'remove',
};

/** `add-learner 1 node=4` asks node 1 to propose the change; a new node joins empty. */
function configChange(cluster: ScenarioCluster, args: CommandArgs): void {
  const node = nodeArg(cluster, args);
  const subject = args.option('node');
  if (subject === null) throw new ScenarioError(`${args.name}: node= is required`);
  const type = configChangeTypes[args.name];
  if (type === undefined) throw new ScenarioError(`unknown change ${args.name}`);
  // Other changes may name an unknown node on purpose: refusing them is the core's job.
  const adds = type === 'addLearner' || type === 'addVoter';
  if (adds && !cluster.nodes.has(subject)) cluster.start(cluster.addNode(subject, null));
  const change = { type, node: subject } as ConfigChange;
  cluster.input(
    node,
    (core) => core.proposeConfigChange(change),
    (result) => cluster.emit(formatResult(node, `${args.name} ${subject}`, result)),
  );
}

function readIndex(cluster: ScenarioCluster, args: CommandArgs): void {
  const node = nodeArg(cluster, args);
  const requestId = args.option('id');
  if (requestId === null || requestId.length === 0) throw new ScenarioError('read-index: id=');
  cluster.input(node, (core) => core.readIndex(requestId));
}

function trace(cluster: ScenarioCluster, args: CommandArgs): void {
  cluster.trace.messages = args.switchOption('msgs') ?? cluster.trace.messages;
  cluster.trace.heartbeats = args.switchOption('heartbeats') ?? cluster.trace.heartbeats;
  cluster.trace.appends = args.switchOption('appends') ?? cluster.trace.appends;
}

/** Messages the cores produced since the previous `stats`, by type; then starts over. */
function stats(cluster: ScenarioCluster): void {
  const counts = [...cluster.sentCounts.entries()].sort(([left], [right]) =>
    left.localeCompare(right),
  );
  const total = counts.reduce((sum, [, count]) => sum + count, 0);
  const parts = counts.map(([type, count]) => `${type}=${count}`);
  cluster.emit(`sent ${[...parts, `total=${total}`].join(' ')}`);
  cluster.sentCounts.clear();
}

function pending(cluster: ScenarioCluster, args: CommandArgs): void {
  const queued = cluster.network.peek(args.messageFilter(null));
  for (const message of queued) cluster.emit(`queued ${formatMessage(message)}`);
  if (queued.length === 0) cluster.emit('(no messages)');
}

/**
 * `set-state 3 term=7 log=1,1,4,4`: replaces node 3's disk and restarts it. The list gives the
 * term of each index; index 1 is always the bootstrap configuration entry, as on a real disk.
 */
function setState(cluster: ScenarioCluster, args: CommandArgs): void {
  const node = nodeArg(cluster, args);
  const term = args.naturalOption('term', 0);
  const vote = args.option('vote');
  const terms = (args.listOption('log') ?? []).map((text) => Number(text));
  const commit = args.naturalOption('commit', 1);
  args.finish();
  const config = node.bootstrap;
  if (config === null) throw new ScenarioError('set-state: only for bootstrapped nodes');
  if (terms[0] !== 1) throw new ScenarioError('set-state: index 1 holds term 1 (bootstrap)');
  if (
    terms.some((value, index) => !Number.isSafeInteger(value) || value < (terms[index - 1] ?? 0))
  ) {
    throw new ScenarioError('set-state: log terms are integers that never decrease');
  }
  if (commit > terms.length || term < (terms[terms.length - 1] ?? 0)) {
    throw new ScenarioError('set-state: commit within the log, term at least the last entry');
  }
  if (vote !== null) cluster.node(vote);
  if (node.up) cluster.crash(node);
  node.storage.snapshot = null;
  node.storage.entries = terms.map((entryTerm, position) =>
    diskEntry(config, entryTerm, position + 1),
  );
  node.storage.hardState = { term, vote, commit };
  node.app = new ScenarioApp();
  cluster.start(node);
  cluster.emit(statusLine(node));
}

function diskEntry(config: Configuration, term: number, index: number): Entry {
  if (index === 1) return { index, term, kind: 'config', data: encodeConfiguration(config) };
  return { index, term, kind: 'normal', data: new Uint8Array(0) };
}

const handlers: Readonly<Record<string, Handler>> = {
  tick,
  run: tick,
  campaign,
  propose,
  deliver,
  drop,
  delay: reorder,
  duplicate: reorder,
  partition,
  heal,
  stabilize,
  crash,
  restart,
  status,
  log,
  app,
  compact,
  transfer,
  'add-learner': configChange,
  'add-voter': configChange,
  promote: configChange,
  demote: configChange,
  remove: configChange,
  'read-index': readIndex,
  trace,
  stats,
  pending,
  'set-state': setState,
  damage,
};

/** `cluster 3 [leader=1] [prevote] [checkquorum] [learners=4] [inflight=8] ...` */
function createCluster(args: CommandArgs): ScenarioCluster {
  const voterCount = args.natural('voter count');
  const learners = args.listOption('learners') ?? [];
  if (voterCount < 1 || voterCount + learners.length > nodeCountMax) {
    throw new ScenarioError(`cluster: 1..${nodeCountMax} nodes in all`);
  }
  const flags = args.rest();
  for (const flag of flags) {
    if (flag !== 'prevote' && flag !== 'checkquorum') {
      throw new ScenarioError(`cluster: unknown flag ${flag}`);
    }
  }
  const cluster = new ScenarioCluster({
    electionTimeoutTicks: args.naturalOption('election', 10),
    heartbeatIntervalTicks: args.naturalOption('heartbeat', 1),
    preVote: flags.includes('prevote'),
    checkQuorum: flags.includes('checkquorum'),
    appendBytesMax: args.naturalOption('append-bytes', 1 << 20),
    inflightAppendsMax: args.naturalOption('inflight', 8),
    unsafe: parseUnsafe(args.option('unsafe')),
    seed: args.naturalOption('seed', 1),
  });
  const leader = args.option('leader');
  args.finish();
  const voters = Array.from({ length: voterCount }, (_, position) => String(position + 1));
  const config: Configuration = { voters, learners: [...learners].sort() };
  for (const id of learners) {
    if (voters.includes(id) || !/^[1-9]$/.test(id)) throw new ScenarioError(`bad learner ${id}`);
  }
  // Setup is quiet: the transcript starts from the state it reaches, printed below.
  cluster.silent = true;
  for (const id of [...voters, ...config.learners]) cluster.start(cluster.addNode(id, config));
  if (leader !== null) {
    cluster.input(cluster.node(leader), (core) => core.campaign());
    cluster.stabilize();
  }
  cluster.silent = false;
  for (const id of cluster.sortedIds()) cluster.emit(statusLine(cluster.node(id)));
  return cluster;
}

function parseUnsafe(text: string | null): UnsafeVariant | null {
  if (text === null) return null;
  const variant = unsafeVariants.find((candidate) => candidate === text);
  if (variant === undefined) throw new ScenarioError(`unknown unsafe variant ${text}`);
  return variant;
}

/** Runs one command line; `cluster` must come first and only once. */
export function runCommand(context: ScenarioContext, text: string): void {
  const args = new CommandArgs(text);
  if (args.name === 'cluster') {
    if (context.cluster !== null) throw new ScenarioError('cluster: only one per scenario');
    context.cluster = createCluster(args);
    return;
  }
  const handler = handlers[args.name];
  if (handler === undefined) throw new ScenarioError(`unknown command ${args.name}`);
  if (context.cluster === null) throw new ScenarioError('the first command is cluster');
  handler(context.cluster, args);
  args.finish();
}
