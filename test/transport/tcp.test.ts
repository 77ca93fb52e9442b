// Proves the TCP transport survives hostile and broken peers on 127.0.0.1: garbage, lying or
// oversized lengths, half packets, silent or impersonating clients and bad handshakes each
// close only their own connection, with a log line, while the other links keep working; a
// blocked receiver leads to counted drops within the buffer bound, and a stalled link is
// redialled. Raw sockets play the hostile side.
import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { NodeId } from '../../src/raft/types.ts';
import { encodeFrame } from '../../src/transport/codec.ts';
import { TransportError } from '../../src/transport/errors.ts';
import { PacketSplitter } from '../../src/transport/framing.ts';
import { TcpTransport } from '../../src/transport/tcp.ts';
import type { TcpTransportOptions } from '../../src/transport/tcp-options.ts';
import type { Frame } from '../../src/transport/types.ts';
import { decodePacket, encodeHello, encodeWelcome, type Packet } from '../../src/transport/wire.ts';
import { closed, RecordingLogger, waitFor } from './helpers.ts';
import { testTiming } from './tcp-harness.ts';

function heartbeat(from: NodeId, to: NodeId, commit: number): Frame {
  return { type: 'Heartbeat', from, to, term: 1, commit, readRound: 0 };
}

function framed(packet: Uint8Array): Buffer {
  const bytes = Buffer.alloc(4 + packet.byteLength);
  bytes.writeUInt32BE(packet.byteLength, 0);
  bytes.set(packet, 4);
  return bytes;
}

function hostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
}

interface RawClient {
  readonly socket: Socket;
  readonly packets: Packet[];
  readonly closed: Promise<void>;
}

async function rawClient(address: string, localAddress?: string): Promise<RawClient> {
  const socket = connect({ ...hostPort(address), ...(localAddress ? { localAddress } : {}) });
  const packets: Packet[] = [];
  const splitter = new PacketSplitter(1 << 20);
  socket.on('data', (chunk) => {
    splitter.push(chunk);
    for (let bytes = splitter.next(); bytes !== null; bytes = splitter.next())
      packets.push(decodePacket(bytes));
  });
  socket.on('error', () => {});
  const done = closed(socket);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, packets, closed: done };
}

/** A raw client that completes the handshake as `from`. */
async function trustedClient(address: string, from: NodeId, to: NodeId): Promise<RawClient> {
  const client = await rawClient(address);
  client.socket.write(framed(encodeHello({ version: 1, clusterId: 'test', from, to })));
  await waitFor(() => client.packets.length > 0, 'the welcome');
  assert.deepStrictEqual(client.packets[0], { kind: 'Welcome', nodeId: to });
  return client;
}

interface Pair {
  readonly a: TcpTransport;
  readonly b: TcpTransport;
  readonly atB: Frame[];
  readonly logB: RecordingLogger;
  /** Frames a→b still flow. */
  assertLinkWorks(): Promise<void>;
  close(): Promise<void>;
}

let commitCounter = 0;

/** Transports a and b, peers of each other; b also trusts "x", played by raw sockets. */
async function startPair(
  context: TestContext,
  extra: Partial<TcpTransportOptions> = {},
): Promise<Pair> {
  const logB = new RecordingLogger();
  const make = (nodeId: NodeId, logger: RecordingLogger) =>
    new TcpTransport({
      ...testTiming,
      ...extra,
      nodeId,
      clusterId: 'test',
      listenAddress: '127.0.0.1:0',
      logger,
    });
  const a = make('a', new RecordingLogger());
  const b = make('b', logB);
  context.after(async () => {
    await a.close();
    await b.close();
  });
  await a.start();
  await b.start();
  const peers = new Map([
    ['a', a.address()],
    ['b', b.address()],
    ['x', '127.0.0.1:9'],
  ]);
  a.setPeers(peers);
  b.setPeers(peers);
  const atB: Frame[] = [];
  b.onFrame((frame) => atB.push(frame));
  return {
    a,
    b,
    atB,
    logB,
    // Resends while it waits, as Raft's heartbeats would: frames queued on a link that
    // fails are dropped, not kept for the next connection.
    async assertLinkWorks() {
      const commit = ++commitCounter;
      await waitFor(() => {
        a.send([heartbeat('a', 'b', commit)]);
        return atB.some((arrived) => arrived.type === 'Heartbeat' && arrived.commit === commit);
      }, 'a frame from a');
    },
    async close() {
      await a.close();
      await b.close();
    },
  };
}

test('garbage from a client closes that connection only', async (t) => {
  const pair = await startPair(t);
  await pair.assertLinkWorks();
  const garbage = [
    Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
    Buffer.concat([Buffer.from([0, 0, 0, 12]), Buffer.from('not a hello!')]),
    Buffer.from([0, 0, 0, 0]),
  ];
  for (const bytes of garbage) {
    const client = await rawClient(pair.b.address());
    client.socket.write(bytes);
    await client.closed;
    await pair.assertLinkWorks();
  }
  assert.equal(pair.b.stats().protocolErrorCount, garbage.length);
  assert.ok(
    pair.logB.has((line) => line.fields.code === 'BAD_HANDSHAKE'),
    'refusals are logged',
  );
});

test('an oversized length closes a trusted connection before anything is buffered', async (t) => {
  const pair = await startPair(t, { frameBytesMax: 1 << 20 });
  const client = await trustedClient(pair.b.address(), 'x', 'b');
  client.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xf0]));
  await client.closed;
  assert.ok(
    pair.logB.has((line) => line.fields.code === 'PACKET_TOO_LARGE'),
    'logged with its reason',
  );
  await pair.assertLinkWorks();
});

test('half a frame followed by a close is logged and dropped', async (t) => {
  const pair = await startPair(t);
  const client = await trustedClient(pair.b.address(), 'x', 'b');
  const whole = framed(encodeFrame(heartbeat('x', 'b', 1)));
  client.socket.end(whole.subarray(0, whole.length - 3));
  await client.closed;
  await waitFor(
    () =>
      pair.logB.has(
        (line) =>
          line.message === 'transport connection closed' &&
          line.fields.reason === 'the peer closed inside a packet',
      ),
    'the log line',
  );
  assert.equal(pair.atB.length, 0);
  await pair.assertLinkWorks();
});

test('a client that never says hello is closed after the handshake timeout', async (t) => {
  const pair = await startPair(t, { handshakeTimeoutMs: 100 });
  const client = await rawClient(pair.b.address());
  await client.closed;
  assert.deepStrictEqual(client.packets[0], {
    kind: 'Refuse',
    code: 'BAD_HANDSHAKE',
    detail: 'no hello in time',
  });
});

test('bad handshakes are answered with a reason before the connection closes', async (t) => {
  const pair = await startPair(t);
  const cases = [
    [{ version: 1, clusterId: 'prod', from: 'x', to: 'b' }, 'WRONG_CLUSTER'],
    [{ version: 2, clusterId: 'test', from: 'x', to: 'b' }, 'UNSUPPORTED_VERSION'],
    [{ version: 1, clusterId: 'test', from: 'stranger', to: 'b' }, 'UNKNOWN_NODE'],
    [{ version: 1, clusterId: 'test', from: 'b', to: 'b' }, 'UNKNOWN_NODE'],
    [{ version: 1, clusterId: 'test', from: 'x', to: 'c' }, 'WRONG_NODE'],
  ] as const;
  for (const [hello, code] of cases) {
    const client = await rawClient(pair.b.address());
    client.socket.write(framed(encodeHello(hello)));
    await client.closed;
    assert.equal(client.packets[0]?.kind, 'Refuse');
    assert.equal(client.packets[0]?.kind === 'Refuse' && client.packets[0].code, code);
  }
  assert.equal(pair.b.stats().refusedConnectionCount, cases.length);
  await pair.assertLinkWorks();
});

test('a frame claiming another sender or another recipient closes the connection undelivered', async (t) => {
  const pair = await startPair(t);
  for (const frame of [heartbeat('a', 'b', 1), heartbeat('x', 'a', 1)]) {
    const client = await trustedClient(pair.b.address(), 'x', 'b');
    client.socket.write(framed(encodeFrame(frame)));
    await client.closed;
  }
  assert.equal(pair.atB.length, 0);
  assert.ok(pair.logB.has((line) => line.fields.code === 'WRONG_SENDER'));
  assert.ok(pair.logB.has((line) => line.fields.code === 'WRONG_RECIPIENT'));
  await pair.assertLinkWorks();
});

test('handshakes in progress are bounded; the oldest give way to newer ones', async (t) => {
  const pair = await startPair(t, { pendingConnectionCountMax: 3 });
  const clients: RawClient[] = [];
  for (let count = 0; count < 6; count++) clients.push(await rawClient(pair.b.address()));
  await waitFor(() => pair.b.stats().refusedConnectionCount >= 3, 'three made way');
  await Promise.all(clients.slice(0, 3).map((client) => client.closed));
  for (const client of clients) client.socket.destroy();
  await pair.assertLinkWorks();
});

test('silent connections cannot keep a peer out: few per address, the oldest give way', async (t) => {
  // 70 silent connections, most from one other loopback address, against 64 slots.
  const pair = await startPair(t, { pendingConnectionCountMax: 64, handshakeTimeoutMs: 60_000 });
  const silent = await Promise.all(
    Array.from({ length: 70 }, (_, count) =>
      rawClient(pair.b.address(), count < 60 ? '127.0.0.2' : `127.0.1.${count}`),
    ),
  );
  await waitFor(() => pair.b.stats().refusedConnectionCount >= 52, 'most turned away');
  // A restarted peer gets in at once, and its link works.
  await pair.a.close();
  const restarted = new TcpTransport({
    ...testTiming,
    nodeId: 'a',
    clusterId: 'test',
    listenAddress: '127.0.0.1:0',
    logger: new RecordingLogger(),
  });
  t.after(() => restarted.close());
  await restarted.start();
  restarted.setPeers(new Map([['b', pair.b.address()]]));
  await waitFor(() => {
    restarted.send([heartbeat('a', 'b', 777)]);
    return pair.atB.some((frame) => frame.type === 'Heartbeat' && frame.commit === 777);
  }, 'a frame from the restarted peer');
  for (const client of silent) client.socket.destroy();
});

interface FakePeer {
  readonly address: string;
  connectionCount(): number;
  close(): Promise<void>;
}

/** Listens on an ephemeral port; `close` destroys every connection, then the listener. */
async function listen(onConnection: (socket: Socket) => void): Promise<FakePeer> {
  const sockets = new Set<Socket>();
  let connectionCount = 0;
  const server: Server = createServer((socket) => {
    connectionCount++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    connectionCount: () => connectionCount,
    async close() {
      if (!server.listening) return;
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A fake peer that completes handshakes, then reads nothing more. */
function blockedPeer(): Promise<FakePeer> {
  return listen((socket) => {
    const splitter = new PacketSplitter(4096);
    socket.once('data', (chunk) => {
      splitter.push(chunk);
      const hello = decodePacket(splitter.next() ?? new Uint8Array(0));
      assert.equal(hello.kind, 'Hello');
      socket.write(framed(encodeWelcome(hello.kind === 'Hello' ? hello.to : 'b')));
      socket.pause();
    });
  });
}

test('a blocked receiver causes counted drops within the per-peer buffer bound', async (t) => {
  const peer = await blockedPeer();
  t.after(() => peer.close());
  const logger = new RecordingLogger();
  const peerBufferBytesMax = 2 * 1024 * 1024;
  const a = new TcpTransport({
    ...testTiming,
    nodeId: 'a',
    clusterId: 'test',
    listenAddress: '127.0.0.1:0',
    logger,
    frameBytesMax: 256 * 1024,
    peerBufferBytesMax,
    socketBufferBytesMax: 256 * 1024,
  });
  await a.start();
  t.after(() => a.close());
  a.setPeers(new Map([['b', peer.address]]));
  const data = new Uint8Array(64 * 1024);
  let index = 0;
  const append = (): Frame => ({
    type: 'Append',
    from: 'a',
    to: 'b',
    term: 1,
    prevLogIndex: index,
    prevLogTerm: 1,
    commit: 0,
    entries: [{ index: ++index, term: 1, kind: 'normal', data }],
  });
  await waitFor(
    () => {
      a.send([append(), append(), append(), append()]);
      const stats = a.stats();
      assert.ok(
        (stats.peers.b?.bufferedBytes ?? 0) <= peerBufferBytesMax,
        'the buffer bound holds',
      );
      return stats.droppedFrameCountByReason.bufferFull > 100;
    },
    'drops at the bound',
    20_000,
  );
  const stats = a.stats();
  assert.ok(stats.sentFrameCount > 0, 'frames left until the kernel buffers filled');
  assert.ok(stats.sentBytes < index * 64 * 1024, 'most frames never reached the socket');
});

test('a link whose writes stall is torn down and redialled', async (t) => {
  const peer = await blockedPeer();
  t.after(() => peer.close());
  const logger = new RecordingLogger();
  const a = new TcpTransport({
    ...testTiming,
    nodeId: 'a',
    clusterId: 'test',
    listenAddress: '127.0.0.1:0',
    logger,
    writeStallTimeoutMs: 100,
  });
  await a.start();
  t.after(() => a.close());
  a.setPeers(new Map([['b', peer.address]]));
  const data = new Uint8Array(256 * 1024);
  await waitFor(
    () => {
      a.send([{ type: 'Forward', from: 'a', to: 'b', requestId: 1, data }]);
      return peer.connectionCount() >= 2;
    },
    'a second connection',
    10_000,
  );
  assert.ok(logger.has((line) => line.fields.reason === 'writes stalled'));
});

test('small frames sent in one turn leave in a few large writes', async (t) => {
  let chunkCount = 0;
  let byteCount = 0;
  const peer = await listen((socket) => {
    socket.once('data', (hello) => {
      const splitter = new PacketSplitter(4096);
      splitter.push(hello);
      splitter.next();
      socket.write(framed(encodeWelcome('b')));
      socket.on('data', (chunk) => {
        chunkCount++;
        byteCount += chunk.byteLength;
      });
    });
  });
  t.after(() => peer.close());
  const a = new TcpTransport({
    ...testTiming,
    nodeId: 'a',
    clusterId: 'test',
    listenAddress: '127.0.0.1:0',
    logger: new RecordingLogger(),
  });
  await a.start();
  t.after(() => a.close());
  a.setPeers(new Map([['b', peer.address]]));
  a.send([heartbeat('a', 'b', 0)]);
  await waitFor(() => a.stats().peers.b?.state === 'open' && chunkCount === 1, 'the link');
  const frames = Array.from({ length: 2_000 }, (_, commit) => heartbeat('a', 'b', commit + 1));
  const expectedBytes =
    byteCount + frames.reduce((sum, frame) => sum + 4 + encodeFrame(frame).byteLength, 0);
  chunkCount = 0;
  a.send(frames);
  await waitFor(() => byteCount === expectedBytes, 'all bytes');
  assert.ok(chunkCount <= 10, `2,000 frames arrived in ${chunkCount} chunks`);
});

test('a peer that moves to a new address is followed', async (t) => {
  const pair = await startPair(t);
  await pair.assertLinkWorks();
  const moved = new TcpTransport({
    ...testTiming,
    nodeId: 'b',
    clusterId: 'test',
    listenAddress: '127.0.0.1:0',
    logger: new RecordingLogger(),
  });
  await moved.start();
  t.after(() => moved.close());
  moved.setPeers(new Map([['a', pair.a.address()]]));
  const atMoved: Frame[] = [];
  moved.onFrame((frame) => atMoved.push(frame));
  pair.a.setPeers(new Map([['b', moved.address()]]));
  await waitFor(() => {
    pair.a.send([heartbeat('a', 'b', 7)]);
    return atMoved.length > 0;
  }, 'delivery at the new address');
});

test('bad options, addresses and a taken port fail with typed errors', async (t) => {
  const base = {
    nodeId: 'a',
    clusterId: 'test',
    listenAddress: '127.0.0.1:0',
    logger: new RecordingLogger(),
  };
  const code = (run: () => unknown) => {
    try {
      run();
    } catch (error) {
      return error instanceof TransportError ? error.code : 'other';
    }
    return 'none';
  };
  assert.equal(
    code(() => new TcpTransport({ ...base, nodeId: '' })),
    'INVALID_OPTIONS',
  );
  assert.equal(
    code(() => new TcpTransport({ ...base, frameBytesMax: 10 })),
    'INVALID_OPTIONS',
  );
  assert.equal(
    code(() => new TcpTransport({ ...base, peerBufferBytesMax: 1.5 })),
    'INVALID_OPTIONS',
  );
  assert.equal(
    code(() => new TcpTransport({ ...base, listenAddress: 'nowhere' })),
    'INVALID_ADDRESS',
  );
  const a = new TcpTransport(base);
  await a.start();
  t.after(() => a.close());
  a.setPeers(new Map([['b', '127.0.0.1:1']]));
  assert.equal(
    code(() => a.setPeers(new Map([['b', 'bad address']]))),
    'INVALID_ADDRESS',
  );
  assert.deepStrictEqual(Object.keys(a.stats().peers), ['b'], 'the old map stays in force');
  const clash = new TcpTransport({ ...base, listenAddress: a.address() });
  await assert.rejects(
    clash.start(),
    (error: unknown) => error instanceof TransportError && error.code === 'LISTEN_FAILED',
  );
  await assert.rejects(
    a.start(),
    (error: unknown) => error instanceof TransportError && error.code === 'INVALID_STATE',
  );
});
