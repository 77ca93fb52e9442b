// Proves mutual TLS admits a peer only as the node its certificate names: a certificate
// from another CA, a client's certificate, no certificate, or a valid member certificate
// whose Hello claims another node are each closed before anything they send is acted on,
// while the real link keeps working; and new files given to `update` take effect for new
// connections. Raw TLS sockets play the hostile side.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import type { NodeId } from '../../src/raft/types.ts';
import { encodeFrame } from '../../src/transport/codec.ts';
import { PacketSplitter } from '../../src/transport/framing.ts';
import { TcpTransport } from '../../src/transport/tcp.ts';
import type { TlsCredentials, TlsMaterial } from '../../src/transport/tls.ts';
import type { Frame } from '../../src/transport/types.ts';
import { decodePacket, encodeHello, type Packet } from '../../src/transport/wire.ts';
import { testCa } from '../support/certificates.ts';
import { closed, RecordingLogger, waitFor } from './helpers.ts';
import { testTiming } from './tcp-harness.ts';

const ca = await testCa();
const otherCa = await testCa();
test.after(async () => {
  await ca.remove();
  await otherCa.remove();
});

function heartbeat(from: NodeId, to: NodeId, commit: number): Frame {
  return { type: 'Heartbeat', from, to, term: 1, commit, readRound: 0 };
}

function framed(packet: Uint8Array): Buffer {
  const bytes = Buffer.alloc(4 + packet.byteLength);
  bytes.writeUInt32BE(packet.byteLength, 0);
  bytes.set(packet, 4);
  return bytes;
}

interface Pair {
  readonly a: TcpTransport;
  readonly b: TcpTransport;
  readonly atB: Frame[];
  readonly logB: RecordingLogger;
  readonly credentialsB: TlsCredentials;
  assertLinkWorks(): Promise<void>;
}

let commitCounter = 0;

/** TLS transports a and b; b also lists "x" as a peer, played by raw TLS sockets. */
async function startPair(context: TestContext): Promise<Pair> {
  const logB = new RecordingLogger();
  const credentialsB = await ca.credentials('b');
  const make = async (nodeId: NodeId, logger: RecordingLogger, tls: TlsCredentials) =>
    new TcpTransport({
      ...testTiming,
      nodeId,
      clusterId: 'test',
      listenAddress: '127.0.0.1:0',
      logger,
      tls,
    });
  const a = await make('a', new RecordingLogger(), await ca.credentials('a'));
  const b = await make('b', logB, credentialsB);
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
    credentialsB,
    async assertLinkWorks() {
      const commit = ++commitCounter;
      await waitFor(() => {
        a.send([heartbeat('a', 'b', commit)]);
        return atB.some((arrived) => arrived.type === 'Heartbeat' && arrived.commit === commit);
      }, 'a frame from a');
    },
  };
}

interface RawTlsClient {
  readonly socket: TLSSocket;
  readonly packets: Packet[];
  readonly closed: Promise<void>;
  /** Whether our side finished the TLS handshake (the server may still drop us after). */
  readonly secured: Promise<boolean>;
}

/** A TLS client presenting `material` (or no certificate), trusting the cluster CA. */
function rawTlsClient(address: string, material: TlsMaterial | null): RawTlsClient {
  const colon = address.lastIndexOf(':');
  const socket = connect({
    host: address.slice(0, colon),
    port: Number(address.slice(colon + 1)),
    ca: ca.caPem,
    ...(material === null ? {} : { cert: material.certificatePem, key: material.keyPem }),
    checkServerIdentity: () => undefined,
  });
  const packets: Packet[] = [];
  const splitter = new PacketSplitter(1 << 20);
  socket.on('data', (chunk: Buffer) => {
    splitter.push(chunk);
    for (let bytes = splitter.next(); bytes !== null; bytes = splitter.next())
      packets.push(decodePacket(bytes));
  });
  socket.on('error', () => {});
  const secured = new Promise<boolean>((resolve) => {
    socket.once('secureConnect', () => resolve(true));
    socket.once('close', () => resolve(false));
  });
  return { socket, packets, closed: closed(socket), secured };
}

/** Sends a Hello as `from` and a frame that would raise b's term if it were acted on. */
function helloThenForgery(client: RawTlsClient, from: NodeId): void {
  const hello = encodeHello({ version: 1, clusterId: 'test', from, to: 'b' });
  const forged: Frame = { type: 'Heartbeat', from, to: 'b', term: 1_000, commit: 0, readRound: 0 };
  client.socket.write(Buffer.concat([framed(hello), framed(encodeFrame(forged))]));
}

test('a certificate from another CA is refused in the TLS handshake', async (t) => {
  const pair = await startPair(t);
  const refusedBefore = pair.b.stats().refusedConnectionCount;
  const client = rawTlsClient(pair.b.address(), await otherCa.node('x'));
  client.socket.on('secureConnect', () => helloThenForgery(client, 'x'));
  await client.closed;
  assert.equal(client.packets.length, 0, 'no Welcome, no answer at all');
  assert.equal(pair.atB.length, 0, 'nothing reached the core');
  await waitFor(
    () => pair.b.stats().refusedConnectionCount > refusedBefore,
    'the refusal is counted',
  );
  await pair.assertLinkWorks();
});

test('a member certificate whose Hello claims another node is closed unanswered', async (t) => {
  const pair = await startPair(t);
  const client = rawTlsClient(pair.b.address(), await ca.node('x'));
  assert.equal(await client.secured, true, 'x holds a valid certificate of the cluster');
  helloThenForgery(client, 'a');
  await client.closed;
  assert.equal(client.packets.length, 0, 'no Welcome');
  assert.equal(pair.atB.length, 0, 'the forged frame never reached the core');
  assert.ok(
    pair.logB.has((line) => line.fields.claimed === 'a' && line.fields.certified === 'x'),
    'the impersonation is logged with both names',
  );
  await pair.assertLinkWorks();
});

test('the same certificate with an honest Hello is admitted', async (t) => {
  const pair = await startPair(t);
  const client = rawTlsClient(pair.b.address(), await ca.node('x'));
  const hello = encodeHello({ version: 1, clusterId: 'test', from: 'x', to: 'b' });
  client.socket.write(framed(hello));
  await waitFor(() => client.packets.length > 0, 'the Welcome');
  assert.deepStrictEqual(client.packets[0], { kind: 'Welcome', nodeId: 'b' });
  client.socket.destroy();
});

test('a certificate naming no peer, a client certificate or none is closed before its Hello is read', async (t) => {
  const pair = await startPair(t);
  for (const material of [await ca.node('stranger'), await ca.client('x'), null]) {
    const client = rawTlsClient(pair.b.address(), material);
    client.socket.on('secureConnect', () => helloThenForgery(client, 'x'));
    await client.closed;
    assert.equal(client.packets.length, 0);
  }
  assert.equal(pair.atB.length, 0);
  assert.ok(pair.logB.has((line) => line.fields.code === 'UNKNOWN_NODE'));
  await pair.assertLinkWorks();
});

test('a dialled peer whose certificate names another node is dropped before the Hello', async (t) => {
  // b's address is given to a as if it were x's: the certificate there names b.
  const pair = await startPair(t);
  pair.a.setPeers(
    new Map([
      ['a', pair.a.address()],
      ['x', pair.b.address()],
    ]),
  );
  await waitFor(() => {
    pair.a.send([heartbeat('a', 'x', 1)]);
    return pair.a.stats().droppedFrameCountByReason.linkDown > 0;
  }, 'the link to the impostor fails');
  assert.equal(pair.atB.length, 0, 'b never got a Hello, so never a frame');
});

test('credentials updated to a new CA admit its certificates and refuse the old ones', async (t) => {
  const pair = await startPair(t);
  pair.credentialsB.update({ ...(await otherCa.node('b')), caPem: otherCa.caPem });
  const oldClient = rawTlsClient(pair.b.address(), await ca.node('x'));
  await oldClient.closed;
  assert.equal(oldClient.packets.length, 0, 'the old CA no longer admits');
  const material = await otherCa.node('x');
  const colon = pair.b.address().lastIndexOf(':');
  const socket = connect({
    host: '127.0.0.1',
    port: Number(pair.b.address().slice(colon + 1)),
    ca: otherCa.caPem,
    cert: material.certificatePem,
    key: material.keyPem,
    checkServerIdentity: () => undefined,
  });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('close', () => reject(new Error('the new CA was refused')));
  });
  assert.equal(socket.authorized, true, 'b presents its new certificate, signed by the new CA');
  socket.destroy();
  const broken = { ...(await otherCa.node('b')), keyPem: 'garbage' };
  assert.throws(() => pair.credentialsB.update(broken), { code: 'INVALID_TLS' });
});

test('a certificate that names another node is refused when the transport is made', async () => {
  await assert.rejects(
    async () =>
      new TcpTransport({
        nodeId: 'a',
        clusterId: 'test',
        listenAddress: '127.0.0.1:0',
        logger: new RecordingLogger(),
        tls: await ca.credentials('b'),
      }),
    { code: 'INVALID_TLS' },
  );
});
