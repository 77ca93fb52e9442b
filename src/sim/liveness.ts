/**
 * The liveness phase. When the fault phase ends the network heals and stops losing or
 * duplicating messages, pauses end, non-members stop, and crashed members restart — except
 * that some may stay down while every known configuration keeps a majority up. Every client
 * then sends one more message. The run passes once all of them are acknowledged and every
 * live member has delivered everything committed; it fails when the tick budget runs out.
 */
import { decodeConfiguration, members, sameConfiguration } from '../raft/config.ts';
import type { RaftCore } from '../raft/core.ts';
import type { Configuration, Entry, NodeId } from '../raft/types.ts';
import type { SimDisk } from './disk.ts';
import type { NetworkFaults } from './network.ts';
import { roleLetter } from './trace.ts';
import type { SimViolation } from './violation.ts';
import type { SimNode, World } from './world.ts';

export function startLivenessPhase(world: World): void {
  world.network.heal();
  world.network.faults = calmNetwork(world.mix.network);
  world.clients.finishWithOneMore();
  for (const node of world.nodes) node.pausedUntilTicks = 0;
  const configs = knownConfigs(world);
  const wanted = new Set(configs.flatMap((config) => members(config)));
  const keptDown = new Set<NodeId>();
  for (const node of world.nodes) {
    if (!wanted.has(node.id)) {
      world.crash(node, null, 'stops (not a member)');
      continue;
    }
    if (node.state === 'up') continue;
    const keep =
      node.state !== 'unborn' &&
      world.nemesisPrng.chance(world.mix.keepDownProbability) &&
      quorumsSurvive(configs, new Set([...keptDown, node.id]));
    if (keep) {
      keptDown.add(node.id);
      node.state = 'stopped';
      continue;
    }
    world.startNode(node);
  }
  const down = keptDown.size === 0 ? 'every member runs' : `${[...keptDown].join(', ')} stay down`;
  world.note(null, `liveness phase: network healed, faults stop, ${down}`);
  if (world.options.isolateInLivenessPhase) isolateEveryone(world);
}

/** Test-only sabotage: cut every link, so the liveness checker must fail. */
function isolateEveryone(world: World): void {
  for (const node of world.nodes) {
    const others = world.nodes.filter((other) => other !== node).map((other) => other.index);
    world.network.applyPartition({ kind: 'isolate', side: [node.index], other: others }, true);
  }
  world.note(null, 'sabotage: every node stays cut off');
}

/** The committed configuration and every newer one some node holds in its log. */
function knownConfigs(world: World): Configuration[] {
  const configs: Configuration[] = [world.checker.record.latestConfig()];
  for (const node of world.nodes) {
    const config =
      node.state === 'up' ? (node.core as RaftCore).status().config : latestDiskConfig(node.disk);
    if (config !== null && !configs.some((known) => sameConfiguration(known, config))) {
      configs.push(config);
    }
  }
  return configs;
}

/** What every live member must have delivered: everything committed and acknowledged. */
function deliveryTarget(world: World): number {
  return Math.max(world.checker.record.length, world.checker.ackedIndexMax);
}

/** Running members of the committed configuration that have not delivered the target. */
function laggingMembers(world: World): SimNode[] {
  const target = deliveryTarget(world);
  return members(world.checker.record.latestConfig())
    .map((id) => world.node(world.nodeIndexOf(id) as number))
    .filter((node) => node.state === 'up' && node.app.appliedIndex < target);
}

export function livenessReached(world: World): boolean {
  const clients = world.clients;
  if (clients.outstandingCount > 0 || clients.finalOwedCount > 0) return false;
  return laggingMembers(world).length === 0;
}

export function livenessViolation(world: World, phaseStartTicks: number): SimViolation {
  const lagging = laggingMembers(world);
  const describe = (node: SimNode) =>
    `${node.id} ${roleLetter(node.role)}/${node.disk.hardState?.term ?? 0} applied ${node.app.appliedIndex}`;
  const owed = world.clients.finalOwedCount;
  const owedText = owed > 0 ? ` (${owed} final messages not yet sent)` : '';
  const waiting = `${world.clients.describeOutstanding() || 'none'}${owedText}`;
  return world.context.violation(
    'liveness',
    `${world.nowTicks - phaseStartTicks} ticks after faults stopped: committed ${deliveryTarget(world)}; lagging: ${lagging.map(describe).join('; ') || 'none'}; clients waiting: ${waiting}`,
    lagging.map((node) => node.id),
  );
}

/** At the end, every running node's log agrees with the committed record. */
export function checkFinalLogs(world: World): void {
  const record = world.checker.record;
  for (const node of world.upNodes()) {
    const index = Math.min(node.app.appliedIndex, record.length);
    if (index < node.disk.snapshotIndex) continue;
    if (node.disk.prefixHashAt(index) !== record.prefixHashAt(index)) {
      world.context.fail(
        'log matching',
        `${node.id} ends with a log that differs from the committed one at or before ${index}`,
        [node.id],
      );
    }
  }
}

function calmNetwork(faults: NetworkFaults): NetworkFaults {
  return { ...faults, dropProbability: 0, duplicateProbability: 0, delaySpikeProbability: 0 };
}

/** Whether every configuration keeps a majority of its voters outside `down`. */
export function quorumsSurvive(
  configs: readonly Configuration[],
  down: ReadonlySet<NodeId>,
): boolean {
  return configs.every((config) => {
    const up = config.voters.filter((id) => !down.has(id)).length;
    return up > config.voters.length / 2;
  });
}

/** The newest configuration on a disk: its last config entry, else its snapshot's. */
function latestDiskConfig(disk: SimDisk): Configuration | null {
  for (let index = disk.lastIndex; index > disk.snapshotIndex; index--) {
    const entry = disk.entryAt(index) as Entry;
    if (entry.kind === 'config') return decodeConfiguration(entry.data);
  }
  return disk.snapshot === null ? null : disk.snapshot.meta.config;
}
