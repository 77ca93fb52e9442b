/**
 * Consumer groups, as replicated state: members of one group share its work, and the
 * messages of one key always go to one live member, in order.
 *
 * A group splits the order into `groupSlotCount` slots: a keyed message belongs to the slot
 * its key hashes to, a message without a key to the slot of its position. Each slot has one
 * owner (a member) and a cursor, `doneThrough`: every message of the slot up to there is
 * acknowledged. An owner is handed its slots' messages in position order, and its acks are
 * cumulative per slot. So one key's messages are handled by one member at a time, in order.
 *
 * Which member should own a slot is rendezvous hashing over the live members (sorted, so
 * every node computes the same), which moves few slots when one joins or leaves. When the
 * member that should own a slot changes:
 * - if the current owner is gone (it left, or its lease expired in log time), the slot
 *   moves at once; its messages after `doneThrough` are handed to the new owner again, in
 *   order (`redeliverThrough` says which of them the old owner may have been handed);
 * - if the current owner is alive, it keeps the slot, is handed nothing more of it, and
 *   releases it (a `release` record) once everything of it it was handed is acknowledged:
 *   only then is the slot handed to the new owner. So per-key order holds across a
 *   rebalance, and no acknowledged message is handed again.
 *
 * Membership changes only through records (`join`, which is also the heartbeat, `leave`,
 * `gack`, `release`), and a lease expires when a record of the group is applied at a log
 * time past it: all of it is a function of the log, the same on every node. Pure.
 */
import { assert } from '../util/assert.ts';

/** Slots per group: the most members that can share one group's work. */
export const groupSlotCount = 32;
/** Members a group keeps at most; a join beyond it is ignored alike everywhere. */
export const groupMembersMax = 64;
export const leaseMsMin = 500;
export const leaseMsMax = 600_000;

const memberPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Why `member` cannot name a group member, or null. */
export function memberNameProblem(member: unknown): string | null {
  if (typeof member !== 'string' || !memberPattern.test(member)) {
    return 'a member name is 1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter or digit';
  }
  return null;
}

/**
 * 32-bit FNV-1a of the UTF-8 bytes, then MurmurHash3's finaliser: FNV alone mixes names
 * that differ in one character (m1, m2, m3) too little for rendezvous hashing to spread
 * slots over them. Small, and stable across releases and platforms.
 */
export function hash32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b) >>> 0;
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35) >>> 0;
  hash ^= hash >>> 16;
  return hash >>> 0;
}

/** The slot of a message: by its key when it has one, by its position otherwise. */
export function slotOf(message: { readonly key?: string; readonly position: number }): number {
  assert(Number.isSafeInteger(message.position) && message.position >= 1, 'a position');
  if (message.key !== undefined) return hash32(message.key) % groupSlotCount;
  return message.position % groupSlotCount;
}

/** The member that should own `slot`: the highest hash of (member, slot); null if none. */
export function rendezvousOwner(slot: number, members: readonly string[]): string | null {
  let best: string | null = null;
  let bestHash = -1;
  for (const member of members) {
    const hash = hash32(`${member}\u0000${slot}`);
    if (hash > bestHash || (hash === bestHash && best !== null && member < best)) {
      best = member;
      bestHash = hash;
    }
  }
  return best;
}

export type GroupCommand =
  /**
   * Joins, or renews the lease (the heartbeat). `slots`: slots of this member's that it has
   * been handed everything of, acknowledged, up to the position given (the stream passed
   * it): their cursors move there, so an idle slot does not hold a rescan back.
   */
  | {
      readonly op: 'join';
      readonly name: string;
      readonly member: string;
      readonly leaseMs: number;
      readonly slots: Readonly<Record<string, number>>;
    }
  | { readonly op: 'leave'; readonly name: string; readonly member: string }
  /** Per slot, everything up to the position is processed: cumulative, owner only. */
  | {
      readonly op: 'gack';
      readonly name: string;
      readonly member: string;
      readonly slots: Readonly<Record<string, number>>;
    }
  | {
      readonly op: 'release';
      readonly name: string;
      readonly member: string;
      readonly slot: number;
    };

export interface GroupMember {
  readonly member: string;
  readonly leaseMs: number;
  /** Log time of its last join (heartbeat): the lease runs out at seen + leaseMs. */
  readonly seenLogTimeMs: number;
}

export interface GroupSlot {
  readonly owner: string | null;
  /** Every message of the slot up to here is acknowledged (0: none). */
  readonly doneThrough: number;
  /**
   * Messages of the slot after `doneThrough` and up to here may have been handed to an
   * owner that is gone: handed again, they say `redelivered`.
   */
  readonly redeliverThrough: number;
}

export interface GroupJson {
  readonly name: string;
  readonly members: readonly GroupMember[];
  readonly slots: readonly GroupSlot[];
}

const isPosition = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

/** Slot progress from a record: `{"<slot>": position}`; null when malformed. */
export function decodeSlotPositions(value: unknown): Record<string, number> | null {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const slots: Record<string, number> = {};
  for (const [slot, position] of Object.entries(value as Record<string, unknown>)) {
    const number = Number(slot);
    if (!/^[0-9]{1,3}$/.test(slot) || number >= groupSlotCount || !isPosition(position)) {
      return null;
    }
    slots[String(number)] = position;
  }
  return slots;
}

export class ConsumerGroup {
  private readonly membersByName = new Map<string, GroupMember>();
  private readonly slotStates: GroupSlot[];

  constructor(readonly name: string) {
    this.slotStates = Array.from({ length: groupSlotCount }, () => ({
      owner: null,
      doneThrough: 0,
      redeliverThrough: 0,
    }));
  }

  get members(): GroupMember[] {
    return [...this.membersByName.values()].sort((a, b) => (a.member < b.member ? -1 : 1));
  }

  get slots(): readonly GroupSlot[] {
    return this.slotStates;
  }

  hasMember(member: string): boolean {
    return this.membersByName.has(member);
  }

  /** Every message of every slot up to here is acknowledged. */
  get cursor(): number {
    return Math.min(...this.slotStates.map((slot) => slot.doneThrough));
  }

  /** The member that should own `slot` now. */
  target(slot: number): string | null {
    return rendezvousOwner(
      slot,
      this.members.map((member) => member.member),
    );
  }

  /** Applies one committed record of this group at a point of the log. */
  apply(command: GroupCommand, at: { lastPosition: number; logTimeMs: number }): void {
    assert(command.name === this.name, 'a record applies to its own group');
    this.expire(at.logTimeMs);
    if (command.op === 'join') this.join(command, at);
    else if (command.op === 'leave') this.membersByName.delete(command.member);
    else if (command.op === 'gack') this.advance(command.member, command.slots, at.lastPosition);
    else this.release(command.member, command.slot, at.lastPosition);
    this.rebalance(at.lastPosition);
  }

  private join(
    command: Extract<GroupCommand, { op: 'join' }>,
    at: { lastPosition: number; logTimeMs: number },
  ): void {
    const known = this.membersByName.has(command.member);
    if (!known && this.membersByName.size >= groupMembersMax) return;
    const leaseMs = Math.min(leaseMsMax, Math.max(leaseMsMin, command.leaseMs));
    this.membersByName.set(command.member, {
      member: command.member,
      leaseMs,
      seenLogTimeMs: at.logTimeMs,
    });
    this.advance(command.member, command.slots, at.lastPosition);
  }

  /** Members whose lease ran out by `logTimeMs` are gone. */
  private expire(logTimeMs: number): void {
    for (const [name, member] of this.membersByName) {
      if (member.seenLogTimeMs + member.leaseMs <= logTimeMs) this.membersByName.delete(name);
    }
  }

  private advance(member: string, slots: Readonly<Record<string, number>>, last: number): void {
    for (const [slotText, position] of Object.entries(slots)) {
      const slot = Number(slotText);
      const state = this.slotStates[slot];
      assert(state !== undefined, 'records name slots in range');
      if (state.owner !== member) continue; // a former owner's late ack changes nothing
      const doneThrough = Math.max(state.doneThrough, Math.min(position, last));
      this.slotStates[slot] = { ...state, doneThrough };
    }
  }

  /** The owner gives a draining slot up: everything it was handed of it is acknowledged. */
  private release(member: string, slot: number, last: number): void {
    const state = this.slotStates[slot];
    assert(state !== undefined, 'records name slots in range');
    if (state.owner !== member) return;
    const target = this.target(slot);
    if (target === member) return;
    this.slotStates[slot] = { ...state, owner: target };
    assert(last >= state.doneThrough, 'a cursor never passes what is delivered');
  }

  /** Slots whose owner is gone move to the member that should own them, at once. */
  private rebalance(last: number): void {
    for (let slot = 0; slot < groupSlotCount; slot++) {
      const state = this.slotStates[slot] as GroupSlot;
      if (state.owner !== null && this.membersByName.has(state.owner)) continue;
      const target = this.target(slot);
      if (state.owner === null && target === null) continue;
      // The old owner may have been handed anything up to `last`, and acked only part.
      const redeliverThrough =
        state.owner === null ? state.redeliverThrough : Math.max(state.redeliverThrough, last);
      this.slotStates[slot] = { ...state, owner: target, redeliverThrough };
    }
  }

  toJSON(): GroupJson {
    return { name: this.name, members: this.members, slots: this.slotStates };
  }

  static fromJSON(value: GroupJson): ConsumerGroup {
    const group = new ConsumerGroup(value.name);
    assert(value.slots.length === groupSlotCount, 'a snapshot keeps every slot');
    for (const member of value.members) group.membersByName.set(member.member, { ...member });
    value.slots.forEach((slot, at) => {
      assert(isPosition(slot.doneThrough), 'a slot cursor is a position');
      group.slotStates[at] = { ...slot };
    });
    return group;
  }
}
