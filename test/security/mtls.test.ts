// Mutual TLS on three real `abcast start` processes with certificates from `abcast certs`:
// the cluster elects a leader and delivers over HTTPS (SDK with the CA, CLI with --ca); a
// peer with a certificate from another CA, or a member's valid certificate whose Hello
// claims another member, is closed and its forged heartbeat (term + 100) never acted on:
// term and leader stay. SIGHUP makes a node serve a re-issued certificate without restart.
// Without certificates, a non-loopback address is refused unless --insecure.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { connect as connectSdk } from '../../src/client/index.ts';
import { nodeExchange } from '../../src/client/node-exchange.ts';
import { measureFrame, writeFrame } from '../../src/transport/codec.ts';
import type { Frame } from '../../src/transport/types.ts';
import { encodeHello, protocolVersion } from '../../src/transport/wire.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';
import { type CliRun, kill, oneLine, runCli, spawnCli } from '../cli/helpers.ts';
import { freePorts, waitFor } from '../support/ports.ts';

const ids = ['n1', 'n2', 'n3'];

interface Status {
  readonly term: number;
  readonly leader: string | null;
}

function framed(packet: Uint8Array): Buffer {
  const bytes = Buffer.alloc(4 + packet.byteLength);
  bytes.writeUInt32BE(packet.byteLength, 0);
  bytes.set(packet, 4);
  return bytes;
}

function encoded(frame: Frame): Buffer {
  const byteCount = measureFrame(frame);
  const bytes = Buffer.alloc(byteCount);
  writeFrame(frame, bytes, 0, byteCount);
  return framed(bytes);
}

/**
 * A TLS connection to a peer port with `cert`/`key`, saying Hello as `from` and sending
 * `payload` at once. Resolves with whether the node closed it (rather than our deadline)
 * and how many bytes it answered.
 */
async function attack(options: {
  port: number;
  ca: string;
  cert: string;
  key: string;
  from: string;
  to: string;
  payload: Buffer;
}): Promise<{ closedByNode: boolean; answeredBytes: number }> {
  const socket: TLSSocket = connect({
    host: '127.0.0.1',
    port: options.port,
    ca: options.ca,
    cert: options.cert,
    key: options.key,
    checkServerIdentity: () => undefined,
  });
  socket.on('error', () => {});
  let answeredBytes = 0;
  socket.on('data', (chunk: Buffer) => {
    answeredBytes += chunk.byteLength;
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.once('secureConnect', () => {
    const hello = encodeHello({
      version: protocolVersion,
      clusterId: 'abcast',
      from: options.from,
      to: options.to,
    });
    socket.write(Buffer.concat([framed(hello), options.payload]));
  });
  let closedByNode = true;
  const timer = setTimeout(() => {
    closedByNode = false;
    socket.destroy();
  }, 5_000);
  await closed;
  clearTimeout(timer);
  return { closedByNode, answeredBytes };
}

/** The serial number of the certificate a TLS listener presents now. */
async function servedSerial(port: number, ca: string): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port, ca, checkServerIdentity: () => undefined });
  socket.on('error', () => {});
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('close', () => reject(new Error('closed before the handshake')));
    });
    return socket.getPeerX509Certificate()?.serialNumber ?? '';
  } finally {
    socket.destroy();
  }
}

test('mutual TLS: a cluster delivers; other CAs and impersonators are closed; SIGHUP rotates', {
  timeout: 120_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-mtls-'));
  const certs = join(root, 'certs');
  const strangerCerts = join(root, 'stranger');
  const ports = await freePorts(6);
  const peerPort = (at: number) => ports[at] as number;
  const httpUrl = (at: number) => `https://127.0.0.1:${ports[at + 3]}`;
  const peers = ids.map((id, at) => `${id}=127.0.0.1:${peerPort(at)}`).join(',');
  const nodes: CliRun[] = [];
  try {
    for (const args of [
      ['certs', 'ca', '--dir', certs],
      ['certs', 'ca', '--dir', strangerCerts],
      ['certs', 'node', '--dir', strangerCerts, '--id', 'n1', '--hosts', '127.0.0.1'],
      ...ids.map((id) => ['certs', 'node', '--dir', certs, '--id', id, '--hosts', '127.0.0.1']),
    ]) {
      const made = await runCli(args);
      assert.equal(made.code, 0, made.stderr);
    }
    const caPath = join(certs, 'ca.crt');
    const ca = await readFile(caPath, 'utf8');
    const file = (dir: string, name: string) => readFile(join(dir, name), 'utf8');
    for (const [at, id] of ids.entries()) {
      nodes.push(
        spawnCli([
          'start',
          ...['--id', id, '--data', join(root, id), '--peers', peers],
          ...['--listen', `127.0.0.1:${peerPort(at)}`, '--http', `127.0.0.1:${ports[at + 3]}`],
          ...['--cert', join(certs, `node-${id}.crt`), '--key', join(certs, `node-${id}.key`)],
          ...['--ca', caPath, '--segment-bytes', String(1 << 20)],
        ]),
      );
    }
    const exchange = nodeExchange(systemEnvironment, { ca });
    const status = async (at: number): Promise<Status> => {
      const answer = await exchange({
        method: 'GET',
        url: `${httpUrl(at)}/v1/status`,
        headers: {},
        body: null,
        timeoutMs: 2_000,
        signal: new AbortController().signal,
      });
      return JSON.parse(answer.body) as Status;
    };
    let before: Status | null = null;
    await waitFor(
      async () => {
        const dead = nodes.find((node) => node.child.exitCode !== null);
        if (dead !== undefined) throw new Error(`a node exited: ${dead.stderr()}`);
        try {
          const seen = await Promise.all(ids.map((_, at) => status(at)));
          const first = seen[0] as Status;
          const agreed = first.leader !== null && seen.every((s) => s.leader === first.leader);
          if (agreed) before = first;
          return agreed;
        } catch {
          return false;
        }
      },
      'a leader known to all, over mutual TLS',
      30_000,
    );
    const { term, leader } = before as unknown as Status;
    const client = connectSdk({ endpoints: ids.map((_, at) => httpUrl(at)), ca });
    try {
      const sent = await client.broadcast({ over: 'tls' });
      assert.equal(sent.duplicate, false);
    } finally {
      await client.close();
    }
    const cliSend = await runCli(['send', '--node', httpUrl(0), '--ca', caPath, '{"cli":1}']);
    assert.equal(cliSend.code, 0, cliSend.stderr);

    // Both impersonate the leader towards a follower with a heartbeat 100 terms ahead.
    const followerAt = (ids.indexOf(leader as string) + 1) % ids.length;
    const follower = ids[followerAt] as string;
    const otherMember = ids.find((id) => id !== leader && id !== follower) as string;
    const forged = encoded({
      type: 'Heartbeat',
      from: leader as string,
      to: follower,
      term: term + 100,
      commit: 0,
      readRound: 0,
    });
    const strangerId = 'n1';
    const attempts = [
      {
        name: 'a certificate from another CA',
        cert: await file(strangerCerts, `node-${strangerId}.crt`),
        key: await file(strangerCerts, `node-${strangerId}.key`),
      },
      {
        name: `${otherMember}'s valid certificate claiming ${leader}`,
        cert: await file(certs, `node-${otherMember}.crt`),
        key: await file(certs, `node-${otherMember}.key`),
      },
    ];
    for (const attempt of attempts) {
      const outcome = await attack({
        port: peerPort(followerAt),
        ca,
        cert: attempt.cert,
        key: attempt.key,
        from: leader as string,
        to: follower,
        payload: forged,
      });
      assert.ok(outcome.closedByNode, `${attempt.name}: the node closes the connection`);
      assert.equal(outcome.answeredBytes, 0, `${attempt.name}: no Welcome`);
    }
    const after = await Promise.all(ids.map((_, at) => status(at)));
    for (const seen of after) {
      assert.equal(seen.term, term, 'the term did not move');
      assert.equal(seen.leader, leader, 'the leader did not change');
    }

    // Rotation: re-issue n1's certificate in place, SIGHUP, and n1 serves the new one on
    // both ports while still a member that delivers.
    const oldSerial = new X509Certificate(await file(certs, 'node-n1.crt')).serialNumber;
    assert.equal(await servedSerial(ports[3] as number, ca), oldSerial);
    const reissued = await runCli([
      'certs',
      'node',
      '--dir',
      certs,
      '--id',
      'n1',
      '--hosts',
      '127.0.0.1',
    ]);
    assert.equal(reissued.code, 0, reissued.stderr);
    const newSerial = new X509Certificate(await file(certs, 'node-n1.crt')).serialNumber;
    assert.notEqual(newSerial, oldSerial);
    nodes[0]?.child.kill('SIGHUP');
    await waitFor(
      async () => (await servedSerial(ports[3] as number, ca)) === newSerial,
      'the HTTPS port serving the new certificate',
    );
    await waitFor(
      async () => (await servedSerial(peerPort(0), ca)) === newSerial,
      'the peer port serving the new certificate',
    );
    assert.match(nodes[0]?.stdout() ?? '', /reloaded its TLS files/);
    const afterRotation = await runCli(['send', '--node', httpUrl(0), '--ca', caPath, '2']);
    assert.equal(afterRotation.code, 0, afterRotation.stderr);
  } finally {
    await Promise.all(nodes.map(kill));
    await rm(root, { recursive: true, force: true });
  }
});

test('abcast start beyond loopback without certificates exits naming --insecure', {
  timeout: 30_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-open-'));
  const [peer, http] = await freePorts(2);
  const args = [
    'start',
    ...['--id', 'n1', '--data', join(root, 'n1'), '--peers', `n1=0.0.0.0:${peer}`],
    ...['--listen', `0.0.0.0:${peer}`, '--http', `127.0.0.1:${http}`],
  ];
  let open: CliRun | null = null;
  try {
    const refused = await runCli(args);
    assert.notEqual(refused.code, 0);
    assert.match(oneLine(refused.stderr), /--insecure/);
    open = spawnCli([...args, '--insecure']);
    const run = open;
    await waitFor(() => run.stdout().includes('up: HTTP'), 'the node up with --insecure');
    // The warning goes to stderr, a different pipe: it may be read after stdout's line.
    await waitFor(() => /warning: --insecure/.test(run.stderr()), 'the warning on stderr');
  } finally {
    if (open !== null) await kill(open);
    await rm(root, { recursive: true, force: true });
  }
});
