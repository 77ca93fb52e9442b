/**
 * The broadcast's promises as nodes and clients see them, checked after every step of a
 * simulated run of the real runtime:
 * - agreement and total order: every node delivers, at each position, the same message, and
 *   each node's positions run 1, 2, 3 … without a gap (after a restart, again from where its
 *   recovered state resumes);
 * - integrity: each message at most once; nothing that no client sent (the nodes' own
 *   records on reserved topics aside); log time never goes back along positions;
 * - what clients were told: a broadcast resolved at position p is the message at p; one
 *   client's resolved broadcasts are in the order it issued them; a definite refusal is never
 *   delivered; every call settles within its bound; a barrier covers every broadcast
 *   resolved before it began;
 * - session ownership: every message delivered in one session (client id) comes from the one
 *   client that started it, in one of the sessions its SDK opens (its base id, or `~n` after).
 */

import type { DeliveredMessage } from '../../broadcast/deliveries.ts';
import { reservedTopicPrefix } from '../../broadcast/membership.ts';
import type { NodeId } from '../../raft/types.ts';
import type { ViolationContext } from '../violation.ts';

const utf8 = new TextDecoder();

export interface CommonMessage {
  readonly clientId: string;
  readonly seq: number;
  readonly topic: string;
  readonly payloadText: string;
  readonly logTimeMs: number;
  readonly firstNode: NodeId;
}

export type CallOutcome =
  | { readonly kind: 'resolved'; readonly position: number | null; readonly duplicate: boolean }
  | { readonly kind: 'rejected'; readonly code: string };

interface Call {
  readonly client: string;
  readonly issueNumber: number;
  readonly payloadText: string;
  readonly issuedMs: number;
  outcome: CallOutcome | null;
  settledMs: number | null;
}

/**
 * Codes after which the message was certainly not, and will never be, delivered: refused at
 * the door, or sent in a session that belongs to another identity (session_forbidden) or to
 * another client of the same identity (session_conflict), which the session table refuses
 * for good once its first message is applied.
 */
const definiteRefusals = new Set([
  'invalid_argument',
  'payload_too_large',
  'session_forbidden',
  'session_conflict',
]);

/** A broadcast a client was told is at `position`. */
interface Resolved {
  readonly issueNumber: number;
  readonly position: number;
}

export class DeliveryChecker {
  private readonly common: CommonMessage[] = [];
  /** The next position each node (this incarnation) must deliver. */
  private readonly nextPositionOf = new Map<NodeId, number>();
  /** Payload text → position, for every client message delivered so far. */
  private readonly positionOfPayload = new Map<string, number>();
  private readonly calls = new Map<string, Call>();
  /** Position a client was told → the payload it must hold there. */
  private readonly promised = new Map<number, string>();
  /** Client → its resolved broadcasts, sorted by issue number. */
  private readonly resolvedByClient = new Map<string, Resolved[]>();
  /** Simulated client → the session id its SDK started with. */
  private readonly baseIdOf = new Map<string, string>();
  /** Session id → the simulated client whose message was delivered in it first. */
  private readonly senderOfSession = new Map<string, string>();
  /** The highest position any client was told its broadcast holds, so far. */
  private promisedPositionMax = 0;

  constructor(private readonly context: ViolationContext) {}

  get lastPosition(): number {
    return this.common.length;
  }

  /** What was delivered at `position`, as the first node to deliver it saw it. */
  deliveredAt(position: number): CommonMessage | undefined {
    return this.common[position - 1];
  }

  get callCount(): number {
    return this.calls.size;
  }

  /** A node (re)started; its deliveries resume after `lastPosition` of its recovered state. */
  onNodeStarted(node: NodeId, lastPosition: number): void {
    if (lastPosition > this.common.length) {
      this.context.fail(
        'agreement',
        `${node} restarts past position ${lastPosition}, beyond the ${this.common.length} ever delivered`,
        [node],
      );
    }
    this.nextPositionOf.set(node, lastPosition + 1);
  }

  /**
   * The node installed a leader's snapshot and has applied the Ready that carried it: its
   * positions now run to `lastPosition` (the snapshot's last one, or a later one it delivered
   * since), never past what some node delivered before. Without this, a node whose snapshot
   * holds everything there is to deliver would look behind for good.
   */
  onSnapshotInstalled(node: NodeId, lastPosition: number): void {
    if (lastPosition > this.common.length) {
      this.context.fail(
        'agreement',
        `${node} installs a snapshot up to position ${lastPosition}, beyond the ${this.common.length} ever delivered`,
        [node],
      );
    }
    const expected = this.nextPositionOf.get(node) ?? 1;
    if (lastPosition + 1 < expected) {
      this.context.fail(
        'delivery order',
        `${node} installs a snapshot up to position ${lastPosition} after delivering ${expected - 1}`,
        [node],
      );
    }
    this.nextPositionOf.set(node, lastPosition + 1);
  }

  /**
   * `afterSnapshot`: the node installed a leader's snapshot in this step, so it resumes after
   * the snapshot's last position, skipping what the snapshot holds — but never past what some
   * node delivered before.
   */
  onDelivered(node: NodeId, message: DeliveredMessage, afterSnapshot: boolean): void {
    const expected = this.nextPositionOf.get(node) ?? 1;
    const skipsIntoSnapshot =
      afterSnapshot && message.position > expected && message.position <= this.common.length + 1;
    if (message.position !== expected && !skipsIntoSnapshot) {
      this.context.fail(
        'delivery order',
        `${node} delivers position ${message.position} where ${expected} is next`,
        [node],
      );
    }
    this.nextPositionOf.set(node, message.position + 1);
    const payloadText = utf8.decode(message.payload);
    const known = this.common[message.position - 1];
    if (known === undefined) {
      this.extend(node, message, payloadText);
      return;
    }
    if (
      known.clientId !== message.clientId ||
      known.seq !== message.seq ||
      known.topic !== message.topic ||
      known.payloadText !== payloadText ||
      known.logTimeMs !== message.logTimeMs
    ) {
      this.context.fail(
        'agreement',
        `${node} delivers ${describe(message.clientId, message.seq, payloadText)} at position ${message.position}, where ${known.firstNode} delivered ${describe(known.clientId, known.seq, known.payloadText)}`,
        [node, known.firstNode],
      );
    }
  }

  private extend(node: NodeId, message: DeliveredMessage, payloadText: string): void {
    if (message.position !== this.common.length + 1) {
      this.context.fail(
        'agreement',
        `${node} delivers position ${message.position} though only ${this.common.length} exist`,
        [node],
      );
      return;
    }
    const previous = this.common[this.common.length - 1];
    if (previous !== undefined && message.logTimeMs < previous.logTimeMs) {
      this.context.fail(
        'agreement',
        `log time goes back at position ${message.position}: ${message.logTimeMs} < ${previous.logTimeMs}`,
        [node],
      );
    }
    this.common.push({
      clientId: message.clientId,
      seq: message.seq,
      topic: message.topic,
      payloadText,
      logTimeMs: message.logTimeMs,
      firstNode: node,
    });
    if (message.topic.startsWith(reservedTopicPrefix)) return;
    const call = this.calls.get(payloadText);
    if (call === undefined) {
      this.context.fail('integrity', `${node} delivers ${payloadText}, which no client sent`, [
        node,
      ]);
      return;
    }
    const earlier = this.positionOfPayload.get(payloadText);
    if (earlier !== undefined) {
      this.context.fail(
        'integrity',
        `${payloadText} is delivered twice, at positions ${earlier} and ${message.position}`,
        [node],
      );
    }
    this.positionOfPayload.set(payloadText, message.position);
    this.checkSessionOwner(node, message, call);
    if (call.outcome?.kind === 'rejected' && definiteRefusals.has(call.outcome.code)) {
      this.context.fail(
        'acknowledged delivery',
        `${payloadText} is delivered at ${message.position} after its client was told ${call.outcome.code}`,
        [node],
      );
    }
    const promisedText = this.promised.get(message.position);
    if (promisedText !== undefined && promisedText !== payloadText) {
      this.context.fail(
        'acknowledged delivery',
        `position ${message.position} holds ${payloadText}, but ${promisedText}'s client was told it is there`,
        [node],
      );
    }
  }

  /** A simulated client connected; its SDK's sessions are `baseId`, then `baseId~2`, … */
  onClient(client: string, baseId: string): void {
    this.baseIdOf.set(client, baseId);
  }

  /**
   * A session is its starter's: every message delivered in it comes from one client, and
   * only in a session that client's SDK could have opened. Two clients sharing a client id
   * (one identity with two nonces, or two identities) must find one of them refused.
   */
  private checkSessionOwner(node: NodeId, message: DeliveredMessage, call: Call): void {
    const baseId = this.baseIdOf.get(call.client);
    const sessionId = message.clientId;
    if (baseId !== undefined && sessionId !== baseId && !sessionId.startsWith(`${baseId}~`)) {
      this.context.fail(
        'session ownership',
        `${call.client}'s ${call.payloadText.slice(0, 60)} is delivered in session ${sessionId}, not one of its own (${baseId})`,
        [node],
      );
    }
    const starter = this.senderOfSession.get(sessionId);
    if (starter === undefined) this.senderOfSession.set(sessionId, call.client);
    else if (starter !== call.client) {
      this.context.fail(
        'session ownership',
        `session ${sessionId} delivers ${call.client}'s #${call.issueNumber} at position ${message.position}, though ${starter} started it`,
        [node],
      );
    }
  }

  /** A barrier begins: what it returns must be at least the position returned here. */
  onBarrierStarted(): number {
    return this.promisedPositionMax;
  }

  /**
   * A barrier returned `position`: every broadcast a client was told is delivered before the
   * barrier began (at most `floor`) is at or below it (Raft thesis §6.4), and no barrier
   * names a position that no node has delivered.
   */
  onBarrierDone(client: string, floor: number, position: number): void {
    if (position < floor) {
      this.context.fail(
        'linearizable read',
        `${client}'s barrier returned ${position}, below position ${floor} acknowledged before it began`,
        [],
      );
    }
    if (position > this.common.length) {
      this.context.fail(
        'linearizable read',
        `${client}'s barrier returned ${position}, beyond the ${this.common.length} positions delivered`,
        [],
      );
    }
  }

  onIssued(client: string, issueNumber: number, payloadText: string, nowMs: number): void {
    this.calls.set(payloadText, {
      client,
      issueNumber,
      payloadText,
      issuedMs: nowMs,
      outcome: null,
      settledMs: null,
    });
  }

  onSettled(payloadText: string, outcome: CallOutcome, nowMs: number): void {
    const call = this.calls.get(payloadText);
    if (call === undefined || call.outcome !== null) {
      this.context.fail(
        'acknowledged delivery',
        `${payloadText} settles twice or was never issued`,
        [],
      );
      return;
    }
    call.outcome = outcome;
    call.settledMs = nowMs;
    const delivered = this.positionOfPayload.get(payloadText);
    if (outcome.kind === 'rejected') {
      if (definiteRefusals.has(outcome.code) && delivered !== undefined) {
        this.context.fail(
          'acknowledged delivery',
          `${payloadText} was delivered at ${delivered}, then its client was told ${outcome.code}`,
          [],
        );
      }
      return;
    }
    if (outcome.position === null) {
      if (!outcome.duplicate) {
        this.context.fail(
          'acknowledged delivery',
          `${payloadText} resolved without a position`,
          [],
        );
      }
      return;
    }
    const position = outcome.position;
    const held = this.common[position - 1];
    if (held !== undefined && held.payloadText !== payloadText) {
      this.context.fail(
        'acknowledged delivery',
        `${call.client} was told ${payloadText} is at position ${position}, which holds ${held.payloadText}`,
        [],
      );
    }
    if (delivered !== undefined && delivered !== position) {
      this.context.fail(
        'acknowledged delivery',
        `${call.client} was told ${payloadText} is at ${position}; it was delivered at ${delivered}`,
        [],
      );
    }
    this.promised.set(position, payloadText);
    this.promisedPositionMax = Math.max(this.promisedPositionMax, position);
    this.checkClientOrder(call, position);
  }

  /**
   * One client's resolved broadcasts hold positions in the order it issued them. The list is
   * kept sorted by issue number and, while no violation was found, its positions increase, so
   * only the neighbours of the new call can be out of order: O(log n) to find them, and O(1)
   * to insert in the usual case, calls resolving in the order they were issued.
   */
  private checkClientOrder(call: Call, position: number): void {
    let resolved = this.resolvedByClient.get(call.client);
    if (resolved === undefined) {
      resolved = [];
      this.resolvedByClient.set(call.client, resolved);
    }
    let low = 0;
    let high = resolved.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((resolved[middle] as Resolved).issueNumber < call.issueNumber) low = middle + 1;
      else high = middle;
    }
    const entry: Resolved = { issueNumber: call.issueNumber, position };
    const before = resolved[low - 1];
    const after = resolved[low];
    if (before !== undefined && before.position >= position) {
      this.failClientOrder(call.client, before, entry);
    }
    if (after !== undefined && after.position <= position) {
      this.failClientOrder(call.client, entry, after);
    }
    resolved.splice(low, 0, entry);
  }

  private failClientOrder(client: string, first: Resolved, second: Resolved): void {
    this.context.fail(
      'per-client fifo',
      `${client} issued #${first.issueNumber} and #${second.issueNumber} in that order; they resolved at positions ${first.position} and ${second.position}`,
      [],
    );
  }

  /** Calls issued before `nowMs - boundMs` that have not settled. */
  overdue(nowMs: number, boundMs: number): string[] {
    const late: string[] = [];
    for (const call of this.calls.values()) {
      if (call.outcome === null && nowMs - call.issuedMs > boundMs) late.push(call.payloadText);
    }
    return late;
  }

  /** At the end: every resolved broadcast is in the common sequence, where it was told. */
  checkAllPromisesKept(): void {
    for (const [position, payloadText] of this.promised) {
      if (this.common[position - 1] === undefined) {
        this.context.fail(
          'acknowledged delivery',
          `${payloadText} was acknowledged at position ${position}, which no node delivered`,
          [],
        );
      }
    }
    for (const call of this.calls.values()) {
      const outcome = call.outcome;
      if (
        outcome?.kind === 'resolved' &&
        outcome.position === null &&
        !this.positionOfPayload.has(call.payloadText)
      ) {
        this.context.fail(
          'acknowledged delivery',
          `${call.payloadText} was acknowledged as a duplicate but never delivered`,
          [],
        );
      }
    }
  }

  /** Nodes that have not delivered everything yet. */
  lagging(nodes: readonly NodeId[]): NodeId[] {
    return nodes.filter((node) => (this.nextPositionOf.get(node) ?? 1) <= this.common.length);
  }
}

function describe(clientId: string, seq: number, payloadText: string): string {
  return `${clientId || '(anonymous)'}#${seq} ${payloadText.slice(0, 60)}`;
}
