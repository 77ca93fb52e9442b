/**
 * One abcast node as its own process, driven over Node's IPC channel by a parent (tests,
 * benchmarks, the local dev cluster). Argument 1 is the StartNodeOptions as JSON. SIGTERM
 * shuts down gracefully: the write in flight finishes, links and the data directory close.
 */
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BroadcastError } from '../broadcast/errors.ts';
import type { BroadcastNode } from '../broadcast/node.ts';
import { type StartNodeOptions, startNode } from '../broadcast/start.ts';
import { tuneNodeHeap } from './node-heap.ts';

export type NodeRequest =
  | {
      readonly op: 'broadcast';
      readonly payload: string;
      readonly clientId?: string;
      readonly seq?: number;
      readonly topic?: string;
    }
  | { readonly op: 'read'; readonly from: number; readonly limit: number }
  | { readonly op: 'status' }
  /** The process's `memoryUsage()`: where a node's RSS goes (bench/restart.ts). */
  | { readonly op: 'memory'; readonly collectFirst?: boolean }
  | { readonly op: 'barrier' }
  | { readonly op: 'transfer'; readonly to: string }
  | {
      readonly op: 'load';
      readonly concurrency: number;
      readonly durationMs: number;
      readonly payloadBytes: number;
    };

export interface LoadReport {
  readonly messageCount: number;
  readonly elapsedMs: number;
  readonly latencyMsP50: number;
  readonly latencyMsP99: number;
  readonly fsyncCount: number;
  readonly walRecordCount: number;
  readonly errorCount: number;
}

type Envelope = { readonly requestId: number; readonly request: NodeRequest };

function send(message: unknown): void {
  process.send?.(message);
}

function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] as number;
}

/** A closed loop: `concurrency` broadcasts always in flight, for `durationMs`. */
async function runLoad(
  node: BroadcastNode,
  request: Extract<NodeRequest, { op: 'load' }>,
): Promise<LoadReport> {
  const payload = new Uint8Array(request.payloadBytes).fill(0x61);
  const latencies: number[] = [];
  let errorCount = 0;
  const before = node.status().storage;
  const started = performance.now();
  const deadline = started + request.durationMs;
  const worker = async () => {
    while (performance.now() < deadline) {
      const sent = performance.now();
      try {
        await node.broadcast(payload);
        latencies.push(performance.now() - sent);
      } catch {
        errorCount++;
      }
    }
  };
  await Promise.all(Array.from({ length: request.concurrency }, worker));
  const elapsedMs = performance.now() - started;
  const after = node.status().storage;
  const sorted = Float64Array.from(latencies).sort();
  return {
    messageCount: latencies.length,
    elapsedMs,
    latencyMsP50: percentile(sorted, 0.5),
    latencyMsP99: percentile(sorted, 0.99),
    fsyncCount: after.fsyncCount - before.fsyncCount,
    walRecordCount: after.recordCount - before.recordCount,
    errorCount,
  };
}

/**
 * A full garbage collection, for a reading of what is live rather than what V8 has not yet
 * collected. V8 gives `gc` only to a process started with --expose-gc, or to a context made
 * after the flag is set.
 */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

async function handle(node: BroadcastNode, request: NodeRequest): Promise<unknown> {
  switch (request.op) {
    case 'broadcast': {
      const { payload, op: _op, ...options } = request;
      return node.broadcast(Buffer.from(payload, 'utf8'), options);
    }
    case 'read':
      return node.read(request.from, request.limit).map((message) => ({
        ...message,
        payload: Buffer.from(message.payload).toString('utf8'),
      }));
    case 'status':
      return node.status();
    case 'memory':
      if (request.collectFirst === true) collectGarbage();
      return process.memoryUsage();
    case 'barrier':
      return node.barrier();
    case 'transfer':
      return node.transferLeadership(request.to);
    case 'load':
      return runLoad(node, request);
  }
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as StartNodeOptions;
  tuneNodeHeap();
  let node: BroadcastNode;
  try {
    node = await startNode(options);
  } catch (error) {
    const code = error instanceof Error && 'code' in error ? String(error.code) : 'START_FAILED';
    send({ type: 'failed', code, message: error instanceof Error ? error.message : String(error) });
    process.exitCode = 1;
    process.disconnect?.();
    return;
  }
  const shutdown = async () => {
    await node.close();
    process.exit(0);
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  process.on('disconnect', shutdown);
  process.on('message', (envelope: Envelope) => {
    handle(node, envelope.request).then(
      (result) => send({ type: 'reply', requestId: envelope.requestId, ok: true, result }),
      (error: unknown) => {
        const code = error instanceof BroadcastError ? error.code : 'internal';
        const message = error instanceof Error ? error.message : String(error);
        send({ type: 'reply', requestId: envelope.requestId, ok: false, error: { code, message } });
      },
    );
  });
  send({ type: 'started', id: options.id });
}

void main();
