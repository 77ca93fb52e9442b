/**
 * `abcast bench [--protocol http|binary] [--node URL] [--binary-node URL] [--concurrency 64]
 * [--seconds 10] [--warmup-seconds 0] [--payload-bytes 256] [--json]`: a closed-loop load (each message waits for
 * its commit), with a progress bar on stderr while it runs and a summary table at the end,
 * or one JSON line with `--json`. Over HTTP it is one POST /v1/broadcast per message; over
 * the binary protocol it is the SDK, as an application would send (`--sdk` sends HTTP
 * through the SDK too, to compare the protocols alone). It measures what any
 * HTTP client sees; the library and the cluster benchmark (`npm run bench`) measure the
 * replication pipeline itself.
 */
import { spawn } from 'node:child_process';
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import type { Command } from 'commander';
import { connect } from '../../client/index.ts';
import { streamRecordPayloadBytesMax } from '../../transport/stream-records.ts';
import { CliError, positiveIntegerFlag } from './errors.ts';
import { callJson, defaultNodeUrl, nodeUrl } from './http-client.ts';

interface BenchFlags {
  node: string;
  concurrency: string;
  seconds: string;
  warmupSeconds: string;
  payloadBytes: string;
  protocol: string;
  binaryNode: string;
  json?: boolean;
  sdk?: boolean;
}

interface BenchTotals {
  /**
   * Acknowledged messages' latencies in microseconds: an HDR histogram (node:perf_hooks)
   * rather than an array of every sample, which at 100,000s of messages a second grew
   * (and was copied and collected) as fast as the load it measured.
   */
  readonly latenciesMicros: RecordableHistogram;
  errorCount: number;
}

function percentileMs(totals: BenchTotals, percent: number): number {
  return totals.latenciesMicros.count === 0 ? 0 : totals.latenciesMicros.percentile(percent) / 1000;
}

function progressBar(fraction: number, widthChars = 30): string {
  const filled = Math.round(Math.min(1, fraction) * widthChars);
  return `[${'#'.repeat(filled)}${'.'.repeat(widthChars - filled)}]`;
}

/**
 * One message sent: fulfilled when it was acknowledged. The SDK's own promise, with nothing
 * made around it per message: the load generator runs in the process it measures, and at
 * 10,000 in flight its own promises, closures and samples cost as much as the client they
 * load.
 */
type Send = () => Promise<unknown>;

/**
 * Keeps `concurrency` messages in flight until the deadline, each slot sending its next
 * message once its last one settled. A slot is two functions made once and handed to
 * `then` for every message it sends: an async function per slot awaiting each message
 * costs a resumption and the await's own reaction objects per message (about twice what a
 * bare promise and `then` cost here).
 */
function load(send: Send, concurrency: number, deadline: number, totals: BenchTotals) {
  // The clock as read once for the answers settled together (a run's, in one microtask
  // checkpoint): forgotten by a microtask queued behind their reactions. A reading per
  // message was a twentieth of the client's time at 10,000 in flight. A latency read so is
  // short by at most the checkpoint's length, and the next message's, started then, is
  // long by as much.
  let settledNowMs = -1;
  const forgetNow = () => {
    settledNowMs = -1;
  };
  const nowOfSettled = () => {
    if (settledNowMs < 0) {
      settledNowMs = performance.now();
      queueMicrotask(forgetNow);
    }
    return settledNowMs;
  };
  return new Promise<void>((finish) => {
    let slotsRunning = concurrency;
    const slot = () => {
      let startedMs = 0;
      // One clock reading per message: the end of one is the start of the next.
      const next = (nowMs: number) => {
        if (nowMs >= deadline) {
          slotsRunning -= 1;
          if (slotsRunning === 0) finish();
          return;
        }
        startedMs = nowMs;
        send().then(acknowledged, failed);
      };
      const acknowledged = () => {
        const nowMs = nowOfSettled();
        totals.latenciesMicros.record(Math.max(1, Math.round((nowMs - startedMs) * 1000)));
        next(nowMs);
      };
      const failed = () => {
        totals.errorCount++;
        next(nowOfSettled());
      };
      next(performance.now());
    };
    for (let at = 0; at < concurrency; at++) slot();
  });
}

/**
 * The young generation's semi-space the load runs with, in MiB (V8's default is 16). With
 * 10,000 messages in flight each lives for tens of milliseconds, about as long as V8 takes
 * to fill the default one: most of them were copied by a scavenge, often twice, landing in
 * the old generation for a full collection to clear. Four times the room lets most of them
 * die young; the load generator spent about a seventh less CPU per message so.
 */
const semiSpaceMb = 64;
const rerunMark = 'ABCAST_BENCH_YOUNG_GENERATION';

/**
 * Runs this same command again in a process whose young generation is `semiSpaceMb`
 * (V8 sizes it only when a process starts), resolving with its exit code; null when this
 * process is that one, or its young generation was chosen already (a flag of its own).
 */
function rerunWithYoungGeneration(): Promise<number> | null {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (process.env[rerunMark] === '1' || flags.some((flag) => flag.includes('semi-space'))) {
    return null;
  }
  const child = spawn(
    process.execPath,
    [`--max-semi-space-size=${semiSpaceMb}`, ...process.execArgv, ...process.argv.slice(1)],
    { stdio: 'inherit', env: { ...process.env, [rerunMark]: '1' } },
  );
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
    child.once('error', (error) => {
      process.stderr.write(`abcast bench: could not start the load: ${error.message}\n`);
      resolve(1);
    });
  });
}

type Protocol = 'http' | 'binary';

/** How long the SDK's load keeps asking a node that does not answer before a call fails. */
const reachBoundMs = 10_000;

/** The largest --payload-bytes: the largest payload a node can take (--payload-bytes-max). */
const payloadBytesMax = streamRecordPayloadBytesMax;

/**
 * The load's way in. `http`: one POST /v1/broadcast per message on kept-alive connections,
 * what any HTTP client sees. `binary`: the SDK over the binary client protocol, which
 * packs the messages in flight into batch requests pipelined on one connection.
 */
async function sender(
  protocol: Protocol,
  target: string,
  body: string,
  options: { readonly concurrency: number; readonly sdk: boolean },
): Promise<{ send: Send; close: () => void }> {
  const { concurrency } = options;
  if (protocol === 'http' && !options.sdk) {
    // Loaded here, not with the CLI: every other command would pay for undici's import.
    const { openPostLoad } = await import('./post-load.ts');
    const load = openPostLoad({
      origin: new URL(target).origin,
      connectionCount: concurrency,
      body,
    });
    return { send: load.send, close: () => void load.close() };
  }
  // `--protocol http --sdk` measures HTTP: the SDK would otherwise move to the binary port.
  const client = connect({
    endpoints: [target],
    inFlightMax: Math.max(256, concurrency),
    protocol: protocol === 'http' ? 'http' : 'auto',
    unavailableAfterMs: reachBoundMs,
  });
  // As the HTTP load asks for the status first: a node that does not answer is one line
  // now, not a run of messages that each wait out the SDK's bound before failing.
  try {
    await client.barrier();
  } catch (error) {
    client.close();
    throw new CliError(`cannot reach the node at ${target}: ${(error as Error).message}`);
  }
  const payload = (JSON.parse(body) as { payload: unknown }).payload;
  return { send: () => client.broadcast(payload), close: () => client.close() };
}

function protocolOf(text: string): Protocol {
  if (text !== 'http' && text !== 'binary') {
    throw new CliError(`--protocol takes http or binary, got "${text}"`);
  }
  return text;
}

async function bench(flags: BenchFlags): Promise<void> {
  const protocol = protocolOf(flags.protocol);
  const target = protocol === 'http' ? nodeUrl(flags.node) : binaryUrl(flags.binaryNode);
  const concurrency = positiveIntegerFlag('concurrency', flags.concurrency);
  const seconds = positiveIntegerFlag('seconds', flags.seconds);
  const warmupSeconds = positiveIntegerFlag('warmup-seconds', flags.warmupSeconds, 0);
  const json = flags.json === true;
  const payloadBytes = positiveIntegerFlag('payload-bytes', flags.payloadBytes);
  if (payloadBytes > payloadBytesMax) {
    throw new CliError(
      `--payload-bytes is at most ${payloadBytesMax}, the largest payload a node takes`,
    );
  }
  // The payload is a JSON string: its quotes take two of the bytes.
  const payload = 'x'.repeat(Math.max(0, payloadBytes - 2));
  const rerun = rerunWithYoungGeneration();
  if (rerun !== null) {
    process.exitCode = await rerun;
    return;
  }
  if (protocol === 'http') await callJson(target, '/v1/status');
  const totals: BenchTotals = { latenciesMicros: createHistogram(), errorCount: 0 };
  const interactive = process.stderr.isTTY === true;
  const way = await sender(protocol, target, JSON.stringify({ payload }), {
    concurrency,
    sdk: flags.sdk === true,
  });
  let started = performance.now();
  let cpuStarted = process.cpuUsage();
  let ticker: NodeJS.Timeout | undefined;
  try {
    if (warmupSeconds > 0) {
      // Uncounted, on the same connections: a fresh cluster (and this client) spends its
      // first seconds compiling its hot code, and those are not what the counted load measures.
      if (!json) process.stderr.write(`warming up for ${warmupSeconds} s\n`);
      const warmup: BenchTotals = { latenciesMicros: createHistogram(), errorCount: 0 };
      await load(way.send, concurrency, performance.now() + warmupSeconds * 1000, warmup);
    }
    started = performance.now();
    cpuStarted = process.cpuUsage();
    ticker = setInterval(() => {
      if (json) return;
      const elapsed = (performance.now() - started) / 1000;
      const line = `${progressBar(elapsed / seconds)} ${elapsed.toFixed(0)}/${seconds} s  ${totals.latenciesMicros.count} acknowledged`;
      process.stderr.write(interactive ? `\r${line}` : `${line}\n`);
    }, 1000);
    await load(way.send, concurrency, started + seconds * 1000, totals);
  } finally {
    way.close();
    clearInterval(ticker);
    if (interactive && !json) process.stderr.write('\n');
  }
  const elapsedSeconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStarted);
  const acknowledged = totals.latenciesMicros.count;
  const summary = {
    messagesPerSecond: Math.round(acknowledged / elapsedSeconds),
    p50Ms: Number(percentileMs(totals, 50).toFixed(3)),
    p99Ms: Number(percentileMs(totals, 99).toFixed(3)),
    errors: totals.errorCount,
    protocol,
    concurrency,
    warmupSeconds,
    client: protocol === 'binary' || flags.sdk === true ? 'sdk' : 'post',
    // This process's CPU while the load ran (start-up left out), per acknowledged message.
    clientCpuMicrosPerMessage: Number(
      ((cpu.user + cpu.system) / Math.max(1, acknowledged)).toFixed(2),
    ),
  };
  if (json) {
    console.log(JSON.stringify(summary));
    return;
  }
  const rows: [string, string][] = [
    ['node', target],
    ['protocol', protocol],
    ['in flight', String(concurrency)],
    ['acknowledged', String(acknowledged)],
    ['errors', String(totals.errorCount)],
    ['messages/s', String(summary.messagesPerSecond)],
    ['latency p50', `${percentileMs(totals, 50).toFixed(2)} ms`],
    ['latency p99', `${percentileMs(totals, 99).toFixed(2)} ms`],
    [
      'latency max',
      `${(acknowledged === 0 ? 0 : totals.latenciesMicros.max / 1000).toFixed(2)} ms`,
    ],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`);
}

const defaultBinaryUrl = 'abcast://127.0.0.1:9001';

function binaryUrl(text: string): string {
  if (!/^abcasts?:\/\/[^/]+$/.test(text.replace(/\/+$/, ''))) {
    throw new CliError(`--binary-node takes a URL like ${defaultBinaryUrl}, got "${text}"`);
  }
  return text;
}

export function benchCommand(program: Command): void {
  program
    .command('bench')
    .description('load a node and print throughput and latency')
    .option('--node <url>', "a member's HTTP API (--protocol http)", defaultNodeUrl)
    .option(
      '--binary-node <url>',
      "a member's binary client port (--protocol binary)",
      defaultBinaryUrl,
    )
    .option(
      '--protocol <name>',
      'http: a POST per message; binary: the SDK over the binary protocol',
      'http',
    )
    .option('--concurrency <n>', 'messages in flight', '64')
    .option('--seconds <n>', 'how long to run', '10')
    .option(
      '--warmup-seconds <n>',
      'uncounted load first, on the same connections (a fresh cluster compiles its hot code then)',
      '0',
    )
    .option('--payload-bytes <n>', 'bytes per message, as JSON text', '256')
    .option('--sdk', 'with --protocol http: send through the SDK (batches), as binary does')
    .option('--json', 'print one JSON line (no progress bar)')
    .action((flags: BenchFlags) => bench(flags));
}
