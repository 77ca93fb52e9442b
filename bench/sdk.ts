// SDK micro-benchmark: the client's own cost per broadcast, without a cluster or a network.
// One client sends through an in-process exchange that answers every batch (and single
// POST) after --answer-delay-ms, as a cluster that commits in that time would; each window
// (messages kept in flight by as many closed-loop workers) runs --seconds. Reports the
// process's CPU microseconds per message and the share of the garbage collector's time,
// the figures that matter when one client keeps 10,000 messages in flight (each one is
// held for hundreds of milliseconds, long enough to leave V8's young generation). Medians
// over runs are written to bench/results/sdk.json. Node flags of the process apply: run it
// with `node --max-semi-space-size=64 --import tsx bench/sdk.ts` to compare young
// generation sizes. With --run-frame the exchange also takes runs as the binary protocol's
// broadcastRun frame, encoded as the binary exchange encodes them, and answers each with a
// runAnswer decoded as the binary exchange decodes it.
import { mkdir, writeFile } from 'node:fs/promises';
import { PerformanceObserver } from 'node:perf_hooks';
import type {
  HttpExchange,
  HttpExchangeRequest,
  RunExchangeAnswer,
  RunExchangeRequest,
} from '../src/client/exchange.ts';
import { connect } from '../src/client/index.ts';
import {
  type ClientFrame,
  ClientFrameDecoder,
  clientFrameLimits,
  encodeClientFrame,
  type RunResults,
} from '../src/transport/client-frames.ts';
import { encodeRunAnswer } from '../src/transport/run-frames.ts';
import {
  flagsOrExit,
  nonNegativeInteger,
  positiveInteger,
  positiveIntegers,
  positiveNumber,
} from './args.ts';

const settings = flagsOrExit({
  usage: `npm run bench:sdk -- [flags]
The SDK's own CPU per broadcast and GC share, against an in-process exchange (no cluster).
  --runs N               runs measured per window, after one to warm up; medians (default 3)
  --seconds S            length of each run, a positive number (default 3)
  --windows LIST         messages in flight, comma-separated, one window each
                         (default 128,10000)
  --answer-delay-ms N    how long the exchange holds each request before answering
                         (default 20)
  --run-frame            the exchange also takes broadcastRun frames, as the binary one does
                         (default off)
  --out FILE             results as JSON (default bench/results/sdk.json)`,
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    windows: { type: 'string', default: '128,10000' },
    'answer-delay-ms': { type: 'string', default: '20' },
    out: { type: 'string', default: 'bench/results/sdk.json' },
    'run-frame': { type: 'boolean', default: false },
  },
  read: (values) => ({
    runCount: positiveInteger('runs', values.runs),
    seconds: positiveNumber('seconds', values.seconds),
    windows: positiveIntegers('windows', values.windows),
    answerDelayMs: nonNegativeInteger('answer-delay-ms', values['answer-delay-ms']),
    out: values.out,
    runFrame: values['run-frame'],
  }),
});
const { runCount, seconds, windows, answerDelayMs, runFrame } = settings;
const payload = 'x'.repeat(98);

/** Answers as a node would, after answerDelayMs; batch answers are built once per size. */
function fakeExchange(): HttpExchange {
  const batchAnswers = new Map<number, string>();
  const single = '{"index":1,"term":1,"duplicate":false}';
  const batchAnswer = (count: number): string => {
    let answer = batchAnswers.get(count);
    if (answer === undefined) {
      answer = `{"results":[${new Array(count).fill(single).join(',')}]}`;
      batchAnswers.set(count, answer);
    }
    return answer;
  };
  const bodyOf = (request: HttpExchangeRequest): string => {
    if (request.url.endsWith('/v1/status')) return '{"role":"leader"}';
    if (request.url.endsWith('/v1/broadcast/batch')) {
      const { messages } = JSON.parse(request.body ?? '{}') as { messages: unknown[] };
      return batchAnswer(messages.length);
    }
    return single;
  };
  const exchange: HttpExchange = (request) =>
    new Promise((resolve) => {
      const body = bodyOf(request);
      setTimeout(() => resolve({ status: 200, headers: {}, body }), answerDelayMs);
    });
  return runFrame ? Object.assign(exchange, { broadcastRun: runAnswerer() }) : exchange;
}

/** Takes a run as the binary exchange does: its frame encoded, its runAnswer decoded. */
function runAnswerer(): NonNullable<HttpExchange['broadcastRun']> {
  const runAnswers = new Map<number, Buffer>();
  const runAnswer = (count: number): Buffer => {
    let answer = runAnswers.get(count);
    if (answer === undefined) {
      const delivered = { kind: 'ok', position: 1, term: 1, duplicate: false } as const;
      const results = new Array(count).fill(delivered);
      answer = encodeRunAnswer({ type: 'runAnswer', requestId: 1, results });
      runAnswers.set(count, answer);
    }
    return answer;
  };
  // One decoder, as one connection has: runAnswers are read into its reused columns.
  const decoder = new ClientFrameDecoder(clientFrameLimits.frameBytesMax);
  const taken: RunExchangeAnswer = { kind: 'taken' };
  return (request: RunExchangeRequest) =>
    new Promise<RunExchangeAnswer>((resolve) => {
      const { clientId, firstSeq, nonce, messages, onResults } = request;
      encodeClientFrame({
        type: 'broadcastRun',
        requestId: 1,
        headers: {},
        clientId,
        firstSeq,
        nonce,
        messages,
      });
      // Only the count waits for the answer, as only the frame does on a socket.
      const count = messages.length;
      setTimeout(() => {
        const error = decoder.pushTo(runAnswer(count), {
          frame: (frame: ClientFrame) => {
            throw new Error(`a runAnswer decodes as one, not as ${frame.type}`);
          },
          runAnswer: (_requestId: number, results: RunResults) => onResults(results),
        });
        if (error !== null) throw error;
        resolve(taken);
      }, answerDelayMs);
    });
}

interface RunResult {
  readonly window: number;
  readonly messageCount: number;
  readonly cpuMicrosPerMessage: number;
  readonly gcShare: number;
}

async function run(window: number): Promise<RunResult> {
  const client = connect({
    endpoints: ['http://bench.invalid'],
    inFlightMax: window,
    exchange: fakeExchange(),
  });
  let gcMs = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  });
  observer.observe({ entryTypes: ['gc'] });
  let messageCount = 0;
  const deadline = performance.now() + seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      await client.broadcast(payload);
      messageCount += 1;
    }
  };
  const started = process.cpuUsage();
  const startedMs = performance.now();
  await Promise.all(Array.from({ length: window }, worker));
  const cpu = process.cpuUsage(started);
  const elapsedMs = performance.now() - startedMs;
  // GC entries are delivered asynchronously: let the last ones arrive.
  await new Promise((resolve) => setTimeout(resolve, 50));
  observer.disconnect();
  client.close();
  const cpuMicros = cpu.user + cpu.system;
  return {
    window,
    messageCount,
    cpuMicrosPerMessage: cpuMicros / messageCount,
    gcShare: gcMs / elapsedMs,
  };
}

function median(numbers: readonly number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

const results = [];
for (const window of windows) {
  const runs: RunResult[] = [];
  await run(window); // warm-up: compiled code and a grown heap, as in a long-lived client
  for (let at = 0; at < runCount; at++) runs.push(await run(window));
  const summary = {
    window,
    messagesPerRun: median(runs.map((r) => r.messageCount)),
    cpuMicrosPerMessage: Number(median(runs.map((r) => r.cpuMicrosPerMessage)).toFixed(2)),
    gcShareOfWallTime: Number(median(runs.map((r) => r.gcShare)).toFixed(3)),
  };
  console.log(JSON.stringify(summary));
  results.push(summary);
}
await mkdir('bench/results', { recursive: true });
await writeFile(
  settings.out,
  `${JSON.stringify({ answerDelayMs, seconds, runCount, runFrame, execArgv: process.execArgv, results }, null, 2)}\n`,
);
