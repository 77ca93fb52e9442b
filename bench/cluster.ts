// Cluster benchmark: three node processes on 127.0.0.1, fsync on, 256-byte messages. A
// closed-loop load generator runs inside the leader's process (so it measures the
// replication pipeline: batching, WAL, fsync, Raft round trips, apply), at 1, 16 and 128
// messages in flight. Reports messages/s, p50/p99 latency, the leader's fsyncs/s and
// messages per fsync (the batching factor), as medians over runs, and writes them to
// bench/results/cluster.json.
//
//   node --import tsx bench/cluster.ts [--runs 3] [--seconds 3] [--concurrency 1,16,128]
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { LoadReport } from '../src/cli/node-process.ts';
import { type NodeProcess, ProcessCluster } from '../src/cli/process-cluster.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '1,16,128' },
    'payload-bytes': { type: 'string', default: '256' },
  },
});
const runs = Number(values.runs);
const seconds = Number(values.seconds);
const payloadBytes = Number(values['payload-bytes']);
const concurrencies = String(values.concurrency).split(',').map(Number);
if (
  ![runs, seconds, payloadBytes, ...concurrencies].every(
    (value) => Number.isFinite(value) && value > 0,
  )
) {
  console.error(
    'bench/cluster: --runs, --seconds, --payload-bytes and --concurrency take positive numbers',
  );
  process.exit(2);
}

const median = (numbers: number[]): number => {
  const sorted = [...numbers].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

async function findLeader(cluster: ProcessCluster): Promise<NodeProcess> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    for (const node of cluster.nodes.values()) {
      const status = await node.request<{ role: string }>({ op: 'status' });
      if (status.role === 'leader') return node;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('no leader within 10 s');
}

async function runOnce(concurrency: number): Promise<LoadReport> {
  const root = await mkdtemp(join(tmpdir(), 'abcast-bench-'));
  const cluster = await ProcessCluster.start({ ids: ['n1', 'n2', 'n3'], root, clusterId: 'bench' });
  try {
    const leader = await findLeader(cluster);
    // Warm up the JIT and the links before measuring.
    await leader.request({ op: 'load', concurrency, durationMs: 500, payloadBytes });
    return await leader.request<LoadReport>({
      op: 'load',
      concurrency,
      durationMs: seconds * 1000,
      payloadBytes,
    });
  } finally {
    await cluster.stop();
    await rm(root, { recursive: true, force: true });
  }
}

const results = [];
for (const concurrency of concurrencies) {
  const reports: LoadReport[] = [];
  for (let run = 0; run < runs; run++) reports.push(await runOnce(concurrency));
  const row = {
    concurrency,
    messagesPerSecond: Math.round(
      median(reports.map((r) => (r.messageCount / r.elapsedMs) * 1000)),
    ),
    latencyMsP50: Number(median(reports.map((r) => r.latencyMsP50)).toFixed(3)),
    latencyMsP99: Number(median(reports.map((r) => r.latencyMsP99)).toFixed(3)),
    leaderFsyncsPerSecond: Math.round(
      median(reports.map((r) => (r.fsyncCount / r.elapsedMs) * 1000)),
    ),
    messagesPerFsync: Number(
      median(reports.map((r) => r.messageCount / Math.max(1, r.fsyncCount))).toFixed(1),
    ),
    errorCount: reports.reduce((sum, r) => sum + r.errorCount, 0),
    runs: reports.length,
  };
  results.push(row);
  console.log(
    `in flight ${String(concurrency).padStart(4)}: ${String(row.messagesPerSecond).padStart(7)} msg/s  p50 ${row.latencyMsP50} ms  p99 ${row.latencyMsP99} ms  leader fsyncs/s ${row.leaderFsyncsPerSecond}  msgs/fsync ${row.messagesPerFsync}`,
  );
}

await mkdir(join('bench', 'results'), { recursive: true });
await writeFile(
  join('bench', 'results', 'cluster.json'),
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: cpus().length, payloadBytes, seconds, results }, null, 2)}\n`,
);
console.log('wrote bench/results/cluster.json');
