// Cluster benchmark: three node processes on 127.0.0.1, fsync on, 256-byte messages. A
// closed-loop load generator runs inside the leader's process (so it measures the
// replication pipeline: batching, WAL, fsync, Raft round trips, apply), at 1, 16 and 128
// messages in flight. Reports messages/s, p50/p99 latency, the leader's fsyncs/s and
// messages per fsync (the batching factor), as medians over runs, and writes them to
// bench/results/cluster.json.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadReport } from '../src/cli/node-process.ts';
import { type NodeProcess, ProcessCluster } from '../src/cli/process-cluster.ts';
import { flagsOrExit, positiveInteger, positiveIntegers, positiveNumber } from './args.ts';

const { runs, seconds, concurrencies, payloadBytes } = flagsOrExit({
  usage: `node --import tsx bench/cluster.ts [flags]
Messages/s, latency and fsync batching of 3 node processes, load run inside the leader.
  --runs N             fresh clusters measured at each level; the figures are their medians
                       (default 3)
  --seconds S          counted length of each run, a positive number (default 3)
  --concurrency LIST   messages in flight, comma-separated, one level each (default 1,16,128)
  --payload-bytes N    bytes per message (default 256)`,
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '1,16,128' },
    'payload-bytes': { type: 'string', default: '256' },
  },
  read: (values) => ({
    runs: positiveInteger('runs', values.runs),
    seconds: positiveNumber('seconds', values.seconds),
    concurrencies: positiveIntegers('concurrency', values.concurrency),
    payloadBytes: positiveInteger('payload-bytes', values['payload-bytes']),
  }),
});

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
