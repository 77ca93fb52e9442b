// Transport micro-benchmark: two TcpTransports on loopback. Measures one-way throughput of
// Append frames carrying one 64 KiB entry each (MB/s of entry data), one-way throughput of
// small Heartbeat frames (frames/s), and closed-loop round trips of small frames (µs per
// round trip, p50/p99). Medians over runs are written to bench/results/transport.json.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import type { NodeId } from '../src/raft/types.ts';
import { TcpTransport } from '../src/transport/tcp.ts';
import { type Frame, silentLogger, type TransportStats } from '../src/transport/types.ts';
import { flagsOrExit, positiveInteger } from './args.ts';

const appendFrameCount = 2_000;
const entryBytes = 64 * 1024;
const smallFrameCount = 200_000;
const roundTripCount = 5_000;
const peerBufferBytesMax = 16 * 1024 * 1024;

interface Pair {
  readonly a: TcpTransport;
  readonly b: TcpTransport;
  close(): Promise<void>;
}

async function startPair(): Promise<Pair> {
  const make = (nodeId: NodeId) =>
    new TcpTransport({
      nodeId,
      clusterId: 'bench',
      listenAddress: '127.0.0.1:0',
      logger: silentLogger,
      peerBufferBytesMax,
    });
  const a = make('a');
  const b = make('b');
  await a.start();
  await b.start();
  const peers = new Map([
    ['a', a.address()],
    ['b', b.address()],
  ]);
  a.setPeers(peers);
  b.setPeers(peers);
  return {
    a,
    b,
    async close() {
      await a.close();
      await b.close();
    },
  };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function bufferedBytes(stats: TransportStats): number {
  return stats.peers.b?.bufferedBytes ?? 0;
}

/**
 * Sends `frameCount` frames from a to b, keeping at most half the peer buffer queued (as a
 * Raft leader bounds its in-flight appends), and resolves with the seconds until b has them.
 */
async function oneWay(
  pair: Pair,
  frameCount: number,
  makeFrame: (position: number) => Frame,
  frameBytes: number,
): Promise<number> {
  let receivedCount = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  pair.b.onFrame(() => {
    receivedCount++;
    if (receivedCount === frameCount) done();
  });
  const startedAt = performance.now();
  let sentCount = 0;
  while (sentCount < frameCount) {
    const batch: Frame[] = [];
    let queuedBytes = bufferedBytes(pair.a.stats());
    while (sentCount < frameCount && queuedBytes + frameBytes <= peerBufferBytesMax / 2) {
      batch.push(makeFrame(sentCount++));
      queuedBytes += frameBytes;
    }
    pair.a.send(batch);
    await nextTurn();
  }
  await finished;
  const seconds = (performance.now() - startedAt) / 1000;
  const drops = pair.a.stats().droppedFrameCount;
  if (drops > 0) throw new Error(`the benchmark dropped ${drops} frames`);
  return seconds;
}

async function appendThroughput(): Promise<Record<string, number>> {
  const pair = await startPair();
  const data = new Uint8Array(randomBytes(entryBytes));
  const seconds = await oneWay(
    pair,
    appendFrameCount,
    (position) => ({
      type: 'Append',
      from: 'a',
      to: 'b',
      term: 1,
      prevLogIndex: position,
      prevLogTerm: 1,
      commit: position,
      entries: [{ index: position + 1, term: 1, kind: 'normal', data }],
    }),
    entryBytes + 32,
  );
  await pair.close();
  return {
    appendMegabytesPerSecond: (appendFrameCount * entryBytes) / seconds / 1e6,
    appendFramesPerSecond: appendFrameCount / seconds,
  };
}

async function smallFrameThroughput(): Promise<Record<string, number>> {
  const pair = await startPair();
  const seconds = await oneWay(
    pair,
    smallFrameCount,
    (position) => ({
      type: 'Heartbeat',
      from: 'a',
      to: 'b',
      term: 1,
      commit: position,
      readRound: 0,
    }),
    16,
  );
  await pair.close();
  return { smallFramesPerSecond: smallFrameCount / seconds };
}

function percentile(sorted: readonly number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] ?? Number.NaN;
}

async function roundTrips(): Promise<Record<string, number>> {
  const pair = await startPair();
  pair.b.onFrame((frame) => {
    if (frame.type === 'Heartbeat') {
      pair.b.send([
        { type: 'HeartbeatResponse', from: 'b', to: 'a', term: 1, readRound: frame.readRound },
      ]);
    }
  });
  const latenciesUs: number[] = [];
  let sentAt = 0;
  await new Promise<void>((resolve) => {
    const ping = (round: number): void => {
      sentAt = performance.now();
      pair.a.send([
        { type: 'Heartbeat', from: 'a', to: 'b', term: 1, commit: 0, readRound: round },
      ]);
    };
    pair.a.onFrame((frame) => {
      if (frame.type !== 'HeartbeatResponse') return;
      latenciesUs.push((performance.now() - sentAt) * 1000);
      if (frame.readRound + 1 >= roundTripCount) resolve();
      else ping(frame.readRound + 1);
    });
    ping(0);
  });
  await pair.close();
  // The first round trips include connecting both links; leave them out.
  const sorted = latenciesUs.slice(10).sort((x, y) => x - y);
  return {
    roundTripUsP50: percentile(sorted, 0.5),
    roundTripUsP99: percentile(sorted, 0.99),
    roundTripsPerSecond: 1e6 / (sorted.reduce((sum, value) => sum + value, 0) / sorted.length),
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const { runCount } = flagsOrExit({
    usage: `node --import tsx bench/transport.ts [flags]
Two TcpTransports on loopback: MB/s of 64 KiB appends, small frames/s, round-trip times.
  --runs N   runs of all three measures; the figures are their medians (default 5)`,
    options: { runs: { type: 'string', default: '5' } },
    read: (values) => ({ runCount: positiveInteger('runs', values.runs) }),
  });
  const runs: Record<string, number>[] = [];
  for (let run = 0; run < runCount; run++) {
    const result = {
      ...(await appendThroughput()),
      ...(await smallFrameThroughput()),
      ...(await roundTrips()),
    };
    runs.push(result);
    console.log(
      `run ${run + 1}/${runCount}`,
      JSON.stringify(result, (_, value) =>
        typeof value === 'number' ? Number(value.toFixed(1)) : value,
      ),
    );
  }
  const keys = Object.keys(runs[0] ?? {});
  const medians = Object.fromEntries(
    keys.map((key) => [key, Number(median(runs.map((run) => run[key] ?? Number.NaN)).toFixed(1))]),
  );
  const report = {
    benchmark: 'transport',
    date: new Date().toISOString(),
    node: process.version,
    cpuCount: cpus().length,
    setup: {
      appendFrameCount,
      entryBytes,
      smallFrameCount,
      roundTripCount,
      peerBufferBytesMax,
      loopback: '127.0.0.1',
    },
    median: medians,
    runs,
  };
  console.log('median', JSON.stringify(medians));
  const resultsDir = new URL('./results/', import.meta.url);
  await mkdir(resultsDir, { recursive: true });
  await writeFile(new URL('transport.json', resultsDir), `${JSON.stringify(report, null, 2)}\n`);
}

await main();
