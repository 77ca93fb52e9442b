/**
 * The replicated state of the log as a stream: retention's floor (the first position any
 * node serves) and the durable consumers' cursors. Both change only by control records
 * committed in the log, so every replica holds the same at the same index, and a snapshot
 * carries them to a node that restarts or joins.
 *
 * - `$abcast/retention` `{"before": N}`: positions before N are no longer retained. The
 *   leader decides N from its store and its policy (retention.ts); the floor never moves
 *   back, nor past the last delivered position + 1.
 * - `$abcast/consumers` `{"op":"ack","name":"billing","position":N}`: the consumer has
 *   processed everything up to N. A cursor never moves back (an older ack arriving late
 *   changes nothing), nor past the last delivered position.
 *   `{"op":"delete","name":"billing"}` forgets it.
 *   `{"op":"configure","name":"billing","ackDeadlineMs":30000}` sets (null: clears) how long
 *   a stream of the consumer waits for an ack before it hands the message again.
 *   `join`, `leave`, `gack` and `release` are the records of consumer groups
 *   (consumer-groups.ts); a group is created by its first join.
 *
 * Pure and deterministic: it runs on committed entries only.
 */
import { assert } from '../util/assert.ts';
import {
  type CompactCommand,
  type CompactionJson,
  CompactionState,
  compactionTopic,
  decodeCompactCommand,
} from './compaction.ts';
import {
  ConsumerGroup,
  decodeSlotPositions,
  type GroupCommand,
  type GroupJson,
  groupSlotCount,
  memberNameProblem,
} from './consumer-groups.ts';

export const retentionTopic = '$abcast/retention';
export const consumersTopic = '$abcast/consumers';

export type StreamCommand =
  | { readonly op: 'retain'; readonly before: number }
  | { readonly op: 'ack'; readonly name: string; readonly position: number }
  | { readonly op: 'delete'; readonly name: string }
  | { readonly op: 'configure'; readonly name: string; readonly ackDeadlineMs: number | null }
  | GroupCommand
  | CompactCommand;

/** The bounds of a consumer's ack deadline. */
export const ackDeadlineMsMin = 100;
export const ackDeadlineMsMax = 3_600_000;

export interface ConsumerSettings {
  /** A message not acknowledged this long after it was handed out is handed out again. */
  readonly ackDeadlineMs: number | null;
}

export interface ConsumerCursor {
  readonly name: string;
  /** The last position acknowledged (0: none yet). */
  readonly position: number;
  /** The log's clock when the cursor last moved. */
  readonly ackLogTimeMs: number;
}

const consumerNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Why `name` cannot name a consumer, or null. */
export function consumerNameProblem(name: unknown): string | null {
  if (typeof name !== 'string' || !consumerNamePattern.test(name)) {
    return 'a consumer name is 1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter or digit';
  }
  return null;
}

export function encodeStreamCommand(command: StreamCommand): Uint8Array {
  const { op, ...rest } = command;
  return new TextEncoder().encode(JSON.stringify(op === 'retain' ? rest : command));
}

const isPosition = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

/** Total: a malformed record decodes to null and is ignored the same way everywhere. */
export function decodeStreamCommand(topic: string, payload: Uint8Array): StreamCommand | null {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object') return null;
  if (topic === retentionTopic) {
    return isPosition(value.before) ? { op: 'retain', before: value.before } : null;
  }
  if (topic === compactionTopic) return decodeCompactCommand(value);
  if (topic !== consumersTopic || consumerNameProblem(value.name) !== null) return null;
  const name = value.name as string;
  if (value.op === 'ack' && isPosition(value.position)) {
    return { op: 'ack', name, position: value.position };
  }
  if (value.op === 'configure') {
    const deadline = value.ackDeadlineMs;
    if (deadline === null) return { op: 'configure', name, ackDeadlineMs: null };
    if (!isPosition(deadline) || deadline < ackDeadlineMsMin || deadline > ackDeadlineMsMax) {
      return null;
    }
    return { op: 'configure', name, ackDeadlineMs: deadline };
  }
  if (value.op === 'delete') return { op: 'delete', name };
  return decodeGroupCommand(name, value);
}

function decodeGroupCommand(name: string, value: Record<string, unknown>): GroupCommand | null {
  if (memberNameProblem(value.member) !== null) return null;
  const member = value.member as string;
  if (value.op === 'leave') return { op: 'leave', name, member };
  if (value.op === 'release') {
    const slot = value.slot;
    if (!isPosition(slot) || slot >= groupSlotCount) return null;
    return { op: 'release', name, member, slot };
  }
  const slots = decodeSlotPositions(value.slots);
  if (slots === null) return null;
  if (value.op === 'gack') return { op: 'gack', name, member, slots };
  if (value.op === 'join' && isPosition(value.leaseMs)) {
    return { op: 'join', name, member, leaseMs: value.leaseMs, slots };
  }
  return null;
}

export interface StreamStateJson {
  readonly retainedFrom: number;
  readonly consumers: ConsumerCursor[];
  readonly groups?: readonly GroupJson[];
  readonly settings?: Readonly<Record<string, ConsumerSettings>>;
  readonly compaction?: CompactionJson;
}

/** Consumers the state keeps at most; an ack of a new one beyond it is ignored alike. */
export const consumersMax = 10_000;

/** Consumer groups the state keeps at most; a join of a new one beyond it is ignored alike. */
export const groupsMax = 1_000;

export class StreamState {
  private retainedFromValue = 1;
  private readonly cursors = new Map<string, ConsumerCursor>();
  private readonly groupsByName = new Map<string, ConsumerGroup>();
  private readonly settingsByName = new Map<string, ConsumerSettings>();
  private compactionValue = new CompactionState();

  /** Compaction by key: the compacted topics, the cut, each key's newest position. */
  get compaction(): CompactionState {
    return this.compactionValue;
  }

  /** The first retained position. */
  get retainedFrom(): number {
    return this.retainedFromValue;
  }

  consumer(name: string): ConsumerCursor | undefined {
    return this.cursors.get(name);
  }

  consumers(): ConsumerCursor[] {
    return [...this.cursors.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  group(name: string): ConsumerGroup | undefined {
    return this.groupsByName.get(name);
  }

  groups(): ConsumerGroup[] {
    return [...this.groupsByName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** A consumer's (or group's) settings; no deadline unless configured. */
  settings(name: string): ConsumerSettings {
    return this.settingsByName.get(name) ?? { ackDeadlineMs: null };
  }

  /** Applies one committed command, at a point where `lastPosition` is delivered. */
  apply(command: StreamCommand, at: { lastPosition: number; logTimeMs: number }): void {
    assert(at.lastPosition >= 0, 'positions are not negative');
    if (command.op === 'retain') {
      const before = Math.min(command.before, at.lastPosition + 1);
      if (before > this.retainedFromValue) this.retainedFromValue = before;
      return;
    }
    if (command.op === 'delete') {
      this.cursors.delete(command.name);
      this.groupsByName.delete(command.name);
      this.settingsByName.delete(command.name);
      return;
    }
    if (command.op === 'compact') {
      this.compactionValue.apply(command, at.lastPosition);
      return;
    }
    if (command.op === 'configure') {
      if (command.ackDeadlineMs === null) this.settingsByName.delete(command.name);
      else if (this.settingsByName.size < consumersMax || this.settingsByName.has(command.name)) {
        this.settingsByName.set(command.name, { ackDeadlineMs: command.ackDeadlineMs });
      }
      return;
    }
    if (command.op !== 'ack') {
      this.applyGroup(command, at);
      return;
    }
    const known = this.cursors.get(command.name);
    if (known === undefined && this.cursors.size >= consumersMax) return;
    const position = Math.min(command.position, at.lastPosition);
    if (known !== undefined && position <= known.position) return;
    this.cursors.set(command.name, {
      name: command.name,
      position,
      ackLogTimeMs: at.logTimeMs,
    });
  }

  private applyGroup(command: GroupCommand, at: { lastPosition: number; logTimeMs: number }) {
    let group = this.groupsByName.get(command.name);
    if (group === undefined) {
      // Only a join creates a group; the rest of a forgotten group's records change nothing.
      if (command.op !== 'join' || this.groupsByName.size >= groupsMax) return;
      group = new ConsumerGroup(command.name);
      this.groupsByName.set(command.name, group);
    }
    group.apply(command, at);
  }

  /** True while nothing was ever recorded: the snapshot then keeps its older layout. */
  get isInitial(): boolean {
    return (
      this.retainedFromValue === 1 &&
      this.cursors.size === 0 &&
      this.groupsByName.size === 0 &&
      this.settingsByName.size === 0 &&
      this.compactionValue.isInitial
    );
  }

  toJSON(): StreamStateJson {
    return {
      retainedFrom: this.retainedFromValue,
      consumers: this.consumers(),
      // Left out while empty, so a state without groups is written as before they existed.
      ...(this.groupsByName.size === 0
        ? {}
        : { groups: this.groups().map((group) => group.toJSON()) }),
      ...(this.settingsByName.size === 0
        ? {}
        : { settings: Object.fromEntries([...this.settingsByName].sort()) }),
      ...(this.compactionValue.isInitial ? {} : { compaction: this.compactionValue.toJSON() }),
    };
  }

  static fromJSON(value: StreamStateJson): StreamState {
    const state = new StreamState();
    assert(isPosition(value.retainedFrom) && value.retainedFrom >= 1, 'a floor is a position');
    state.retainedFromValue = value.retainedFrom;
    for (const cursor of value.consumers) {
      assert(consumerNameProblem(cursor.name) === null, 'a snapshot names consumers validly');
      state.cursors.set(cursor.name, { ...cursor });
    }
    for (const group of value.groups ?? []) {
      state.groupsByName.set(group.name, ConsumerGroup.fromJSON(group));
    }
    for (const [name, settings] of Object.entries(value.settings ?? {})) {
      state.settingsByName.set(name, { ...settings });
    }
    if (value.compaction !== undefined) {
      state.compactionValue = CompactionState.fromJSON(value.compaction);
    }
    return state;
  }
}
