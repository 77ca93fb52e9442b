// CPU per message of the node's binary client port, sockets included: a BinaryServer over a
// stub node (it takes every run and answers it on the next turn of the event loop, as a
// cluster that commits at once would), driven over loopback by a child process that keeps
// --in-flight broadcastRun frames of --messages each in flight (frames laid out once, ids
// set as they go). This process's CPU per message is the node's own work for a run between
// its socket and the runtime: reads, frame splitting, decoding, the batch route's checks,
// the JSON-text check of every payload, the dispatcher, the runAnswer and its write.
// Medians of --runs runs of --seconds each.
import { fork } from 'node:child_process';
import { connect } from 'node:net';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { BinaryServer } from '../src/server/binary-server.ts';
import type { ServedNode, ServerContext } from '../src/server/context.ts';
import { Dispatcher } from '../src/server/dispatcher.ts';
import { HttpMetrics } from '../src/server/http-metrics.ts';
import { apiRoutes } from '../src/server/routes/index.ts';
import {
  ClientFrameDecoder,
  clientFrameLimits,
  encodeClientFrame,
  setRequestId,
} from '../src/transport/client-frames.ts';
import { systemEnvironment } from '../src/util/system-environment.ts';
import { flagsOrExit, integerAtLeast, positiveInteger, positiveNumber } from './args.ts';

const settings = flagsOrExit({
  usage: `node --import tsx bench/binary-port.ts [flags]
The node's CPU per message for broadcastRun frames on its binary port, over a stub node.
  --runs N            runs measured; the figures are their medians (default 5)
  --seconds S         counted length of each run, after 1 s of warm-up (default 3)
  --messages N        messages in each broadcastRun frame (default 1000)
  --in-flight N       frames the driving process keeps in flight (default 10)
  --payload-bytes N   bytes per message, a JSON string, so at least 2 (default 256)
  --client PORT       internal: be the driving process for the port at PORT`,
  options: {
    runs: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '3' },
    messages: { type: 'string', default: '1000' },
    'in-flight': { type: 'string', default: '10' },
    'payload-bytes': { type: 'string', default: '256' },
    client: { type: 'string' },
  },
  read: (values) => ({
    runCount: positiveInteger('runs', values.runs),
    seconds: positiveNumber('seconds', values.seconds),
    messageCount: positiveInteger('messages', values.messages),
    inFlight: positiveInteger('in-flight', values['in-flight']),
    // A JSON string's two quotes are part of its bytes.
    payloadBytes: integerAtLeast('payload-bytes', values['payload-bytes'], 2),
    clientPort: values.client === undefined ? null : positiveInteger('client', values.client),
  }),
});
const { messageCount, inFlight } = settings;
const payload = JSON.stringify('x'.repeat(settings.payloadBytes - 2));

/** The driving side (a child process): runs in flight until told to stop, then counts. */
async function drive(port: number): Promise<void> {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true });
  const run = (firstSeq: number) =>
    encodeClientFrame({
      type: 'broadcastRun',
      requestId: 1,
      headers: {},
      clientId: 'bench',
      firstSeq,
      nonce: '',
      messages: Array.from({ length: messageCount }, () => ({ payload, topic: 'bench', key: '' })),
    });
  const frames = Array.from({ length: inFlight }, (_, at) => run(1 + at * messageCount));
  let nextId = 1;
  let answered = 0;
  let stopping = false;
  const send = (frame: Buffer) => {
    setRequestId(frame, nextId++);
    socket.write(frame);
  };
  const decoder = new ClientFrameDecoder(clientFrameLimits.frameBytesMax);
  socket.on('data', (chunk: Buffer) => {
    const error = decoder.pushTo(chunk, {
      frame: (frame) => {
        if (frame.type === 'welcome') for (const frame of frames) send(frame);
        else throw new Error(`unexpected ${frame.type} frame`);
      },
      runAnswer: (_id, results) => {
        answered += results.count;
        // Seqs are not the stub's business: the same frames go round again.
        if (!stopping) send(frames[nextId % inFlight] as Buffer);
      },
    });
    if (error !== null) throw error;
  });
  socket.write(encodeClientFrame({ type: 'hello', requestId: 0, token: '' }));
  process.on('message', (message) => {
    stopping = message === 'stop';
    process.send?.(answered, () => stopping && process.exit(0));
  });
}

/** The node's side: a binary port over a stub node; resolves with its address's port. */
async function serve(): Promise<{ port: number; close: () => void }> {
  const outcomes = Array.from({ length: messageCount }, (_, at) => ({
    status: 'fulfilled' as const,
    value: { position: at + 1, index: 1, term: 1, duplicate: false },
  }));
  const node = {
    id: 'n1',
    broadcastRun: () => new Promise((resolve) => setImmediate(() => resolve(outcomes))),
  } as unknown as ServedNode;
  const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const context = {
    node,
    settings: {
      payloadBytesMax: 1 << 20,
      bodyBytesMax: (1 << 20) + (64 << 10),
      requestTimeoutMs: 10_000,
      connectionsMax: 16,
      binaryIdleTimeoutMs: 300_000,
    },
    metrics: new HttpMetrics(),
    logger: quiet,
    environment: systemEnvironment,
    auth: null,
  } as unknown as ServerContext;
  const dispatcher = new Dispatcher(context, apiRoutes);
  const server = new BinaryServer({
    context,
    dispatcher,
    tls: null,
    windowRequests: 1024,
  });
  const address = await server.listen('127.0.0.1:0');
  return {
    port: Number(address.split(':').pop()),
    close: () => {
      server.closeConnections();
      void server.stopListening();
    },
  };
}

const cpuMicros = () => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

/** Garbage collections of this process while `counting`, by kind. */
const collections = { major: 0, minor: 0, counting: false };
new PerformanceObserver((list) => {
  if (!collections.counting) return;
  for (const entry of list.getEntries()) {
    const { kind } = (entry as PerformanceEntry & { detail: { kind: number } }).detail;
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) collections.major++;
    else collections.minor++;
  }
}).observe({ entryTypes: ['gc'] });

interface Sample {
  readonly microsPerMessage: number;
  /** Mark-compacts and scavenges per 100,000 messages. */
  readonly majorPer100k: number;
  readonly minorPer100k: number;
}

async function measure(seconds: number): Promise<Sample> {
  const { port, close } = await serve();
  const child = fork(fileURLToPath(import.meta.url), ['--client', String(port), ...argsOf()], {
    execArgv: ['--import', 'tsx'],
  });
  const answered = (message: 'count' | 'stop') =>
    new Promise<number>((done) => {
      child.once('message', (count) => done(Number(count)));
      child.send(message);
    });
  // Warm up, then count what the port answers over the window.
  await new Promise((done) => setTimeout(done, 1000));
  const startedMicros = cpuMicros();
  const answeredBefore = await answered('count');
  Object.assign(collections, { major: 0, minor: 0, counting: true });
  await new Promise((done) => setTimeout(done, seconds * 1000));
  collections.counting = false;
  const answeredAfter = await answered('stop');
  const usedMicros = cpuMicros() - startedMicros;
  close();
  const messages = answeredAfter - answeredBefore;
  return {
    microsPerMessage: usedMicros / messages,
    majorPer100k: (collections.major * 100_000) / messages,
    minorPer100k: (collections.minor * 100_000) / messages,
  };
}

function argsOf(): string[] {
  return [
    ...['--messages', String(messageCount), '--in-flight', String(inFlight)],
    ...['--payload-bytes', String(settings.payloadBytes)],
  ];
}

if (settings.clientPort !== null) await drive(settings.clientPort);
else {
  const samples: Sample[] = [];
  for (let run = 0; run < settings.runCount; run++) {
    samples.push(await measure(settings.seconds));
  }
  const median = (field: keyof Sample) => {
    const sorted = samples.map((sample) => sample[field]).sort((a, b) => a - b);
    return (sorted[Math.floor(sorted.length / 2)] as number).toFixed(2);
  };
  const runs = samples.map((sample) => sample.microsPerMessage.toFixed(2)).join(', ');
  console.log(
    `${messageCount} messages a run, ${inFlight} runs in flight: node ${median('microsPerMessage')} µs/msg (runs ${runs}); per 100,000 messages ${median('majorPer100k')} mark-compacts, ${median('minorPer100k')} scavenges`,
  );
}
