// The throughput cost of TLS: two 3-node clusters of `abcast start` processes on 127.0.0.1
// (fsync on, 256-byte messages), one plain and one with mutual TLS between the nodes and
// HTTPS for clients, loaded in the same run through the SDK (`connect`, with the CA for
// TLS) at 128 broadcasts in flight. Runs alternate plain/TLS so that drift on the machine
// hits both alike; reports the median messages/s of each and their ratio, and writes them
// to bench/results/tls.json.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../src/cli/process-cluster.ts';
import { connect } from '../src/client/index.ts';
import { flagsOrExit, positiveInteger, positiveNumber } from './args.ts';

const { runs, seconds, inFlight } = flagsOrExit({
  usage: `npm run bench:tls -- [flags]
Messages/s of a plain and a mutual-TLS 3-node cluster, runs alternating; medians and ratio.
  --runs N        runs of each cluster, plain then TLS (default 3)
  --seconds S     counted length of each run, a positive number (default 5)
  --in-flight N   SDK broadcasts in flight (default 128)`,
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    'in-flight': { type: 'string', default: '128' },
  },
  read: (values) => ({
    runs: positiveInteger('runs', values.runs),
    seconds: positiveNumber('seconds', values.seconds),
    inFlight: positiveInteger('in-flight', values['in-flight']),
  }),
});
const ids = ['n1', 'n2', 'n3'];
const entry = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

function cli(args: readonly string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

async function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

interface Cluster {
  readonly endpoints: string[];
  readonly ca: string | undefined;
  stop(): Promise<void>;
}

async function startCluster(root: string, secure: boolean): Promise<Cluster> {
  const certs = join(root, 'certs');
  if (secure) {
    for (const args of [
      ['certs', 'ca', '--dir', certs],
      ...ids.map((id) => ['certs', 'node', '--dir', certs, '--id', id, '--hosts', '127.0.0.1']),
    ]) {
      if ((await exited(cli(args))) !== 0) throw new Error(`abcast ${args.join(' ')} failed`);
    }
  }
  const ports = await freePorts(6);
  const peers = ids.map((id, at) => `${id}=127.0.0.1:${ports[at]}`).join(',');
  const nodes = ids.map((id, at) => {
    const args = ['start', '--id', id, '--data', join(root, id), '--peers', peers];
    args.push('--listen', `127.0.0.1:${ports[at]}`, '--http', `127.0.0.1:${ports[at + 3]}`);
    if (secure) {
      args.push('--cert', join(certs, `node-${id}.crt`), '--key', join(certs, `node-${id}.key`));
      args.push('--ca', join(certs, 'ca.crt'));
    }
    return cli(args);
  });
  await Promise.all(
    nodes.map(
      (node) =>
        new Promise<void>((resolve, reject) => {
          let out = '';
          node.stdout?.on('data', (chunk: Buffer) => {
            out += chunk.toString('utf8');
            if (out.includes('up: HTTP')) resolve();
          });
          node.once('exit', (code) => reject(new Error(`a node exited with ${code}`)));
        }),
    ),
  );
  const scheme = secure ? 'https' : 'http';
  return {
    endpoints: ids.map((_, at) => `${scheme}://127.0.0.1:${ports[at + 3]}`),
    ca: secure ? await readFile(join(certs, 'ca.crt'), 'utf8') : undefined,
    async stop() {
      for (const node of nodes) node.kill('SIGTERM');
      await Promise.all(nodes.map(exited));
    },
  };
}

/** A closed loop of `inFlight` SDK broadcasts for `seconds`; messages per second. */
async function load(cluster: Cluster): Promise<number> {
  const client = connect({
    endpoints: cluster.endpoints,
    inFlightMax: inFlight,
    ...(cluster.ca === undefined ? {} : { ca: cluster.ca }),
  });
  const payload = 'x'.repeat(254);
  try {
    await client.broadcast('warm-up');
    let acknowledged = 0;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    const worker = async () => {
      while (performance.now() < deadline) {
        await client.broadcast(payload);
        acknowledged++;
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    return acknowledged / ((performance.now() - started) / 1000);
  } finally {
    await client.close();
  }
}

const median = (numbers: number[]): number => {
  const sorted = [...numbers].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

const measured = { plain: [] as number[], tls: [] as number[] };
for (let run = 0; run < runs; run++) {
  for (const secure of [false, true]) {
    const root = await mkdtemp(join(tmpdir(), 'abcast-bench-tls-'));
    const cluster = await startCluster(root, secure);
    try {
      const rate = await load(cluster);
      (secure ? measured.tls : measured.plain).push(rate);
      console.log(`run ${run + 1} ${secure ? 'tls  ' : 'plain'} ${rate.toFixed(0)} messages/s`);
    } finally {
      await cluster.stop();
      await rm(root, { recursive: true, force: true });
    }
  }
}
const plain = median(measured.plain);
const tls = median(measured.tls);
const result = {
  inFlight,
  seconds,
  runs,
  cpuCount: cpus().length,
  plainMessagesPerSecond: Math.round(plain),
  tlsMessagesPerSecond: Math.round(tls),
  tlsToPlainRatio: Number((tls / plain).toFixed(3)),
  samples: measured,
};
console.log(
  `median of ${runs}: plain ${result.plainMessagesPerSecond}/s, TLS ${result.tlsMessagesPerSecond}/s, TLS/plain ${result.tlsToPlainRatio}`,
);
await writeFile(
  new URL('./results/tls.json', import.meta.url),
  `${JSON.stringify(result, null, 2)}\n`,
);
