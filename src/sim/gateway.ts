/**
 * Where simulated clients meet nodes: a node's inbox collects client requests and proposes
 * up to batchMessagesMax of them as one batch entry; an accepted proposal waits at its index
 * until the node delivers that index, which answers it as committed (same term, with the
 * position the session table gave it) or overwritten (another term).
 */
import { encodeBatch } from '../broadcast/batch.ts';
import type { MessageOutcome } from '../broadcast/sessions.ts';
import type { RaftCore } from '../raft/core.ts';
import type { Entry, NodeId } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import type { AppliedMessage } from './app.ts';
import type { ClientHost, ClientRequest } from './clients.ts';
import { clientName, messageFor } from './workload.ts';
import type { SimNode, World } from './world.ts';

/** Requests one node holds before it refuses more (clients then try elsewhere). */
const INBOX_MAX = 64;
/** Accepted proposals one node tracks; clients hold one request each, so this never binds. */
const PENDING_PER_NODE_MAX = 10_000;
/** Virtual milliseconds per tick, for the batch's log time. */
const TICK_MS = 10;

export class ClientGateway implements ClientHost {
  constructor(private readonly world: World) {}

  get nowTicks(): number {
    return this.world.nowTicks;
  }

  get nodeCount(): number {
    return this.world.nodes.length;
  }

  nodeIndexOf(id: NodeId): number | null {
    return this.world.nodeIndexOf(id);
  }

  submit(nodeIndex: number, request: ClientRequest): boolean {
    const world = this.world;
    const node = world.node(nodeIndex);
    if (node.state !== 'up' || node.inbox.length >= INBOX_MAX) return false;
    node.inbox.push(request);
    if (!node.flushScheduled) {
      node.flushScheduled = true;
      const atTicks = world.nowTicks + world.orderPrng.between(0, 2);
      world.schedule(atTicks, { kind: 'flush', node: node.index, incarnation: node.incarnation });
    }
    return true;
  }

  scheduleClient(client: number, atTicks: number, timer: number): void {
    this.world.schedule(atTicks, { kind: 'client', client, timer });
  }

  noteClient(text: string): void {
    if (this.world.trace.wantsLines) this.world.note(null, text);
  }

  issue(client: number, seq: number): void {
    this.world.checker.onIssue(client, seq);
  }

  acknowledge(
    nodeIndex: number,
    request: ClientRequest,
    position: number | null,
    index: number,
  ): void {
    const node = this.world.node(nodeIndex);
    this.world.checker.onAck(node.id, request.client, request.seq, position, index);
    if (this.world.trace.wantsLines) {
      const where = position ?? '(duplicate)';
      this.world.note(
        node,
        `ack c${request.client} seq ${request.seq} at position ${where} index ${index}`,
      );
    }
  }

  /** Proposes up to batchMessagesMax current requests from the node's inbox as one entry. */
  flush(node: SimNode, incarnation: number): void {
    if (node.incarnation !== incarnation) return;
    node.flushScheduled = false;
    if (node.state !== 'up') return;
    const world = this.world;
    const batch = this.takeBatch(node);
    if (node.inbox.length > 0) {
      node.flushScheduled = true;
      world.schedule(world.nowTicks + 1, { kind: 'flush', node: node.index, incarnation });
    }
    if (batch.length === 0) return;
    const messages = batch.map((request) =>
      messageFor(request.client, request.seq, world.salt, world.mix.payloadBytesMax),
    );
    const result = (node.core as RaftCore).propose(encodeBatch(messages, world.nowTicks * TICK_MS));
    if (!result.accepted) {
      for (const request of batch) world.clients.onRefused(request, result.leaderId);
      return;
    }
    const waiting = node.pending.get(result.index) ?? [];
    for (const request of batch) waiting.push({ request, term: result.term });
    node.pending.set(result.index, waiting);
    assert(node.pending.size <= PENDING_PER_NODE_MAX, 'pending proposals stay bounded');
    if (world.trace.wantsLines) {
      const names = batch.map((request) => `c${request.client}#${request.seq}`).join(' ');
      world.note(node, `propose index ${result.index} term ${result.term}: ${names}`);
    }
    world.pump(node);
  }

  /** Current requests only, one per client (a retry may sit beside its stale original). */
  private takeBatch(node: SimNode): ClientRequest[] {
    const batch: ClientRequest[] = [];
    while (batch.length < this.world.mix.batchMessagesMax && node.inbox.length > 0) {
      const request = node.inbox.shift() as ClientRequest;
      if (!this.world.clients.isCurrent(request)) continue;
      if (batch.some((held) => held.client === request.client)) continue;
      batch.push(request);
    }
    return batch;
  }

  /** The node delivered `entry`: answer the proposals it accepted at that index. */
  resolve(node: SimNode, entry: Entry, applied: readonly AppliedMessage[]): void {
    const waiting = node.pending.get(entry.index);
    if (waiting === undefined) return;
    node.pending.delete(entry.index);
    const clients = this.world.clients;
    for (const { request, term } of waiting) {
      if (!clients.isCurrent(request)) continue;
      if (entry.term !== term) {
        clients.onResolved(node.index, request, entry.index, null);
        continue;
      }
      const outcome = findOutcome(applied, clientName(request.client), request.seq);
      if (outcome === null) {
        this.world.context.fail(
          'integrity',
          `${node.id} delivered index ${entry.index} term ${term} without c${request.client} seq ${request.seq}, which it accepted there`,
          [node.id],
        );
        continue;
      }
      clients.onResolved(node.index, request, entry.index, outcome);
    }
  }

  /** A snapshot skipped these indexes: their proposers will not hear from this node. */
  dropPendingThrough(node: SimNode, index: number): void {
    for (const [pendingIndex, waiting] of node.pending) {
      if (pendingIndex > index) continue;
      node.pending.delete(pendingIndex);
      for (const { request } of waiting) this.world.clients.onLost(request);
    }
  }

  /** The node crashed: every request it held is lost, and its clients will retry. */
  dropAll(node: SimNode): void {
    const lost = [...node.inbox, ...[...node.pending.values()].flat().map((held) => held.request)];
    node.inbox = [];
    node.pending.clear();
    for (const request of lost) this.world.clients.onLost(request);
  }
}

function findOutcome(
  applied: readonly AppliedMessage[],
  clientId: string,
  seq: number,
): MessageOutcome | null {
  for (const { message, outcome } of applied) {
    if (message.clientId === clientId && message.seq === seq) return outcome;
  }
  return null;
}
