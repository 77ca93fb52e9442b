/**
 * Shared pieces of the multi-process tests: clients that retry with their own (clientId, seq)
 * on any live node, and the checker of what the nodes delivered.
 */
import assert from 'node:assert/strict';
import type { NodeProcess, ProcessCluster } from '../../src/cli/process-cluster.ts';
import { waitFor } from '../support/ports.ts';

export interface ReadMessage {
  readonly position: number;
  readonly clientId: string;
  readonly seq: number;
  readonly payload: string;
}

/** One client: messages go out one at a time, each retried on any node until acknowledged. */
export class RetryingClient {
  private seq = 0;
  private nodeCursor: number;
  readonly acknowledged = new Map<number, number>();

  constructor(
    readonly clientId: string,
    private readonly cluster: ProcessCluster,
    offset: number,
  ) {
    this.nodeCursor = offset;
  }

  private pickNode(): NodeProcess | undefined {
    const live = [...this.cluster.nodes.values()].filter((node) => node.alive);
    if (live.length === 0) return undefined;
    this.nodeCursor++;
    return live[this.nodeCursor % live.length];
  }

  /** Sends until `shouldStop()`; each message is retried until acknowledged or stopping. */
  async run(shouldStop: () => boolean): Promise<void> {
    while (!shouldStop()) {
      const seq = ++this.seq;
      while (true) {
        const node = this.pickNode();
        if (node === undefined) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          continue;
        }
        try {
          const result = await node.request<{ position: number }>({
            op: 'broadcast',
            payload: `${this.clientId}:${seq}`,
            clientId: this.clientId,
            seq,
          });
          this.acknowledged.set(seq, result.position);
          break;
        } catch {
          // Unknown outcome: the same (clientId, seq) again, on another node, is exactly-once.
          if (shouldStop() && this.acknowledged.size > 0) return;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    }
  }
}

export async function readAll(node: NodeProcess): Promise<ReadMessage[]> {
  const messages: ReadMessage[] = [];
  for (;;) {
    const page = await node.request<ReadMessage[]>({
      op: 'read',
      from: messages.length + 1,
      limit: 5000,
    });
    if (page.length === 0) return messages;
    messages.push(...page);
  }
}

/**
 * Every live node delivered the same sequence at dense positions; every acknowledged message
 * is in it exactly once at its acknowledged position; nothing twice; each client in seq order.
 */
export function checkDeliveries(
  sequences: ReadMessage[][],
  clients: readonly RetryingClient[],
): void {
  const reference = sequences[0] as ReadMessage[];
  for (const sequence of sequences)
    assert.deepEqual(sequence, reference, 'every node delivered the same sequence');
  reference.forEach((message, offset) => {
    assert.equal(message.position, offset + 1, 'positions are dense');
  });
  const seen = new Set<string>();
  const lastSeq = new Map<string, number>();
  for (const message of reference) {
    const key = `${message.clientId}/${message.seq}`;
    assert.ok(!seen.has(key), `${key} delivered once`);
    seen.add(key);
    assert.equal(message.payload, `${message.clientId}:${message.seq}`, 'nothing invented');
    assert.equal(
      message.seq,
      (lastSeq.get(message.clientId) ?? 0) + 1,
      `${message.clientId} in seq order`,
    );
    lastSeq.set(message.clientId, message.seq);
  }
  for (const client of clients) {
    for (const [seq, position] of client.acknowledged) {
      const message = reference[position - 1];
      assert.ok(message !== undefined, `acknowledged ${client.clientId}/${seq} is delivered`);
      assert.equal(
        `${message.clientId}/${message.seq}`,
        `${client.clientId}/${seq}`,
        'at its acknowledged position',
      );
    }
  }
}

export async function leaderOf(cluster: ProcessCluster): Promise<string> {
  for (const node of cluster.nodes.values()) {
    if (!node.alive) continue;
    const status = await node.request<{ role: string; id: string }>({ op: 'status' });
    if (status.role === 'leader') return status.id;
  }
  throw new Error('no leader');
}

/** Waits until every listed node has delivered up to `position`. */
export async function allReached(
  cluster: ProcessCluster,
  ids: readonly string[],
  position: number,
  timeoutMs = 20_000,
): Promise<void> {
  await waitFor(
    async () => {
      const statuses = await Promise.all(
        ids.map((id) => cluster.node(id).request<{ lastPosition: number }>({ op: 'status' })),
      );
      return statuses.every((status) => status.lastPosition >= position);
    },
    `nodes ${ids.join(',')} at position ${position}`,
    timeoutMs,
  );
}
