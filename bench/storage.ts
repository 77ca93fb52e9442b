// Storage micro-benchmark: closed-loop appenders against FileStorage with group commit, in
// a fresh directory under os.tmpdir() per run. Reports MB/s of entry data, appends/s,
// fsyncs/s and appends per fsync (the batching factor), as medians over runs, and writes
// them to bench/results/storage.json.
//
//   node --import tsx bench/storage.ts [--runs 5] [--seconds 1]
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Entry } from '../src/raft/types.ts';
import { crc32IsNative } from '../src/storage/crc32.ts';
import { FileStorage } from '../src/storage/file-storage.ts';

interface Workload {
  readonly name: string;
  readonly entryBytes: number;
  readonly entriesPerAppend: number;
  /** Appends in flight at once: the concurrency group commit can coalesce. */
  readonly inflightCount: number;
}

const WORKLOADS: readonly Workload[] = [
  { name: '64KiB-batches x16', entryBytes: 64 * 1024, entriesPerAppend: 1, inflightCount: 16 },
  { name: '256B-entries x256', entryBytes: 256, entriesPerAppend: 1, inflightCount: 256 },
  { name: '256B-entries x1', entryBytes: 256, entriesPerAppend: 1, inflightCount: 1 },
];

interface RunResult {
  readonly seconds: number;
  readonly appendsPerSecond: number;
  readonly entriesPerSecond: number;
  readonly megabytesPerSecond: number;
  readonly fsyncsPerSecond: number;
  readonly appendsPerFsync: number;
  readonly appendLatencyMsP50: number;
  readonly appendLatencyMsP99: number;
}

async function runOnce(workload: Workload, durationMs: number): Promise<RunResult> {
  const root = await mkdtemp(join(tmpdir(), 'abcast-bench-storage-'));
  try {
    const { storage } = await FileStorage.open({
      dataDir: join(root, 'data'),
      clusterId: 'bench',
      nodeId: 'n1',
    });
    // One payload shared by every entry: the benchmark measures storage, not allocation.
    const payload = randomBytes(workload.entryBytes);
    let nextIndex = 1;
    const latenciesMs: number[] = [];
    const startedAt = performance.now();
    const deadline = startedAt + durationMs;
    const appender = async (): Promise<void> => {
      while (performance.now() < deadline) {
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
    const before = storage.counters();
    await Promise.all(Array.from({ length: workload.inflightCount }, appender));
    const seconds = (performance.now() - startedAt) / 1000;
    const after = storage.counters();
    await storage.close();
    const appendCount = after.appendCount - before.appendCount;
    const entryCount = after.entryCount - before.entryCount;
    const fsyncCount = after.fsyncCount - before.fsyncCount;
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
    };
  } finally {
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { runs: { type: 'string', default: '5' }, seconds: { type: 'string', default: '1' } },
  });
  const runCount = Number(values.runs);
  const durationMs = Number(values.seconds) * 1000;
  if (!Number.isSafeInteger(runCount) || runCount < 1 || !(durationMs > 0)) {
    throw new Error('--runs is a positive integer and --seconds a positive number');
  }
  const results = [];
  for (const workload of WORKLOADS) {
    const runs: RunResult[] = [];
    for (let run = 0; run < runCount; run++) runs.push(await runOnce(workload, durationMs));
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
    workloads: results,
  };
  const resultsDir = new URL('./results/', import.meta.url);
  await mkdir(resultsDir, { recursive: true });
  await writeFile(new URL('storage.json', resultsDir), `${JSON.stringify(report, null, 2)}\n`);
}

await main();
