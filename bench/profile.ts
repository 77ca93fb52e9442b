/**
 * `npm run bench:profile -- [--protocol http|binary] [--concurrency 128] [--seconds 10]`:
 * where the CPU goes under load. Starts a 3-node cluster of `abcast start` processes with
 * V8's sampling profiler on (`--cpu-prof`), drives it with `abcast bench` through the SDK,
 * stops the nodes gracefully (a profile is written on exit) and prints, for the leader and
 * one follower, the functions and the files with the most self time. The raw profiles stay
 * in the output directory (`--out`, default bench/results/profile) for Chrome DevTools.
 * It builds dist/ first and runs the compiled CLI.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flagsOrExit, oneOf, positiveInteger } from './args.ts';
import { type CpuProfile, frameFile, frameName, shareTable } from './cpu-profile.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// The compiled CLI, as users run it, so that profiles name real lines (tsx's output does not).
const main = join(root, 'bin/abcast.js');

const settings = flagsOrExit({
  usage: `npm run bench:profile -- [flags]
Where the CPU goes under load: 3 profiled nodes driven by \`abcast bench\` (builds dist/ first).
  --protocol NAME     the client's protocol: http or binary (default http)
  --concurrency N     messages in flight (default 128)
  --seconds N         length of the load (default 10)
  --payload-bytes N   bytes per message (default 256)
  --top N             functions and files listed per profile (default 25)
  --out DIR           profiles and summary.txt (default bench/results/profile)`,
  options: {
    protocol: { type: 'string', default: 'http' },
    concurrency: { type: 'string', default: '128' },
    seconds: { type: 'string', default: '10' },
    'payload-bytes': { type: 'string', default: '256' },
    out: { type: 'string', default: join(root, 'bench/results/profile') },
    top: { type: 'string', default: '25' },
  },
  read: (values) => ({
    protocol: oneOf('protocol', values.protocol, ['http', 'binary']),
    concurrency: positiveInteger('concurrency', values.concurrency),
    seconds: positiveInteger('seconds', values.seconds),
    payloadBytes: positiveInteger('payload-bytes', values['payload-bytes']),
    out: values.out,
    top: positiveInteger('top', values.top),
  }),
});

/** Self time by function and by file, as shares of all samples. */
function summarize(profile: CpuProfile, top: number): string {
  const total = profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0);
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0) continue;
    const file = frameFile(node.callFrame, root);
    const name = frameName(node.callFrame, root);
    byFunction.set(name, (byFunction.get(name) ?? 0) + hits);
    const bucket = file.startsWith('node_modules/')
      ? file
          .split('/')
          .slice(0, file.split('/')[1]?.startsWith('@') ? 3 : 2)
          .join('/')
      : file;
    byFile.set(bucket, (byFile.get(bucket) ?? 0) + hits);
  }
  const table = (map: Map<string, number>) => shareTable(map, total, top);
  const seconds = (profile.endTime - profile.startTime) / 1e6;
  return `samples ${total} over ${seconds.toFixed(1)} s\nby function (self):\n${table(byFunction)}\nby file (self):\n${table(byFile)}\n`;
}

function run(args: readonly string[], execArgv: readonly string[] = []): ChildProcess {
  return spawn(process.execPath, [...execArgv, main, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    cwd: root,
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((done) => child.once('exit', (code) => done(code)));
}

async function waitReady(url: string): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    try {
      const response = await fetch(`${url}/readyz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error(`${url} never became ready`);
}

async function profile(): Promise<void> {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  const out = resolve(settings.out);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const data = join(tmpdir(), `abcast-profile-${process.pid}`);
  const ids = ['n1', 'n2', 'n3'];
  const base = 27_100 + (process.pid % 200) * 10;
  const peers = ids.map((id, at) => `${id}=127.0.0.1:${base + at}`).join(',');
  const nodes = ids.map((id, at) =>
    run(
      [
        'start',
        ...['--id', id, '--data', join(data, id), '--listen', `127.0.0.1:${base + at}`],
        ...['--http', `127.0.0.1:${base + 3 + at}`, '--binary', `127.0.0.1:${base + 6 + at}`],
        ...['--peers', peers, '--cluster-id', 'abcast-profile'],
      ],
      ['--cpu-prof', `--cpu-prof-dir=${join(out, id)}`],
    ),
  );
  try {
    await Promise.all(ids.map((_, at) => waitReady(`http://127.0.0.1:${base + 3 + at}`)));
    const status = (await (await fetch(`http://127.0.0.1:${base + 3}/v1/status`)).json()) as {
      leader?: string | null;
    };
    const leader = status.leader ?? 'n1';
    const leaderAt = ids.indexOf(leader);
    const target =
      settings.protocol === 'binary'
        ? ['--protocol', 'binary', '--binary-node', `abcast://127.0.0.1:${base + 6 + leaderAt}`]
        : ['--protocol', 'http', '--sdk', '--node', `http://127.0.0.1:${base + 3 + leaderAt}`];
    const bench = run([
      'bench',
      ...target,
      ...['--concurrency', String(settings.concurrency), '--seconds', String(settings.seconds)],
      ...['--payload-bytes', String(settings.payloadBytes), '--json'],
    ]);
    let line = '';
    bench.stdout?.on('data', (chunk: Buffer) => {
      line += chunk.toString();
    });
    await exited(bench);
    process.stdout.write(`bench: ${line.trim()}\nleader: ${leader}\n`);
    const report = [`bench: ${line.trim()}`, `leader: ${leader}`];
    for (const child of nodes) child.kill('SIGTERM');
    await Promise.all(nodes.map(exited));
    for (const id of ids) {
      const files = readdirSync(join(out, id)).filter((name) => name.endsWith('.cpuprofile'));
      for (const file of files) {
        const parsed = JSON.parse(readFileSync(join(out, id, file), 'utf8')) as CpuProfile;
        const role = id === leader ? 'leader' : 'follower';
        const text = `== ${id} (${role}) ${file}\n${summarize(parsed, settings.top)}`;
        report.push(text);
        if (role === 'leader' || id === ids.find((other) => other !== leader))
          process.stdout.write(`${text}\n`);
      }
    }
    writeFileSync(join(out, 'summary.txt'), `${report.join('\n')}\n`);
  } finally {
    for (const child of nodes) if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(data, { recursive: true, force: true });
  }
}

await profile();
