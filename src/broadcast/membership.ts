/**
 * Desired membership, kept in the log. An operator's request ("add n4 at 127.0.0.1:7004 as a
 * voter", "remove n2") is committed as a control record; every replica applies it to this
 * table, so every replica knows every member's address, including nodes that join later
 * and learn it from the log or a snapshot. The leader then moves the Raft configuration
 * towards the table one single-server change at a time (`nextConfigChange`): a new node
 * joins as a learner, is promoted once it has caught up (Raft thesis §4.2.1), and nodes
 * leave last, so the cluster never has fewer voters than it needs in between.
 *
 * Pure and deterministic: it runs on committed entries only.
 */
import { isVoter } from '../raft/config.ts';
import type { ConfigChange, Configuration, NodeId } from '../raft/types.ts';
import { isWellFormedString } from '../transport/bytes.ts';
import { nodeIdBytesMax } from '../transport/validate.ts';
import { assert } from '../util/assert.ts';
import { hasControlCharacter } from './message-rules.ts';

/** Runs on this topic are control records: they take no position and are never delivered. */
export const membershipTopic = '$abcast/membership';
export { reservedTopicPrefix } from './message-rules.ts';

export interface MemberRecord {
  readonly id: NodeId;
  readonly address: string;
  readonly voter: boolean;
}

/**
 * An operator's request is kept and sent again until it is in the log, as every message of
 * the node's own session is; one that timed out could so land long after its caller gave up,
 * after a later request, and undo it: a member removed after a timed-out promotion came back
 * when the promotion was finally committed. So a request carries a deadline by the clock of
 * the node that took it (ms since the epoch) and applies only from a batch that node stamped
 * no later (`MembershipTable.apply`): a copy sent again after the caller was answered is
 * stamped later and changes nothing, on every replica alike. Absent in records written
 * before deadlines existed, which apply whenever they land.
 */
export interface RequestDeadline {
  readonly deadlineMs?: number;
}

export type MembershipCommand =
  | ({ readonly op: 'upsert'; readonly member: MemberRecord } & RequestDeadline)
  | ({ readonly op: 'remove'; readonly id: NodeId } & RequestDeadline)
  /** The first leader records the initial members' addresses once. */
  | { readonly op: 'seed'; readonly members: readonly MemberRecord[] };

const addressPattern = /^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/;

/** Why a member record is unusable, or null. */
export function memberProblem(member: MemberRecord): string | null {
  if (typeof member.id !== 'string' || member.id.length === 0 || member.id.length > 255) {
    return 'id must be a non-empty string of at most 255 characters';
  }
  if (typeof member.address !== 'string' || !addressPattern.test(member.address)) {
    return 'address must be "host:port"';
  }
  const port = Number(member.address.slice(member.address.lastIndexOf(':') + 1));
  if (port < 1 || port > 65535) return 'address port must be 1 to 65535';
  if (typeof member.voter !== 'boolean') return 'voter must be true or false';
  return null;
}

/**
 * Why a member an operator asks for is unusable, or null: `memberProblem`, and an id that
 * the peer frames can carry. Every frame naming the member (its appends, a configuration in
 * a snapshot) is refused by the transport when the id is over `nodeIdBytesMax` bytes of
 * UTF-8 or holds a lone surrogate, so such a member would join the configuration and never
 * be reached. Control characters are refused as in client ids: a member id ends up in logs,
 * metrics labels and the dashboard. Checked where requests enter, not where records are
 * read back: a record already in the log must decode the same on every node, whatever
 * version wrote it.
 */
export function requestedMemberProblem(member: MemberRecord): string | null {
  const problem = memberProblem(member);
  if (problem !== null) return problem;
  if (!isWellFormedString(member.id)) {
    return 'id must be valid Unicode, without lone surrogates';
  }
  if (hasControlCharacter(member.id)) return 'id must not contain control characters';
  if (Buffer.byteLength(member.id) > nodeIdBytesMax) {
    return `id must be at most ${nodeIdBytesMax} bytes of UTF-8`;
  }
  return null;
}

export function encodeMembershipCommand(command: MembershipCommand): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(command));
}

/** Total: a malformed record decodes to null and is ignored the same way everywhere. */
export function decodeMembershipCommand(payload: Uint8Array): MembershipCommand | null {
  let command: MembershipCommand;
  try {
    command = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    return null;
  }
  if (command === null || typeof command !== 'object') return null;
  if ('deadlineMs' in command && !Number.isFinite(command.deadlineMs)) return null;
  if (command.op === 'upsert') return memberProblem(command.member ?? {}) === null ? command : null;
  if (command.op === 'remove')
    return typeof command.id === 'string' && command.id !== '' ? command : null;
  if (command.op === 'seed' && Array.isArray(command.members)) {
    return command.members.every((member) => memberProblem(member) === null) ? command : null;
  }
  return null;
}

export class MembershipTable {
  private readonly members = new Map<NodeId, MemberRecord>();
  /** Explicitly removed: only these are ever taken out of the configuration. */
  private readonly removed = new Set<NodeId>();
  private seeded = false;

  /** False until the first leader recorded the initial members: nothing to reconcile yet. */
  get isSeeded(): boolean {
    return this.seeded;
  }

  /**
   * Applies a committed record, found in a batch stamped `batchLogTimeMs`; 'expired' when
   * the record's deadline had passed by that stamp, and nothing changed. The stamp may be
   * left out only for a record without a deadline (a restore's seed).
   */
  apply(command: MembershipCommand, batchLogTimeMs?: number): 'applied' | 'expired' {
    if (command.op !== 'seed' && command.deadlineMs !== undefined) {
      assert(batchLogTimeMs !== undefined, "a request's deadline is judged by its batch's stamp");
      if (batchLogTimeMs > command.deadlineMs) return 'expired';
    }
    this.applyInTime(command);
    return 'applied';
  }

  private applyInTime(command: MembershipCommand): void {
    switch (command.op) {
      case 'seed':
        // Only the first seed counts; a second leader racing to seed changes nothing.
        if (this.seeded) return;
        // The seed describes the initial configuration, which comes before any operator's
        // request, yet the leader proposes it on a reconcile round: a request taken right
        // after an election lands before it in the log. Letting the seed overwrite such a
        // record brought a removed member back (it stayed listed as removed too), so the
        // leader removed and re-added it one single-server step at a time (Raft thesis
        // §4.1) without end; an upsert's new role or address was lost outright.
        for (const member of command.members) {
          if (this.members.has(member.id) || this.removed.has(member.id)) continue;
          this.members.set(member.id, member);
        }
        this.seeded = true;
        return;
      case 'upsert':
        this.members.set(command.member.id, command.member);
        this.removed.delete(command.member.id);
        return;
      case 'remove':
        this.members.delete(command.id);
        this.removed.add(command.id);
        return;
    }
  }

  get(id: NodeId): MemberRecord | undefined {
    return this.members.get(id);
  }

  removedIds(): NodeId[] {
    return [...this.removed].sort();
  }

  list(): MemberRecord[] {
    return [...this.members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  toJSON(): { seeded: boolean; members: MemberRecord[]; removed: NodeId[] } {
    return { seeded: this.seeded, members: this.list(), removed: this.removedIds() };
  }

  static fromJSON(value: {
    seeded: boolean;
    members: readonly MemberRecord[];
    removed: readonly NodeId[];
  }): MembershipTable {
    const table = new MembershipTable();
    table.seeded = value.seeded;
    for (const id of value.removed) table.removed.add(id);
    for (const member of value.members) {
      assert(memberProblem(member) === null, 'snapshotted members are valid');
      table.members.set(member.id, member);
    }
    return table;
  }
}

/**
 * The next single-server step from `config` towards the desired members, or null when they
 * agree. Order: add learners, promote caught-up learners, demote, and remove last. Only
 * nodes explicitly removed leave: a member the table does not mention stays as it is.
 */
export function nextConfigChange(
  desired: readonly MemberRecord[],
  removed: readonly NodeId[],
  config: Configuration,
  isCaughtUp: (id: NodeId) => boolean,
): ConfigChange | null {
  const inConfig = (id: NodeId) => config.voters.includes(id) || config.learners.includes(id);
  for (const member of desired) {
    if (!inConfig(member.id)) return { type: 'addLearner', node: member.id };
  }
  for (const member of desired) {
    if (member.voter && config.learners.includes(member.id) && isCaughtUp(member.id)) {
      return { type: 'promoteLearner', node: member.id };
    }
  }
  for (const member of desired) {
    if (!member.voter && isVoter(config, member.id) && config.voters.length > 1) {
      return { type: 'demoteVoter', node: member.id };
    }
  }
  for (const id of removed) {
    if (!inConfig(id)) continue;
    if (isVoter(config, id) && config.voters.length === 1) continue;
    return { type: 'remove', node: id };
  }
  return null;
}
