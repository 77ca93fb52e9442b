/**
 * The POST row's load from wrk (Debian's `wrk`): one POST /v1/broadcast per message, one
 * request at a time on each of N kept-alive connections, as any HTTP client would send them.
 *
 * Why not the race's own load generator: it runs in Node on the same two cores as the three
 * nodes it measures, and a POST costs it 70–80 µs of CPU through undici where wrk, written in
 * C, spends 15–19 µs (one cluster, the two alternated). At 10,000 requests a second that is
 * more than half a core the nodes did not get, and the row measured the client as much as
 * the server. The SDK rows keep the shared generator: their client is part of the product.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadResult } from './load.ts';
import { cpuSeconds, reapedChildCpuSeconds } from './processes.ts';

export interface WrkOptions {
  /** `http://host:port` of the node. */
  readonly origin: string;
  readonly connections: number;
  /** The request body, the same for every request. */
  readonly body: string;
  readonly seconds: number;
  /** Seconds of the same load before the counted ones (a run of its own, not counted). */
  readonly warmupSeconds: number;
  readonly serverPids: readonly number[];
  /** The command; default `wrk` on the PATH. */
  readonly command?: string;
}

/** What the script's `done` prints: wrk's own counts, latencies in microseconds. */
interface WrkSummary {
  readonly durationMicros: number;
  readonly requests: number;
  readonly connectErrors: number;
  readonly readErrors: number;
  readonly writeErrors: number;
  readonly statusErrors: number;
  readonly timeouts: number;
  readonly p50Micros: number;
  readonly p99Micros: number;
  readonly maxMicros: number;
}

const summaryMarker = 'abcast-wrk-summary ';

/**
 * wrk's Lua: the request, and its summary as one JSON line. A non-2xx answer is counted by
 * wrk as a status error and still completes its request, so `requests` less the status
 * errors is what the node acknowledged.
 */
function script(body: string): string {
  return `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = ${luaString(body)}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('${summaryMarker}{"durationMicros":%d,"requests":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"statusErrors":%d,"timeouts":%d,"p50Micros":%d,"p99Micros":%d,"maxMicros":%d}\\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`;
}

/** A Lua long string that no body can end early. */
function luaString(text: string): string {
  let level = '';
  while (text.includes(`]${level}]`)) level += '=';
  return `[${level}[${text}]${level}]`;
}

async function runWrk(
  command: string,
  scriptPath: string,
  options: WrkOptions,
  seconds: number,
): Promise<{ summary: WrkSummary; output: string }> {
  // A request unanswered for this long is a timeout to wrk, as to the race's own generator.
  const args = [
    ...['--threads', '1', '--connections', String(options.connections)],
    ...['--duration', `${seconds}s`, '--timeout', '30s', '--script', scriptPath],
    `${options.origin}/v1/broadcast`,
  ];
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const line = output.split('\n').find((candidate) => candidate.startsWith(summaryMarker));
  if (code !== 0 || line === undefined) {
    throw new Error(`wrk exited with ${code} and no summary: ${output.trim().slice(0, 400)}`);
  }
  return { summary: JSON.parse(line.slice(summaryMarker.length)) as WrkSummary, output };
}

/** Whether `command` runs here. */
export async function wrkAvailable(command = 'wrk'): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(command, ['--version'], { stdio: 'ignore' });
    child.once('error', () => resolve(false));
    // wrk answers --version with its usage and exit code 1.
    child.once('close', (code) => resolve(code === 0 || code === 1));
  });
}

/** Runs the warm-up, then the counted seconds, and reads them as the race reads its own loads. */
export async function runWrkLoad(options: WrkOptions): Promise<LoadResult> {
  const command = options.command ?? 'wrk';
  const directory = await mkdtemp(join(tmpdir(), 'abcast-wrk-'));
  try {
    const scriptPath = join(directory, 'post.lua');
    await writeFile(scriptPath, script(options.body));
    if (options.warmupSeconds > 0) {
      await runWrk(command, scriptPath, options, options.warmupSeconds);
    }
    const loadAverage1m = loadavg()[0] ?? 0;
    const serverCpuBefore = cpuSeconds(options.serverPids);
    const clientCpuBefore = reapedChildCpuSeconds();
    const { summary } = await runWrk(command, scriptPath, options, options.seconds);
    const serverCpuSeconds = cpuSeconds(options.serverPids) - serverCpuBefore;
    const clientCpuSeconds = reapedChildCpuSeconds() - clientCpuBefore;
    const seconds = summary.durationMicros / 1e6;
    const failed =
      summary.connectErrors +
      summary.readErrors +
      summary.writeErrors +
      summary.statusErrors +
      summary.timeouts;
    const acknowledged = Math.max(0, summary.requests - summary.statusErrors);
    const microsToMs = (micros: number) => Number((micros / 1000).toFixed(3));
    return {
      inFlight: options.connections,
      seconds: options.seconds,
      acknowledged,
      messagesPerSecond: Math.round(acknowledged / seconds),
      p50Ms: microsToMs(summary.p50Micros),
      p99Ms: microsToMs(summary.p99Micros),
      maxMs: microsToMs(summary.maxMicros),
      errors: failed,
      firstError: failed === 0 ? null : describeErrors(summary),
      clientCpuPercent: Math.round((clientCpuSeconds / seconds) * 100),
      serverCpuPercent: Math.round((serverCpuSeconds / seconds) * 100),
      loadAverage1m: Number(loadAverage1m.toFixed(2)),
    };
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

function describeErrors(summary: WrkSummary): string {
  const parts = [
    ['non-2xx answers', summary.statusErrors],
    ['connect errors', summary.connectErrors],
    ['read errors', summary.readErrors],
    ['write errors', summary.writeErrors],
    ['timeouts', summary.timeouts],
  ] as const;
  return parts
    .filter(([, count]) => count > 0)
    .map(([what, count]) => `${count} ${what}`)
    .join(', ');
}
