/**
 * The membership driver: the runtime side of membership.ts. An operator's request is written
 * to the log as a control record of the node's own session; on the leader, a periodic
 * reconcile moves the Raft configuration one single-server step towards the recorded members
 * (Raft thesis §4.1), promoting a learner only once it has caught up (§4.2.1). It also keeps
 * the transport's peer addresses in line with what the log recorded.
 */
import type { RaftCore } from '../raft/core.ts';
import type { Configuration, NodeId } from '../raft/types.ts';
import type { Transport } from '../transport/types.ts';
import { assert } from '../util/assert.ts';
import type { Environment } from '../util/environment.ts';
import { BroadcastError } from './errors.ts';
import {
  encodeMembershipCommand,
  type MemberRecord,
  type MembershipCommand,
  type MembershipTable,
  membershipTopic,
  nextConfigChange,
  requestedMemberProblem,
} from './membership.ts';
import type { NodeLogger } from './options.ts';
import type { BroadcastResult } from './pending.ts';

export interface MembershipDriverOptions {
  readonly id: NodeId;
  readonly core: RaftCore;
  readonly transport: Transport;
  readonly logger: NodeLogger;
  readonly environment: Environment;
  /** The initial members' addresses, recorded in the log by the first leader. */
  readonly initialPeers: ReadonlyMap<NodeId, string>;
  readonly membership: () => MembershipTable;
  readonly appliedConfig: () => Configuration;
  /** Writes a control record through the node's own session. */
  readonly propose: (topic: string, payload: Uint8Array) => Promise<BroadcastResult>;
  /** Whether this node found its membership record with `deadlineMs` at `index` expired. */
  readonly expiredAt: (index: number, deadlineMs: number) => boolean;
  readonly stopped: () => BroadcastError | null;
  readonly scheduleLoop: () => void;
  readonly requestTimeoutMs: number;
  /** How often a waiting `addMember` looks at the applied configuration. */
  readonly pollIntervalMs: number;
  /** Reconciles once per this many ticks (a heartbeat: often enough, and cheap). */
  readonly reconcileIntervalTicks: number;
}

/** A learner within this many entries of the leader's log counts as caught up. */
const membershipCatchUpEntries = 64;

export class MembershipDriver {
  private ticksSinceReconcile = 0;
  private seedRequested = false;
  /** Every member's last recorded address, kept after its record goes (see updatePeers). */
  private readonly lastKnownAddresses = new Map<NodeId, string>();

  constructor(private readonly options: MembershipDriverOptions) {
    assert(options.reconcileIntervalTicks >= 1, 'reconcileIntervalTicks is at least 1');
    assert(options.pollIntervalMs > 0, 'pollIntervalMs is positive');
  }

  addressOf(id: NodeId): string | null {
    return this.options.membership().get(id)?.address ?? this.options.initialPeers.get(id) ?? null;
  }

  /** Every address we know: the log's records over the initial peers. */
  updatePeers(): void {
    const peers = new Map(this.options.initialPeers);
    for (const member of this.options.membership().list()) {
      peers.set(member.id, member.address);
      this.lastKnownAddresses.set(member.id, member.address);
    }
    // A member whose record is gone is still heard while a Raft configuration that holds it
    // may decide: the record that removes a member is applied before the configuration
    // change that removes it is even proposed, and a leader removing itself must still
    // reach its followers with that change (Raft thesis §4.2.2). Dropping its links at the
    // record stalled a cluster for good once the removed leader could no longer be heard.
    const configs = [this.options.core.status().config, this.options.appliedConfig()];
    for (const config of configs) {
      for (const id of [...config.voters, ...config.learners]) {
        const address = this.lastKnownAddresses.get(id);
        if (!peers.has(id) && address !== undefined) peers.set(id, address);
      }
    }
    // A runtime given its peers by its transport's owner (tests, embedding) keeps them.
    if (peers.size > 0) this.options.transport.setPeers(peers);
  }

  tick(): void {
    if (++this.ticksSinceReconcile < this.options.reconcileIntervalTicks) return;
    this.ticksSinceReconcile = 0;
    this.reconcile();
  }

  /**
   * The leader moves the configuration one step towards the recorded membership. The first
   * leader records the initial members' addresses first, so later joiners learn them.
   */
  private reconcile(): void {
    const { core, initialPeers } = this.options;
    const status = core.status();
    if (status.role !== 'leader' || this.options.stopped() !== null) return;
    const membership = this.options.membership();
    if (!membership.isSeeded) {
      // Without every member's address there is nothing trustworthy to record.
      const members = [...status.config.voters, ...status.config.learners];
      if (this.seedRequested || !members.every((id) => initialPeers.has(id))) return;
      this.seedRequested = true;
      const records = members.map((id) => ({
        id,
        address: initialPeers.get(id) as string,
        voter: status.config.voters.includes(id),
      }));
      this.record({ op: 'seed', members: records }).catch(() => {
        this.seedRequested = false;
      });
      return;
    }
    // Caught up: replicating (the logs agree), heard from lately, and close to our last index.
    const caughtUp = (id: NodeId) =>
      status.progress.some(
        (follower) =>
          follower.id === id &&
          follower.state === 'replicate' &&
          follower.recentlyActive &&
          follower.matchIndex + membershipCatchUpEntries >= status.lastIndex,
      );
    const change = nextConfigChange(
      membership.list(),
      membership.removedIds(),
      status.config,
      caughtUp,
    );
    if (change === null) return;
    const result = core.proposeConfigChange(change);
    if (!result.accepted) return;
    this.options.logger.info(
      { node: this.options.id, change: change.type, member: change.node },
      'configuration change proposed',
    );
    this.options.scheduleLoop();
  }

  /**
   * The leader never takes the last voter out (Raft needs one), so such a request would only
   * time out, and its record would stay in the table to be carried out by surprise once
   * another voter joined. Refused before anything is recorded instead, by this node's view
   * of the configuration (a request racing a change may still be recorded).
   */
  private refuseLastVoter(id: NodeId, verb: 'remove' | 'demote'): void {
    const { voters } = this.options.core.status().config;
    if (voters.length === 1 && voters[0] === id) {
      throw new BroadcastError(
        'last_voter',
        `cannot ${verb} ${id}: it is the cluster's only voter; add another voter first`,
        { field: 'id' },
      );
    }
  }

  /** When a request taken now stops applying: once its caller has been answered. */
  private deadlineMs(): number {
    return this.options.environment.nowMs() + this.options.requestTimeoutMs;
  }

  /** Records an operator's request; throws when it reached the log too late to apply. */
  private async request(
    command: Extract<MembershipCommand, { op: 'upsert' | 'remove' }>,
    deadlineMs: number,
  ): Promise<void> {
    const result = await this.record({ ...command, deadlineMs });
    if (result.index !== null && this.options.expiredAt(result.index, deadlineMs)) {
      throw new BroadcastError(
        'timeout',
        'the membership request reached the log after its deadline and was not applied: nothing changed',
        { timeoutMs: this.options.requestTimeoutMs, outcome: 'expired' },
      );
    }
  }

  private record(command: MembershipCommand): Promise<BroadcastResult> {
    const stopped = this.options.stopped();
    if (stopped !== null) return Promise.reject(stopped);
    try {
      return this.options.propose(membershipTopic, encodeMembershipCommand(command));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Adds a member (or changes its address or role): recorded in the log, then the leader
   * brings the configuration there. Resolves once the configuration holds it as asked.
   */
  async addMember(member: MemberRecord): Promise<void> {
    const problem = requestedMemberProblem(member);
    if (problem !== null) {
      const field = problem.split(' ')[0] ?? 'member';
      throw new BroadcastError('invalid_argument', problem, { field });
    }
    if (!member.voter) this.refuseLastVoter(member.id, 'demote');
    await this.request({ op: 'upsert', member }, this.deadlineMs());
    await this.configurationReaches((config) =>
      member.voter ? config.voters.includes(member.id) : config.learners.includes(member.id),
    );
  }

  /**
   * Removes a member: recorded in the log; resolves once it left the configuration, and no
   * step in the log brings it back.
   */
  async removeMember(id: NodeId): Promise<void> {
    if (typeof id !== 'string' || id === '') {
      throw new BroadcastError('invalid_argument', 'id must be a non-empty string', {
        field: 'id',
      });
    }
    this.refuseLastVoter(id, 'remove');
    await this.request({ op: 'remove', id }, this.deadlineMs());
    await this.configurationReaches(
      (config) => !config.voters.includes(id) && !config.learners.includes(id),
    );
  }

  private async configurationReaches(done: (config: Configuration) => boolean): Promise<void> {
    const { environment } = this.options;
    const deadlineMs = environment.monotonicMs() + this.options.requestTimeoutMs;
    for (;;) {
      const stopped = this.options.stopped();
      if (stopped !== null) throw stopped;
      // The latest configuration in the log must agree with the applied one: a step the
      // leader proposed from the table just before our record applied (adding back a member
      // being removed, say) is in the log already and would take effect after we answered.
      // Once our record applied, the leader proposes no step against it, so both holding
      // means the change is in force for good.
      if (done(this.options.appliedConfig()) && done(this.options.core.status().config)) return;
      if (environment.monotonicMs() > deadlineMs) {
        throw new BroadcastError(
          'timeout',
          'the membership change is recorded but not in force yet',
          {
            timeoutMs: this.options.requestTimeoutMs,
          },
        );
      }
      await new Promise<void>((resolve) =>
        environment.setTimer(this.options.pollIntervalMs, resolve),
      );
    }
  }
}
