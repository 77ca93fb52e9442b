/**
 * etcd (Debian's etcd-server 3.4) as three `etcd` processes on 127.0.0.1 with their default
 * durability: the WAL is fsynced before a proposal counts as persisted on each member, so
 * a put is acknowledged only once a majority has it on disk. One message is one put of a
 * new key (`bench/<n>`, a 256-byte value) through the `etcd3` client (gRPC, @grpc/grpc-js)
 * connected to the leader.
 */
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { freePorts } from '../../src/cli/process-cluster.ts';
import { startCluster, stopServers, waitFor } from './processes.ts';
import type { ClusterOptions, Durability, RunningCluster } from './system.ts';
import { packageVersion } from './versions.ts';

export const etcdDurability: Durability = {
  fsyncBeforeAck: true,
  note: 'the WAL is fsynced on a majority before a put is acknowledged',
};

interface MemberStatus {
  readonly header: { readonly member_id: string };
  readonly leader: string;
  readonly version: string;
}

async function memberStatus(clientUrl: string): Promise<MemberStatus> {
  const response = await fetch(`${clientUrl}/v3/maintenance/status`, {
    method: 'POST',
    body: '{}',
    signal: AbortSignal.timeout(2000),
  });
  if (!response.ok) throw new Error(`status ${response.status}`);
  return (await response.json()) as MemberStatus;
}

export async function startEtcd(options: ClusterOptions): Promise<RunningCluster> {
  const ids = ['n1', 'n2', 'n3'];
  const ports = await freePorts(ids.length * 2);
  const clientUrls = ids.map((_, at) => `http://127.0.0.1:${ports[at]}`);
  const peerUrls = ids.map((_, at) => `http://127.0.0.1:${ports[ids.length + at]}`);
  const initialCluster = ids.map((id, at) => `${id}=${peerUrls[at]}`).join(',');
  const { servers, ready } = await startCluster({
    root: options.root,
    system: 'etcd',
    member: async (at) => ({
      command: 'etcd',
      args: [
        ...['--name', ids[at]!, '--data-dir', join(options.root, ids[at]!)],
        ...['--listen-client-urls', clientUrls[at]!, '--advertise-client-urls', clientUrls[at]!],
        ...['--listen-peer-urls', peerUrls[at]!, '--initial-advertise-peer-urls', peerUrls[at]!],
        ...['--initial-cluster', initialCluster, '--initial-cluster-state', 'new'],
        ...['--initial-cluster-token', 'bench-compare', '--logger', 'zap', '--log-level', 'warn'],
      ],
    }),
    ready: async (servers) => {
      const leaderUrl = await waitFor('an etcd leader', servers, async () => {
        for (const url of clientUrls) {
          const status = await memberStatus(url);
          if (status.leader !== '0' && status.header.member_id === status.leader) return url;
        }
        return null;
      });
      return { leaderUrl, version: (await memberStatus(leaderUrl)).version };
    },
  });
  const payload = Buffer.alloc(options.payloadBytes, 'x');
  let keyCount = 0; // every message a new key, across the levels
  return {
    version: `etcd ${ready.version}`,
    serverPids: servers.map((server) => server.child.pid ?? 0),
    ways: [
      {
        id: 'etcd',
        client: `etcd3 ${packageVersion('etcd3')} (gRPC)`,
        open: async () => {
          const client = new Etcd3({ hosts: ready.leaderUrl });
          return {
            send: async () => {
              await client.put(`bench/${keyCount++}`).value(payload).exec();
            },
            close: async () => client.close(),
          };
        },
      },
    ],
    stop: () => stopServers(servers),
  };
}
