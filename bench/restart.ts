// A node with a long history restarts and serves: three node processes on 127.0.0.1 (fsync
// on), N messages written by a closed-loop load inside the leader (10 million by default),
// then every node is stopped and started again on its data. Measured: how fast the log
// filled, each node's RSS while it filled and after, and after the restart how long until
// each process is up, a leader is elected, a new message commits, and each node serves
// position 1 and the last position; RSS after the restart. Results go to
// bench/results/restart.json.
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadReport } from '../src/cli/node-process.ts';
import { type NodeProcess, ProcessCluster } from '../src/cli/process-cluster.ts';
import { flagsOrExit, positiveInteger } from './args.ts';

const { total, payloadBytes, concurrency } = flagsOrExit({
  usage: `npm run bench:restart -- [flags]
A 3-node cluster with a long log stops and restarts: fill speed, RSS, time until it serves.
  --messages N        messages written before the restart, at least (default 10000000)
  --payload-bytes N   bytes per message (default 256)
  --concurrency N     messages in flight in the leader's load while it fills (default 2000)
RESTART_LOGS=1 in the environment shows the nodes' logs.`,
  options: {
    messages: { type: 'string', default: '10000000' },
    'payload-bytes': { type: 'string', default: '256' },
    concurrency: { type: 'string', default: '2000' },
  },
  read: (values) => ({
    total: positiveInteger('messages', values.messages),
    payloadBytes: positiveInteger('payload-bytes', values['payload-bytes']),
    concurrency: positiveInteger('concurrency', values.concurrency),
  }),
});

function rssMiB(node: NodeProcess): number {
  const status = readFileSync(`/proc/${node.pid}/status`, 'utf8');
  const kib = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kib / 1024);
}

interface Status {
  readonly role: string;
  readonly commitIndex: number;
  readonly lastPosition: number;
}

async function leaderOf(cluster: ProcessCluster, deadlineMs: number): Promise<NodeProcess> {
  while (performance.now() < deadlineMs) {
    for (const node of cluster.nodes.values()) {
      const status = await node.request<Status>({ op: 'status' }).catch(() => null);
      if (status?.role === 'leader') return node;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('no leader');
}

/** Resolves once `node` reads `position`; how long after `startedMs`, in ms. */
async function servesAt(node: NodeProcess, position: number, startedMs: number): Promise<number> {
  for (;;) {
    const read = await node
      .request<{ position: number }[]>({ op: 'read', from: position, limit: 1 })
      .catch(() => []);
    if (read[0]?.position === position) return Math.round(performance.now() - startedMs);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const root = await mkdtemp(join(tmpdir(), 'abcast-restart-'));
const ids = ['n1', 'n2', 'n3'];
const cluster = await ProcessCluster.start({
  ids,
  root,
  clusterId: 'bench-restart',
  ...(process.env.RESTART_LOGS
    ? { stdio: 'inherit' as const, nodeOptions: { logLevel: 'info' } }
    : {}),
});
try {
  const leader = await leaderOf(cluster, performance.now() + 20_000);
  const rssDuringMiB: Record<string, number> = Object.fromEntries(ids.map((id) => [id, 0]));
  let written = 0;
  const fillStarted = performance.now();
  let lastReportMs = fillStarted;
  while (written < total) {
    const report = await leader.request<LoadReport>({
      op: 'load',
      concurrency,
      durationMs: 5_000,
      payloadBytes,
    });
    written += report.messageCount;
    for (const node of cluster.nodes.values()) {
      rssDuringMiB[node.id] = Math.max(rssDuringMiB[node.id] as number, rssMiB(node));
    }
    if (performance.now() - lastReportMs > 30_000) {
      lastReportMs = performance.now();
      const seconds = (lastReportMs - fillStarted) / 1000;
      console.error(`bench/restart: ${written} messages in ${seconds.toFixed(0)} s`);
    }
  }
  const fillSeconds = (performance.now() - fillStarted) / 1000;
  // Every node applied all of it before the stop.
  let lastPosition = 0;
  for (;;) {
    const statuses = await Promise.all(
      [...cluster.nodes.values()].map((node) => node.request<Status>({ op: 'status' })),
    );
    const delivered = statuses.map((status) => status.lastPosition);
    if (delivered.every((position) => position === delivered[0] && position >= written)) {
      lastPosition = delivered[0] as number;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const rssBeforeStopMiB = Object.fromEntries(
    [...cluster.nodes.values()].map((node) => [node.id, rssMiB(node)]),
  );
  await cluster.stop();
  const restartStarted = performance.now();
  // The same addresses: the members' addresses are in the log and the snapshot.
  await Promise.all(ids.map((id) => cluster.launch(id)));
  const upMs = Math.round(performance.now() - restartStarted);
  const newLeader = await leaderOf(cluster, performance.now() + 60_000);
  const leaderMs = Math.round(performance.now() - restartStarted);
  await newLeader.request({ op: 'broadcast', payload: 'after the restart' });
  const commitMs = Math.round(performance.now() - restartStarted);
  const serves = await Promise.all(
    [...cluster.nodes.values()].map(async (node) => ({
      id: node.id,
      firstMs: await servesAt(node, 1, restartStarted),
      lastMs: await servesAt(node, lastPosition, restartStarted),
    })),
  );
  const rssAfterRestartMiB = Object.fromEntries(
    [...cluster.nodes.values()].map((node) => [node.id, rssMiB(node)]),
  );
  // Which part of the RSS is V8's: its heap, and the buffers outside it.
  const memoryAfterRestartMiB = Object.fromEntries(
    await Promise.all(
      [...cluster.nodes.values()].map(async (node) => {
        const usage = await node.request<NodeJS.MemoryUsage>({ op: 'memory' });
        const live = await node.request<NodeJS.MemoryUsage>({ op: 'memory', collectFirst: true });
        const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
        return [
          node.id,
          {
            heapTotal: mib(usage.heapTotal),
            heapUsed: mib(usage.heapUsed),
            external: mib(usage.external),
            arrayBuffers: mib(usage.arrayBuffers),
            arrayBuffersLive: mib(live.arrayBuffers),
            rssAfterCollection: mib(live.rss),
          },
        ] as const;
      }),
    ),
  );
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    messages: lastPosition,
    payloadBytes,
    fill: {
      seconds: Math.round(fillSeconds),
      messagesPerSecond: Math.round(written / fillSeconds),
    },
    rssMiB: {
      duringFillMax: rssDuringMiB,
      beforeStop: rssBeforeStopMiB,
      afterRestart: rssAfterRestartMiB,
      v8AfterRestart: memoryAfterRestartMiB,
    },
    restart: { processesUpMs: upMs, leaderMs, firstCommitMs: commitMs, serves },
  };
  console.log(JSON.stringify(result, null, 2));
  await mkdir(new URL('results/', import.meta.url), { recursive: true });
  await writeFile(
    new URL('results/restart.json', import.meta.url),
    `${JSON.stringify(result, null, 2)}\n`,
  );
} finally {
  await cluster.stop();
  await rm(root, { recursive: true, force: true });
}
