/**
 * `abcast dev`: a local cluster of separate `abcast start` processes on 127.0.0.1 (peer ports
 * from --port, HTTP ports from --http-port, binary client protocol ports from --binary-port, data under --data/<id>), until Ctrl-C or SIGTERM,
 * which stop every node gracefully (SIGTERM each, then wait; SIGKILL past a deadline).
 * Restarting on the same --data recovers the cluster. This is `npm start`.
 *
 * `--secure` runs the same cluster with mutual TLS between the nodes and HTTPS for clients,
 * with a CA, certificates and an admin token it makes in --data/certs (dev-secure.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { canListen } from '../process-cluster.ts';
import { type DevSecurity, prepareDevSecurity } from './dev-secure.ts';
import { CliError, positiveIntegerFlag } from './errors.ts';
import { callJson } from './http-client.ts';
import { startSettings } from './start.ts';

interface DevFlags {
  nodes: string;
  data: string;
  port: string;
  httpPort: string;
  binaryPort?: string;
  segmentBytes?: string;
  logLevel?: string;
  logFormat?: string;
  corsOrigins?: string;
  secure?: boolean;
}

interface DevNode {
  readonly id: string;
  readonly url: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
}

const upTimeoutMs = 20_000;
const stopTimeoutMs = 15_000;
const nodeCountMax = 9;

/** The CLI entry this process runs from (source under tsx, or the built copy). */
const mainEntry = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? '../main.ts' : '../main.js', import.meta.url),
);

function launch(id: string, args: readonly string[], url: string): DevNode {
  const child = spawn(process.execPath, [...process.execArgv, mainEntry, 'start', ...args], {
    // The nodes' own lines (and their one-line errors) go straight to this terminal. They
    // stay in this process group, so a terminal's Ctrl-C reaches them too (they stop alike).
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((done) => {
    child.once('exit', (code) => done(code));
    child.once('error', () => done(-1));
  });
  return { id, url, child, exited };
}

/** Resolves once the node answers /v1/status; rejects if it exits or the deadline passes. */
async function waitUp(node: DevNode): Promise<void> {
  const deadline = Date.now() + upTimeoutMs;
  let exitCode: number | null | undefined;
  void node.exited.then((code) => {
    exitCode = code;
  });
  while (Date.now() < deadline) {
    if (exitCode !== undefined) {
      throw new CliError(`node ${node.id} exited (code ${exitCode}) before it was up`);
    }
    const up = await callJson(node.url, '/v1/status', undefined, 1000).then(
      () => true,
      () => false,
    );
    if (up) return;
    await new Promise((resume) => setTimeout(resume, 100));
  }
  throw new CliError(`node ${node.id} did not answer at ${node.url} within ${upTimeoutMs} ms`);
}

/** Where a node serves the binary protocol, as its status says (a port it may have picked). */
async function binaryUrlOf(node: DevNode): Promise<string> {
  const status = await callJson<{ binary?: unknown }>(
    node.url,
    '/v1/status',
    undefined,
    1000,
  ).catch(() => null);
  return typeof status?.binary === 'string' ? status.binary : '(unknown)';
}

/** SIGTERM every node, wait for them all; SIGKILL whichever outlives the deadline. */
async function stopAll(nodes: readonly DevNode[]): Promise<void> {
  for (const node of nodes) if (node.child.exitCode === null) node.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const node of nodes) if (node.child.exitCode === null) node.child.kill('SIGKILL');
  }, stopTimeoutMs);
  await Promise.all(nodes.map((node) => node.exited));
  clearTimeout(timer);
}

interface Layout {
  readonly count: number;
  readonly port: number;
  readonly httpPort: number;
  /** The first binary port, or null: each node picks a free one. */
  readonly binaryPort: number | null;
}

function layout(flags: DevFlags): Layout {
  const count = positiveIntegerFlag('nodes', flags.nodes);
  if (count > nodeCountMax) throw new CliError(`--nodes takes 1 to ${nodeCountMax}`);
  const port = positiveIntegerFlag('port', flags.port, 1024);
  const httpPort = positiveIntegerFlag('http-port', flags.httpPort, 1024);
  const binaryPort =
    flags.binaryPort === undefined
      ? null
      : positiveIntegerFlag('binary-port', flags.binaryPort, 1024);
  if (Math.max(port, httpPort, binaryPort ?? 0) + count > 65536) {
    throw new CliError('ports beyond 65535');
  }
  if (Math.abs(port - httpPort) < count) {
    throw new CliError('--port and --http-port ranges overlap');
  }
  if (
    binaryPort !== null &&
    (Math.abs(binaryPort - httpPort) < count || Math.abs(binaryPort - port) < count)
  ) {
    throw new CliError('--binary-port overlaps --port or --http-port');
  }
  return { count, port, httpPort, binaryPort };
}

/**
 * Refuses a layout with a port some other process listens on: otherwise the node given it
 * fails, the others start and are stopped again, and each says so on its own line.
 */
async function checkPortsFree(layout: Layout): Promise<void> {
  const firsts: [string, number | null][] = [
    ['port', layout.port],
    ['http-port', layout.httpPort],
    ['binary-port', layout.binaryPort],
  ];
  for (const [flag, first] of firsts) {
    for (let at = 0; first !== null && at < layout.count; at++) {
      if (!(await canListen(first + at))) {
        throw new CliError(`port in use: 127.0.0.1:${first + at} (--${flag} ${first} and up)`);
      }
    }
  }
}

/**
 * What would make a node fail, checked before any starts: a mistake is one line and no node
 * runs, not one line from each node and one more from dev. The flags passed on to every
 * node are checked as the first node's `start` would.
 */
async function checkBeforeStart(
  flags: DevFlags,
  ports: Layout,
  dataDir: string,
  passed: { readonly peers: string; readonly corsOrigins: string; readonly httpPeers: string },
): Promise<void> {
  await mkdir(dataDir, { recursive: true }).catch((error: Error) => {
    throw new CliError(`--data ${dataDir} cannot hold the nodes' directories: ${error.message}`);
  });
  await startSettings({
    id: 'n1',
    data: join(dataDir, 'n1'),
    listen: `127.0.0.1:${ports.port}`,
    http: `127.0.0.1:${ports.httpPort}`,
    segmentBytes: flags.segmentBytes,
    logLevel: flags.logLevel,
    logFormat: flags.logFormat,
    ...passed,
  });
  await checkPortsFree(ports);
}

async function dev(flags: DevFlags): Promise<void> {
  const { count, port, httpPort, binaryPort } = layout(flags);
  // resolve('') is the working directory: the nodes would fill it with n1, n2, ….
  if (flags.data === '') throw new CliError('--data takes a directory');
  const dataDir = resolve(flags.data);
  const ids = Array.from({ length: count }, (_, at) => `n${at + 1}`);
  const peers = ids.map((id, at) => `${id}=127.0.0.1:${port + at}`).join(',');
  const scheme = flags.secure === true ? 'https' : 'http';
  const urls = ids.map((_, at) => `${scheme}://127.0.0.1:${httpPort + at}`);
  const httpPeers = ids.map((id, at) => `${id}=${urls[at]}`).join(',');
  // Each node's dashboard shows every member and may ask the leader to hand over: the
  // nodes' own pages are let in across their ports unless told otherwise.
  const corsOrigins = flags.corsOrigins ?? urls.join(',');
  await checkBeforeStart(flags, { count, port, httpPort, binaryPort }, dataDir, {
    peers,
    corsOrigins,
    httpPeers,
  });
  const security: DevSecurity | null =
    flags.secure === true ? await prepareDevSecurity(dataDir, ids) : null;
  const nodes = ids.map((id, at) => {
    const http = `127.0.0.1:${httpPort + at}`;
    const args = ['--id', id, '--data', join(dataDir, id), '--listen', `127.0.0.1:${port + at}`];
    args.push('--http', http, '--peers', peers, '--cluster-id', 'abcast-dev');
    args.push('--binary', `127.0.0.1:${binaryPort === null ? 0 : binaryPort + at}`);
    if (flags.segmentBytes !== undefined) args.push('--segment-bytes', flags.segmentBytes);
    if (flags.logLevel !== undefined) args.push('--log-level', flags.logLevel);
    if (flags.logFormat !== undefined) args.push('--log-format', flags.logFormat);
    args.push('--cors-origins', corsOrigins, '--http-peers', httpPeers);
    if (security !== null) args.push(...security.nodeArgs(id));
    return launch(id, args, `${scheme}://${http}`);
  });
  let stopping: Promise<void> | null = null;
  const stop = (code: number) => {
    stopping ??= stopAll(nodes).then(() => process.exit(code));
    return stopping;
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  try {
    await Promise.all(nodes.map(waitUp));
  } catch (error) {
    await stopAll(nodes);
    throw error;
  }
  for (const node of nodes) {
    const binary = await binaryUrlOf(node);
    console.log(`abcast dev: node ${node.id} at ${node.url} (binary protocol ${binary})`);
  }
  console.log(`abcast dev: dashboard at ${nodes[0]?.url}/ (every node serves one)`);
  console.log(`abcast dev: data in ${dataDir}; Ctrl-C stops the cluster`);
  if (security === null) {
    console.log(`abcast dev: try  abcast send '{"hello":"world"}'  and  abcast tail`);
  } else {
    for (const line of security.usage(nodes[0]?.url ?? '')) console.log(`abcast dev: ${line}`);
  }
  // A node that dies on its own is reported; the others keep serving (a quorum may remain).
  for (const node of nodes) {
    void node.exited.then((code) => {
      if (stopping === null) console.error(`abcast dev: node ${node.id} exited (code ${code})`);
    });
  }
}

export function devCommand(program: Command): void {
  program
    .command('dev')
    .description('run a local cluster of separate node processes until Ctrl-C')
    .option('--nodes <count>', 'how many nodes', '3')
    .option('--data <dir>', 'data directory; each node uses <dir>/<id>', './data')
    .option('--port <port>', 'first peer port', '7001')
    .option('--http-port <port>', 'first HTTP port', '8001')
    .option(
      '--binary-port <port>',
      'first port of the binary client protocol (default: each node picks a free one)',
    )
    .option('--segment-bytes <n>', "each node's WAL segment size in bytes (default 64 MiB)")
    .option('--log-level <level>', "the nodes' pino log level (default warn)")
    .option('--log-format <format>', "the nodes' log lines: auto, pretty or json")
    .option('--cors-origins <list>', 'web pages of these origins (or * for any) may call the API')
    .option(
      '--secure',
      'mutual TLS between the nodes, HTTPS and an admin token, all in <data>/certs',
    )
    .action((flags: DevFlags) => dev(flags));
}
