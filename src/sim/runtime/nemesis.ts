/**
 * The runtime world's nemesis: during the fault phase it picks one action at a time,
 * weighted by the seed's mix — crash (often the leader, with a power cut), partition
 * (symmetric, one-way, or isolating the leader), a client cut off from a node, a pause, a
 * wall-clock jump, a membership change through the nodes' own API (add a machine as voter
 * or learner, promote, demote, remove), a leadership transfer, a forced election (as an
 * operator may start one), or corruption at rest on a faulty disk. A machine may also crash
 * right after it grants a vote, and vote answers may be held back past their round. Everything it does goes through what an operator or the machine itself
 * could do to the real node; nothing reaches into its state.
 */
import { BroadcastError } from '../../broadcast/errors.ts';
import type { MemberRecord } from '../../broadcast/membership.ts';
import type { Configuration, NodeId } from '../../raft/types.ts';
import type { Frame } from '../../transport/types.ts';
import { assert } from '../../util/assert.ts';
import type { Prng } from '../../util/prng.ts';
import { drawPartition, type SimNetwork, shuffle } from '../network.ts';
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
  campaigns: number;
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

/** A vote answer the network holds for its candidate. */
interface HeldAnswer {
  readonly candidate: NodeId;
  /** The request of the candidate's next round of this kind, which lets the answer go. */
  readonly request: 'Vote' | 'PreVote';
  readonly term: number;
  readonly deliver: (delayMs: number) => void;
}

interface Choice {
  readonly kind: 'add voter' | 'add learner' | 'promote' | 'demote' | 'remove';
  readonly id: NodeId;
}

/** The configuration once `choice` is in force. */
function applyChoice(config: Configuration, choice: Choice): Configuration {
  const voters = config.voters.filter((id) => id !== choice.id);
  const learners = config.learners.filter((id) => id !== choice.id);
  if (choice.kind === 'add voter' || choice.kind === 'promote') voters.push(choice.id);
  if (choice.kind === 'add learner' || choice.kind === 'demote') learners.push(choice.id);
  return { voters, learners };
}

export class RuntimeNemesis {
  /** Machines once removed: the membership table keeps their ids from coming back. */
  private readonly removed = new Set<NodeId>();
  /**
   * The configuration every request so far asks for, had each landed in order: where the
   * next request starts from. Its safety is judged against every outcome (see unsettled).
   */
  private intended: Configuration | null = null;
  /**
   * Requests not known to be in force. One that timed out may still land at any later time,
   * after requests asked later (each goes through its own node's session), or never.
   */
  private readonly unsettled: Choice[] = [];
  /** Adds, promotes and demotes asked and not answered yet, by machine. */
  private readonly upsertsAwaited = new Map<NodeId, Set<Choice>>();
  /** For each removal asked while some of those awaited their answer: which ones. */
  private readonly upsertsAwaitedAtRemoval = new Map<NodeId, Set<Choice>>();
  /**
   * Machines removed while an add, promote or demote of theirs awaited its answer, which
   * then came: in force. Two requests in flight land in log order, so that one may have
   * committed after the removal and brought the machine back, as the API allows (seed
   * 0x231915 with 4 KiB segments: a promote asked 240 ms before the remove committed 70 ms
   * after it); so may one of those answered timeout, whose outcome is open (seed 0x30d455,
   * profile broad: a promote asked 700 ms before the remove timed out 20 ms before the
   * remove came in force, and committed two entries after it). A request answered before the
   * removal was asked, or refused, explains no return.
   */
  private readonly mayReturn = new Set<NodeId>();

  /** Vote answers held back, oldest first; bounded by the vote answers of one fault phase. */
  private readonly heldAnswers: HeldAnswer[] = [];
  /** Per-frame draws on their own stream, so the actions' draws do not depend on traffic. */
  private readonly framePrng: Prng;

  constructor(
    private readonly world: NemesisWorld,
    private readonly prng: Prng,
  ) {
    this.framePrng = prng.fork();
  }

  /** Machines whose removal was asked for, in the order asked, that may not come back. */
  removedIds(): NodeId[] {
    return [...this.removed].filter((id) => !this.mayReturn.has(id));
  }

  /**
   * A vote answer held back in the network (the mix's voteAnswers), sometimes after an
   * on-time copy, and let go at the worst moment: as its candidate starts a later round, or
   * after lateMsMax. True when the nemesis took charge of the frame's delivery.
   */
  holdVoteAnswer(frame: Frame, deliver: (delayMs: number) => void): boolean {
    if (frame.type !== 'VoteResponse' && frame.type !== 'PreVoteResponse') return false;
    const { world } = this;
    const faults = world.mix.voteAnswers;
    if (!world.faultsOn || faults.lateMsMax === 0) return false;
    const prng = this.framePrng;
    if (prng.chance(faults.holdProbability)) {
      // Held whole.
    } else if (prng.chance(faults.lateCopyProbability)) {
      deliver(prng.between(0, world.mix.msPerTick));
    } else {
      return false;
    }
    const request = frame.type === 'VoteResponse' ? 'Vote' : 'PreVote';
    const held: HeldAnswer = { candidate: frame.to, request, term: frame.term, deliver };
    this.heldAnswers.push(held);
    world.scheduler.schedule(faults.lateMsMax, world.life, () => this.release(held, 0));
    return true;
  }

  /** Delivers a held answer once, `delayMs` from now. */
  private release(held: HeldAnswer, delayMs: number): void {
    const at = this.heldAnswers.indexOf(held);
    if (at < 0) return;
    this.heldAnswers.splice(at, 1);
    held.deliver(delayMs);
  }

  /**
   * Watches what machines send: a candidate's request for a new round lets go of the answers
   * held from its earlier rounds, and a machine may crash right after granting a vote.
   */
  afterSent(frame: Frame): void {
    if (frame.type === 'Vote' || frame.type === 'PreVote') {
      for (const held of this.heldAnswers.slice()) {
        if (
          held.candidate === frame.from &&
          held.request === frame.type &&
          held.term < frame.term
        ) {
          this.release(held, this.framePrng.between(0, this.world.mix.msPerTick));
        }
      }
    }
    if (frame.type === 'VoteResponse' && frame.granted) this.maybeCrashAfterVote(frame.from);
  }

  /**
   * A machine that just granted a vote crashes, with the mix's crashAfterVoteProbability,
   * once the grant is on its way (the grant left after the vote was durable).
   */
  private maybeCrashAfterVote(voter: NodeId): void {
    const { world } = this;
    if (!world.faultsOn || !this.framePrng.chance(world.mix.crashAfterVoteProbability)) return;
    const host = world.hosts.find((candidate) => candidate.id === voter);
    if (host === undefined) return;
    world.scheduler.schedule(0, world.life, () => {
      if (host.state === 'up' && world.faultsOn)
        this.crashHost(host, 'right after granting a vote');
    });
  }

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
      campaign: () => this.campaign(),
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
    this.crashHost(host, '');
  }

  private crashHost(host: NodeHost, when: string): void {
    const { world, prng } = this;
    host.crash();
    world.counts.crashes++;
    world.note(`${host.id} crashes (power cut)${when === '' ? '' : ` ${when}`}`);
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

  /** Forces an election; half the time at two machines at once, for split votes in a term. */
  private campaign(): void {
    const { world, prng } = this;
    const up = this.up();
    if (up.length === 0) return;
    const candidates =
      up.length > 1 && prng.chance(0.5) ? shuffle(prng, up).slice(0, 2) : [prng.pick(up)];
    for (const host of candidates) {
      world.counts.campaigns++;
      world.note(`${host.id} campaigns (forced)`);
      host.node?.campaign();
    }
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
    const committed = world.committedConfig();
    this.intended ??= committed;
    const choices = this.membershipChoices(committed, this.intended);
    if (choices.length === 0) return;
    const choice = prng.pick(choices);
    this.intended = applyChoice(this.intended, choice);
    const node = prng.pick(via).node;
    if (node === null) return;
    const host = world.hosts.find((candidate) => candidate.id === choice.id);
    if (host === undefined) return;
    world.counts.memberChanges++;
    world.note(`membership: ${choice.kind} ${choice.id} (asked at ${node.id})`);
    this.unsettled.push(choice);
    let request: Promise<unknown>;
    if (choice.kind === 'remove') {
      this.removed.add(choice.id);
      const awaited = this.upsertsAwaited.get(choice.id);
      if (awaited !== undefined && awaited.size > 0) {
        this.upsertsAwaitedAtRemoval.set(choice.id, new Set(awaited));
      }
      request = node.removeMember(choice.id);
    } else {
      const awaited = this.upsertsAwaited.get(choice.id) ?? new Set<Choice>();
      awaited.add(choice);
      this.upsertsAwaited.set(choice.id, awaited);
      if (host.incarnation === 0) world.startHost(host);
      const member: MemberRecord = {
        id: choice.id,
        address: `${choice.id}:7000`,
        voter: choice.kind !== 'demote' && choice.kind !== 'add learner',
      };
      request = node.addMember(member);
    }
    // Answered in force, or timeout (whose outcome is open): if the machine's removal was
    // asked while this awaited its answer, it may have landed after the removal.
    const answered = (mayHaveLanded: boolean) => {
      this.upsertsAwaited.get(choice.id)?.delete(choice);
      if (mayHaveLanded && this.upsertsAwaitedAtRemoval.get(choice.id)?.has(choice)) {
        this.mayReturn.add(choice.id);
      }
    };
    request.then(
      () => {
        answered(true);
        this.unsettled.splice(this.unsettled.indexOf(choice), 1);
        world.note(`membership: ${choice.kind} ${choice.id} is in force`);
      },
      (error: Error) => {
        // A timeout leaves the outcome open ("it may still be"): a copy proposed before the
        // deadline may commit after it, and after the removal.
        answered(error instanceof BroadcastError && error.code === 'timeout');
        world.note(`membership: ${choice.kind} ${choice.id}: ${error.message}`);
      },
    );
  }

  private membershipChoices(committed: Configuration, intended: Configuration): Choice[] {
    const candidates: Choice[] = [];
    const members = new Set([...intended.voters, ...intended.learners]);
    for (const host of this.world.hosts) {
      if (members.has(host.id) || this.removed.has(host.id) || host.state === 'failed') continue;
      candidates.push({ kind: this.prng.chance(0.3) ? 'add learner' : 'add voter', id: host.id });
    }
    for (const learner of intended.learners) candidates.push({ kind: 'promote', id: learner });
    for (const voter of intended.voters) {
      candidates.push({ kind: this.prng.chance(0.3) ? 'demote' : 'remove', id: voter });
    }
    return candidates.filter((choice) =>
      this.everyOutcomeKeepsHealthyQuorum(committed, [...this.unsettled, choice]),
    );
  }

  /**
   * Whether every configuration the cluster may end in keeps a healthy quorum: each request
   * may land or not, and a late one overrides what a later request asked for the same
   * machine, so each machine may be a voter if it is one now or any request makes it one,
   * and a non-voter likewise. Sequential outcomes alone miss a demotion that times out and
   * lands, while the promotion asked after it is lost (seed 0x5e9f).
   */
  private everyOutcomeKeepsHealthyQuorum(
    committed: Configuration,
    requests: readonly Choice[],
  ): boolean {
    const roles = new Map<NodeId, { voter: boolean; other: boolean }>();
    const roleOf = (id: NodeId) =>
      roles.get(id) ?? {
        voter: committed.voters.includes(id),
        other: !committed.voters.includes(id),
      };
    for (const id of committed.voters) roles.set(id, roleOf(id));
    for (const request of requests) {
      const role = roleOf(request.id);
      const voter = request.kind === 'add voter' || request.kind === 'promote';
      roles.set(request.id, { voter: role.voter || voter, other: role.other || !voter });
    }
    let voterSets: NodeId[][] = [[]];
    for (const [id, role] of roles) {
      voterSets = voterSets.flatMap((voters) => [
        ...(role.voter ? [[...voters, id]] : []),
        ...(role.other ? [voters] : []),
      ]);
    }
    assert(voterSets.length > 0, 'the cluster ends in some configuration');
    return voterSets.every((voters) => this.keepsHealthyQuorum({ voters, learners: [] }));
  }

  /**
   * At least three voters, and the voters on healthy disks a quorum of them: the machines a
   * faulty disk may stop for good are then never needed for progress.
   */
  private keepsHealthyQuorum(config: Configuration): boolean {
    const healthy = config.voters.filter((id) => {
      const host = this.world.hosts.find((candidate) => candidate.id === id);
      return host !== undefined && !this.world.isFaultyDisk(host);
    });
    return config.voters.length >= 3 && healthy.length >= Math.floor(config.voters.length / 2) + 1;
  }
}
