/**
 * The presence reducer: joins, heartbeats, leaves and expiries applied to the members of one
 * presence topic, every decision taken on the log's clock (`context.time`) so that every
 * replica agrees on who is alive (see presence.ts for the agents' side). It never throws on
 * a refusal: a refusal is a typed outcome, so the expiries swept before it are kept.
 */
import { assert } from '../util/assert.ts';
import { invalidArgument } from './errors.ts';
import type { StateMachine } from './state-machine.ts';

/** Members one presence topic holds; joins beyond it are refused with `full`. */
export const presenceMembersMax = 10_000;
export const presenceTtlMinMs = 10;
export const presenceTtlMaxMs = 24 * 3600 * 1000;
/** A member's `meta`, as JSON text. */
export const presenceMetaBytesMax = 4096;
/** Events a watcher may have unread before it is ended with `overflow` (default). */
export const presenceWatchBufferDefault = 10_000;

export interface PresenceMember {
  readonly agentId: string;
  /** The log position of the join that made this member: identifies this incarnation. */
  readonly incarnation: number;
  readonly ttlMs: number;
  readonly meta: unknown;
  /** Log times (ms since the Unix epoch). */
  readonly joinedAt: number;
  readonly lastBeatAt: number;
  /** Alive while the log's clock is at or before this; expired at the first command after. */
  readonly expiresAt: number;
}

export interface PresenceEvent {
  readonly kind: 'joined' | 'left' | 'expired';
  readonly agentId: string;
  readonly incarnation: number;
  /** The position and log time of the command at which it was decided. */
  readonly position: number;
  readonly time: number;
}

export type PresenceCommand =
  | {
      readonly op: 'join';
      readonly agentId: string;
      readonly ttlMs: number;
      readonly meta: unknown;
    }
  | { readonly op: 'beat'; readonly agentId: string; readonly incarnation: number }
  | { readonly op: 'leave'; readonly agentId: string; readonly incarnation: number }
  | { readonly op: 'tick' };

export type PresenceOutcome =
  | { readonly status: 'joined'; readonly incarnation: number; readonly expiresAt: number }
  | { readonly status: 'already_member'; readonly incarnation: number }
  | { readonly status: 'full'; readonly membersMax: number }
  | { readonly status: 'alive'; readonly expiresAt: number }
  | { readonly status: 'not_member' }
  | { readonly status: 'left' }
  | { readonly status: 'ticked' };

/** What applying one command did: expiries it decided and its own effect, in order. */
export interface PresenceResult {
  readonly outcome: PresenceOutcome;
  readonly events: readonly PresenceEvent[];
}

export interface PresenceState {
  /** By agentId, in join order. */
  readonly members: Map<string, PresenceMember>;
  /** [expiresAt, agentId] of every member, ascending: expiry sweeps from the front. */
  readonly deadlines: [number, string][];
}

interface EncodedPresence {
  readonly members: PresenceMember[];
  readonly deadlines: [number, string][];
}

// ------------------------------------------------------------------ the reducer

export const presenceMachine: StateMachine<PresenceState, PresenceCommand, PresenceResult> = {
  initialState: () => ({ members: new Map(), deadlines: [] }),
  parseCommand: parsePresenceCommand,
  apply(state, command, context) {
    // Never throws: a refusal is a typed outcome, so the expiries swept before it are kept
    // and reported (a throw would hide them from watchers while the state kept them).
    const events = sweep(state, context.time, context.position);
    const at = { position: context.position, time: context.time };
    let outcome: PresenceOutcome;
    switch (command.op) {
      case 'join':
        outcome = join(state, command, at, events);
        break;
      case 'beat':
        outcome = beat(state, command, context.time);
        break;
      case 'leave':
        outcome = leave(state, command, at, events);
        break;
      case 'tick':
        outcome = { status: 'ticked' };
        break;
    }
    return { outcome, events };
  },
  encodeState: (state): EncodedPresence => ({
    members: [...state.members.values()],
    deadlines: state.deadlines,
  }),
  decodeState(encoded) {
    const { members, deadlines } = encoded as EncodedPresence;
    return {
      members: new Map(members.map((member) => [member.agentId, member])),
      deadlines,
    };
  },
};

/** Expires, in deadline order, every member whose deadline is before `timeMs`. */
function sweep(state: PresenceState, timeMs: number, position: number): PresenceEvent[] {
  let count = 0;
  while (count < state.deadlines.length && (state.deadlines[count] as [number, string])[0] < timeMs)
    count += 1;
  if (count === 0) return [];
  const events: PresenceEvent[] = [];
  for (const [, agentId] of state.deadlines.splice(0, count)) {
    const member = state.members.get(agentId);
    assert(member !== undefined, 'every deadline belongs to a member');
    state.members.delete(agentId);
    events.push({
      kind: 'expired',
      agentId,
      incarnation: member.incarnation,
      position,
      time: timeMs,
    });
  }
  return events;
}

function join(
  state: PresenceState,
  command: Extract<PresenceCommand, { op: 'join' }>,
  at: { position: number; time: number },
  events: PresenceEvent[],
): PresenceOutcome {
  const present = state.members.get(command.agentId);
  if (present !== undefined) return { status: 'already_member', incarnation: present.incarnation };
  if (state.members.size >= presenceMembersMax) {
    return { status: 'full', membersMax: presenceMembersMax };
  }
  const member: PresenceMember = {
    agentId: command.agentId,
    incarnation: at.position,
    ttlMs: command.ttlMs,
    // A copy: the command object also reaches onApplied listeners.
    meta: structuredClone(command.meta),
    joinedAt: at.time,
    lastBeatAt: at.time,
    expiresAt: at.time + command.ttlMs,
  };
  state.members.set(member.agentId, member);
  insertDeadline(state.deadlines, [member.expiresAt, member.agentId]);
  events.push({ kind: 'joined', agentId: member.agentId, incarnation: at.position, ...at });
  return { status: 'joined', incarnation: at.position, expiresAt: member.expiresAt };
}

function beat(
  state: PresenceState,
  command: Extract<PresenceCommand, { op: 'beat' }>,
  timeMs: number,
): PresenceOutcome {
  const member = state.members.get(command.agentId);
  if (member === undefined || member.incarnation !== command.incarnation) {
    return { status: 'not_member' };
  }
  removeDeadline(state.deadlines, [member.expiresAt, member.agentId]);
  const renewed = { ...member, lastBeatAt: timeMs, expiresAt: timeMs + member.ttlMs };
  state.members.set(member.agentId, renewed);
  insertDeadline(state.deadlines, [renewed.expiresAt, member.agentId]);
  return { status: 'alive', expiresAt: renewed.expiresAt };
}

function leave(
  state: PresenceState,
  command: Extract<PresenceCommand, { op: 'leave' }>,
  at: { position: number; time: number },
  events: PresenceEvent[],
): PresenceOutcome {
  const member = state.members.get(command.agentId);
  if (member === undefined || member.incarnation !== command.incarnation) {
    return { status: 'not_member' };
  }
  removeDeadline(state.deadlines, [member.expiresAt, member.agentId]);
  state.members.delete(member.agentId);
  events.push({ kind: 'left', agentId: member.agentId, incarnation: member.incarnation, ...at });
  return { status: 'left' };
}

function compareDeadlines(a: [number, string], b: [number, string]): number {
  if (a[0] !== b[0]) return a[0] - b[0];
  return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

/** The first position whose deadline is not before `key` (binary search). */
function lowerBound(deadlines: [number, string][], key: [number, string]): number {
  let low = 0;
  let high = deadlines.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareDeadlines(deadlines[middle] as [number, string], key) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

function insertDeadline(deadlines: [number, string][], key: [number, string]): void {
  deadlines.splice(lowerBound(deadlines, key), 0, key);
}

function removeDeadline(deadlines: [number, string][], key: [number, string]): void {
  const at = lowerBound(deadlines, key);
  const found = deadlines[at];
  assert(
    found !== undefined && compareDeadlines(found, key) === 0,
    'every member has its deadline',
  );
  deadlines.splice(at, 1);
}

// ------------------------------------------------------------------ validation

/** Agent ids: printable strings of 1–200 bytes. */
export function checkAgentId(agentId: unknown, field = 'agentId'): string {
  if (
    typeof agentId !== 'string' ||
    agentId.length === 0 ||
    Buffer.byteLength(agentId) > 200 ||
    /\p{Cc}/u.test(agentId)
  ) {
    throw invalidArgument(
      field,
      `${field} must be a string of 1–200 bytes without control characters`,
    );
  }
  return agentId;
}

export function checkTtlMs(ttlMs: unknown): number {
  if (
    typeof ttlMs !== 'number' ||
    !Number.isSafeInteger(ttlMs) ||
    ttlMs < presenceTtlMinMs ||
    ttlMs > presenceTtlMaxMs
  ) {
    throw invalidArgument(
      'ttlMs',
      `ttlMs must be an integer from ${presenceTtlMinMs} to ${presenceTtlMaxMs}, got ${String(ttlMs)}`,
    );
  }
  return ttlMs;
}

function checkIncarnation(incarnation: unknown): number {
  if (typeof incarnation !== 'number' || !Number.isSafeInteger(incarnation) || incarnation < 1) {
    throw invalidArgument('incarnation', 'incarnation must be a log position (integer >= 1)');
  }
  return incarnation;
}

export function parsePresenceCommand(payload: unknown): PresenceCommand {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw invalidArgument('command', 'a presence command is an object with an op');
  }
  const raw = payload as Record<string, unknown>;
  switch (raw.op) {
    case 'join': {
      const meta = raw.meta === undefined ? null : raw.meta;
      const text = JSON.stringify(meta);
      if (text === undefined || Buffer.byteLength(text) > presenceMetaBytesMax) {
        throw invalidArgument(
          'meta',
          `meta must be a JSON value of at most ${presenceMetaBytesMax} bytes`,
        );
      }
      return {
        op: 'join',
        agentId: checkAgentId(raw.agentId),
        ttlMs: checkTtlMs(raw.ttlMs),
        // Its JSON text parsed again: what a snapshot writes back (-0 becomes 0), never the
        // payload object itself, which other readers of the log may share.
        meta: JSON.parse(text),
      };
    }
    case 'beat':
    case 'leave':
      return {
        op: raw.op,
        agentId: checkAgentId(raw.agentId),
        incarnation: checkIncarnation(raw.incarnation),
      };
    case 'tick':
      return { op: 'tick' };
    default:
      throw invalidArgument('op', 'op must be join, beat, leave or tick');
  }
}
