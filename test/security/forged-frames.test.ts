// Forged peer frames against three real `abcast start` processes with no certificates: a
// connection that completes the handshake as a member sends frames no honest node could
// send. Each is refused and costs only that connection; no process dies, the term and the
// leader stay, and broadcasts go on. (Frames that need a member's identity to do harm, such
// as a term a little ahead, are kept out by mutual TLS, tested with the certificates.)
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { encodeConfiguration } from '../../src/raft/config.ts';
import { type Entry, termMax } from '../../src/raft/types.ts';
import { measureFrame, writeFrame } from '../../src/transport/codec.ts';
import type { Frame } from '../../src/transport/types.ts';
import { encodeHello, protocolVersion } from '../../src/transport/wire.ts';
import { waitFor } from '../support/ports.ts';
import { startAttackCluster } from './cluster.ts';

function framed(packet: Uint8Array): Buffer {
  const bytes = Buffer.alloc(4 + packet.byteLength);
  bytes.writeUInt32BE(packet.byteLength, 0);
  bytes.set(packet, 4);
  return bytes;
}

/**
 * Encodes `forged` without the encoder's checks, as an attacker's own code would: its size
 * is measured on a well-formed `lookalike` of the same byte length.
 */
function forge(forged: Frame, lookalike: Frame): Buffer {
  const byteCount = measureFrame(lookalike);
  const bytes = Buffer.alloc(byteCount);
  writeFrame(forged, bytes, 0, byteCount);
  return framed(bytes);
}

/** Connects to a peer port, says hello as member `from`, sends `payload`; resolves on close. */
async function sendAsMember(port: number, from: string, to: string, payload: Buffer) {
  const socket: Socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(framed(encodeHello({ version: protocolVersion, clusterId: 'abcast', from, to })));
  socket.write(payload);
  let closedByNode = true;
  const timer = setTimeout(() => {
    closedByNode = false;
    socket.destroy();
  }, 5_000);
  // Read what the node says (its welcome), or the socket stays paused and never sees the end.
  socket.resume();
  await closed;
  clearTimeout(timer);
  return closedByNode;
}

test('forged frames from a handshaken connection are refused without crash or stall', {
  timeout: 90_000,
}, async () => {
  const cluster = await startAttackCluster();
  const { ids, nodes, peerPort, status } = cluster;
  const broadcast = async (at: number, text: string) => {
    const answer = await cluster.post(at, '/v1/broadcast', { payload: text });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
  };
  try {
    const { leader, term, at: leaderAt } = await cluster.agreedLeader();
    const followerAt = (leaderAt + 1) % ids.length;
    const follower = ids[followerAt] as string;
    await broadcast(leaderAt, 'before');

    const validConfig = encodeConfiguration({ voters: ['n1', 'n2', 'n3'], learners: [] });
    const garbage = new Uint8Array(validConfig.byteLength).fill(0x5b); // "[[[…"
    const appendWith = (data: Uint8Array, entryTerm: number): Frame => {
      const entry: Entry = { index: 1_000, term: entryTerm, kind: 'config', data };
      return {
        type: 'Append',
        from: leader,
        to: follower,
        term,
        prevLogIndex: 999,
        prevLogTerm: term,
        commit: 0,
        entries: [entry],
      };
    };
    const heartbeatAt = (heartbeatTerm: number, commit = 0): Frame => ({
      type: 'Heartbeat',
      from: leader,
      to: follower,
      term: heartbeatTerm,
      commit,
      readRound: 0,
    });
    const attacks: { readonly name: string; readonly bytes: Buffer }[] = [
      {
        name: 'an append whose configuration entry does not decode',
        bytes: forge(appendWith(garbage, term), appendWith(validConfig, term)),
      },
      {
        name: 'a heartbeat at the largest safe term',
        bytes: forge(heartbeatAt(Number.MAX_SAFE_INTEGER), heartbeatAt(termMax)),
      },
      {
        name: 'a heartbeat at a term past the safe integers',
        bytes: forge(heartbeatAt(2 ** 60), heartbeatAt(termMax, 128)), // one varint byte more,
      },
    ];
    for (const attack of attacks) {
      const closedByNode = await sendAsMember(peerPort(followerAt), leader, follower, attack.bytes);
      assert.ok(closedByNode, `${attack.name}: the node closes the connection`);
    }

    for (const node of nodes) assert.equal(node.child.exitCode, null, 'every process lives on');
    await broadcast(leaderAt, 'after');
    await waitFor(async () => (await status(followerAt)).commitIndex >= 3, 'the follower commits');
    for (let at = 0; at < ids.length; at++) {
      const now = await status(at);
      assert.equal(now.term, term, `${ids[at]} keeps the term`);
      assert.equal(now.leader, leader, `${ids[at]} keeps the leader`);
    }
    const log = cluster.log(followerAt);
    assert.match(log, /is not a configuration/, 'the refusal is logged with its reason');
    // (Further refusals within a second are throttled out of the log; the terms above say
    // that they were refused.)
  } finally {
    await cluster.close();
  }
});
