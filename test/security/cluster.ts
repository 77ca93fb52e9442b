/**
 * Three real `abcast start` processes on loopback for the attack tests: ports, data
 * directories, a leader every node agrees on, and plain HTTP helpers that see what an
 * attacker or a careless client would.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CliRun, kill, spawnCli } from '../cli/helpers.ts';
import { freePorts, waitFor } from '../support/ports.ts';

export interface NodeStatus {
  readonly term: number;
  readonly leader: string | null;
  readonly commitIndex: number;
}

export interface AttackCluster {
  readonly ids: readonly string[];
  /** The processes, by position; `restart` replaces one. */
  readonly nodes: CliRun[];
  dataDir(at: number): string;
  /** SIGKILLs the node at `at` and waits for its exit. */
  stop(at: number): Promise<void>;
  /** Starts the node at `at` again on its data directory, with the same flags. */
  restart(at: number): void;
  peerPort(at: number): number;
  httpUrl(at: number): string;
  status(at: number): Promise<NodeStatus>;
  /** A leader all three agree on, and its term. */
  agreedLeader(): Promise<{ readonly leader: string; readonly term: number; readonly at: number }>;
  post(at: number, path: string, body: unknown): Promise<{ status: number; body: unknown }>;
  /** A counter of /metrics (summed over its labels), or 0 when absent. */
  metric(at: number, name: string): Promise<number>;
  /** Everything the process at `at` wrote to stdout and stderr (its JSON log). */
  log(at: number): string;
  close(): Promise<void>;
}

export async function startAttackCluster(
  extraArgs: readonly string[] = [],
  /** Sent as `Authorization: Bearer` by the helpers, for a cluster started with --auth. */
  options: {
    readonly token?: string;
    /**
     * Each node is given the others' HTTP APIs (`--http-peers`, as `abcast dev` does): it
     * backfills positions it lacks from them and forwards reads of those positions.
     */
    readonly httpPeers?: boolean;
  } = {},
): Promise<AttackCluster> {
  const authorization: Record<string, string> =
    options.token === undefined ? {} : { authorization: `Bearer ${options.token}` };
  const ids = ['n1', 'n2', 'n3'];
  const root = await mkdtemp(join(tmpdir(), 'abcast-attack-'));
  const ports = await freePorts(6);
  const peerPort = (at: number) => ports[at] as number;
  const httpUrl = (at: number) => `http://127.0.0.1:${ports[at + 3]}`;
  const peers = ids.map((id, at) => `${id}=127.0.0.1:${peerPort(at)}`).join(',');
  const httpPeers = ids.map((id, at) => `${id}=${httpUrl(at)}`).join(',');
  const argsOf = (at: number) => [
    'start',
    ...['--id', ids[at] as string, '--data', join(root, ids[at] as string)],
    ...['--listen', `127.0.0.1:${peerPort(at)}`, '--http', `127.0.0.1:${ports[at + 3]}`],
    ...['--peers', peers, '--segment-bytes', String(1 << 20)],
    ...(options.httpPeers === true ? ['--http-peers', httpPeers] : []),
    ...extraArgs,
  ];
  const nodes = ids.map((_, at) => spawnCli(argsOf(at)));
  const status = async (at: number): Promise<NodeStatus> =>
    (
      await fetch(`${httpUrl(at)}/v1/status`, { headers: authorization })
    ).json() as Promise<NodeStatus>;
  const cluster: AttackCluster = {
    ids,
    nodes,
    dataDir: (at) => join(root, ids[at] as string),
    async stop(at) {
      await kill(nodes[at] as CliRun);
    },
    restart(at) {
      nodes[at] = spawnCli(argsOf(at));
    },
    peerPort,
    httpUrl,
    status,
    async agreedLeader() {
      let agreed: NodeStatus | null = null;
      await waitFor(
        async () => {
          try {
            const seen = await Promise.all(ids.map((_, at) => status(at)));
            const first = seen[0] as NodeStatus;
            const same = first.leader !== null && seen.every((s) => s.leader === first.leader);
            agreed = same ? first : null;
            return same;
          } catch {
            return false;
          }
        },
        'a leader known to all',
        30_000,
      );
      const { leader, term } = agreed as unknown as NodeStatus;
      return { leader: leader as string, term, at: ids.indexOf(leader as string) };
    },
    async post(at, path, body) {
      const answer = await fetch(`${httpUrl(at)}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...authorization },
        body: JSON.stringify(body),
      });
      const text = await answer.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not JSON: kept as text for the assertion message.
      }
      return { status: answer.status, body: parsed };
    },
    async metric(at, name) {
      const text = await (await fetch(`${httpUrl(at)}/metrics`, { headers: authorization })).text();
      let total = 0;
      for (const line of text.split('\n')) {
        if (!line.startsWith(name)) continue;
        const rest = line.slice(name.length);
        if (rest[0] !== ' ' && rest[0] !== '{') continue;
        total += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return total;
    },
    log(at) {
      const node = nodes[at];
      return `${node?.stdout() ?? ''}${node?.stderr() ?? ''}`;
    },
    async close() {
      await Promise.all(nodes.map((node) => kill(node)));
      await rm(root, { recursive: true, force: true });
    },
  };
  return cluster;
}
