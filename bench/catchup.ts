/**
 * `npm run bench:catchup -- [--messages 500000] [--payload-bytes 256] [--profile DIR]`: a
 * subscriber catching up from position 1 through the SDK (`client.subscribe({ from: 1 })`),
 * over the binary protocol and over HTTP (server-sent events).
 *
 * Starts three `abcast start` processes on 127.0.0.1, fills the log through the SDK (not
 * timed), then for each protocol runs one reader process that subscribes to the leader and
 * reads positions 1..N. It reports msgs/s and, read from /proc (robust on a loaded machine),
 * the CPU microseconds per message of the serving node and of the reader. With `--profile`,
 * every process runs V8's sampling profiler (`--cpu-prof`): the summary counts only the
 * samples taken while a reader read, so the fill is not in it. Results go to
 * bench/results/catchup.json (`--out` to write elsewhere).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../src/cli/process-cluster.ts';
import { connect } from '../src/client/index.ts';
import { flagsOrExit, oneOf, positiveInteger } from './args.ts';
import { type CpuProfile, frameName, shareTable } from './cpu-profile.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const main = join(root, 'src/cli/main.ts');
const self = fileURLToPath(import.meta.url);

const protocols = ['binary', 'http'] as const;

const settings = flagsOrExit({
  usage: `npm run bench:catchup -- [flags]
A subscriber catching up from position 1 through the SDK, over each protocol, on 3 nodes.
  --messages N        messages written first, then read back from position 1 (default 500000)
  --payload-bytes N   bytes per message (default 256)
  --protocols LIST    the readers, in order: some of binary,http (default binary,http)
  --profile DIR       run every process under V8's profiler, profiles and summary into DIR
                      (default: no profiling)
  --top N             functions listed in each profile's summary (default 20)
  --out FILE          results as JSON (default bench/results/catchup.json)
  --reader, --endpoint URL, --protocol NAME
                      internal: be the reader process`,
  options: {
    messages: { type: 'string', default: '500000' },
    'payload-bytes': { type: 'string', default: '256' },
    profile: { type: 'string' },
    out: { type: 'string', default: join(root, 'bench/results/catchup.json') },
    protocols: { type: 'string', default: 'binary,http' },
    top: { type: 'string', default: '20' },
    // A reader process (internal): reads 1..messages from --endpoint, prints JSON.
    reader: { type: 'boolean', default: false },
    endpoint: { type: 'string' },
    protocol: { type: 'string' },
  },
  read: (values) => ({
    messages: positiveInteger('messages', values.messages),
    payloadBytes: positiveInteger('payload-bytes', values['payload-bytes']),
    profile: values.profile ?? null,
    out: values.out,
    protocols: values.protocols.split(',').map((name) => oneOf('protocols', name, protocols)),
    top: positiveInteger('top', values.top),
    reader: values.reader,
    endpoint: values.endpoint ?? '',
    protocol: oneOf('protocol', values.protocol ?? 'binary', protocols),
  }),
});
const { messages, payloadBytes } = settings;

/** CPU time of a process in ms (user + system), from /proc. */
function cpuMsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks * 10;
}

/** The monotonic clock V8's profiler stamps samples with, in µs. */
function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

async function readerMain(): Promise<void> {
  const client = connect({
    endpoints: [settings.endpoint],
    ...(settings.protocol === 'http' ? { protocol: 'http' as const } : {}),
  });
  const abort = new AbortController();
  const cpuBefore = process.cpuUsage();
  const startedUs = monotonicUs();
  let count = 0;
  let expected = 1;
  for await (const message of client.subscribe({ from: 1, signal: abort.signal })) {
    if (message.position !== expected)
      throw new Error(`position ${message.position} came at ${expected}`);
    expected++;
    count++;
    if (message.position >= messages) break;
  }
  const endedUs = monotonicUs();
  const cpu = process.cpuUsage(cpuBefore);
  abort.abort();
  client.close();
  process.stdout.write(
    `${JSON.stringify({ count, startedUs, endedUs, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`,
  );
}

/** Self time by function of the samples within [fromUs, toUs], as shares. */
function summarize(profile: CpuProfile, fromUs: number, toUs: number, top: number): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const byFunction = new Map<string, number>();
  let total = 0;
  let atUs = profile.startTime;
  profile.samples.forEach((id, at) => {
    atUs += profile.timeDeltas[at] ?? 0;
    if (atUs < fromUs || atUs > toUs) return;
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) return;
    const name = frameName(frame, root);
    byFunction.set(name, (byFunction.get(name) ?? 0) + 1);
    total++;
  });
  return `samples ${total}\n${shareTable(byFunction, total, top)}`;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((done) => child.once('exit', (code) => done(code)));
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (await check().catch(() => false)) return;
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error(`bench/catchup: timed out waiting for ${what}`);
}

interface Status {
  readonly leader: string | null;
  readonly deliveredIndex: number;
}

async function status(url: string): Promise<Status> {
  return (await (await fetch(`${url}/v1/status`)).json()) as Status;
}

interface Replay {
  readonly protocol: string;
  readonly messages: number;
  readonly seconds: number;
  readonly messagesPerSecond: number;
  readonly nodeCpuUsPerMessage: number;
  readonly readerCpuUsPerMessage: number;
  readonly startedUs: number;
  readonly endedUs: number;
}

async function replay(
  protocol: string,
  endpoint: string,
  nodePid: number,
  profileDir: string | null,
): Promise<Replay> {
  const execArgv =
    profileDir === null
      ? []
      : ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, `reader-${protocol}`)}`];
  const child = spawn(
    process.execPath,
    [
      ...execArgv,
      '--import',
      'tsx',
      self,
      '--reader',
      '--endpoint',
      endpoint,
      '--protocol',
      protocol,
      '--messages',
      String(messages),
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  const nodeBeforeMs = cpuMsOf(nodePid);
  const code = await exited(child);
  const nodeMs = cpuMsOf(nodePid) - nodeBeforeMs;
  if (code !== 0) throw new Error(`the ${protocol} reader exited with ${code}`);
  const read = JSON.parse(text.trim().split('\n').at(-1) as string) as {
    count: number;
    startedUs: number;
    endedUs: number;
    cpuMs: number;
  };
  if (read.count !== messages)
    throw new Error(`the ${protocol} reader read ${read.count} of ${messages}`);
  const seconds = (read.endedUs - read.startedUs) / 1e6;
  return {
    protocol,
    messages,
    seconds: Number(seconds.toFixed(3)),
    messagesPerSecond: Math.round(messages / seconds),
    // The node's figure includes the reader's connection set-up: a few ms.
    nodeCpuUsPerMessage: Number(((nodeMs * 1000) / messages).toFixed(3)),
    readerCpuUsPerMessage: Number(((read.cpuMs * 1000) / messages).toFixed(3)),
    startedUs: read.startedUs,
    endedUs: read.endedUs,
  };
}

async function benchMain(): Promise<void> {
  const profileDir = settings.profile === null ? null : resolve(settings.profile);
  if (profileDir !== null) {
    rmSync(profileDir, { recursive: true, force: true });
    mkdirSync(profileDir, { recursive: true });
  }
  const data = join(tmpdir(), `abcast-catchup-${process.pid}`);
  const ids = ['n1', 'n2', 'n3'];
  const ports = await freePorts(9);
  const peers = ids.map((id, at) => `${id}=127.0.0.1:${ports[at]}`).join(',');
  const httpUrl = (at: number) => `http://127.0.0.1:${ports[3 + at]}`;
  const binaryUrl = (at: number) => `abcast://127.0.0.1:${ports[6 + at]}`;
  const nodes = ids.map((id, at) =>
    spawn(
      process.execPath,
      [
        ...(profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, id)}`]),
        ...['--import', 'tsx', main, 'start'],
        ...['--id', id, '--data', join(data, id), '--listen', `127.0.0.1:${ports[at]}`],
        ...['--http', `127.0.0.1:${ports[3 + at]}`, '--binary', `127.0.0.1:${ports[6 + at]}`],
        ...['--peers', peers, '--cluster-id', 'abcast-catchup'],
      ],
      { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
    ),
  );
  try {
    let leaderAt = -1;
    await until('a leader', async () => {
      const { leader } = await status(httpUrl(0));
      leaderAt = leader === null ? -1 : ids.indexOf(leader);
      return leaderAt >= 0;
    });
    const payload = 'x'.repeat(Math.max(0, payloadBytes - 2));
    const writer = connect({ endpoints: [binaryUrl(leaderAt)], inFlightMax: 256 });
    let next = 0;
    const fillStartedMs = performance.now();
    const fill = async () => {
      while (next++ < messages) await writer.broadcast(payload);
    };
    await Promise.all(Array.from({ length: 256 }, fill));
    writer.close();
    const fillSeconds = (performance.now() - fillStartedMs) / 1000;
    process.stdout.write(
      `filled ${messages} messages of ${payloadBytes} B in ${fillSeconds.toFixed(1)} s\n`,
    );
    await until(
      'the leader to deliver them all',
      async () => (await status(httpUrl(leaderAt))).deliveredIndex >= messages,
    );
    const nodePid = nodes[leaderAt]?.pid as number;
    const replays: Replay[] = [];
    // The machine's load as the replays begin: throughput on a shared machine swings with it.
    const loadAverage = loadavg()[0] as number;
    for (const protocol of settings.protocols) {
      const endpoint = protocol === 'http' ? httpUrl(leaderAt) : binaryUrl(leaderAt);
      const result = await replay(protocol, endpoint, nodePid, profileDir);
      replays.push(result);
      process.stdout.write(
        `${protocol}: ${result.messagesPerSecond} msgs/s (${result.seconds} s); CPU µs/msg: node ${result.nodeCpuUsPerMessage}, reader ${result.readerCpuUsPerMessage}\n`,
      );
    }
    for (const child of nodes) child.kill('SIGTERM');
    await Promise.all(nodes.map(exited));
    const leaderId = ids[leaderAt] as string;
    if (profileDir !== null) {
      const report: string[] = [];
      for (const result of replays) {
        for (const [who, dir] of [
          [`node ${leaderId}`, join(profileDir, leaderId)],
          ['reader', join(profileDir, `reader-${result.protocol}`)],
        ] as const) {
          for (const file of readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'))) {
            const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
            // tsx's module loader runs in a thread of its own, with a profile of its own.
            if (!profile.nodes.some((node) => node.callFrame.url.includes('/src/'))) continue;
            const text = summarize(profile, result.startedUs, result.endedUs, settings.top);
            report.push(`== ${result.protocol} replay: ${who} (self time)\n${text}`);
          }
        }
      }
      writeFileSync(join(profileDir, 'summary.txt'), `${report.join('\n\n')}\n`);
      process.stdout.write(`${report.join('\n\n')}\n`);
    }
    const results = {
      messages,
      payloadBytes,
      machine: { cpus: cpus().length, node: process.version, loadAverage },
      replays: replays.map(({ startedUs: _s, endedUs: _e, ...rest }) => rest),
    };
    writeFileSync(resolve(settings.out), `${JSON.stringify(results, null, 2)}\n`);
  } finally {
    for (const child of nodes) if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(data, { recursive: true, force: true });
  }
}

if (settings.reader) await readerMain();
else await benchMain();
