/**
 * `npm start`: a local cluster of separate node processes on 127.0.0.1 with embedded storage
 * under ./data, until Ctrl-C. Type a line to broadcast it; every delivery is printed as node
 * n1 sees it. The HTTP API, the SDK and the full CLI build on the same processes.
 *
 *   npm start [-- --nodes 3 --data ./data --port 7001]
 */
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { type NodeProcess, ProcessCluster } from './process-cluster.ts';

function fail(message: string): never {
  console.error(`abcast dev: ${message}`);
  process.exit(2);
}

function options(): { nodeCount: number; dataDir: string; basePort: number } {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      options: {
        nodes: { type: 'string', default: '3' },
        data: { type: 'string', default: './data' },
        port: { type: 'string', default: '7001' },
      },
    });
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
  const nodeCount = Number(parsed.values.nodes);
  const basePort = Number(parsed.values.port);
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 9) fail('--nodes takes 1 to 9');
  if (!Number.isInteger(basePort) || basePort < 1024 || basePort + nodeCount > 65535) {
    fail('--port takes a port from 1024 on');
  }
  return { nodeCount, dataDir: resolve(String(parsed.values.data)), basePort };
}

async function follow(node: NodeProcess, from: number): Promise<void> {
  let next = from;
  while (node.alive) {
    const page = await node
      .request<{ position: number; payload: string }[]>({ op: 'read', from: next, limit: 1000 })
      .catch(() => []);
    for (const message of page) console.log(`delivered #${message.position}: ${message.payload}`);
    next += page.length;
    if (page.length === 0) await new Promise((done) => setTimeout(done, 100));
  }
}

async function main(): Promise<void> {
  const { nodeCount, dataDir, basePort } = options();
  const ids = Array.from({ length: nodeCount }, (_, offset) => `n${offset + 1}`);
  const cluster = await ProcessCluster.start({
    ids,
    root: dataDir,
    basePort,
    clusterId: 'abcast-dev',
    stdio: 'inherit',
    nodeOptions: { logLevel: 'warn' },
  }).catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
  for (const id of ids)
    console.log(`node ${id}: peers on ${cluster.peers[id]}, data in ${dataDir}/${id}`);
  console.log('type a message and press Enter to broadcast it; Ctrl-C stops the cluster');
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await cluster.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const first = cluster.node(ids[0] as string);
  const status = await first.request<{ lastPosition: number }>({ op: 'status' });
  void follow(first, status.lastPosition + 1);
  const input = createInterface({ input: process.stdin });
  input.on('line', (line) => {
    if (line.trim() === '') return;
    first
      .request({ op: 'broadcast', payload: line })
      .catch((error: Error) => console.error(`broadcast failed: ${error.message}`));
  });
  input.on('close', () => {
    // Without a terminal (stdin closed) the cluster keeps running until a signal.
  });
}

void main();
