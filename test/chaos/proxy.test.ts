// The chaos fault proxy between a dialler and a stand-in node on 127.0.0.1: it learns the
// dialler from its Hello, forwards frames untouched when healthy, loses or doubles only Raft
// frames (never the link's own packets), and a cut swallows the link both ways until healed.
import assert from 'node:assert/strict';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { FaultProxy, healthyLink } from '../../src/chaos/proxy.ts';
import { freePorts } from '../../src/cli/process-cluster.ts';
import { encodeHello, protocolVersion } from '../../src/transport/wire.ts';
import { Prng } from '../../src/util/prng.ts';

/** A length-prefixed packet whose second byte is `type` (a Raft frame below 0x40). */
function packet(type: number, marker: number): Buffer {
  const body = Buffer.from([protocolVersion, type, marker]);
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(body.length);
  return Buffer.concat([prefix, body]);
}

function hello(from: string): Buffer {
  const body = encodeHello({ version: protocolVersion, clusterId: 'chaos', from, to: 'n2' });
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(body.length);
  return Buffer.concat([prefix, body]);
}

/** A stand-in node: collects every byte received, answers each connection with "W". */
async function standIn(port: number): Promise<{ server: Server; received: () => Buffer }> {
  const chunks: Buffer[] = [];
  const server = createServer((socket) => {
    socket.write('W');
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, received: () => Buffer.concat(chunks) };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 5_000;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function dial(port: number): Promise<{ socket: Socket; answers: () => string }> {
  let answers = '';
  const socket = createConnection(port, '127.0.0.1');
  socket.on('data', (chunk: Buffer) => {
    answers += chunk.toString();
  });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  return { socket, answers: () => answers };
}

/** The markers of the frames a stand-in received after the Hello, in order. */
function markers(bytes: Buffer, helloBytes: number): number[] {
  const found: number[] = [];
  for (let at = helloBytes; at + 7 <= bytes.length; at += 7) found.push(bytes[at + 6] as number);
  return found;
}

test('healthy, lossy, doubling and cut links', async () => {
  const [nodePort, proxyPort] = (await freePorts(2)) as [number, number];
  const node = await standIn(nodePort);
  const proxy = new FaultProxy({
    nodeId: 'n2',
    targetHost: '127.0.0.1',
    targetPort: nodePort,
    listenPort: proxyPort,
    random: new Prng(1),
  });
  await proxy.start();
  try {
    const helloBytes = hello('n1').length;
    // Healthy: everything through, in order, and the answer comes back.
    const first = await dial(proxyPort);
    first.socket.write(Buffer.concat([hello('n1'), packet(1, 1), packet(1, 2)]));
    await until(() => node.received().length === helloBytes + 14, 'two frames');
    assert.deepEqual(markers(node.received(), helloBytes), [1, 2]);
    await until(() => first.answers() === 'W', 'the answer');

    // Loss 1: frames vanish, a link packet (0x44, a snapshot chunk) still passes.
    proxy.setFaults('n1', { ...healthyLink, lossRate: 1 });
    first.socket.write(Buffer.concat([packet(1, 3), packet(0x44, 4)]));
    await until(() => node.received().length === helloBytes + 21, 'the link packet');
    assert.deepEqual(markers(node.received(), helloBytes), [1, 2, 4]);

    // Duplication 1: each frame arrives twice; other senders are untouched.
    proxy.setFaults('n1', { ...healthyLink, duplicateRate: 1 });
    first.socket.write(packet(1, 5));
    await until(() => node.received().length === helloBytes + 35, 'the doubled frame');
    assert.deepEqual(markers(node.received(), helloBytes), [1, 2, 4, 5, 5]);
    assert.ok(proxy.counters.duplicatedFrames >= 1);
    assert.ok(proxy.counters.droppedFrames >= 1);

    // Cut: the open connection is dropped; a new one is swallowed, with no answer.
    proxy.setFaults('n1', { ...healthyLink, cut: true });
    await until(() => first.socket.destroyed || first.socket.readableEnded, 'the drop');
    const before = node.received().length;
    const second = await dial(proxyPort);
    second.socket.write(Buffer.concat([hello('n1'), packet(1, 6)]));
    await until(
      () => proxy.counters.swallowedBytes > 0 || node.received().length > before,
      'bytes',
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(node.received().length, before, 'nothing crosses a cut');
    assert.equal(second.answers(), '', 'nothing comes back across a cut');

    // Healing drops the swallowed connection so the dialler reconnects at once.
    proxy.setFaults('n1', healthyLink);
    await until(() => second.socket.destroyed || second.socket.readableEnded, 'the reset');
    const third = await dial(proxyPort);
    third.socket.write(Buffer.concat([hello('n1'), packet(1, 7)]));
    await until(() => node.received().length === before + helloBytes + 7, 'the healed link');
    third.socket.destroy();
  } finally {
    await proxy.close();
    await new Promise((resolve) => node.server.close(resolve));
  }
});
