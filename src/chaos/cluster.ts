/**
 * The nodes under test: each one `abcast start` in its own OS process, as an operator runs
 * it, with its own data directory and log file. Every node listens for peers on a private
 * port and is known to the others only by its fault proxy's port (proxy.ts), so the network
 * between them is the proxy's to break. With libfaketime installed, each node's wall clock
 * comes from a file the nemesis rewrites (clock jumps and drift); monotonic clocks, which
 * timers use, stay real. With small disks (root, the full-disk fault), each data directory
 * sits on its own tmpfs (tmpfs.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../cli/process-cluster.ts';
import type { Prng } from '../util/prng.ts';
import { FaultProxy } from './proxy.ts';
import type { TmpfsMounts } from './tmpfs.ts';

const cliEntry = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

/** Where Debian's faketime package puts the library (amd64, then arm64). */
const fakeTimeLibraryPaths = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
];

export function fakeTimeLibrary(): string | null {
  return fakeTimeLibraryPaths.find((path) => existsSync(path)) ?? null;
}

/** The last non-empty line of a log file (why a node stopped), at most 400 characters. */
async function lastLine(path: string): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  return (lines.at(-1) ?? 'no log').slice(0, 400);
}

export interface ChaosNode {
  readonly id: string;
  readonly dataDir: string;
  /** The tmpfs holding `dataDir`, with small disks; null on the ordinary disk. */
  readonly diskDir: string | null;
  readonly logPath: string;
  readonly httpUrl: string;
  readonly httpAddress: string;
  readonly listenAddress: string;
  readonly proxyAddress: string;
  readonly clockFile: string;
  readonly proxy: FaultProxy;
  process: ChildProcess | null;
  exited: Promise<void>;
  paused: boolean;
  /** Refused to start on a corrupted disk; left down for the rest of the run. */
  damaged: string | null;
  /** Taken out of the configuration; stopped. */
  departed: boolean;
}

export interface ClusterOptions {
  readonly root: string;
  readonly logDir: string;
  readonly requestTimeoutMs: number;
  readonly random: Prng;
  readonly logLevel: string;
  /**
   * Each node's data on its own small tmpfs, with WAL segments small enough that the node
   * needs new space every few seconds (a preallocated segment never runs out); null: the
   * ordinary disk and default segments.
   */
  readonly smallDisks: { readonly mounts: TmpfsMounts; readonly segmentBytes: number } | null;
}

export class ChaosCluster {
  readonly nodes = new Map<string, ChaosNode>();
  readonly fakeTime: string | null = fakeTimeLibrary();

  constructor(private readonly options: ClusterOptions) {}

  /** Ports and proxies for `ids` (not started). */
  async prepare(ids: readonly string[]): Promise<void> {
    const ports = await freePorts(ids.length * 3);
    for (const [at, id] of ids.entries()) {
      const [listenPort, httpPort, proxyPort] = ports.slice(at * 3, at * 3 + 3) as [
        number,
        number,
        number,
      ];
      const proxy = new FaultProxy({
        nodeId: id,
        targetHost: '127.0.0.1',
        targetPort: listenPort,
        listenPort: proxyPort,
        random: this.options.random.fork(),
      });
      await proxy.start();
      const clockFile = join(this.options.root, `${id}.faketime`);
      await writeFile(clockFile, '+0s\n');
      const diskDir =
        this.options.smallDisks === null ? null : join(this.options.root, `${id}.disk`);
      if (diskDir !== null) await this.options.smallDisks?.mounts.mount(diskDir);
      this.nodes.set(id, {
        id,
        dataDir: diskDir === null ? join(this.options.root, id) : join(diskDir, 'data'),
        diskDir,
        logPath: join(this.options.logDir, `${id}.log`),
        httpUrl: `http://127.0.0.1:${httpPort}`,
        httpAddress: `127.0.0.1:${httpPort}`,
        listenAddress: `127.0.0.1:${listenPort}`,
        proxyAddress: `127.0.0.1:${proxyPort}`,
        clockFile,
        proxy,
        process: null,
        exited: Promise.resolve(),
        paused: false,
        damaged: null,
        departed: false,
      });
    }
  }

  node(id: string): ChaosNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  isRunning(id: string): boolean {
    const child = this.node(id).process;
    return child !== null && child.exitCode === null && child.signalCode === null;
  }

  /**
   * Starts `id` with `members` as its peer list (each member's proxy address) and waits
   * until its HTTP API answers. Rejects with the tail of its log if it exits first.
   */
  async start(id: string, members: readonly string[], join: boolean): Promise<void> {
    const node = this.node(id);
    const peers = members.map((member) => `${member}=${this.node(member).proxyAddress}`).join(',');
    await mkdir(this.options.logDir, { recursive: true });
    const log = openSync(node.logPath, 'a');
    const args = [
      '--import',
      'tsx',
      cliEntry,
      'start',
      ...['--id', id, '--data', node.dataDir, '--listen', node.listenAddress],
      ...['--http', node.httpAddress, '--peers', peers, '--cluster-id', 'chaos'],
      ...['--log-level', this.options.logLevel],
      ...['--request-timeout-ms', String(this.options.requestTimeoutMs)],
      ...(join ? ['--join'] : []),
      ...(this.options.smallDisks === null
        ? []
        : ['--segment-bytes', String(this.options.smallDisks.segmentBytes)]),
    ];
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (this.fakeTime !== null) {
      // Only the wall clock is faked: timers run on the monotonic clock, left real.
      Object.assign(env, {
        LD_PRELOAD: this.fakeTime,
        FAKETIME_TIMESTAMP_FILE: node.clockFile,
        FAKETIME_DONT_FAKE_MONOTONIC: '1',
        FAKETIME_CACHE_DURATION: '1',
      });
    }
    const child = spawn(process.execPath, args, { stdio: ['ignore', log, log], env });
    closeSync(log);
    node.process = child;
    node.paused = false;
    node.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    await this.waitUntilServing(node, child);
  }

  private async waitUntilServing(node: ChaosNode, child: ChildProcess): Promise<void> {
    const deadlineMs = performance.now() + 30_000;
    while (performance.now() < deadlineMs) {
      if (child.exitCode !== null || child.signalCode !== null) {
        const reason = await lastLine(node.logPath);
        throw new Error(
          `node ${node.id} exited on start (${child.exitCode ?? child.signalCode}): ${reason}`,
        );
      }
      try {
        const response = await fetch(`${node.httpUrl}/v1/status`, {
          signal: AbortSignal.timeout(1_000),
        });
        await response.arrayBuffer();
        if (response.ok) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`node ${node.id} did not answer within 30 s of its start`);
  }

  async kill(id: string): Promise<void> {
    const node = this.node(id);
    if (!this.isRunning(id)) return;
    node.process?.kill('SIGKILL');
    await node.exited;
    node.paused = false;
  }

  /** SIGTERM, then SIGKILL if the graceful close overruns. */
  async stop(id: string): Promise<void> {
    const node = this.node(id);
    if (!this.isRunning(id)) return;
    if (node.paused) this.resume(id);
    node.process?.kill('SIGTERM');
    const timer = setTimeout(() => node.process?.kill('SIGKILL'), 5_000);
    await node.exited;
    clearTimeout(timer);
  }

  pause(id: string): void {
    const node = this.node(id);
    if (!this.isRunning(id) || node.paused) return;
    node.process?.kill('SIGSTOP');
    node.paused = true;
  }

  resume(id: string): void {
    const node = this.node(id);
    if (!this.isRunning(id) || !node.paused) return;
    node.process?.kill('SIGCONT');
    node.paused = false;
  }

  /** Sets a node's wall clock as libfaketime reads it: "+3600s", "-20s x1.05"… */
  async setClock(id: string, spec: string): Promise<void> {
    await writeFile(this.node(id).clockFile, `${spec}\n`);
  }

  /** Fills the node's small disk to within `headroomBytes`; says what it did. */
  async fillDisk(id: string, headroomBytes: number): Promise<string> {
    const { diskDir } = this.node(id);
    if (diskDir === null || this.options.smallDisks === null) throw new Error('no small disk');
    return this.options.smallDisks.mounts.fill(diskDir, headroomBytes);
  }

  async freeDisk(id: string): Promise<void> {
    const { diskDir } = this.node(id);
    if (diskDir !== null) await this.options.smallDisks?.mounts.free(diskDir);
  }

  endpoints(): string[] {
    return [...this.nodes.values()].map((node) => node.httpUrl);
  }

  /** Stops every node and proxy, then unmounts the small disks; says what stayed mounted. */
  async close(): Promise<string[]> {
    await Promise.all([...this.nodes.keys()].map((id) => this.stop(id)));
    await Promise.all([...this.nodes.values()].map((node) => node.proxy.close()));
    return (await this.options.smallDisks?.mounts.unmountAll()) ?? [];
  }
}
