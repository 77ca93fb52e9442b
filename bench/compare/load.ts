/**
 * The one load generator every system of the race is driven by: a closed loop of `inFlight`
 * workers in this process, each sending a message and waiting for its acknowledgement
 * before sending the next, so exactly `inFlight` messages are unacknowledged at any time.
 * The first `warmupSeconds` are not counted (connections, JIT, leader caches); then for
 * `seconds` every acknowledgement counts, its latency (send to acknowledgement) goes into
 * an HDR histogram, and every failure counts as an error. A worker that fails pauses
 * briefly, so an unreachable server is not hammered in a tight loop.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import { cpuSeconds, sleep } from './processes.ts';

/** Sends one message; resolves once the system acknowledged it, rejects if it refused. */
export type Send = () => Promise<void>;

export interface LoadOptions {
  readonly send: Send;
  readonly inFlight: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** Server processes whose CPU time is measured over the counted seconds. */
  readonly serverPids: readonly number[];
}

export interface LoadResult {
  readonly inFlight: number;
  readonly seconds: number;
  readonly acknowledged: number;
  readonly messagesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly errors: number;
  readonly firstError: string | null;
  /** CPU used over the counted seconds, in % of one core: this client, all server processes. */
  readonly clientCpuPercent: number;
  readonly serverCpuPercent: number;
  /** The machine's 1-minute load average when the counted seconds began. */
  readonly loadAverage1m: number;
}

const errorPauseMs = 20;
/** How long the workers may take to finish their last message after the counted seconds. */
const drainTimeoutMs = 30_000;

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const histogram = hdr.build({
    lowestDiscernibleValue: 1, // microseconds
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
  const startedMs = performance.now();
  const countFromMs = startedMs + options.warmupSeconds * 1000;
  const endMs = countFromMs + options.seconds * 1000;
  let acknowledged = 0;
  let errors = 0;
  let firstError: string | null = null;
  const worker = async () => {
    while (performance.now() < endMs) {
      const sentMs = performance.now();
      try {
        await options.send();
        const ackedMs = performance.now();
        if (ackedMs >= countFromMs && ackedMs <= endMs) {
          acknowledged++;
          histogram.recordValue(Math.max(1, Math.round((ackedMs - sentMs) * 1000)));
        }
      } catch (error) {
        if (performance.now() >= countFromMs) {
          errors++;
          firstError ??= error instanceof Error ? error.message : String(error);
        }
        await sleep(errorPauseMs);
      }
    }
  };
  const workers = Array.from({ length: options.inFlight }, worker);
  await sleep(Math.max(0, countFromMs - performance.now()));
  const load = { clientCpu: process.cpuUsage(), serverCpuSeconds: cpuSeconds(options.serverPids) };
  const loadAverage1m = loadavg()[0] ?? 0;
  await sleep(Math.max(0, endMs - performance.now()));
  const clientCpu = process.cpuUsage(load.clientCpu);
  const serverCpuSeconds = cpuSeconds(options.serverPids) - load.serverCpuSeconds;
  const drained = await Promise.race([
    Promise.all(workers).then(() => true),
    sleep(drainTimeoutMs).then(() => false),
  ]);
  if (!drained) firstError ??= `messages still unacknowledged ${drainTimeoutMs} ms after the end`;
  const microsToMs = (micros: number) => Number((micros / 1000).toFixed(3));
  const result: LoadResult = {
    inFlight: options.inFlight,
    seconds: options.seconds,
    acknowledged,
    messagesPerSecond: Math.round(acknowledged / options.seconds),
    p50Ms: acknowledged === 0 ? 0 : microsToMs(histogram.getValueAtPercentile(50)),
    p99Ms: acknowledged === 0 ? 0 : microsToMs(histogram.getValueAtPercentile(99)),
    maxMs: microsToMs(histogram.maxValue),
    errors,
    firstError,
    clientCpuPercent: Math.round(
      ((clientCpu.user + clientCpu.system) / 1e6 / options.seconds) * 100,
    ),
    serverCpuPercent: Math.round((serverCpuSeconds / options.seconds) * 100),
    loadAverage1m: Number(loadAverage1m.toFixed(2)),
  };
  histogram.destroy();
  return result;
}
