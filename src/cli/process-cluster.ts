/**
 * A cluster of node processes on 127.0.0.1, each its own OS process with its own data
 * directory: what tests, benchmarks and the local dev cluster start. `kill` sends any
 * signal (SIGKILL for a crash), `restart` brings a node back on the same directory.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StartNodeOptions } from '../broadcast/start.ts';
import type { NodeRequest } from './node-process.ts';

const entry = fileURLToPath(new URL('./node-process.ts', import.meta.url));

export class NodeRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'NodeRequestError';
  }
}

interface Waiting {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
}

/** One node process and its request channel. */
export class NodeProcess {
  private nextRequestId = 1;
  private readonly waiting = new Map<number, Waiting>();
  readonly exited: Promise<number | null>;

  constructor(
    readonly id: string,
    private readonly child: ChildProcess,
  ) {
    child.on(
      'message',
      (message: {
        type: string;
        requestId?: number;
        ok?: boolean;
        result?: unknown;
        error?: { code: string; message: string };
      }) => {
        if (message.type !== 'reply' || message.requestId === undefined) return;
        const waiter = this.waiting.get(message.requestId);
        this.waiting.delete(message.requestId);
        if (message.ok) waiter?.resolve(message.result);
        else
          waiter?.reject(
            new NodeRequestError(
              message.error?.code ?? 'internal',
              message.error?.message ?? 'failed',
            ),
          );
      },
    );
    this.exited = new Promise((resolve) => {
      child.once('exit', (code) => {
        for (const waiter of this.waiting.values())
          waiter.reject(new NodeRequestError('NODE_EXITED', `node ${id} exited`));
        this.waiting.clear();
        resolve(code);
      });
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The operating system's id of the process (benchmarks read its memory from /proc). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  request<T = unknown>(request: NodeRequest): Promise<T> {
    if (!this.alive || !this.child.connected) {
      return Promise.reject(new NodeRequestError('NODE_EXITED', `node ${this.id} is not running`));
    }
    const requestId = this.nextRequestId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(requestId, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ requestId, request }, (error) => {
        if (error === null) return;
        this.waiting.delete(requestId);
        reject(new NodeRequestError('NODE_EXITED', error.message));
      });
    });
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }
}

export interface ProcessClusterOptions {
  readonly ids: readonly string[];
  /** Data directories are `<root>/<id>`. */
  readonly root: string;
  readonly clusterId?: string;
  /** Extra StartNodeOptions for every node (tuning, logLevel). */
  readonly nodeOptions?: Partial<StartNodeOptions>;
  /** Node i listens on basePort + i; default: free ports chosen by the kernel. */
  readonly basePort?: number;
  /** Extra Node flags for every node process, such as --cpu-prof for profiling. */
  readonly execArgv?: readonly string[];
  /** Where a node's stdout and stderr go; default: dropped. */
  readonly stdio?: 'inherit' | 'ignore';
}

export class ProcessCluster {
  readonly nodes = new Map<string, NodeProcess>();

  private constructor(
    private readonly options: ProcessClusterOptions,
    readonly peers: Readonly<Record<string, string>>,
  ) {}

  static async start(options: ProcessClusterOptions): Promise<ProcessCluster> {
    const ports =
      options.basePort === undefined
        ? await freePorts(options.ids.length)
        : options.ids.map((_, offset) => (options.basePort as number) + offset);
    const peers = Object.fromEntries(
      options.ids.map((id, position) => [id, `127.0.0.1:${ports[position]}`]),
    );
    const cluster = new ProcessCluster(options, peers);
    const launches = await Promise.allSettled(options.ids.map((id) => cluster.launch(id)));
    const failed = launches.find((launch) => launch.status === 'rejected');
    if (failed !== undefined) {
      // Leave nothing running behind a failed start, or the caller hangs on live children.
      await cluster.stop();
      throw (failed as PromiseRejectedResult).reason;
    }
    return cluster;
  }

  startOptions(id: string): StartNodeOptions {
    return {
      logLevel: 'warn',
      ...this.options.nodeOptions,
      id,
      dataDir: join(this.options.root, id),
      listen: this.peers[id] as string,
      peers: this.peers,
      clusterId: this.options.clusterId ?? 'abcast-test',
    };
  }

  /** Starts (or restarts) a node process and waits until it runs. */
  async launch(id: string): Promise<NodeProcess> {
    const child = fork(entry, [JSON.stringify(this.startOptions(id))], {
      execArgv: ['--import', 'tsx', ...(this.options.execArgv ?? [])],
      stdio:
        this.options.stdio === 'inherit'
          ? ['ignore', 'inherit', 'inherit', 'ipc']
          : ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    const node = new NodeProcess(id, child);
    this.nodes.set(id, node);
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: { type: string; code?: string; message?: string }) => {
        if (message.type === 'started') resolve();
        if (message.type === 'failed')
          reject(new NodeRequestError(message.code ?? 'START_FAILED', message.message ?? ''));
      };
      child.on('message', onMessage);
      child.once('exit', (code) =>
        reject(new NodeRequestError('NODE_EXITED', `node ${id} exited with ${code}`)),
      );
    });
    return node;
  }

  node(id: string): NodeProcess {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** Kills with `signal` and waits for the process to be gone. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const node = this.node(id);
    node.kill(signal);
    await node.exited;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((id) => this.kill(id, 'SIGTERM')));
  }
}

/**
 * `count` ports on 127.0.0.1 that were free a moment ago, for nodes started next. They are
 * drawn below the kernel's ephemeral range: a port the kernel handed out for a listener on
 * port 0 is also what it hands out as the local port of outgoing connections, and one of
 * those (any HTTP request on the machine) could take it before the node listens.
 */
export async function freePorts(count: number): Promise<number[]> {
  const ephemeralLow = await ephemeralRangeStart();
  const low = 10_000;
  const ports: number[] = [];
  // A machine whose ephemeral range starts low leaves no room below it: the kernel picks.
  const tryCount = ephemeralLow - low >= 1_000 ? count * 50 : 0;
  for (let tries = 0; ports.length < count && tries < tryCount; tries++) {
    const port = low + Math.floor(Math.random() * (ephemeralLow - low));
    if (!ports.includes(port) && (await canListen(port))) ports.push(port);
  }
  while (ports.length < count) ports.push(await kernelPort());
  return ports;
}

/** The first port the kernel hands out for outgoing connections (Linux), or a guess. */
export async function ephemeralRangeStart(): Promise<number> {
  try {
    const text = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
    const low = Number(text.trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : 32_768;
  } catch {
    return 32_768; // Linux's default; elsewhere a guess that is right on most systems
  }
}

/** Whether a listener on 127.0.0.1:`port` could be opened a moment ago. */
export function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close(() => reject(new Error('no port bound')));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
