// Storage micro-benchmark: closed-loop appenders against FileStorage with group commit, in
// a fresh directory under os.tmpdir() per run. Reports MB/s of entry data, appends/s,
// fsyncs/s and appends per fsync (the batching factor) and append latency percentiles, as
// medians over runs, and writes them to bench/results/<out>. A workload with several nodes
// runs that many FileStorage instances at once in this process, each on its own directory
// of the same disk, as the nodes of a local cluster share one disk.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry } from '../src/raft/types.ts';
import { DEFAULT_SEGMENT_BYTES_MAX, FileStorage } from '../src/storage/file-storage.ts';
import { crc32IsNative } from '../src/util/crc32.ts';
import { FlagError, flagsOrExit, positiveInteger, positiveNumber } from './args.ts';

interface Workload {
  readonly name: string;
  readonly entryBytes: number;
  readonly entriesPerAppend: number;
  /** Appends in flight at once per node: the concurrency group commit can coalesce. */
  readonly inflightCount: number;
  /** FileStorage instances appending at once, each on its own directory. */
  readonly nodeCount: number;
}

const WORKLOADS: readonly Workload[] = [
  {
    name: '64KiB-batches x16',
    entryBytes: 64 * 1024,
    entriesPerAppend: 1,
    inflightCount: 16,
    nodeCount: 1,
  },
  {
    name: '256B-entries x256',
    entryBytes: 256,
    entriesPerAppend: 1,
    inflightCount: 256,
    nodeCount: 1,
  },
  { name: '256B-entries x1', entryBytes: 256, entriesPerAppend: 1, inflightCount: 1, nodeCount: 1 },
  // A 3-node cluster on one disk: each node persists ~35 KB batches, one at a time.
  {
    name: '3-nodes 35KB-batches x1',
    entryBytes: 35 * 1000,
    entriesPerAppend: 1,
    inflightCount: 1,
    nodeCount: 3,
  },
];

interface RunResult {
  readonly seconds: number;
  readonly appendsPerSecond: number;
  readonly entriesPerSecond: number;
  readonly megabytesPerSecond: number;
  /** Summed over the nodes. */
  readonly fsyncsPerSecond: number;
  readonly appendsPerFsync: number;
  readonly appendLatencyMsP50: number;
  readonly appendLatencyMsP99: number;
  readonly segmentsCreated: number;
  /** Rotations that waited for their segment's zeros (absent before preallocation). */
  readonly segmentSpareMisses: number;
}

type Storage = Awaited<ReturnType<typeof FileStorage.open>>['storage'];

/** Appends to one storage from `inflightCount` closed loops until the deadline. */
async function appendUntil(
  storage: Storage,
  workload: Workload,
  deadlineMs: number,
  latenciesMs: number[],
): Promise<void> {
  // One payload shared by every entry: the benchmark measures storage, not allocation.
  const payload = randomBytes(workload.entryBytes);
  let nextIndex = 1;
  const appender = async (): Promise<void> => {
    while (performance.now() < deadlineMs) {
      const entries: Entry[] = [];
      for (let count = 0; count < workload.entriesPerAppend; count++) {
        entries.push({ index: nextIndex, term: 1, kind: 'normal', data: payload });
        nextIndex += 1;
      }
      const sentAt = performance.now();
      await storage.append({ hardState: null, snapshot: null, entries });
      latenciesMs.push(performance.now() - sentAt);
    }
  };
  await Promise.all(Array.from({ length: workload.inflightCount }, appender));
}

async function runOnce(
  workload: Workload,
  durationMs: number,
  segmentBytesMax: number,
): Promise<RunResult> {
  const root = await mkdtemp(join(tmpdir(), 'abcast-bench-storage-'));
  const storages: Storage[] = [];
  try {
    // Every node opens (and creates its first segment) before any starts appending.
    for (let position = 0; position < workload.nodeCount; position++) {
      const { storage } = await FileStorage.open({
        dataDir: join(root, `n${position + 1}`),
        clusterId: 'bench',
        nodeId: `n${position + 1}`,
        segmentBytesMax,
      });
      storages.push(storage);
    }
    const before = storages.map((storage) => storage.counters());
    const latenciesMs: number[] = [];
    const startedAt = performance.now();
    await Promise.all(
      storages.map((storage) =>
        appendUntil(storage, workload, startedAt + durationMs, latenciesMs),
      ),
    );
    const seconds = (performance.now() - startedAt) / 1000;
    let appendCount = 0;
    let entryCount = 0;
    let fsyncCount = 0;
    let segmentsCreated = 0;
    let segmentSpareMisses = 0;
    for (const [position, storage] of storages.entries()) {
      const after = storage.counters();
      appendCount += after.appendCount - before[position]!.appendCount;
      entryCount += after.entryCount - before[position]!.entryCount;
      fsyncCount += after.fsyncCount - before[position]!.fsyncCount;
      segmentsCreated += after.segmentCreatedCount - before[position]!.segmentCreatedCount;
      segmentSpareMisses +=
        (after.segmentSpareMissCount ?? 0) - (before[position]!.segmentSpareMissCount ?? 0);
    }
    latenciesMs.sort((left, right) => left - right);
    return {
      seconds,
      appendsPerSecond: appendCount / seconds,
      entriesPerSecond: entryCount / seconds,
      megabytesPerSecond: (entryCount * workload.entryBytes) / seconds / 1e6,
      fsyncsPerSecond: fsyncCount / seconds,
      appendsPerFsync: appendCount / Math.max(1, fsyncCount),
      appendLatencyMsP50: percentile(latenciesMs, 0.5),
      appendLatencyMsP99: percentile(latenciesMs, 0.99),
      segmentsCreated,
      segmentSpareMisses,
    };
  } finally {
    await Promise.all(storages.map((storage) => storage.close()));
    await rm(root, { recursive: true, force: true });
  }
}

function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((left, right) => left - right);
  return percentile(sorted, 0.5);
}

function medians(runs: readonly RunResult[]): Record<string, number> {
  const keys = Object.keys(runs[0]!) as (keyof RunResult)[];
  return Object.fromEntries(
    keys.map((key) => [key, Number(median(runs.map((run) => run[key])).toFixed(3))]),
  );
}

const usage = `node --import tsx bench/storage.ts [flags]
Closed-loop appenders against FileStorage with group commit, one fresh directory per run.
  --runs N            runs of each workload; the figures are their medians (default 5)
  --seconds S         length of each run, a positive number (default 1)
  --only TEXT         only the workloads whose name contains TEXT (default all):
                      ${WORKLOADS.map((workload) => workload.name).join(', ')}
  --segment-bytes N   WAL segment size in bytes (default ${DEFAULT_SEGMENT_BYTES_MAX})
  --out NAME          results file in bench/results/, a name ending in .json
                      (default storage.json)`;

async function main(): Promise<void> {
  const { runCount, durationMs, workloads, segmentBytesMax, out } = flagsOrExit({
    usage,
    options: {
      runs: { type: 'string', default: '5' },
      seconds: { type: 'string', default: '1' },
      only: { type: 'string', default: '' },
      'segment-bytes': { type: 'string', default: String(DEFAULT_SEGMENT_BYTES_MAX) },
      out: { type: 'string', default: 'storage.json' },
    },
    read: (values) => {
      const workloads = WORKLOADS.filter((workload) => workload.name.includes(values.only));
      if (workloads.length === 0) {
        throw new FlagError(`--only matches no workload: "${values.only}"`);
      }
      if (!/^[\w.-]+\.json$/.test(values.out)) {
        throw new FlagError(`--out takes a file name ending in .json, got "${values.out}"`);
      }
      return {
        runCount: positiveInteger('runs', values.runs),
        durationMs: positiveNumber('seconds', values.seconds) * 1000,
        workloads,
        segmentBytesMax: positiveInteger('segment-bytes', values['segment-bytes']),
        out: values.out,
      };
    },
  });
  const results = [];
  for (const workload of workloads) {
    const runs: RunResult[] = [];
    for (let run = 0; run < runCount; run++) {
      runs.push(await runOnce(workload, durationMs, segmentBytesMax));
    }
    const summary = medians(runs);
    console.log(workload.name, JSON.stringify(summary));
    results.push({ ...workload, median: summary, runs });
  }
  const report = {
    benchmark: 'storage',
    generatedAt: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpuCount: cpus().length,
    tmpdir: tmpdir(),
    crc32Native: crc32IsNative,
    runCount,
    secondsPerRun: durationMs / 1000,
    segmentBytesMax,
    workloads: results,
  };
  const resultsDir = new URL('./results/', import.meta.url);
  await mkdir(resultsDir, { recursive: true });
  await writeFile(new URL(out, resultsDir), `${JSON.stringify(report, null, 2)}\n`);
}

await main();
