/**
 * The nemesis: during the fault phase it picks one action at a time, weighted by the seed's
 * fault mix — crash (often the leader), partition (symmetric, one-way, or isolating the
 * leader), pause, membership change (add learner → promote, demote, remove, re-add), leadership
 * transfer, or a forced campaign.
 */
import type { RaftCore } from '../raft/core.ts';
import type { ConfigChange, CoreStatus } from '../raft/types.ts';
import type { NemesisWeights } from './fault-mix.ts';
import { drawPartition, type PartitionKind, shuffle } from './network.ts';
import type { World } from './world.ts';

type Action = keyof NemesisWeights;
const actions: readonly Action[] = [
  'crash',
  'partition',
  'pause',
  'membership',
  'transfer',
  'campaign',
];
const partitionKinds: readonly PartitionKind[] = ['symmetric', 'one-way', 'isolate'];

export function nemesisAct(world: World): void {
  const action = pickAction(world);
  if (action === null) return;
  switch (action) {
    case 'crash':
      crashSomeone(world);
      break;
    case 'partition':
      partitionSomehow(world);
      break;
    case 'pause':
      pauseSomeone(world);
      break;
    case 'membership':
      changeMembership(world);
      break;
    case 'transfer':
      transferLeadership(world);
      break;
    case 'campaign':
      forceCampaign(world);
      break;
  }
}

function pickAction(world: World): Action | null {
  const weights = world.mix.nemesis;
  const total = actions.reduce((sum, action) => sum + weights[action], 0);
  if (total === 0) return null;
  let draw = world.nemesisPrng.below(total);
  for (const action of actions) {
    draw -= weights[action];
    if (draw < 0) return action;
  }
  return null;
}

function crashSomeone(world: World): void {
  const prng = world.nemesisPrng;
  const leader = world.leaderNode();
  const up = world.upNodes();
  if (up.length === 0) return;
  const target =
    leader !== null && prng.chance(world.mix.crashLeaderProbability) ? leader : prng.pick(up);
  world.crash(target, prng.between(1, world.mix.downTicksMax), 'crashes');
}

function partitionSomehow(world: World): void {
  const prng = world.nemesisPrng;
  const kind = prng.pick(partitionKinds);
  const everyone = world.nodes.filter((node) => node.state !== 'unborn').map((node) => node.index);
  if (everyone.length < 2) return;
  const leader = world.leaderNode();
  const spec = drawPartition(prng, kind, everyone, leader === null ? null : leader.index);
  world.partitionFor(spec, prng.between(1, world.mix.partitionTicksMax));
}

function pauseSomeone(world: World): void {
  const up = world.upNodes();
  if (up.length === 0) return;
  const prng = world.nemesisPrng;
  world.pause(prng.pick(up), prng.between(1, world.mix.pauseTicksMax));
}

function transferLeadership(world: World): void {
  const leader = world.leaderNode();
  if (leader === null) return;
  const core = leader.core as RaftCore;
  const voters = core.status().config.voters.filter((id) => id !== leader.id);
  if (voters.length === 0) return;
  const target = world.nemesisPrng.pick(voters);
  const result = core.transferLeadership(target);
  if (result.accepted) world.stats.transfers++;
  world.note(leader, `transfer leadership to ${target}: ${result.detail}`);
  world.pump(leader);
}

/** Forces an election; half the time two nodes at once, for split votes in one term. */
function forceCampaign(world: World): void {
  const prng = world.nemesisPrng;
  const up = world.upNodes();
  if (up.length === 0) return;
  const candidates =
    up.length > 1 && prng.chance(0.5) ? shuffle(prng, up).slice(0, 2) : [prng.pick(up)];
  for (const node of candidates) {
    world.stats.campaigns++;
    world.note(node, 'campaigns (forced)');
    (node.core as RaftCore).campaign();
  }
  for (const node of candidates) world.pump(node);
}

/**
 * One single-server change at the leader: promote a caught-up learner, add a node that is
 * not a member (a spare, or a removed node coming back with its old disk), demote or remove
 * a voter while at least three remain.
 */
function changeMembership(world: World): void {
  const leader = world.leaderNode();
  if (leader === null) return;
  const core = leader.core as RaftCore;
  const status = core.status();
  const choices = membershipChoices(world, status);
  if (choices.length === 0) return;
  const change = world.nemesisPrng.pick(choices);
  const result = core.proposeConfigChange(change);
  world.note(
    leader,
    `config change ${change.type} ${change.node}: ${result.accepted ? `accepted at ${result.index}` : `refused (${result.reason})`}`,
  );
  if (result.accepted && change.type === 'addLearner') {
    world.ensureRunning(world.node(world.nodeIndexOf(change.node) as number));
  }
  world.pump(leader);
}

function membershipChoices(world: World, status: CoreStatus): ConfigChange[] {
  const { voters, learners } = status.config;
  const choices: ConfigChange[] = [];
  for (const learner of learners) {
    const progress = status.progress.find((follower) => follower.id === learner);
    if (progress !== undefined && progress.matchIndex >= status.commitIndex) {
      choices.push({ type: 'promoteLearner', node: learner });
    }
  }
  for (const node of world.nodes) {
    if (!voters.includes(node.id) && !learners.includes(node.id)) {
      choices.push({ type: 'addLearner', node: node.id });
    }
  }
  if (voters.length >= 3) {
    const voter = world.nemesisPrng.pick(voters);
    choices.push({ type: world.nemesisPrng.chance(0.2) ? 'demoteVoter' : 'remove', node: voter });
  }
  for (const learner of learners) {
    if (world.nemesisPrng.chance(0.1)) choices.push({ type: 'remove', node: learner });
  }
  return choices;
}
