// What a node does with a release it cannot read, on real `abcast start` processes on
// 127.0.0.1. A peer of a newer protocol version (a raw socket plays it: Hello and Refuse keep
// their layout in every version) is refused both ways round, with log lines naming both
// versions; what it sends after its Hello is never used, and the two real nodes stay a
// healthy cluster that takes broadcasts in the same term. A data directory written by a
// newer disk format is refused at start with exit code 78 (a restart cannot help) and one line naming both versions,
// and not one byte of it is changed.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { metadataChecksum } from '../../src/storage/metadata.ts';
import { STORAGE_FORMAT_VERSION } from '../../src/storage/types.ts';
import { encodeFrame } from '../../src/transport/codec.ts';
import {
  encodeHello,
  encodeWelcome,
  type Packet,
  protocolVersion,
} from '../../src/transport/wire.ts';
import { type CliRun, kill, oneLine, runCli, spawnCli } from '../cli/helpers.ts';
import { freePorts, waitFor } from '../support/ports.ts';
import { framed, packetsOf } from '../transport/helpers.ts';

const newerProtocol = protocolVersion + 1;

async function ready(url: string): Promise<boolean> {
  return fetch(`${url}/readyz`).then(
    (answer) => answer.status === 200,
    () => false,
  );
}

/** The JSON log lines of a node's stdout. */
function logLines(node: CliRun): Record<string, unknown>[] {
  return node
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Plays n3 of the newer release at `port`: every Hello gets a Welcome it cannot read. */
async function newerPeerListening(port: number): Promise<() => Promise<void>> {
  const welcome = encodeWelcome('n3');
  welcome[0] = newerProtocol;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('data', () => socket.end(framed(welcome)));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}

/** Calls `port` as n3 of the newer release; returns what it answered once it closed. */
async function callAsNewerPeer(port: number, to: string, term: number): Promise<Packet[]> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  const packets = packetsOf(socket);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const hello = { version: newerProtocol, clusterId: 'abcast', from: 'n3', to };
  socket.write(framed(encodeHello(hello)));
  // Sent without waiting for the welcome: were the connection used, the node would take
  // this term and its leader would step down.
  const heartbeat = { type: 'Heartbeat', from: 'n3', to, term, commit: 0, readRound: 0 } as const;
  socket.write(framed(encodeFrame(heartbeat)));
  await closed;
  return packets;
}

test('a peer of a newer protocol version is refused both ways; the cluster carries on', {
  timeout: 90_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-newer-peer-'));
  const ports = await freePorts(5);
  const ids = ['n1', 'n2'];
  const peers = `n1=127.0.0.1:${ports[0]},n2=127.0.0.1:${ports[1]},n3=127.0.0.1:${ports[2]}`;
  const urls = [`http://127.0.0.1:${ports[3]}`, `http://127.0.0.1:${ports[4]}`];
  const stopNewerPeer = await newerPeerListening(ports[2] as number);
  const nodes = ids.map((id, at) =>
    spawnCli(
      ['start', '--id', id, '--data', join(root, id), '--peers', peers]
        .concat(['--listen', `127.0.0.1:${ports[at]}`, '--http', `127.0.0.1:${ports[at + 3]}`])
        .concat(['--segment-bytes', String(1 << 20), '--log-format', 'json']),
    ),
  );
  try {
    await waitFor(async () => (await Promise.all(urls.map(ready))).every(Boolean), 'ready', 60_000);
    const statusOf = async (url: string) => (await fetch(`${url}/v1/status`)).json();
    const { term, leader } = await statusOf(urls[0] as string);
    const leaderAt = ids.indexOf(leader);
    assert.ok(leaderAt >= 0, 'n1 or n2 leads');

    // The newer n3 calls n1: refused, naming both versions, its heartbeat unused.
    const answer = await callAsNewerPeer(ports[0] as number, 'n1', term + 1000);
    assert.deepEqual(answer, [
      {
        kind: 'Refuse',
        code: 'UNSUPPORTED_VERSION',
        detail: `n3 speaks peer protocol version ${newerProtocol}; n1 speaks version ${protocolVersion}`,
      },
    ]);
    const isRefusal = (line: Record<string, unknown>) =>
      line.msg === 'transport refused a connection' && line.code === 'UNSUPPORTED_VERSION';
    await waitFor(() => logLines(nodes[0] as CliRun).some(isRefusal), "n1's log line");
    const refused = logLines(nodes[0] as CliRun).find(isRefusal);
    assert.equal(refused?.peer, 'n3');
    assert.equal(refused?.peerVersion, newerProtocol);
    assert.equal(refused?.version, protocolVersion);

    // The leader calls the newer n3 and cannot read its answer: an error naming both,
    // logged even in the first seconds after start, when links not up yet are quiet.
    const leaderNode = nodes[leaderAt] as CliRun;
    const isLinkRefused = (line: Record<string, unknown>) =>
      line.msg === 'transport link refused' && line.peer === 'n3';
    await waitFor(() => logLines(leaderNode).some(isLinkRefused), 'the refused link logged');
    const link = logLines(leaderNode).find(isLinkRefused);
    assert.equal(link?.level, 50, 'logged as an error');
    assert.equal(
      link?.reason,
      `n3 answers in peer protocol version ${newerProtocol}; this node speaks version ${protocolVersion}`,
    );

    // Two of three: still a cluster, in the same term, under the same leader.
    const sent = await fetch(`${urls[1]}/v1/broadcast`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ payload: 'after the newer peer' }),
    });
    assert.equal(sent.status, 200, await sent.clone().text());
    for (const url of urls) {
      const after = await statusOf(url);
      assert.equal(after.term, term, `${url} stayed in term ${term}`);
      assert.equal(after.leader, leader);
      assert.ok(await ready(url));
    }
  } finally {
    for (const node of nodes) await kill(node);
    await stopNewerPeer();
    await rm(root, { recursive: true, force: true });
  }
});

/** Every file under `directory` with its bytes, by relative path. */
async function contents(directory: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const entry of await readdir(directory, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath ?? entry.path, entry.name);
    found.set(path.slice(directory.length), (await readFile(path)).toString('base64'));
  }
  return found;
}

test('a data directory of a newer disk format is refused at start, untouched, naming both versions', {
  timeout: 60_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-format-'));
  const [peer, http] = await freePorts(2);
  const data = join(root, 'n1');
  const args = ['start', '--id', 'n1', '--data', data, '--peers', `n1=127.0.0.1:${peer}`]
    .concat(['--listen', `127.0.0.1:${peer}`, '--http', `127.0.0.1:${http}`])
    .concat(['--segment-bytes', String(1 << 20)]);
  try {
    // Made by this release, with a message in it, then stamped as written by a newer one.
    const first = spawnCli(args);
    await waitFor(() => ready(`http://127.0.0.1:${http}`), 'n1 ready', 30_000);
    const sent = await fetch(`http://127.0.0.1:${http}/v1/broadcast`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ payload: 'kept' }),
    });
    assert.equal(sent.status, 200);
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    // Another node's directory is no better after a restart either.
    const asOtherNode = [
      'start',
      '--id',
      'n2',
      '--data',
      data,
      '--peers',
      `n2=127.0.0.1:${peer}`,
    ].concat(args.slice(7));
    const otherNode = await runCli(asOtherNode, 30_000);
    assert.equal(otherNode.code, 78, `another node's directory: ${otherNode.stderr}`);
    const metaPath = join(data, 'meta.json');
    const meta = JSON.parse(await readFile(metaPath, 'utf8'));
    // With the checksum a newer release would write, so that it reads as that release's
    // identity, not as a damaged file (which the open rebuilds).
    const newer = { ...meta, formatVersion: STORAGE_FORMAT_VERSION + 1 };
    await writeFile(metaPath, JSON.stringify({ ...newer, checksum: metadataChecksum(newer) }));
    const before = await contents(data);

    const refused = await runCli(args, 30_000);
    assert.equal(refused.code, 78, 'refused with the exit code that stops a supervisor');
    const line = oneLine(refused.stderr);
    assert.match(line, new RegExp(`${data} was written in format ${STORAGE_FORMAT_VERSION + 1}`));
    assert.match(line, new RegExp(`this release reads up to ${STORAGE_FORMAT_VERSION}`));
    assert.doesNotMatch(line, /\n|at .*\.ts:\d+/, 'a sentence, not a stack trace');
    assert.deepEqual(await contents(data), before, 'not one byte of the directory changed');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
