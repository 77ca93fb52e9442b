/**
 * `abcast bench [--node URL] [--concurrency 64] [--seconds 10] [--payload-bytes 256]`: a
 * closed-loop load over HTTP (POST /v1/broadcast, each request waits for its commit), with a
 * progress bar on stderr while it runs and a summary table at the end. It measures what any
 * HTTP client sees; the library and the cluster benchmark (`npm run bench`) measure the
 * replication pipeline itself.
 */
import { Agent, request as httpRequest } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Command } from 'commander';
import { positiveIntegerFlag } from './errors.ts';
import { callJson, defaultNodeUrl, nodeUrl } from './http-client.ts';

interface BenchFlags {
  node: string;
  concurrency: string;
  seconds: string;
  payloadBytes: string;
}

interface BenchTotals {
  readonly latenciesMs: number[];
  errorCount: number;
}

function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] as number;
}

function progressBar(fraction: number, widthChars = 30): string {
  const filled = Math.round(Math.min(1, fraction) * widthChars);
  return `[${'#'.repeat(filled)}${'.'.repeat(widthChars - filled)}]`;
}

/**
 * One POST on a kept-alive connection. node:http with a pooled agent rather than fetch: with
 * fetch the load generator itself was the bottleneck (about 1.3k/s against 5.3k/s here).
 */
function postBroadcast(base: URL, agent: Agent, body: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = httpRequest(
      {
        host: base.hostname,
        port: base.port,
        path: '/v1/broadcast',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: 30_000,
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode === 200));
      },
    );
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
    request.end(body);
  });
}

async function worker(
  base: URL,
  agent: Agent,
  body: string,
  deadline: number,
  totals: BenchTotals,
): Promise<void> {
  while (performance.now() < deadline) {
    const started = performance.now();
    if (await postBroadcast(base, agent, body))
      totals.latenciesMs.push(performance.now() - started);
    else totals.errorCount++;
  }
}

async function bench(flags: BenchFlags): Promise<void> {
  const base = nodeUrl(flags.node);
  const concurrency = positiveIntegerFlag('concurrency', flags.concurrency);
  const seconds = positiveIntegerFlag('seconds', flags.seconds);
  // The payload is a JSON string: its quotes take two of the bytes.
  const payload = 'x'.repeat(
    Math.max(0, positiveIntegerFlag('payload-bytes', flags.payloadBytes) - 2),
  );
  await callJson(base, '/v1/status');
  const totals: BenchTotals = { latenciesMs: [], errorCount: 0 };
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const interactive = process.stderr.isTTY === true;
  const ticker = setInterval(() => {
    const elapsed = (performance.now() - started) / 1000;
    const line = `${progressBar(elapsed / seconds)} ${elapsed.toFixed(0)}/${seconds} s  ${totals.latenciesMs.length} acknowledged`;
    process.stderr.write(interactive ? `\r${line}` : `${line}\n`);
  }, 1000);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const body = JSON.stringify({ payload });
  const target = new URL(base);
  try {
    await Promise.all(
      Array.from({ length: concurrency }, () => worker(target, agent, body, deadline, totals)),
    );
  } finally {
    agent.destroy();
    clearInterval(ticker);
    if (interactive) process.stderr.write('\n');
  }
  const elapsedSeconds = (performance.now() - started) / 1000;
  const sorted = [...totals.latenciesMs].sort((a, b) => a - b);
  const rows: [string, string][] = [
    ['node', base],
    ['in flight', String(concurrency)],
    ['acknowledged', String(sorted.length)],
    ['errors', String(totals.errorCount)],
    ['messages/s', (sorted.length / elapsedSeconds).toFixed(0)],
    ['latency p50', `${percentile(sorted, 0.5).toFixed(2)} ms`],
    ['latency p99', `${percentile(sorted, 0.99).toFixed(2)} ms`],
    ['latency max', `${(sorted[sorted.length - 1] ?? 0).toFixed(2)} ms`],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`);
}

export function benchCommand(program: Command): void {
  program
    .command('bench')
    .description('load a node over HTTP and print throughput and latency')
    .option('--node <url>', "a member's HTTP API", defaultNodeUrl)
    .option('--concurrency <n>', 'requests in flight', '64')
    .option('--seconds <n>', 'how long to run', '10')
    .option('--payload-bytes <n>', 'bytes per message, as JSON text', '256')
    .action((flags: BenchFlags) => bench(flags));
}
