/**
 * abcast as three `abcast start` processes on 127.0.0.1 (what `abcast dev` runs), each
 * serving HTTP and the binary client protocol, with the default durability: a message is
 * acknowledged once a majority has fsynced it. Driven through the SDK (`connect` of
 * src/client) over HTTP and over the binary protocol; and, for abcast alone, one
 * POST /v1/broadcast per message on kept-alive connections, and a subscriber catching up
 * from position 1.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { openPostLoad } from '../../src/cli/commands/post-load.ts';
import { freePorts } from '../../src/cli/process-cluster.ts';
import { connect } from '../../src/client/index.ts';
import { startCluster, stopServers, waitFor } from './processes.ts';
import type { CatchUp } from './results.ts';
import type { ClusterOptions, Durability, RunningCluster, Sender, Way } from './system.ts';
import { abcastVersion } from './versions.ts';

export const abcastDurability: Durability = {
  fsyncBeforeAck: true,
  note: 'the WAL is fsynced on a majority before a broadcast is acknowledged',
};

const mainEntry = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

interface NodeStatus {
  readonly id: string;
  readonly role: string;
  readonly leader: string | null;
  readonly deliveredIndex: number;
  readonly binary: string | null;
}

async function nodeStatus(url: string): Promise<NodeStatus> {
  const response = await fetch(`${url}/v1/status`, { signal: AbortSignal.timeout(2000) });
  if (!response.ok) throw new Error(`status ${response.status}`);
  return (await response.json()) as NodeStatus;
}

export interface AbcastCluster extends RunningCluster {
  /** The leader's HTTP origin, where the POST row's load goes. */
  readonly postOrigin: string;
  /** The POST row's request body: the race's payload. */
  readonly postBody: string;
  /** One POST /v1/broadcast per message to the leader, on `connections` kept-alive sockets. */
  openPost(connections: number): Sender;
  /** Writes until the log holds `messages`, then reads positions 1..messages through the SDK. */
  catchUp(messages: number): Promise<CatchUp>;
}

function sdkWay(id: string, client: string, endpoints: readonly string[], payload: string): Way {
  return {
    id,
    client,
    open: async (inFlight) => {
      // HTTP endpoints stay HTTP here: the SDK would otherwise move to the binary port.
      const sdk = connect({ endpoints, inFlightMax: Math.max(256, inFlight), protocol: 'http' });
      return {
        send: async () => {
          await sdk.broadcast(payload);
        },
        close: async () => sdk.close(),
      };
    },
  };
}

export async function startAbcast(options: ClusterOptions): Promise<AbcastCluster> {
  // The quotes of the JSON string take two of the bytes.
  const payload = 'x'.repeat(Math.max(0, options.payloadBytes - 2));
  const ids = ['n1', 'n2', 'n3'];
  const ports = await freePorts(ids.length * 3);
  const peers = ids.map((id, at) => `${id}=127.0.0.1:${ports[at]}`).join(',');
  const httpUrls = ids.map((_, at) => `http://127.0.0.1:${ports[3 + at]}`);
  const binaryUrls = ids.map((_, at) => `abcast://127.0.0.1:${ports[6 + at]}`);
  const { servers, ready: leaderAt } = await startCluster({
    root: options.root,
    system: 'abcast',
    member: async (at) => ({
      command: process.execPath,
      args: [
        ...['--import', 'tsx', mainEntry, 'start', '--id', ids[at]!],
        ...['--data', join(options.root, ids[at]!), '--listen', `127.0.0.1:${ports[at]}`],
        ...['--http', `127.0.0.1:${ports[3 + at]}`, '--binary', `127.0.0.1:${ports[6 + at]}`],
        ...['--peers', peers, '--cluster-id', 'abcast-bench-compare', '--log-level', 'warn'],
      ],
    }),
    ready: (servers) =>
      waitFor('an abcast leader', servers, async () => {
        const statuses = await Promise.all(httpUrls.map(nodeStatus));
        const leader = statuses[0]?.leader ?? null;
        if (leader === null || !statuses.every((status) => status.leader === leader)) return null;
        return ids.indexOf(leader);
      }),
  });
  const leaderFirst = (urls: readonly string[]) => [
    urls[leaderAt]!,
    ...urls.filter((_, at) => at !== leaderAt),
  ];
  const leaderUrl = new URL(httpUrls[leaderAt]!);
  const postBody = JSON.stringify({ payload });
  return {
    version: `abcast ${abcastVersion()}`,
    serverPids: servers.map((server) => server.child.pid ?? 0),
    ways: [
      sdkWay('abcast-sdk-http', 'abcast SDK, HTTP/JSON', leaderFirst(httpUrls), payload),
      sdkWay('abcast-sdk-binary', 'abcast SDK, binary protocol', leaderFirst(binaryUrls), payload),
    ],
    postOrigin: leaderUrl.origin,
    postBody,
    openPost: (connections) => {
      const load = openPostLoad({
        origin: leaderUrl.origin,
        connectionCount: connections,
        body: postBody,
      });
      return { send: load.send, close: load.close };
    },
    catchUp: (messages) =>
      catchUp(
        { httpUrls: leaderFirst(httpUrls), binaryUrls: leaderFirst(binaryUrls), payload },
        messages,
      ),
    stop: () => stopServers(servers),
  };
}

const fillInFlight = 256;

/** Tops the log up to `messages` (not timed), then times one subscriber reading them all. */
async function catchUp(
  cluster: {
    readonly httpUrls: readonly string[];
    readonly binaryUrls: readonly string[];
    readonly payload: string;
  },
  messages: number,
): Promise<CatchUp> {
  const { httpUrls, binaryUrls, payload } = cluster;
  const written = (await nodeStatus(httpUrls[0]!)).deliveredIndex;
  if (written < messages) {
    // A window the SDK of today carries well: the fill is not what is measured.
    const writer = connect({ endpoints: binaryUrls, inFlightMax: fillInFlight });
    let next = written;
    const fill = async () => {
      while (next++ < messages) await writer.broadcast(payload);
    };
    await Promise.all(Array.from({ length: fillInFlight }, fill));
    writer.close();
  }
  const overHttp = await readAll(httpUrls, messages);
  const overBinary = await readAll(binaryUrls, messages);
  return { messages, ...overHttp, binary: overBinary };
}

/** Times one SDK subscriber reading positions 1..messages through `endpoints`. */
async function readAll(
  endpoints: readonly string[],
  messages: number,
): Promise<{ seconds: number; messagesPerSecond: number }> {
  const reader = connect({ endpoints, protocol: 'http' });
  const abort = new AbortController();
  const startedMs = performance.now();
  let count = 0;
  for await (const message of reader.subscribe({ from: 1, signal: abort.signal })) {
    count++;
    if (message.position >= messages) break;
  }
  const seconds = (performance.now() - startedMs) / 1000;
  abort.abort();
  reader.close();
  if (count !== messages) throw new Error(`the subscriber read ${count} of ${messages} messages`);
  return { seconds: Number(seconds.toFixed(3)), messagesPerSecond: Math.round(messages / seconds) };
}
