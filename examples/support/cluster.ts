/**
 * The cluster an example runs against: either three real `abcast start` processes on
 * 127.0.0.1 that this process owns (free ports, a temp data directory removed at the end,
 * faults by signal: SIGKILL is a crash), or an existing cluster given by its HTTP endpoints,
 * where faults are not ours to inject. Readiness is always polled through GET /v1/status
 * (a leader known), never waited for by sleeping.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../../src/cli/process-cluster.ts';
import { assert } from '../../src/util/assert.ts';
import { ExampleError, pollUntil } from './errors.ts';

/** What an example needs of a cluster. */
export interface Cluster {
  /** HTTP base URLs, one per node, in `ids` order. */
  readonly endpoints: readonly string[];
  readonly ids: readonly string[];
  /** True when this process started the nodes, so `kill` and `restart` work. */
  readonly ownsNodes: boolean;
  endpointOf(id: string): string;
  /** The node that currently leads, as the nodes that answer see it; null if none. */
  leaderId(): Promise<string | null>;
  /** Sends `signal` to the node's process and waits until it is gone. */
  kill(id: string, signal: NodeJS.Signals): Promise<void>;
  /** Starts a killed node again on its data directory; resolves once it knows a leader. */
  restart(id: string): Promise<void>;
  /** Stops the nodes this process started and removes their data; idempotent. */
  stop(): Promise<void>;
}

/** The subset of GET /v1/status the examples read. */
export interface NodeStatus {
  readonly id: string;
  readonly role: string;
  readonly leader: string | null;
  readonly deliveredIndex: number;
}

const statusTimeoutMs = 1_000;
const readyTimeoutMs = 30_000;
const stopTimeoutMs = 10_000;
/** Small preallocated WAL segments: an example writes a few MiB, not the default 64. */
const segmentBytes = 8 * 1024 * 1024;
/** The last bytes of a node's stderr, kept to explain an unexpected exit. */
const stderrTailBytesMax = 4_096;

const cliEntry = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
/** tsx resolved from here, so the nodes start whatever the caller's working directory. */
const tsxLoader = import.meta.resolve('tsx');

/** GET /v1/status of one node; null when it does not answer in time. */
export async function fetchStatus(endpoint: string): Promise<NodeStatus | null> {
  try {
    const response = await fetch(`${endpoint}/v1/status`, {
      signal: AbortSignal.timeout(statusTimeoutMs),
    });
    if (!response.ok) return null;
    const status = (await response.json()) as NodeStatus;
    return typeof status?.id === 'string' ? status : null;
  } catch {
    return null;
  }
}

/** Resolves once every one of `endpoints` answers and names the same leader. */
export async function waitForLeader(endpoints: readonly string[], timeoutMs: number) {
  return pollUntil(
    async () => {
      const statuses = await Promise.all(endpoints.map(fetchStatus));
      const leaders = new Set(statuses.map((status) => status?.leader ?? null));
      if (statuses.includes(null) || leaders.size !== 1 || leaders.has(null)) return undefined;
      return statuses as NodeStatus[];
    },
    `a leader known by ${endpoints.join(', ')}`,
    timeoutMs,
  );
}

/** The cluster at `endpoints` (comma-separated or a list), or a new local one of 3 nodes. */
export async function openCluster(endpoints?: readonly string[] | null): Promise<Cluster> {
  if (endpoints === undefined || endpoints === null || endpoints.length === 0) {
    return LocalCluster.start({ nodeCount: 3 });
  }
  return ExternalCluster.open(endpoints);
}

class ExternalCluster implements Cluster {
  readonly ownsNodes = false;

  private constructor(
    readonly endpoints: readonly string[],
    readonly ids: readonly string[],
  ) {}

  static async open(endpoints: readonly string[]): Promise<ExternalCluster> {
    for (const endpoint of endpoints) {
      if (!/^https?:\/\/[^/]+\/?$/.test(endpoint)) {
        throw new ExampleError(
          'invalid_argument',
          `an endpoint is a base URL like http://127.0.0.1:8001, got "${endpoint}"`,
          { field: 'endpoints' },
        );
      }
    }
    const trimmed = endpoints.map((endpoint) => endpoint.replace(/\/+$/, ''));
    const statuses = await waitForLeader(trimmed, readyTimeoutMs).catch((error: Error) => {
      throw new ExampleError('cluster_not_ready', `the cluster is not ready: ${error.message}`);
    });
    return new ExternalCluster(
      trimmed,
      statuses.map((status) => status.id),
    );
  }

  endpointOf(id: string): string {
    const at = this.ids.indexOf(id);
    if (at < 0) throw new ExampleError('unknown_node', `no node ${id} among ${this.ids}`);
    return this.endpoints[at] as string;
  }

  async leaderId(): Promise<string | null> {
    return leaderAmong(this.endpoints);
  }

  kill(id: string): Promise<void> {
    return Promise.reject(notOurs(id));
  }

  restart(id: string): Promise<void> {
    return Promise.reject(notOurs(id));
  }

  async stop(): Promise<void> {}
}

function notOurs(id: string): ExampleError {
  return new ExampleError(
    'faults_unavailable',
    `node ${id} belongs to a cluster this process did not start; it cannot kill or restart it`,
  );
}

async function leaderAmong(endpoints: readonly string[]): Promise<string | null> {
  const statuses = await Promise.all(endpoints.map(fetchStatus));
  for (const status of statuses) if (status?.role === 'leader') return status.id;
  return statuses.find((status) => status?.leader)?.leader ?? null;
}

interface LocalNode {
  readonly id: string;
  readonly endpoint: string;
  readonly args: readonly string[];
  child: ChildProcess | null;
  exited: Promise<void>;
  stderrTail: string;
}

/** Three (or `nodeCount`) `abcast start` processes owned by this process. */
export class LocalCluster implements Cluster {
  readonly ownsNodes = true;
  private stopped: Promise<void> | null = null;
  private readonly onExit = () => this.killAllNow();

  private constructor(
    private readonly nodes: readonly LocalNode[],
    private readonly root: string,
  ) {
    // Should this process end without stop() (a failed test, Ctrl-C), take the nodes with it.
    process.once('exit', this.onExit);
  }

  static async start(options: { readonly nodeCount: number }): Promise<LocalCluster> {
    const count = options.nodeCount;
    assert(Number.isSafeInteger(count) && count >= 1 && count <= 9, 'a cluster has 1–9 nodes');
    const root = await mkdtemp(join(tmpdir(), 'abcast-example-'));
    const ports = await freePorts(count * 2);
    const ids = Array.from({ length: count }, (_, at) => `n${at + 1}`);
    const peers = ids.map((id, at) => `${id}=127.0.0.1:${ports[at]}`).join(',');
    const nodes = ids.map((id, at): LocalNode => {
      const http = `127.0.0.1:${ports[count + at]}`;
      const args = ['--id', id, '--data', join(root, id), '--listen', `127.0.0.1:${ports[at]}`];
      args.push('--http', http, '--peers', peers, '--cluster-id', 'abcast-example');
      args.push('--segment-bytes', String(segmentBytes), '--log-level', 'error');
      return {
        id,
        endpoint: `http://${http}`,
        args,
        child: null,
        exited: Promise.resolve(),
        stderrTail: '',
      };
    });
    const cluster = new LocalCluster(nodes, root);
    try {
      for (const node of nodes) cluster.launch(node);
      await cluster.waitReady(cluster.endpoints);
    } catch (error) {
      const tails = nodes.map((node) => `${node.id}: ${node.stderrTail.trim() || '(no output)'}`);
      await cluster.stop();
      throw new ExampleError(
        'cluster_start_failed',
        `the local cluster did not come up: ${(error as Error).message}\n${tails.join('\n')}`,
      );
    }
    return cluster;
  }

  get endpoints(): readonly string[] {
    return this.nodes.map((node) => node.endpoint);
  }

  get ids(): readonly string[] {
    return this.nodes.map((node) => node.id);
  }

  endpointOf(id: string): string {
    return this.node(id).endpoint;
  }

  async leaderId(): Promise<string | null> {
    return leaderAmong(this.nodes.filter((node) => this.isRunning(node)).map((n) => n.endpoint));
  }

  async kill(id: string, signal: NodeJS.Signals): Promise<void> {
    const node = this.node(id);
    if (!this.isRunning(node)) return;
    node.child?.kill(signal);
    await node.exited;
  }

  async restart(id: string): Promise<void> {
    const node = this.node(id);
    if (this.stopped !== null) throw new ExampleError('invalid_argument', 'the cluster is stopped');
    if (this.isRunning(node)) throw new ExampleError('invalid_argument', `node ${id} still runs`);
    this.launch(node);
    await this.waitReady([node.endpoint]);
  }

  stop(): Promise<void> {
    this.stopped ??= this.stopAll();
    return this.stopped;
  }

  private node(id: string): LocalNode {
    const node = this.nodes.find((candidate) => candidate.id === id);
    if (node === undefined) throw new ExampleError('unknown_node', `no node ${id} in ${this.ids}`);
    return node;
  }

  private isRunning(node: LocalNode): boolean {
    return node.child !== null && node.child.exitCode === null && node.child.signalCode === null;
  }

  private launch(node: LocalNode): void {
    const child = spawn(
      process.execPath,
      ['--import', tsxLoader, cliEntry, 'start', ...node.args],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    node.child = child;
    node.stderrTail = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      node.stderrTail = (node.stderrTail + text).slice(-stderrTailBytesMax);
    });
    node.exited = new Promise((done) => {
      child.once('exit', () => done());
      child.once('error', () => done());
    });
  }

  /** Polls until the nodes answer and agree on a leader; fails early if one of them exits. */
  private async waitReady(endpoints: readonly string[]): Promise<void> {
    const watched = this.nodes.filter((node) => endpoints.includes(node.endpoint));
    await pollUntil(
      async () => {
        const dead = watched.find((node) => !this.isRunning(node));
        if (dead !== undefined) {
          throw new ExampleError(
            'cluster_start_failed',
            `node ${dead.id} exited: ${dead.stderrTail.trim() || '(no output)'}`,
          );
        }
        const statuses = await Promise.all(endpoints.map(fetchStatus));
        const ready = statuses.every((status) => status !== null && status.leader !== null);
        return ready ? true : undefined;
      },
      `nodes ${watched.map((node) => node.id).join(', ')} to know a leader`,
      readyTimeoutMs,
    );
  }

  private async stopAll(): Promise<void> {
    for (const node of this.nodes) if (this.isRunning(node)) node.child?.kill('SIGTERM');
    const timer = setTimeout(() => this.killAllNow(), stopTimeoutMs);
    await Promise.all(this.nodes.map((node) => node.exited));
    clearTimeout(timer);
    process.removeListener('exit', this.onExit);
    await rm(this.root, { recursive: true, force: true });
  }

  private killAllNow(): void {
    for (const node of this.nodes) if (this.isRunning(node)) node.child?.kill('SIGKILL');
    if (this.stopped === null) rmSync(this.root, { recursive: true, force: true });
  }
}

/** `endpoints` starting at the `first`th: a client that prefers that node, then the rest. */
export function endpointsPreferring(endpoints: readonly string[], first: number): string[] {
  const at = first % endpoints.length;
  return [...endpoints.slice(at), ...endpoints.slice(0, at)];
}
