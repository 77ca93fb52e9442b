// The SDK against a node of a build from before the broadcastRun frame (this repository's
// own history, test/cluster/builds.ts): its runs go as batch requests over the binary port
// instead, every broadcast is delivered once, in order; the node is asked with a run once,
// on a connection of its own, so the goAway it answers the unknown frame with breaks no call
// on the shared connection; and an http:// endpoint that upgrades to that port does the same.
import assert from 'node:assert/strict';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { type Build, buildUnavailable, checkoutBuild } from '../cluster/builds.ts';
import { type BinaryNode, startBinaryNode } from '../support/binary-node.ts';
import { waitFor } from '../support/ports.ts';

/** The last build whose binary port does not know broadcastRun frames. */
const runlessBuild = process.env.ABCAST_RUNLESS_BUILD ?? '0eb56fecac83a6da311e3cd6de8ea21830ff7251';

const skip = await buildUnavailable(runlessBuild);
let build: Build | null = null;
let node: BinaryNode | null = null;
let httpUrl = '';
let binaryUrl = '';

before(async () => {
  if (skip !== null) return;
  build = await checkoutBuild(runlessBuild);
  node = await startBinaryNode({ name: 'runless', entryPath: build.entry, startMsMax: 60_000 });
  ({ httpUrl, binaryUrl } = node);
  await waitFor(async () => {
    const status = await fetch(`${httpUrl}/v1/status`);
    return ((await status.json()) as { role?: string }).role === 'leader';
  }, 'the old node leading');
});

after(async () => {
  await node?.stop();
  await build?.remove();
});

/** Each seq of `clientId` delivered once, in seq order; their positions. */
async function deliveredOnce(clientId: string, count: number): Promise<number[]> {
  const page = (await (await fetch(`${httpUrl}/v1/messages?from=1&limit=1000`)).json()) as {
    messages: { index: number; client: string; seq: number; payload: unknown }[];
  };
  const mine = page.messages.filter((message) => message.client === clientId);
  assert.deepEqual(
    mine.map((message) => message.seq),
    Array.from({ length: count }, (_, at) => at + 1),
  );
  assert.deepEqual(
    mine.map((message) => message.payload),
    Array.from({ length: count }, (_, at) => ({ at })),
  );
  return mine.map((message) => message.index);
}

async function broadcastAll(endpoint: string, clientId: string, count: number): Promise<void> {
  const client = connect({ endpoints: [endpoint], clientId });
  try {
    for (let round = 0; round < 2; round++) {
      const half = count / 2;
      const answers = await Promise.all(
        Array.from({ length: half }, (_, at) => client.broadcast({ at: round * half + at })),
      );
      assert.ok(answers.every((answer) => !answer.duplicate));
    }
  } finally {
    client.close();
  }
}

/** A TCP relay to `port` that counts the connections it was asked for. */
async function countingRelay(
  port: number,
): Promise<{ server: Server; url: string; count: () => number }> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    const upstream = netConnect({ host: '127.0.0.1', port });
    socket.pipe(upstream).pipe(socket);
    const close = () => {
      socket.destroy();
      upstream.destroy();
    };
    socket.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, url: `abcast://127.0.0.1:${address.port}`, count: () => count };
}

test('an older node gets the runs as batch requests: each broadcast once, in order', {
  skip: skip ?? false,
  timeout: 120_000,
}, async () => {
  const relay = await countingRelay(Number(new URL(binaryUrl).port));
  try {
    await broadcastAll(relay.url, 'runless-binary', 40);
    // One probe that the old node closed, and the shared connection it never broke.
    assert.equal(relay.count(), 2);
  } finally {
    relay.server.close();
  }
  await deliveredOnce('runless-binary', 40);
  await broadcastAll(httpUrl, 'runless-upgraded', 40);
  await deliveredOnce('runless-upgraded', 40);
});
