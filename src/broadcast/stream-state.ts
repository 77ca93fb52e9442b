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
 *
 * Pure and deterministic: it runs on committed entries only.
 */
import { assert } from '../util/assert.ts';

export const retentionTopic = '$abcast/retention';
export const consumersTopic = '$abcast/consumers';

export type StreamCommand =
  | { readonly op: 'retain'; readonly before: number }
  | { readonly op: 'ack'; readonly name: string; readonly position: number }
  | { readonly op: 'delete'; readonly name: string };

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
  if (topic !== consumersTopic || consumerNameProblem(value.name) !== null) return null;
  const name = value.name as string;
  if (value.op === 'ack' && isPosition(value.position)) {
    return { op: 'ack', name, position: value.position };
  }
  return value.op === 'delete' ? { op: 'delete', name } : null;
}

/** Consumers the state keeps at most; an ack of a new one beyond it is ignored alike. */
export const consumersMax = 10_000;

export class StreamState {
  private retainedFromValue = 1;
  private readonly cursors = new Map<string, ConsumerCursor>();

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

  /** True while nothing was ever recorded: the snapshot then keeps its older layout. */
  get isInitial(): boolean {
    return this.retainedFromValue === 1 && this.cursors.size === 0;
  }

  toJSON(): { retainedFrom: number; consumers: ConsumerCursor[] } {
    return { retainedFrom: this.retainedFromValue, consumers: this.consumers() };
  }

  static fromJSON(value: { retainedFrom: number; consumers: ConsumerCursor[] }): StreamState {
    const state = new StreamState();
    assert(isPosition(value.retainedFrom) && value.retainedFrom >= 1, 'a floor is a position');
    state.retainedFromValue = value.retainedFrom;
    for (const cursor of value.consumers) {
      assert(consumerNameProblem(cursor.name) === null, 'a snapshot names consumers validly');
      state.cursors.set(cursor.name, { ...cursor });
    }
    return state;
  }
}
