/**
 * What the simulator reports when a property breaks: which property, where (seed, step,
 * tick, nodes), what was seen, and the command that replays the run bit for bit.
 */
import type { UnsafeVariant } from '../raft/core.ts';
import type { NodeId } from '../raft/types.ts';

/** Every property the checkers assert; a violation names exactly one. */
export const properties = [
  /** At most one leader per term, over the whole history (Raft §5.2). */
  'election safety',
  /** A granted vote is durable before it leaves, and never changes within a term. */
  'vote durability',
  /** Same index and term ⇒ same entry and same prefix (Raft §5.3). */
  'log matching',
  /** A leader of term T holds every entry committed before T (Raft §5.4). */
  'leader completeness',
  /** A leader commits by counting replicas only an entry of its own term (Raft §5.4.2). */
  'commit rule',
  /** Every node delivers the same entry at an index (Raft §5.4.3). */
  'state machine safety',
  /** Acknowledged or delivered state is on disk; committed entries are never truncated. */
  'durability',
  /** Each node delivers indexes 1, 2, 3 … in order, once each (after restarts, again). */
  'delivery order',
  /** Every node's positions and delivered messages are a prefix of one common sequence. */
  'agreement',
  /** Nothing is delivered that no client sent, and nothing twice. */
  'integrity',
  /** One client's resolved broadcasts hold positions in the order it issued them. */
  'per-client fifo',
  /** An acknowledged message is at the position its acknowledgement named. */
  'acknowledged delivery',
  /** A session's messages all come from the one client that started it (identity and nonce). */
  'session ownership',
  /** A snapshot's index, term and configuration are the committed log's at its index. */
  'snapshot state',
  /** A barrier covers every broadcast acknowledged before it began (thesis §6.4). */
  'linearizable read',
  /** The Ready contract of src/raft/types.ts: shapes, order, field invariants. */
  'ready contract',
  /**
   * The message store: once settled every member serves the same retained range, a read
   * below it is compacted with the same first position everywhere, and every position a
   * node serves or backfill keeps holds what was delivered there.
   */
  'retained range',
  /**
   * What a subscriber (`client.subscribe()`) yields: the common order's messages from its
   * start, dense (with a topic: that topic's, none passed over), each as delivered there.
   */
  'subscriber order',
  /**
   * A member that left the committed configuration at an operator's request never comes
   * back: configuration changes go one at a time (thesis §4.1), so none still in flight can.
   */
  'membership',
  /** After faults stop, everything acknowledged reaches every live member in time. */
  'liveness',
  /** The core (or the simulator) threw instead of answering. */
  'no crash',
] as const;

export type Property = (typeof properties)[number];

export interface ReplayFlags {
  readonly seed: number;
  readonly nodeCount: number | null;
  /** A variant of the core, node, WAL or SDK. */
  readonly unsafe: UnsafeVariant | string | null;
  readonly profile: string | null;
  /** The client mix when not the default (mixed). */
  readonly clients?: string | null;
  /** The WAL segment size every node uses, when not drawn per seed. */
  readonly walSegmentBytes?: number | null;
}

export function formatSeed(seed: number): string {
  return `0x${(seed >>> 0).toString(16)}`;
}

/** The exact command that replays a run, with its trace. */
export function replayCommand(flags: ReplayFlags): string {
  const parts = ['npm run sim --'];
  parts.push('--seed', formatSeed(flags.seed));
  if (flags.nodeCount !== null) parts.push('--nodes', String(flags.nodeCount));
  if (flags.unsafe !== null) parts.push('--unsafe', flags.unsafe);
  if (flags.profile !== null) parts.push('--profile', flags.profile);
  if ((flags.clients ?? null) !== null) parts.push('--clients', flags.clients as string);
  if ((flags.walSegmentBytes ?? null) !== null) {
    parts.push('--wal-segment-bytes', String(flags.walSegmentBytes));
  }
  parts.push('--trace');
  return parts.join(' ');
}

export interface ViolationPlace {
  readonly step: number;
  readonly tick: number;
}

export class SimViolation extends Error {
  readonly code = 'SIM_VIOLATION';

  constructor(
    readonly property: Property,
    readonly detail: string,
    readonly nodes: readonly NodeId[],
    readonly place: ViolationPlace,
    readonly replay: ReplayFlags,
  ) {
    super(
      [
        `property violated: ${property}`,
        `  seed ${formatSeed(replay.seed)} (${replay.seed >>> 0}), step ${place.step}, tick ${place.tick}, nodes ${nodes.length === 0 ? '-' : nodes.join(', ')}`,
        `  ${detail}`,
        `  replay: ${replayCommand(replay)}`,
      ].join('\n'),
    );
    this.name = 'SimViolation';
  }
}

/** Where the checkers are, so a violation can say so; the world keeps it current. */
export class ViolationContext {
  step = 0;
  tick = 0;
  /** Properties left unchecked: only tests that prove another checker catches a bug. */
  readonly disabled: ReadonlySet<Property>;

  constructor(
    readonly replay: ReplayFlags,
    disabled: readonly Property[] = [],
  ) {
    this.disabled = new Set(disabled);
  }

  violation(property: Property, detail: string, nodes: readonly NodeId[]): SimViolation {
    return new SimViolation(
      property,
      detail,
      nodes,
      { step: this.step, tick: this.tick },
      this.replay,
    );
  }

  /** Throws the violation unless the property is disabled. */
  fail(property: Property, detail: string, nodes: readonly NodeId[]): void {
    if (this.disabled.has(property)) return;
    throw this.violation(property, detail, nodes);
  }
}
