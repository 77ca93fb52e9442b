// A peer of another protocol version, on real TCP sockets on 127.0.0.1, both ways round. A
// node called by a newer peer answers its Hello with a Refuse naming both versions, logs the
// peer and both versions, and never delivers what the caller sends after it. A node whose
// peer answers in a newer version, or refuses it, logs the link as refused (an error, not a
// peer that is down) naming both versions, and keeps its other links. Raw sockets play the
// newer release: Hello and Refuse keep their layout in every version (wire.ts).
import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer, type Server } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { NodeId } from '../../src/raft/types.ts';
import { encodeFrame } from '../../src/transport/codec.ts';
import { PacketSplitter } from '../../src/transport/framing.ts';
import { TcpTransport } from '../../src/transport/tcp.ts';
import type { Frame } from '../../src/transport/types.ts';
import {
  decodePacket,
  encodeHello,
  encodeRefuse,
  encodeWelcome,
  type Packet,
  protocolVersion,
  type RefuseCode,
} from '../../src/transport/wire.ts';
import { closed, framed, packetsOf, RecordingLogger, waitFor } from './helpers.ts';
import { testTiming } from './tcp-harness.ts';

const newerVersion = protocolVersion + 1;

function heartbeat(from: NodeId, to: NodeId, commit: number): Frame {
  return { type: 'Heartbeat', from, to, term: 1, commit, readRound: 0 };
}

async function startNode(context: TestContext, nodeId: NodeId, logger: RecordingLogger) {
  const transport = new TcpTransport({
    ...testTiming,
    nodeId,
    clusterId: 'test',
    listenAddress: '127.0.0.1:0',
    logger,
  });
  context.after(() => transport.close());
  await transport.start();
  return transport;
}

test('a Hello of a newer protocol version is refused naming both, and nothing after it is used', async (t) => {
  const log = new RecordingLogger();
  const node = await startNode(t, 'b', log);
  node.setPeers(new Map([['x', '127.0.0.1:9']]));
  const delivered: Frame[] = [];
  node.onFrame((frame) => delivered.push(frame));
  const [host, port] = node.address().split(':') as [string, string];
  const socket = connect({ host, port: Number(port) });
  socket.on('error', () => {});
  const packets = packetsOf(socket);
  const done = closed(socket);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  // The newer caller says hello, then sends at once, as a node that assumed a welcome would.
  socket.write(
    framed(encodeHello({ version: newerVersion, clusterId: 'test', from: 'x', to: 'b' })),
  );
  socket.write(framed(encodeFrame(heartbeat('x', 'b', 7))));
  await done;

  assert.deepEqual(packets, [
    {
      kind: 'Refuse',
      code: 'UNSUPPORTED_VERSION',
      detail: `x speaks peer protocol version ${newerVersion}; b speaks version ${protocolVersion}`,
    },
  ]);
  assert.deepEqual(delivered, [], 'no frame of the refused connection reaches the node');
  const line = log.lines.find((one) => one.fields.code === 'UNSUPPORTED_VERSION');
  assert.equal(line?.message, 'transport refused a connection');
  assert.equal(line?.fields.peer, 'x');
  assert.equal(line?.fields.peerVersion, newerVersion);
  assert.equal(line?.fields.version, protocolVersion);
  assert.equal(node.stats().refusedConnectionCount, 1);
});

/** A listener that reads each Hello and answers it with `reply`, then closes. */
async function fakePeer(
  t: TestContext,
  reply: Buffer,
): Promise<{ server: Server; hellos: Packet[] }> {
  const hellos: Packet[] = [];
  const server = createServer((socket) => {
    socket.on('error', () => {});
    const splitter = new PacketSplitter(1 << 20);
    socket.on('data', (chunk) => {
      splitter.push(chunk);
      const bytes = splitter.next();
      if (bytes === null) return;
      hellos.push(decodePacket(bytes));
      socket.end(framed(reply));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { server, hellos };
}

/** The Welcome a node of the newer release would send: its own version byte. */
function newerWelcome(nodeId: NodeId): Buffer {
  const welcome = encodeWelcome(nodeId);
  welcome[0] = newerVersion;
  return welcome;
}

function newerRefusal(code: RefuseCode, detail: string): Buffer {
  const refusal = encodeRefuse(code, detail);
  refusal[0] = newerVersion;
  return refusal;
}

test('a peer that answers in a newer version, or refuses this node, is logged as refused', async (t) => {
  const cases = [
    {
      reply: newerWelcome('z'),
      reason: `z answers in peer protocol version ${newerVersion}; this node speaks version ${protocolVersion}`,
      fields: { code: 'UNSUPPORTED_VERSION', peerVersion: newerVersion, version: protocolVersion },
    },
    {
      reply: newerRefusal('UNSUPPORTED_VERSION', `a speaks peer protocol version 1; z speaks 2`),
      reason: 'refused by peer',
      fields: {
        code: 'UNSUPPORTED_VERSION',
        detail: 'a speaks peer protocol version 1; z speaks 2',
      },
    },
  ];
  for (const { reply, reason, fields } of cases) {
    const log = new RecordingLogger();
    const node = await startNode(t, 'a', log);
    const peer = await fakePeer(t, reply);
    const { port } = peer.server.address() as AddressInfo;
    const other = await startNode(t, 'b', new RecordingLogger());
    const atOther: Frame[] = [];
    other.onFrame((frame) => atOther.push(frame));
    const peers = new Map([
      ['a', node.address()],
      ['b', other.address()],
      ['z', `127.0.0.1:${port}`],
    ]);
    node.setPeers(peers);
    other.setPeers(peers);
    node.send([heartbeat('a', 'z', 1), heartbeat('a', 'b', 1)]);
    await waitFor(
      () => log.has((line) => line.message === 'transport link refused'),
      'the refused link logged',
    );
    const line = log.lines.find((one) => one.message === 'transport link refused');
    assert.equal(line?.level, 'error');
    assert.equal(line?.fields.peer, 'z');
    assert.equal(line?.fields.reason, reason);
    for (const [key, value] of Object.entries(fields)) assert.equal(line?.fields[key], value, key);
    assert.deepEqual(peer.hellos[0], {
      kind: 'Hello',
      version: protocolVersion,
      clusterId: 'test',
      from: 'a',
      to: 'z',
    });
    assert.notEqual(node.stats().peers.z?.state, 'open', 'the refused link is never used');
    // The other links carry on.
    await waitFor(() => atOther.length > 0, 'a frame to b');
  }
});

test('a peer shutting down is an ordinary link down, not a refusal', async (t) => {
  const log = new RecordingLogger();
  const node = await startNode(t, 'a', log);
  const peer = await fakePeer(t, encodeRefuse('SHUTTING_DOWN', 'z is stopping'));
  const { port } = peer.server.address() as AddressInfo;
  node.setPeers(new Map([['z', `127.0.0.1:${port}`]]));
  node.send([heartbeat('a', 'z', 1)]);
  await waitFor(
    () => log.has((line) => line.fields.code === 'SHUTTING_DOWN'),
    'the refusal logged',
  );
  const line = log.lines.find((one) => one.fields.code === 'SHUTTING_DOWN');
  assert.equal(line?.level, 'warn');
  assert.equal(line?.message, 'transport link down');
});
