/**
 * ZooKeeper (Debian's zookeeper 3.8) as three QuorumPeerMain JVMs on 127.0.0.1 with the
 * default durability: `forceSync=yes`, so the transaction log is fsynced before a proposal
 * is acknowledged to the leader, and a write is acknowledged once a majority has it on disk.
 * One message is one create of a persistent sequential znode (`/bench/m-`, 256 bytes of
 * data), a log append, through `node-zookeeper-client` (pure JS) connected to the leader.
 */

import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { freePorts } from '../../src/cli/process-cluster.ts';
import { startCluster, stopServers, waitFor } from './processes.ts';
import type { ClusterOptions, Durability, RunningCluster } from './system.ts';
import { packageVersion } from './versions.ts';

export const zookeeperDurability: Durability = {
  fsyncBeforeAck: true,
  note: 'forceSync=yes (the default): the transaction log is fsynced on a majority first',
};

export const zookeeperJar = '/usr/share/java/zookeeper.jar';

/** The few calls of node-zookeeper-client used here (it ships no type declarations). */
interface ZooKeeperClient {
  connect(): void;
  close(): void;
  once(event: 'connected', listener: () => void): void;
  create(
    path: string,
    data: Buffer,
    mode: number,
    callback: (error: Error | null, path?: string) => void,
  ): void;
}
interface ZooKeeperModule {
  createClient(connection: string, options: { sessionTimeout: number }): ZooKeeperClient;
  CreateMode: { PERSISTENT: number; PERSISTENT_SEQUENTIAL: number };
}
const zookeeper = createRequire(import.meta.url)('node-zookeeper-client') as ZooKeeperModule;

/** The answer to the `srvr` four-letter command: version, mode (leader, follower), counts. */
function fourLetter(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => socket.end(command));
    const chunks: Buffer[] = [];
    socket.setTimeout(2000, () => socket.destroy(new Error('timeout')));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

async function connected(port: number): Promise<ZooKeeperClient> {
  const client = zookeeper.createClient(`127.0.0.1:${port}`, { sessionTimeout: 30_000 });
  await new Promise<void>((resolve) => {
    client.once('connected', resolve);
    client.connect();
  });
  return client;
}

function create(client: ZooKeeperClient, path: string, data: Buffer, mode: number) {
  return new Promise<void>((resolve, reject) => {
    client.create(path, data, mode, (error) => (error === null ? resolve() : reject(error)));
  });
}

async function writeConfig(root: string, at: number, ports: readonly number[]): Promise<string> {
  const dataDir = join(root, `n${at + 1}`);
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, 'myid'), `${at + 1}\n`);
  const lines = [
    'tickTime=2000',
    'initLimit=10',
    'syncLimit=5',
    `dataDir=${dataDir}`,
    `clientPort=${ports[at]}`,
    'clientPortAddress=127.0.0.1',
    'admin.enableServer=false',
    '4lw.commands.whitelist=srvr',
    ...[0, 1, 2].map(
      (peer) => `server.${peer + 1}=127.0.0.1:${ports[3 + peer]}:${ports[6 + peer]}`,
    ),
  ];
  const path = join(root, `n${at + 1}.cfg`);
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

export async function startZooKeeper(options: ClusterOptions): Promise<RunningCluster> {
  const ports = await freePorts(9); // client, quorum and election port of each
  const clientPorts = ports.slice(0, 3);
  const { servers, ready } = await startCluster({
    root: options.root,
    system: 'zookeeper',
    member: async (at) => ({
      command: 'java',
      args: [
        ...['-Xmx512m', '-Dzookeeper.admin.enableServer=false', '-cp', zookeeperJar],
        ...['org.apache.zookeeper.server.quorum.QuorumPeerMain'],
        await writeConfig(options.root, at, ports),
      ],
    }),
    ready: async (servers) => {
      const leader = await waitFor('a ZooKeeper leader', servers, async () => {
        const answers = await Promise.all(clientPorts.map((port) => fourLetter(port, 'srvr')));
        if (!answers.every((answer) => /Mode: (leader|follower)/.test(answer))) return null;
        const at = answers.findIndex((answer) => answer.includes('Mode: leader'));
        return at < 0 ? null : { port: clientPorts[at]!, srvr: answers[at]! };
      });
      const setup = await connected(leader.port);
      await create(setup, '/bench', Buffer.alloc(0), zookeeper.CreateMode.PERSISTENT);
      setup.close();
      return leader;
    },
  });
  const version = /Zookeeper version: ([^,-]+)/.exec(ready.srvr)?.[1] ?? 'unknown';
  const payload = Buffer.alloc(options.payloadBytes, 'x');
  return {
    version: `ZooKeeper ${version}`,
    serverPids: servers.map((server) => server.child.pid ?? 0),
    ways: [
      {
        id: 'zookeeper',
        client: `node-zookeeper-client ${packageVersion('node-zookeeper-client')}`,
        open: async () => {
          const client = await connected(ready.port);
          const sequential = zookeeper.CreateMode.PERSISTENT_SEQUENTIAL;
          return {
            send: () => create(client, '/bench/m-', payload, sequential),
            close: async () => client.close(),
          };
        },
      },
    ],
    stop: () => stopServers(servers),
  };
}
