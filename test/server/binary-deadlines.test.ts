// The binary port's deadlines on a connection, over real sockets to a real in-process leader,
// with the port's clock in the test's hands (ManualEnvironment): a frame begun and left
// unfinished gets a goAway `frame_timeout` and a close once the frame deadline (the request
// timeout) has passed since its first byte, and not before; a connection past its hello
// with nothing in flight that sends nothing for the idle timeout gets `idle_timeout` and is
// closed; a connection with a subscription open or a request held in flight is not closed
// however long it is quiet; a client that sends requests and stops reading, or stops
// reading an open stream, so that the node's buffer stays full, is cut off with no goAway
// once it took nothing for the idle timeout, and not before, while one that reads slowly
// (each stall shorter than that, all of them longer) keeps its connection; and the SDK whose connection was closed for idleness sends its
// next broadcast on a new one, with no error, its session going on. The idle timeout is a
// setting refused when it is no positive integer or more than a timer holds, and
// `abcast start --binary-idle-timeout-ms` reaches the port.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { BinaryServer } from '../../src/server/binary-server.ts';
import { InProcessServer } from '../../src/server/in-process.ts';
import { createServerContext } from '../../src/server/settings.ts';
import { kill, spawnCli } from '../cli/helpers.ts';
import { freePorts, waitFor } from '../support/ports.ts';
import { getFrame, RawConnection } from './binary-connection.ts';
import {
  broadcast,
  type ClusterMember,
  type HttpCluster,
  logger,
  startHttpCluster,
} from './cluster.ts';
import { ManualEnvironment, settle } from './manual-environment.ts';

let cluster: HttpCluster;
let leader: ClusterMember;
const closes: (() => Promise<void>)[] = [];

before(async () => {
  cluster = await startHttpCluster();
  leader = await cluster.leader();
});

after(async () => {
  for (const close of closes) await close();
  await cluster.close();
});

/** A binary port on the leader whose clock moves only when the test says. */
async function serve(settings: {
  readonly requestTimeoutMs: number;
  readonly binaryIdleTimeoutMs: number;
}): Promise<{ port: number; clock: ManualEnvironment; server: BinaryServer }> {
  const clock = new ManualEnvironment();
  const context = createServerContext({
    node: leader.node,
    logger,
    peers: cluster.peers,
    environment: clock,
    ...settings,
  });
  const inProcess = new InProcessServer(context);
  const server = new BinaryServer({
    context,
    dispatcher: inProcess.dispatcher,
    tls: null,
    windowRequests: 16,
  });
  const port = Number(new URL(await server.listen('127.0.0.1:0')).port);
  closes.push(async () => {
    server.closeConnections();
    await server.stopListening();
    await inProcess.close();
  });
  return { port, clock, server };
}

/** The connection gets a goAway with `code`, then is closed. */
async function endsWith(connection: RawConnection, code: string): Promise<void> {
  const goAway = await connection.frame((frame) => frame.type === 'goAway');
  assert.equal(goAway.type === 'goAway' && goAway.code, code);
  assert.equal(goAway.requestId, 0);
  await waitFor(() => connection.closed, 'the connection closed');
}

/** A status request answered proves the connection open and read. */
async function answersStatus(connection: RawConnection, requestId: number): Promise<void> {
  connection.get(requestId, '/v1/status');
  assert.equal((await connection.answer(requestId)).status, 200);
  assert.equal(connection.closed, false);
}

const statusRequest = (requestId: number) => getFrame(requestId, '/v1/status');

test('a frame left half-sent gets frame_timeout and a close once the request timeout passed', async () => {
  const { port, clock } = await serve({ requestTimeoutMs: 2000, binaryIdleTimeoutMs: 600_000 });
  const connection = new RawConnection(port);
  try {
    await connection.hello('');
    // A whole request and the first bytes of the next in one write: the answer to the first
    // says the node has read the second's beginning too.
    const second = statusRequest(2);
    connection.send(Buffer.concat([statusRequest(1), second.subarray(0, 7)]));
    assert.equal((await connection.answer(1)).status, 200);
    await clock.advance(1500);
    // Not yet: the rest of the frame, sent now, is read and answered.
    connection.send(second.subarray(7));
    assert.equal((await connection.answer(2)).status, 200);
    // A frame begun in the chunk that ends another is timed from that chunk, not the other's
    // first byte: 1500 + 1000 ms after the fourth began, the fifth, begun 1000 ms ago, is read.
    const fourth = statusRequest(4);
    const fifth = statusRequest(5);
    connection.send(Buffer.concat([statusRequest(3), fourth.subarray(0, 4)]));
    assert.equal((await connection.answer(3)).status, 200);
    await clock.advance(1500);
    connection.send(Buffer.concat([fourth.subarray(4), fifth.subarray(0, 9)]));
    assert.equal((await connection.answer(4)).status, 200);
    await clock.advance(1000);
    connection.send(fifth.subarray(9));
    assert.equal((await connection.answer(5)).status, 200);
    // The length prefix, then nothing more.
    connection.send(Buffer.concat([statusRequest(6), statusRequest(7).subarray(0, 4)]));
    assert.equal((await connection.answer(6)).status, 200);
    await clock.advance(2000);
    await endsWith(connection, 'frame_timeout');
  } finally {
    connection.close();
  }
});

test('a connection idle after its hello gets idle_timeout and a close; before, it serves', async () => {
  const { port, clock } = await serve({ requestTimeoutMs: 600_000, binaryIdleTimeoutMs: 5000 });
  const connection = new RawConnection(port);
  try {
    await connection.hello('');
    await clock.advance(4000);
    // A request resets the idle time: 4 + 4 seconds is not 5 seconds of idleness.
    await answersStatus(connection, 1);
    await clock.advance(4000);
    await answersStatus(connection, 2);
    await clock.advance(5000);
    await endsWith(connection, 'idle_timeout');
  } finally {
    connection.close();
  }
});

test('an open subscription or a request held in flight keeps a quiet connection open', async () => {
  const { port, clock } = await serve({ requestTimeoutMs: 600_000, binaryIdleTimeoutMs: 1000 });
  const streaming = new RawConnection(port);
  const holding = new RawConnection(port);
  try {
    await streaming.hello('');
    streaming.get(1, '/v1/stream?from=1');
    await streaming.frame((frame) => frame.type === 'streamHead' && frame.requestId === 1);
    await holding.hello('');
    holding.post(1, '/v1/broadcast', { payload: 1, client: 'held-idle', seq: 1 });
    assert.equal((await holding.answer(1)).status, 200);
    // Seq 3 waits for seq 2, which has not come: the request stays in flight.
    holding.post(2, '/v1/broadcast', { payload: 3, client: 'held-idle', seq: 3 });
    // Read in order: once this is answered, the node has the held request.
    await answersStatus(holding, 3);
    await clock.advance(1000);
    await clock.advance(30_000);
    await answersStatus(streaming, 2);
    await answersStatus(holding, 5);
    assert.ok(!streaming.frames.some((frame) => frame.type === 'goAway'));
    assert.ok(!holding.frames.some((frame) => frame.type === 'goAway'));
    // Once the held request is answered the connection is idle: the timeout counts from then.
    holding.post(4, '/v1/broadcast', { payload: 2, client: 'held-idle', seq: 2 });
    assert.equal((await holding.answer(4)).status, 200);
    assert.equal((await holding.answer(2)).status, 200);
    await clock.advance(1000);
    await endsWith(holding, 'idle_timeout');
  } finally {
    streaming.close();
    holding.close();
  }
});

test('the SDK whose connection was closed for idleness sends its next broadcast on a new one', async () => {
  const { port, clock, server } = await serve({
    requestTimeoutMs: 600_000,
    binaryIdleTimeoutMs: 1000,
  });
  const client = connect({ endpoints: [`abcast://127.0.0.1:${port}`], clientId: 'idle-sdk' });
  try {
    const first = await client.broadcast({ n: 1 });
    // The first run's own connection (the node's answer shows it knows runs) ends once idle.
    await waitFor(() => server.connectionCount === 1, 'one connection left');
    await clock.advance(1000);
    await waitFor(() => server.connectionCount === 0, 'the idle connection closed');
    const second = await client.broadcast({ n: 2 });
    assert.equal(second.duplicate, false);
    assert.ok((second.position ?? 0) > (first.position ?? 0));
    assert.equal(server.connectionCount, 1);
  } finally {
    client.close();
  }
});

/**
 * A port as `serve` makes, with a connection accepted by the test's own listener and handed
 * to the port, so that the test sees the node's end: when its buffer is full, when it is gone.
 */
async function serveWithNodeEnd(settings: {
  readonly requestTimeoutMs: number;
  readonly binaryIdleTimeoutMs: number;
}): Promise<{
  connection: RawConnection;
  nodeEnd: Socket;
  clock: ManualEnvironment;
  server: BinaryServer;
}> {
  const { clock, server } = await serve(settings);
  const nodeEnds: Socket[] = [];
  const listener = createNetServer((socket) => {
    nodeEnds.push(socket);
    server.acceptConnection(socket);
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  closes.push(() => new Promise((resolve) => listener.close(() => resolve())));
  const connection = new RawConnection((listener.address() as AddressInfo).port);
  await connection.hello('');
  const nodeEnd = nodeEnds[0];
  assert.ok(nodeEnd !== undefined);
  return { connection, nodeEnd, clock, server };
}

/** Where pages of about 4 MiB begin (`bigPagePath`): 0 before they are broadcast. */
let bigMessagesFromPosition = 0;

/**
 * A read of messages answered with a page of about 4 MiB (the page's bound): more than the
 * kernel's buffers of a loopback connection take (a few MiB) once two are sent.
 */
async function bigPagePath(): Promise<string> {
  const count = 6;
  if (bigMessagesFromPosition === 0) {
    for (let at = 0; at < count; at++) {
      const answer = await broadcast(leader.url, { payload: 'x'.repeat(800 << 10) });
      assert.equal(answer.status, 200);
      if (at === 0) bigMessagesFromPosition = answer.body.index;
    }
  }
  return `/v1/messages?from=${bigMessagesFromPosition}&limit=${count}`;
}

/**
 * Sends page reads, ids from `firstRequestId` on, until the node's buffer for this
 * connection is full (it stopped reading); returns the next id.
 */
async function fillNodeEnd(
  connection: RawConnection,
  nodeEnd: Socket,
  firstRequestId: number,
): Promise<number> {
  const path = await bigPagePath();
  let requestId = firstRequestId;
  while (!nodeEnd.writableNeedDrain) {
    const bytesReadBefore = nodeEnd.bytesRead;
    connection.get(requestId++, path);
    await waitFor(
      () => nodeEnd.writableNeedDrain || nodeEnd.bytesRead > bytesReadBefore,
      'the node read the request or stopped reading',
    );
    await settle();
  }
  return requestId;
}

test('a client that sends requests and never reads is cut off once it took nothing for the idle timeout', async () => {
  const { connection, nodeEnd, clock, server } = await serveWithNodeEnd({
    requestTimeoutMs: 600_000,
    binaryIdleTimeoutMs: 5000,
  });
  try {
    connection.pause();
    await fillNodeEnd(connection, nodeEnd, 1);
    await clock.advance(4000);
    assert.equal(nodeEnd.destroyed, false, 'not before the bound');
    assert.equal(server.connectionCount, 1);
    await clock.advance(1000);
    assert.equal(nodeEnd.destroyed, true, 'cut off at the bound');
    await waitFor(() => server.connectionCount === 0, 'the connection gone from the port');
    // What the client reads now: some answers, then the close, with no goAway.
    connection.resume();
    await waitFor(() => connection.closed, 'the client saw the close');
    assert.ok(!connection.frames.some((frame) => frame.type === 'goAway'));
  } finally {
    connection.close();
  }
});

test('a client that reads slowly keeps its connection; once it stops for the idle timeout, it does not', async () => {
  const { connection, nodeEnd, clock, server } = await serveWithNodeEnd({
    requestTimeoutMs: 600_000,
    binaryIdleTimeoutMs: 5000,
  });
  try {
    let nextRequestId = 1;
    // Three stalls of 4 s each: 12 s with the node's buffer full, but never 5 s at a time.
    for (let round = 0; round < 3; round++) {
      connection.pause();
      nextRequestId = await fillNodeEnd(connection, nodeEnd, nextRequestId);
      await clock.advance(4000);
      connection.resume();
      const answered = nextRequestId - 1;
      await waitFor(
        () => connection.frames.filter((frame) => frame.type === 'answer').length === answered,
        'every request answered',
      );
    }
    assert.equal(nodeEnd.destroyed, false);
    assert.equal(server.connectionCount, 1);
    connection.pause();
    await fillNodeEnd(connection, nodeEnd, nextRequestId);
    await clock.advance(5000);
    assert.equal(nodeEnd.destroyed, true, 'a reader that stopped is cut off');
  } finally {
    connection.close();
  }
});

test('a subscription whose reader stops reading is cut off once it took nothing for the idle timeout', async () => {
  const { connection, nodeEnd, clock, server } = await serveWithNodeEnd({
    requestTimeoutMs: 600_000,
    binaryIdleTimeoutMs: 5000,
  });
  try {
    await bigPagePath();
    connection.pause();
    connection.get(1, `/v1/stream?from=${bigMessagesFromPosition}`);
    await waitFor(() => nodeEnd.writableNeedDrain, 'the stream held back');
    await settle();
    await clock.advance(4000);
    assert.equal(nodeEnd.destroyed, false, 'not before the bound');
    await clock.advance(1000);
    assert.equal(nodeEnd.destroyed, true, 'cut off at the bound');
    await waitFor(() => server.connectionCount === 0, 'the connection gone from the port');
  } finally {
    connection.close();
  }
});

test('the idle timeout is a positive integer of milliseconds that a timer holds', () => {
  for (const binaryIdleTimeoutMs of [0, -1, 1.5, 2 ** 31]) {
    assert.throws(
      () =>
        createServerContext({
          node: leader.node,
          logger,
          environment: new ManualEnvironment(),
          binaryIdleTimeoutMs,
        }),
      (error: { code?: string; details?: { field?: string } }) =>
        error.code === 'invalid_argument' && error.details?.field === 'binaryIdleTimeoutMs',
    );
  }
});

test('abcast start --binary-idle-timeout-ms closes an idle connection of its port', async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-binary-idle-'));
  const [peerPort, httpPort, binaryPort] = (await freePorts(3)) as [number, number, number];
  const node = spawnCli([
    'start',
    ...['--id', 'n1', '--data', join(root, 'n1'), '--listen', `127.0.0.1:${peerPort}`],
    ...['--http', `127.0.0.1:${httpPort}`, '--binary', `127.0.0.1:${binaryPort}`],
    ...['--peers', `n1=127.0.0.1:${peerPort}`, '--binary-idle-timeout-ms', '300'],
  ]);
  try {
    await waitFor(() => /binary abcast:\/\//.test(node.stdout()), 'the node up', 20_000);
    const connection = new RawConnection(binaryPort);
    try {
      await connection.hello('');
      await endsWith(connection, 'idle_timeout');
    } finally {
      connection.close();
    }
  } finally {
    await kill(node);
    await rm(root, { recursive: true, force: true });
  }
});
