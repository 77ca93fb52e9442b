// Proves the replicated state machine on a real 3-node cluster through both adapters: SDK
// clients (HTTP, topic-filtered streams with progress) and in-process nodes. Replicas agree,
// reads through any replica see writes acknowledged through any other, other topics'
// traffic never stalls a read, and a stopped node does not stop an SDK replica.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientLog } from '../../src/agents/client-log.ts';
import { ReplicatedStateMachine } from '../../src/agents/rsm.ts';
import type { StateMachine } from '../../src/agents/state-machine.ts';
import { type Client, connect } from '../../src/client/index.ts';
import { metric, scrape, startHttpCluster } from '../server/cluster.ts';

interface Counters {
  values: Record<string, number>;
  lastTime: number;
}
type Increment = { key: string; by: number };

const counters: StateMachine<Counters, Increment, number> = {
  initialState: () => ({ values: {}, lastTime: 0 }),
  parseCommand(payload) {
    const command = payload as Increment;
    if (typeof command?.key !== 'string' || !Number.isInteger(command.by)) {
      throw new Error('an increment is {key, by}');
    }
    return command;
  },
  apply(state, command, context) {
    assert.ok(context.time >= state.lastTime, 'log time never goes back');
    state.lastTime = context.time;
    state.values[command.key] = (state.values[command.key] ?? 0) + command.by;
    return state.values[command.key] as number;
  },
};

test('SDK replicas agree, read their writes, and survive a stopped node', async () => {
  const cluster = await startHttpCluster();
  const urls = cluster.members.map((member) => member.url);
  // Each client prefers a different node, so the replicas read from different nodes.
  const clients: Client[] = urls.map((_, at) =>
    connect({ endpoints: [...urls.slice(at), ...urls.slice(0, at)], requestTimeoutMs: 2_000 }),
  );
  const replicas = await Promise.all(
    clients.map((client) =>
      ReplicatedStateMachine.start({
        log: client,
        topic: 'counters',
        machine: counters,
        checkDeterminism: true,
      }),
    ),
  );
  try {
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, n) => replicas[n % 3]!.submit({ key: `k${n % 4}`, by: 1 })),
    );
    assert.equal(answers.length, 60);
    // Other topics' traffic between reads: progress marks keep reads from waiting on it.
    await clients[0]!.broadcast({ noise: true }, { topic: 'elsewhere' });
    await clients[0]!.broadcast({ noise: true }, { topic: 'elsewhere' });
    for (const replica of replicas) {
      const values = await replica.read((state) => state.values);
      assert.deepEqual(values, { k0: 15, k1: 15, k2: 15, k3: 15 });
    }
    // Read-your-writes through another replica: linearizable read after an acknowledgement.
    await replicas[0]!.submit({ key: 'x', by: 5 });
    assert.equal(await replicas[2]!.read((state) => state.values.x), 5);

    const stopped = await cluster.follower();
    await cluster.stopNode(stopped.id);
    for (let n = 0; n < 20; n++) await replicas[n % 3]!.submit({ key: 'after', by: 1 });
    const views = await Promise.all(replicas.map((replica) => replica.read()));
    for (const view of views) assert.deepEqual(view, views[0]);
    assert.equal(views[0]!.values.after, 20);
  } finally {
    await Promise.all(replicas.map((replica) => replica.close()));
    for (const client of clients) client.close();
    await cluster.close();
  }
});

test('in-process node replicas agree and read linearizably', async () => {
  const cluster = await startHttpCluster();
  const replicas = await Promise.all(
    cluster.members.map((member) =>
      ReplicatedStateMachine.start({ log: member.node, topic: 'counters', machine: counters }),
    ),
  );
  try {
    await Promise.all(
      Array.from({ length: 30 }, (_, n) => replicas[n % 3]!.submit({ key: 'n', by: n })),
    );
    await cluster.members[1]!.node.broadcast(Buffer.from('"noise"'), { topic: 'elsewhere' });
    for (const replica of replicas) {
      assert.equal(await replica.read((state) => state.values.n), 435);
    }
    const follower = await cluster.follower();
    const onFollower = replicas[cluster.members.indexOf(follower)]!;
    await assert.rejects(onFollower.submit({ key: 1 } as never), { code: 'invalid_argument' });
  } finally {
    await Promise.all(replicas.map((replica) => replica.close()));
    await cluster.close();
  }
});

test('replicas pinned to different nodes read from those nodes and agree', async () => {
  const cluster = await startHttpCluster();
  const urls = cluster.members.map((member) => member.url);
  const client = connect({ endpoints: urls, requestTimeoutMs: 2_000 });
  const replicas = await Promise.all(
    urls.map((url) =>
      ReplicatedStateMachine.start({
        log: new ClientLog(client, { readFrom: url }),
        topic: 'pinned',
        machine: counters,
      }),
    ),
  );
  try {
    for (let n = 0; n < 30; n++) await replicas[n % 3]!.submit({ key: 'p', by: 1 });
    for (const url of urls) {
      assert.equal(metric(await scrape(url), 'abcast_http_streams_open'), 1, url);
    }
    const views = await Promise.all(replicas.map((replica) => replica.read()));
    for (const view of views) assert.deepEqual(view, views[0]);
    assert.equal(views[0]!.values.p, 30);
    const stray = client.subscribe({ endpoint: 'http://127.0.0.1:1' });
    await assert.rejects(stray.next(), { code: 'invalid_argument' });
  } finally {
    await Promise.all(replicas.map((replica) => replica.close()));
    client.close();
    await cluster.close();
  }
});
