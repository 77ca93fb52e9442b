/**
 * The runtime world's nemesis: during the fault phase it picks one action at a time,
 * weighted by the seed's mix — crash (often the leader, with a power cut), partition
 * (symmetric, one-way, or isolating the leader), a client cut off from a node, a pause, a
 * wall-clock jump, a membership change through the nodes' own API (add a machine as voter
 * or learner, promote, demote, remove), a leadership transfer, or corruption at rest on a
 * faulty disk. Everything it does goes through what an operator or the machine itself
 * could do to the real node; nothing reaches into its state.
 */
import type { MemberRecord } from '../../broadcast/membership.ts';
import type { Configuration, NodeId } from '../../raft/types.ts';
import type { Prng } from '../../util/prng.ts';
import { drawPartition, type SimNetwork } from '../network.ts';
import type { ClientNetwork } from './exchange.ts';
import type { RuntimeMix, RuntimeNemesisWeights } from './mix.ts';
import type { NodeHost } from './node-host.ts';
import type { Life, SimScheduler } from './scheduler.ts';

export interface NemesisCounts {
  crashes: number;
  partitions: number;
  pauses: number;
  clockJumps: number;
  memberChanges: number;
  transfers: number;
  corruptions: number;
}

/** What the nemesis may see and touch of the world. */
export interface NemesisWorld {
  readonly mix: RuntimeMix;
  readonly scheduler: SimScheduler;
  readonly life: Life;
  readonly hosts: readonly NodeHost[];
  readonly network: SimNetwork;
  readonly clientNetwork: ClientNetwork;
  readonly counts: NemesisCounts;
  readonly faultsOn: boolean;
  /** The configuration the committed log ends with. */
  committedConfig(): Configuration;
  isFaultyDisk(host: NodeHost): boolean;
  startHost(host: NodeHost): void;
  note(text: string): void;
}

type Action = keyof RuntimeNemesisWeights;

export class RuntimeNemesis {
  /** Machines once removed: the membership table keeps their ids from coming back. */
  private readonly removed = new Set<NodeId>();

  constructor(
    private readonly world: NemesisWorld,
    private readonly prng: Prng,
  ) {}

  /** Schedules the next action, and the one after it, until faults stop. */
  begin(): void {
    const { scheduler, life, mix } = this.world;
    scheduler.schedule(this.prng.between(1, 2 * mix.nemesisIntervalMs), life, () => {
      if (!this.world.faultsOn) return;
      this.act();
      this.begin();
    });
  }

  private act(): void {
    const action = this.pickAction();
    if (action === null) return;
    const handlers: Record<Action, () => void> = {
      crash: () => this.crash(),
      partition: () => this.partition(),
      clientCut: () => this.cutClient(),
      pause: () => this.pause(),
      clockJump: () => this.jumpClock(),
      membership: () => this.changeMembership(),
      transfer: () => this.transfer(),
      corrupt: () => this.corrupt(),
    };
    handlers[action]();
  }

  private pickAction(): Action | null {
    const weights = this.world.mix.nemesis;
    const actions = Object.keys(weights) as Action[];
    const total = actions.reduce((sum, action) => sum + weights[action], 0);
    if (total === 0) return null;
    let draw = this.prng.below(total);
    for (const action of actions) {
      draw -= weights[action];
      if (draw < 0) return action;
    }
    return null;
  }

  private up(): NodeHost[] {
    return this.world.hosts.filter((host) => host.state === 'up');
  }

  /** The running node that leads the highest term, if any. */
  leader(): NodeHost | null {
    let best: NodeHost | null = null;
    for (const host of this.up()) {
      if (!host.watch.isLeader) continue;
      if (best === null || host.watch.term > best.watch.term) best = host;
    }
    return best;
  }

  private crash(): void {
    const { world, prng } = this;
    const up = this.up();
    if (up.length === 0) return;
    const leader = this.leader();
    const host =
      leader !== null && prng.chance(world.mix.crashLeaderProbability) ? leader : prng.pick(up);
    host.crash();
    world.counts.crashes++;
    world.note(`${host.id} crashes (power cut)`);
    world.scheduler.schedule(prng.between(50, world.mix.downMsMax), world.life, () => {
      if (host.state === 'down') world.startHost(host);
    });
  }

  private partition(): void {
    const { world, prng } = this;
    const indexes = world.hosts
      .filter((host) => host.incarnation > 0 && host.state !== 'failed')
      .map((host) => host.index);
    if (indexes.length < 2) return;
    const kind = prng.pick(['symmetric', 'one-way', 'isolate'] as const);
    const spec = drawPartition(prng, kind, indexes, this.leader()?.index ?? null);
    world.network.applyPartition(spec);
    world.counts.partitions++;
    world.note(`partition ${kind}: [${spec.side.join(',')}] / [${spec.other.join(',')}]`);
    world.scheduler.schedule(prng.between(100, world.mix.partitionMsMax), world.life, () => {
      if (world.network.partition === spec) {
        world.network.heal();
        world.note('partition heals');
      }
    });
  }

  private cutClient(): void {
    const { world, prng } = this;
    const client = `c${prng.below(world.mix.clientCount)}`;
    const host = prng.pick(world.hosts.slice(0, world.mix.nodeCount));
    world.clientNetwork.cut(client, host.id);
    world.note(`${client} is cut off from ${host.id}`);
    world.scheduler.schedule(prng.between(100, world.mix.partitionMsMax), world.life, () => {
      if (world.faultsOn) world.clientNetwork.heal();
    });
  }

  private pause(): void {
    const { world, prng } = this;
    const up = this.up();
    if (up.length === 0) return;
    const host = prng.pick(up);
    const pauseMs = prng.between(10, world.mix.pauseMsMax);
    host.pause(world.scheduler.nowMs + pauseMs);
    world.counts.pauses++;
    world.note(`${host.id} pauses for ${pauseMs} ms`);
  }

  private jumpClock(): void {
    const { world, prng } = this;
    const skewMsMax = world.mix.clockSkewMsMax;
    if (skewMsMax === 0) return;
    const host = prng.pick(world.hosts);
    host.clockOffsetMs = prng.between(-skewMsMax, skewMsMax);
    world.counts.clockJumps++;
    world.note(`${host.id}'s wall clock is set ${host.clockOffsetMs} ms off`);
  }

  private transfer(): void {
    const leader = this.leader();
    if (leader === null || leader.node === null) return;
    const voters = this.world.committedConfig().voters.filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    const target = this.prng.pick(voters);
    const result = leader.node.transferLeadership(target);
    if (result.accepted) this.world.counts.transfers++;
    this.world.note(`${leader.id} transfers leadership to ${target}: ${result.detail}`);
  }

  private corrupt(): void {
    const { world, prng } = this;
    const faulty = world.hosts.filter((host) => world.isFaultyDisk(host));
    if (faulty.length === 0) return;
    const host = prng.pick(faulty);
    const report = prng.chance(0.5) ? host.disk.flipBit() : host.disk.zeroSector();
    if (report === null) return;
    world.counts.corruptions++;
    world.note(`${host.id}'s disk rots at ${report.path}+${report.offsetBytes}`);
  }

  /**
   * One request to the nodes' membership API, through any running node (it forwards to the
   * leader): add a machine that never was a member, promote a learner, demote or remove a
   * voter. The voters healthy disks hold always stay a quorum of the voters, so the machines
   * a faulty disk may stop are never needed for progress.
   */
  private changeMembership(): void {
    const { world, prng } = this;
    const via = this.up();
    if (via.length === 0) return;
    const choices = this.membershipChoices(world.committedConfig());
    if (choices.length === 0) return;
    const choice = prng.pick(choices);
    const node = prng.pick(via).node;
    if (node === null) return;
    const host = world.hosts.find((candidate) => candidate.id === choice.id);
    if (host === undefined) return;
    world.counts.memberChanges++;
    world.note(`membership: ${choice.kind} ${choice.id} (asked at ${node.id})`);
    let request: Promise<unknown>;
    if (choice.kind === 'remove') {
      this.removed.add(choice.id);
      request = node.removeMember(choice.id);
    } else {
      if (host.incarnation === 0) world.startHost(host);
      const member: MemberRecord = {
        id: choice.id,
        address: `${choice.id}:7000`,
        voter: choice.kind !== 'demote' && choice.kind !== 'add learner',
      };
      request = node.addMember(member);
    }
    request.then(
      () => world.note(`membership: ${choice.kind} ${choice.id} is in force`),
      (error: Error) => world.note(`membership: ${choice.kind} ${choice.id}: ${error.message}`),
    );
  }

  private membershipChoices(config: Configuration): { kind: string; id: NodeId }[] {
    const world = this.world;
    const choices: { kind: string; id: NodeId }[] = [];
    const members = new Set([...config.voters, ...config.learners]);
    for (const host of world.hosts) {
      if (members.has(host.id) || this.removed.has(host.id) || host.state === 'failed') continue;
      choices.push({ kind: this.prng.chance(0.3) ? 'add learner' : 'add voter', id: host.id });
    }
    for (const learner of config.learners) choices.push({ kind: 'promote', id: learner });
    if (config.voters.length > 3) {
      for (const voter of config.voters) {
        if (!this.healthyQuorumWithout(config.voters, voter)) continue;
        choices.push({ kind: this.prng.chance(0.3) ? 'demote' : 'remove', id: voter });
      }
    }
    return choices;
  }

  private healthyQuorumWithout(voters: readonly NodeId[], leaving: NodeId): boolean {
    const rest = voters.filter((id) => id !== leaving);
    const healthy = rest.filter((id) => {
      const host = this.world.hosts.find((candidate) => candidate.id === id);
      return host !== undefined && !this.world.isFaultyDisk(host);
    });
    return healthy.length >= Math.floor(rest.length / 2) + 1;
  }
}
