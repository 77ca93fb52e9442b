/**
 * The chaos checker. It knows only the history (what clients asked and were told) and what
 * each node delivered, read through /v1/messages after the faults healed — never the node's
 * code or its data structures — and checks the promises of atomic broadcast against that
 * independent record:
 *
 * - agreement: one sequence; two nodes never hold different messages at one position;
 * - density: positions on each node run 1, 2, 3 … with no hole (from what the node keeps);
 * - integrity: no message twice, nothing that no client sent;
 * - durability: every acknowledged broadcast sits at the position it was acknowledged with;
 *   a definite failure is never delivered; an unknown outcome at most once (integrity);
 * - order: each client's acknowledged messages in its order of issue, and real-time order —
 *   a message acknowledged before another was invoked comes before it;
 * - barrier reads: a barrier invoked after an acknowledgement answers a position at or above it;
 * - subscriptions: what a subscriber was handed is a gap-free run of the one sequence;
 * - liveness: every live member delivered the same sequence, and the cluster committed again
 *   within a bound after the last heal; the longest stretch without a commit is reported;
 * - verify: what `abcast verify` said of the live members (their digests agree), as a
 *   second, field-by-field witness of agreement.
 *
 * Pure: a function of its arguments, so hand-made histories test it (test/chaos/checker.test.ts).
 */
import type { VerifyOutcome } from '../cli/commands/verify.ts';
import type {
  BarrierOk,
  BroadcastInvoke,
  BroadcastOk,
  HistoryEvent,
  Observation,
} from './history.ts';

export interface DeliveredMessage {
  readonly position: number;
  /** The operation key carried in the payload; null when the payload carries none. */
  readonly key: string | null;
  readonly client: string;
  readonly seq: number;
  readonly topic: string | null;
}

/**
 * What one node delivered. `member`: a live member that must hold everything; `departed`: a
 * node removed from the cluster (its sequence must only agree); `damaged`: a node that
 * refused to start on a corrupted disk (agree only; an expected outcome until repair lands).
 */
export interface NodeReading {
  readonly node: string;
  readonly standing: 'member' | 'departed' | 'damaged';
  readonly messages: readonly DeliveredMessage[];
  /** Why it could not be read, if it could not; its messages are then empty. */
  readonly error: string | null;
}

export type Property =
  | 'agreement'
  | 'density'
  | 'duplicate'
  | 'invented'
  | 'lost'
  | 'misplaced'
  | 'failed-delivered'
  | 'client-order'
  | 'real-time-order'
  | 'stale-barrier'
  | 'subscription'
  | 'lagging'
  | 'no-recovery'
  | 'verify';

/** What `abcast verify` found over the live members at the end of the run (verify.ts). */
export interface VerifyReport {
  readonly nodes: readonly string[];
  readonly outcome:
    | VerifyOutcome
    | { readonly kind: 'skipped'; readonly reason: string }
    | { readonly kind: 'unreadable'; readonly reason: string };
}

export interface Violation {
  readonly property: Property;
  readonly message: string;
  /** When in the run it shows (ms since the start), for the report's context; null if none. */
  readonly timeMs: number | null;
  readonly keys: readonly string[];
}

export interface CheckOptions {
  /** After this time (the last heal) the cluster must commit within `recoveryBoundMs`. */
  readonly healedAtMs: number | null;
  readonly recoveryBoundMs: number;
  /** End of the workload, for the last stretch without commits. */
  readonly endMs: number;
  /** At most this many violations listed per property; the rest are counted. */
  readonly violationsPerPropertyMax: number;
  /** `abcast verify` over the live members; null when it did not run. */
  readonly verify: VerifyReport | null;
}

export interface CheckStats {
  readonly broadcastsInvoked: number;
  readonly acknowledged: number;
  readonly failed: number;
  readonly unknown: number;
  readonly unknownDelivered: number;
  readonly barriers: number;
  readonly observedBySubscribers: number;
  readonly delivered: number;
  /** Acknowledged positions older than every node keeps: checked only where held. */
  readonly unverifiable: number;
  readonly longestUnavailabilityMs: number;
  readonly longestUnavailabilityFromMs: number;
  /** From the last heal to the first commit after it; null without a heal or a commit. */
  readonly recoveryMs: number | null;
}

export interface CheckResult {
  readonly violations: readonly Violation[];
  /** Per property, including those beyond the listing cap. */
  readonly violationCounts: Readonly<Partial<Record<Property, number>>>;
  readonly stats: CheckStats;
}

interface BroadcastOp {
  readonly opId: number;
  readonly process: string;
  readonly invokeMs: number;
  readonly invoke: BroadcastInvoke;
  completion: 'ok' | 'fail' | 'info' | null;
  completeMs: number | null;
  ok: BroadcastOk | null;
}

interface BarrierOp {
  readonly invokeMs: number;
  ok: BarrierOk | null;
}

class ViolationList {
  readonly listed: Violation[] = [];
  readonly counts: Partial<Record<Property, number>> = {};

  constructor(private readonly perPropertyMax: number) {}

  add(violation: Violation): void {
    const count = (this.counts[violation.property] ?? 0) + 1;
    this.counts[violation.property] = count;
    if (count <= this.perPropertyMax) this.listed.push(violation);
  }
}

function identity(message: DeliveredMessage): string {
  return `${message.key ?? '-'}|${message.client}|${message.seq}`;
}

/** Reserved topics carry the cluster's own records (membership), which no client sent. */
function isSystem(message: DeliveredMessage): boolean {
  return message.topic?.startsWith('$') === true;
}

function collectOps(history: readonly HistoryEvent[]): {
  broadcasts: BroadcastOp[];
  barriers: BarrierOp[];
  observations: Map<string, { timeMs: number; observed: Observation['observed'] }[]>;
} {
  const broadcasts = new Map<number, BroadcastOp>();
  const barriers = new Map<number, BarrierOp>();
  const observations = new Map<string, { timeMs: number; observed: Observation['observed'] }[]>();
  for (const event of history) {
    if (event.f === 'broadcast') {
      if (event.type === 'invoke') {
        broadcasts.set(event.opId, {
          opId: event.opId,
          process: event.process,
          invokeMs: event.timeMs,
          invoke: event.value as BroadcastInvoke,
          completion: null,
          completeMs: null,
          ok: null,
        });
        continue;
      }
      const op = broadcasts.get(event.opId);
      if (op === undefined || op.completion !== null) continue;
      op.completion = event.type;
      op.completeMs = event.timeMs;
      if (event.type === 'ok') op.ok = event.value as BroadcastOk;
    } else if (event.f === 'barrier') {
      if (event.type === 'invoke') barriers.set(event.opId, { invokeMs: event.timeMs, ok: null });
      else if (event.type === 'ok') {
        const op = barriers.get(event.opId);
        if (op !== undefined) op.ok = event.value as BarrierOk;
      }
    } else if (event.f === 'observe' && event.type === 'ok') {
      const list = observations.get(event.process) ?? [];
      list.push({ timeMs: event.timeMs, observed: (event.value as Observation).observed });
      observations.set(event.process, list);
    }
  }
  return { broadcasts: [...broadcasts.values()], barriers: [...barriers.values()], observations };
}

/** Merges the nodes' sequences into one, reporting holes and disagreements. */
function mergeSequences(
  readings: readonly NodeReading[],
  violations: ViolationList,
): Map<number, DeliveredMessage> {
  const merged = new Map<number, DeliveredMessage>();
  const holder = new Map<number, string>();
  for (const reading of readings) {
    let previous: number | null = null;
    for (const message of reading.messages) {
      if (previous !== null && message.position !== previous + 1) {
        violations.add({
          property: 'density',
          message: `node ${reading.node} jumps from position ${previous} to ${message.position}`,
          timeMs: null,
          keys: message.key === null ? [] : [message.key],
        });
      }
      previous = message.position;
      const existing = merged.get(message.position);
      if (existing === undefined) {
        merged.set(message.position, message);
        holder.set(message.position, reading.node);
      } else if (identity(existing) !== identity(message)) {
        violations.add({
          property: 'agreement',
          message: `position ${message.position}: node ${holder.get(message.position)} holds ${identity(existing)}, node ${reading.node} holds ${identity(message)}`,
          timeMs: null,
          keys: [existing.key, message.key].filter((key): key is string => key !== null),
        });
      }
    }
  }
  const positions = [...merged.keys()].sort((a, b) => a - b);
  for (let at = 1; at < positions.length; at++) {
    const before = positions[at - 1] as number;
    const here = positions[at] as number;
    if (here !== before + 1) {
      violations.add({
        property: 'density',
        message: `no node holds positions ${before + 1}…${here - 1}, yet later ones exist`,
        timeMs: null,
        keys: [],
      });
    }
  }
  return merged;
}

function checkIntegrity(
  merged: ReadonlyMap<number, DeliveredMessage>,
  opsByKey: ReadonlyMap<string, BroadcastOp>,
  violations: ViolationList,
): Map<string, number[]> {
  const positionsOfKey = new Map<string, number[]>();
  for (const [position, message] of [...merged].sort((a, b) => a[0] - b[0])) {
    if (isSystem(message)) continue;
    const op = message.key === null ? undefined : opsByKey.get(message.key);
    if (message.key === null || op === undefined) {
      violations.add({
        property: 'invented',
        message: `position ${position} holds ${identity(message)}, which no client sent`,
        timeMs: null,
        keys: message.key === null ? [] : [message.key],
      });
      continue;
    }
    const list = positionsOfKey.get(message.key) ?? [];
    list.push(position);
    positionsOfKey.set(message.key, list);
  }
  for (const [key, positions] of positionsOfKey) {
    if (positions.length < 2) continue;
    violations.add({
      property: 'duplicate',
      message: `${key} is delivered ${positions.length} times, at positions ${positions.join(', ')}`,
      timeMs: opsByKey.get(key)?.invokeMs ?? null,
      keys: [key],
    });
  }
  return positionsOfKey;
}

function checkOutcomes(
  ops: readonly BroadcastOp[],
  positionsOfKey: ReadonlyMap<string, readonly number[]>,
  coverageFrom: number,
  violations: ViolationList,
): number {
  let unverifiable = 0;
  for (const op of ops) {
    const positions = positionsOfKey.get(op.invoke.key) ?? [];
    if (op.completion === 'fail' && positions.length > 0) {
      violations.add({
        property: 'failed-delivered',
        message: `${op.invoke.key} failed definitely but is delivered at ${positions.join(', ')}`,
        timeMs: op.completeMs,
        keys: [op.invoke.key],
      });
    }
    if (op.completion !== 'ok' || op.ok === null) continue;
    const told = op.ok.position;
    if (told < coverageFrom) {
      unverifiable++;
      continue;
    }
    if (positions.length === 0) {
      violations.add({
        property: 'lost',
        message: `${op.invoke.key} was acknowledged at position ${told} and is not delivered`,
        timeMs: op.completeMs,
        keys: [op.invoke.key],
      });
    } else if (!positions.includes(told)) {
      violations.add({
        property: 'misplaced',
        message: `${op.invoke.key} was acknowledged at position ${told} but is at ${positions.join(', ')}`,
        timeMs: op.completeMs,
        keys: [op.invoke.key],
      });
    }
  }
  return unverifiable;
}

/** Each process's acknowledged broadcasts, in invoke order, sit at increasing positions. */
function checkClientOrder(ops: readonly BroadcastOp[], violations: ViolationList): void {
  const byProcess = new Map<string, BroadcastOp[]>();
  for (const op of ops) {
    if (op.ok === null) continue;
    const list = byProcess.get(op.process) ?? [];
    list.push(op);
    byProcess.set(op.process, list);
  }
  for (const [process, list] of byProcess) {
    list.sort((a, b) => a.invokeMs - b.invokeMs || a.opId - b.opId);
    for (let at = 1; at < list.length; at++) {
      const before = list[at - 1] as BroadcastOp;
      const here = list[at] as BroadcastOp;
      if ((here.ok as BroadcastOk).position > (before.ok as BroadcastOk).position) continue;
      violations.add({
        property: 'client-order',
        message: `${process} issued ${before.invoke.key} before ${here.invoke.key}, but they are at ${before.ok?.position} and ${here.ok?.position}`,
        timeMs: here.completeMs,
        keys: [before.invoke.key, here.invoke.key],
      });
    }
  }
}

/** Acknowledged broadcasts as (ack time, position), sorted by ack time. */
function acknowledgements(
  ops: readonly BroadcastOp[],
): { timeMs: number; position: number; key: string }[] {
  return ops
    .filter((op) => op.ok !== null && op.completeMs !== null)
    .map((op) => ({
      timeMs: op.completeMs as number,
      position: (op.ok as BroadcastOk).position,
      key: op.invoke.key,
    }))
    .sort((a, b) => a.timeMs - b.timeMs);
}

/**
 * A message invoked after another was acknowledged is delivered after it; a barrier invoked
 * after an acknowledgement answers at least its position. One sweep over both, in time order.
 */
function checkRealTime(
  ops: readonly BroadcastOp[],
  barriers: readonly BarrierOp[],
  positionsOfKey: ReadonlyMap<string, readonly number[]>,
  violations: ViolationList,
): void {
  const acks = acknowledgements(ops);
  const readers = [
    ...ops
      .filter((op) => positionsOfKey.has(op.invoke.key))
      .map((op) => ({
        invokeMs: op.invokeMs,
        position: Math.min(...(positionsOfKey.get(op.invoke.key) as number[])),
        key: op.invoke.key as string | null,
        barrier: false,
      })),
    ...barriers
      .filter((op) => op.ok !== null)
      .map((op) => ({
        invokeMs: op.invokeMs,
        position: (op.ok as BarrierOk).position,
        key: null,
        barrier: true,
      })),
  ].sort((a, b) => a.invokeMs - b.invokeMs);
  let ackAt = 0;
  let newest: { position: number; key: string } | null = null;
  for (const reader of readers) {
    while (ackAt < acks.length && (acks[ackAt] as { timeMs: number }).timeMs < reader.invokeMs) {
      const ack = acks[ackAt++] as { position: number; key: string };
      if (newest === null || ack.position > newest.position) newest = ack;
    }
    if (newest === null) continue;
    if (reader.barrier && reader.position < newest.position) {
      violations.add({
        property: 'stale-barrier',
        message: `a barrier invoked after ${newest.key} was acknowledged at ${newest.position} answered ${reader.position}`,
        timeMs: reader.invokeMs,
        keys: [newest.key],
      });
    } else if (!reader.barrier && reader.position <= newest.position) {
      violations.add({
        property: 'real-time-order',
        message: `${reader.key} was invoked after ${newest.key} was acknowledged at ${newest.position}, yet is at ${reader.position}`,
        timeMs: reader.invokeMs,
        keys: [newest.key, reader.key as string],
      });
    }
  }
}

function checkSubscriptions(
  observations: ReadonlyMap<string, { timeMs: number; observed: Observation['observed'] }[]>,
  merged: ReadonlyMap<number, DeliveredMessage>,
  violations: ViolationList,
): number {
  let count = 0;
  for (const [process, batches] of observations) {
    let previous: number | null = null;
    for (const batch of batches) {
      for (const [position, key] of batch.observed) {
        count++;
        if (previous !== null && position !== previous + 1) {
          violations.add({
            property: 'subscription',
            message: `${process} was handed position ${position} right after ${previous}`,
            timeMs: batch.timeMs,
            keys: key === null ? [] : [key],
          });
        }
        previous = position;
        const held = merged.get(position);
        if (held !== undefined && held.key !== key) {
          violations.add({
            property: 'subscription',
            message: `${process} was handed ${key} at position ${position}, where the nodes hold ${held.key}`,
            timeMs: batch.timeMs,
            keys: [key, held.key].filter((one): one is string => one !== null),
          });
        }
      }
    }
  }
  return count;
}

function checkLiveness(
  ops: readonly BroadcastOp[],
  readings: readonly NodeReading[],
  options: CheckOptions,
  violations: ViolationList,
): { longestMs: number; fromMs: number; recoveryMs: number | null } {
  const acks = acknowledgements(ops).map((ack) => ack.timeMs);
  // From the first broadcast asked for: before it the nodes were starting, not unavailable.
  const firstInvokeMs = ops.reduce((first, op) => Math.min(first, op.invokeMs), options.endMs);
  let longestMs = 0;
  let fromMs = firstInvokeMs;
  let previous = firstInvokeMs;
  for (const time of [...acks, options.endMs]) {
    if (time - previous > longestMs) {
      longestMs = time - previous;
      fromMs = previous;
    }
    previous = Math.max(previous, time);
  }
  let recoveryMs: number | null = null;
  if (options.healedAtMs !== null) {
    const healedAtMs = options.healedAtMs;
    const first = acks.find((time) => time >= healedAtMs);
    recoveryMs = first === undefined ? null : first - healedAtMs;
    if (recoveryMs === null || recoveryMs > options.recoveryBoundMs) {
      violations.add({
        property: 'no-recovery',
        message: `no commit within ${options.recoveryBoundMs} ms of the last heal (${recoveryMs === null ? 'none at all' : `${Math.round(recoveryMs)} ms`})`,
        timeMs: healedAtMs,
        keys: [],
      });
    }
  }
  const members = readings.filter((reading) => reading.standing === 'member');
  const last = (reading: NodeReading) => reading.messages.at(-1)?.position ?? 0;
  const highest = Math.max(0, ...readings.map(last));
  for (const member of members) {
    if (member.error !== null || last(member) < highest) {
      violations.add({
        property: 'lagging',
        message: `member ${member.node} ${member.error === null ? `delivered up to ${last(member)} of ${highest}` : `could not be read: ${member.error}`}`,
        timeMs: options.endMs,
        keys: [],
      });
    }
  }
  return { longestMs, fromMs, recoveryMs };
}

/** A difference verify found is a violation, and so is a member that could not answer it. */
function checkVerify(report: VerifyReport | null, endMs: number, violations: ViolationList): void {
  if (report === null) return;
  const { outcome } = report;
  const nodes = report.nodes.join(', ');
  if (outcome.kind === 'differ') {
    violations.add({
      property: 'verify',
      message: `abcast verify: ${nodes} differ at position ${outcome.position} (they agree from ${outcome.first} up to it)`,
      timeMs: endMs,
      keys: [],
    });
  } else if (outcome.kind === 'unreadable') {
    violations.add({
      property: 'verify',
      message: `abcast verify could not compare ${nodes}: ${outcome.reason}`,
      timeMs: endMs,
      keys: [],
    });
  }
}

/** What verify said, in a few words, for the summary. */
export function describeVerify(report: VerifyReport | null): string {
  if (report === null) return 'not run';
  const { outcome } = report;
  switch (outcome.kind) {
    case 'agree':
      return `${report.nodes.length} nodes agree on positions ${outcome.first}..${outcome.last}`;
    case 'differ':
      return `differ at position ${outcome.position}`;
    case 'nothing':
    case 'skipped':
    case 'unreadable':
      return `${outcome.kind}: ${outcome.reason}`;
  }
}

export function checkHistory(
  history: readonly HistoryEvent[],
  readings: readonly NodeReading[],
  options: CheckOptions,
): CheckResult {
  const violations = new ViolationList(options.violationsPerPropertyMax);
  const { broadcasts, barriers, observations } = collectOps(history);
  const opsByKey = new Map(broadcasts.map((op) => [op.invoke.key, op]));
  const merged = mergeSequences(readings, violations);
  const positionsOfKey = checkIntegrity(merged, opsByKey, violations);
  // Positions below every node's first held one cannot be checked (compacted everywhere).
  let coverageFrom = Number.POSITIVE_INFINITY;
  for (const position of merged.keys()) coverageFrom = Math.min(coverageFrom, position);
  if (merged.size === 0) coverageFrom = 1;
  const unverifiable = checkOutcomes(broadcasts, positionsOfKey, coverageFrom, violations);
  checkClientOrder(broadcasts, violations);
  checkRealTime(broadcasts, barriers, positionsOfKey, violations);
  const observed = checkSubscriptions(observations, merged, violations);
  const liveness = checkLiveness(broadcasts, readings, options, violations);
  checkVerify(options.verify, options.endMs, violations);
  const unknownOps = broadcasts.filter((op) => op.completion === 'info' || op.completion === null);
  return {
    violations: violations.listed,
    violationCounts: violations.counts,
    stats: {
      broadcastsInvoked: broadcasts.length,
      acknowledged: broadcasts.filter((op) => op.completion === 'ok').length,
      failed: broadcasts.filter((op) => op.completion === 'fail').length,
      unknown: unknownOps.length,
      unknownDelivered: unknownOps.filter((op) => positionsOfKey.has(op.invoke.key)).length,
      barriers: barriers.filter((op) => op.ok !== null).length,
      observedBySubscribers: observed,
      delivered: [...merged.values()].filter((message) => !isSystem(message)).length,
      unverifiable,
      longestUnavailabilityMs: Math.round(liveness.longestMs),
      longestUnavailabilityFromMs: Math.round(liveness.fromMs),
      recoveryMs: liveness.recoveryMs === null ? null : Math.round(liveness.recoveryMs),
    },
  };
}
