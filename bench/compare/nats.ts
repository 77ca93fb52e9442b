/**
 * NATS JetStream (Debian's nats-server 2.9) as three `nats-server` processes clustered on
 * 127.0.0.1, one stream with 3 replicas on file storage, with the default durability: a
 * publish is acknowledged once a majority of the stream's replicas has stored it, but not
 * fsynced (the file store syncs on a timer, not before the acknowledgement). One message is one JetStream publish of 256 bytes through the `nats`
 * client (v2, pure JS) connected to the stream's leader.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type NatsConnection, StorageType } from 'nats';
import { freePorts } from '../../src/cli/process-cluster.ts';
import { startCluster, stopServers, waitFor } from './processes.ts';
import type { ClusterOptions, Durability, RunningCluster } from './system.ts';
import { packageVersion } from './versions.ts';

export const natsDurability: Durability = {
  fsyncBeforeAck: false,
  note: 'acknowledged once a majority of replicas stored it; their files are fsynced later, on a timer',
};

const streamName = 'BENCH';

async function writeConfig(root: string, at: number, ports: readonly number[]): Promise<string> {
  const storeDir = join(root, `n${at + 1}`);
  await mkdir(storeDir, { recursive: true });
  const routes = [0, 1, 2]
    .filter((peer) => peer !== at)
    .map((peer) => `nats-route://127.0.0.1:${ports[3 + peer]}`);
  const text = [
    `server_name: n${at + 1}`,
    `listen: 127.0.0.1:${ports[at]}`,
    `jetstream { store_dir: ${JSON.stringify(storeDir)}, max_memory_store: 256MB, max_file_store: 8GB }`,
    `cluster { name: bench, listen: 127.0.0.1:${ports[3 + at]}, routes: [${routes.join(', ')}] }`,
  ].join('\n');
  const path = join(root, `n${at + 1}.conf`);
  await writeFile(path, `${text}\n`);
  return path;
}

/** Creates the stream once JetStream's cluster has a leader; answers the stream's leader. */
async function createStream(connection: NatsConnection): Promise<string> {
  const manager = await connection.jetstreamManager({ timeout: 2000 });
  const info = await manager.streams.add({
    name: streamName,
    subjects: ['bench.>'],
    num_replicas: 3,
    storage: StorageType.File,
  });
  // A new stream elects its own leader a moment after it exists.
  const leader = info.cluster?.leader ?? (await manager.streams.info(streamName)).cluster?.leader;
  if (leader === undefined) throw new Error('stream without leader yet');
  return leader;
}

export async function startNats(options: ClusterOptions): Promise<RunningCluster> {
  const ports = await freePorts(6); // client and route port of each
  const clientUrls = ports.slice(0, 3).map((port) => `127.0.0.1:${port}`);
  const { servers, ready } = await startCluster({
    root: options.root,
    system: 'nats',
    member: async (at) => ({
      command: 'nats-server',
      args: ['-c', await writeConfig(options.root, at, ports)],
    }),
    ready: async (servers) => {
      const setup = await waitFor('NATS to accept a client', servers, () =>
        connect({ servers: clientUrls, timeout: 2000 }),
      );
      try {
        const leader = await waitFor('a JetStream stream with a leader', servers, async () => {
          const name = await createStream(setup).catch(async (error: Error) => {
            if (!/already in use/.test(error.message)) throw error;
            const manager = await setup.jetstreamManager();
            return (await manager.streams.info(streamName)).cluster?.leader;
          });
          return name ?? null;
        });
        return { leader, version: setup.info?.version ?? 'unknown' };
      } finally {
        await setup.close();
      }
    },
  });
  const leaderUrl = clientUrls[Number(ready.leader.slice(1)) - 1]!;
  const payload = Buffer.alloc(options.payloadBytes, 'x');
  return {
    version: `NATS ${ready.version}`,
    serverPids: servers.map((server) => server.child.pid ?? 0),
    ways: [
      {
        id: 'nats',
        client: `nats.js ${packageVersion('nats')}`,
        open: async () => {
          const connection = await connect({ servers: leaderUrl });
          const jetstream = connection.jetstream();
          return {
            send: async () => {
              await jetstream.publish('bench.m', payload);
            },
            close: () => connection.close(),
          };
        },
      },
    ],
    stop: () => stopServers(servers),
  };
}
