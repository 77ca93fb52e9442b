/**
 * The promises every `Transport` keeps, written once and run against both the TCP transport
 * (tcp.test.ts) and the in-memory one (memory.test.ts). A harness starts small clusters whose
 * members list each other as peers, and can stop and restart a member at the same address.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import type { NodeId, SnapshotMessage } from '../../src/raft/types.ts';
import type { Frame, Transport } from '../../src/transport/types.ts';
import { frameBodyArbitrary } from './arbitraries.ts';
import { type RecordingLogger, waitFor } from './helpers.ts';

export interface NodeSpec {
  readonly nodeId: NodeId;
  /** Defaults to the harness's common cluster id. */
  readonly clusterId?: string;
}

export interface Limits {
  readonly frameBytesMax: number;
  readonly peerBufferBytesMax: number;
  readonly snapshotBytesMax: number;
}

export interface Harness {
  /** Starts one transport per spec; each lists all the others as peers. */
  start(nodes: readonly NodeSpec[], limits?: Partial<Limits>): Promise<Transport[]>;
  /** The address a peer map names for `nodeId`. */
  addressOf(nodeId: NodeId): string;
  stop(nodeId: NodeId): Promise<void>;
  /** Starts `nodeId` again at the same address, with the same peer map. */
  restart(nodeId: NodeId): Promise<Transport>;
  logger(nodeId: NodeId): RecordingLogger;
  close(): Promise<void>;
}

interface Received {
  readonly frames: Frame[];
}

function collect(transport: Transport): Received {
  const received: Received = { frames: [] };
  transport.onFrame((frame) => received.frames.push(frame));
  return received;
}

function heartbeat(from: NodeId, to: NodeId, commit: number): Frame {
  return { type: 'Heartbeat', from, to, term: 1, commit, readRound: 0 };
}

function addressed(body: Omit<Frame, 'from' | 'to'>, from: NodeId, to: NodeId): Frame {
  return { ...body, from, to } as Frame;
}

async function withHarness(
  makeHarness: () => Harness,
  run: (harness: Harness) => Promise<void>,
): Promise<void> {
  const harness = makeHarness();
  try {
    await run(harness);
  } finally {
    await harness.close();
  }
}

export function runConformance(name: string, makeHarness: () => Harness): void {
  const it = (title: string, run: (harness: Harness) => Promise<void>): void => {
    test(`${name}: ${title}`, () => withHarness(makeHarness, run));
  };

  it('frames of every type arrive intact and in send order on each link', async (harness) => {
    const ids = ['n1', 'n2', 'n3'];
    const transports = await harness.start(ids.map((nodeId) => ({ nodeId })));
    const received = transports.map(collect);
    const bodies = fc.sample(frameBodyArbitrary, { numRuns: 150, seed: 42 });
    const expected = new Map<string, Frame[]>();
    for (let round = 0; round < 3; round++) {
      for (const [senderIndex, sender] of transports.entries()) {
        const batch: Frame[] = [];
        for (const to of ids) {
          if (to === sender.nodeId) continue;
          const slice = bodies
            .slice(round * 50, round * 50 + 50)
            .map((body) => addressed(body, sender.nodeId, to));
          batch.push(...slice);
          const key = `${sender.nodeId}->${to}`;
          expected.set(key, [...(expected.get(key) ?? []), ...slice]);
        }
        sender.send(batch);
        assert.equal(senderIndex >= 0, true);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    const total = [...expected.values()].reduce((sum, frames) => sum + frames.length, 0);
    await waitFor(
      () => received.reduce((sum, r) => sum + r.frames.length, 0) === total,
      'every frame',
    );
    for (const [index, to] of ids.entries()) {
      for (const from of ids) {
        if (from === to) continue;
        const arrived = received[index]!.frames.filter((frame) => frame.from === from);
        assert.deepStrictEqual(arrived, expected.get(`${from}->${to}`), `${from}->${to}`);
      }
    }
  });

  it('send never throws; unknown peers, foreign senders and invalid frames are dropped and counted', async (harness) => {
    const [a] = await harness.start([{ nodeId: 'a' }, { nodeId: 'b' }]);
    assert.ok(a);
    a.send([
      heartbeat('a', 'zz', 1),
      heartbeat('a', 'a', 1),
      heartbeat('b', 'b', 1),
      { ...heartbeat('a', 'b', 1), term: -1 } as Frame,
      null as unknown as Frame,
      { type: 'Nonsense', from: 'a', to: 'b' } as unknown as Frame,
    ]);
    const stats = a.stats();
    assert.equal(stats.droppedFrameCountByReason.unknownPeer, 2);
    assert.equal(stats.droppedFrameCountByReason.invalidFrame, 4);
    assert.equal(stats.droppedFrameCount, 6);
    assert.ok(
      harness.logger('a').has((line) => line.level === 'error'),
      'invalid frames are logged',
    );
  });

  it('a peer that goes down and comes back is reached again, counting a reconnect', async (harness) => {
    const [a, b] = await harness.start([{ nodeId: 'a' }, { nodeId: 'b' }]);
    assert.ok(a && b);
    let commit = 0;
    const deliverOne = async (receiver: Transport, what: string): Promise<void> => {
      const received = collect(receiver);
      await waitFor(() => {
        a.send([heartbeat('a', 'b', commit++)]);
        return received.frames.length > 0;
      }, what);
    };
    await deliverOne(b, 'a first delivery');
    await harness.stop('b');
    await waitFor(() => {
      a.send([heartbeat('a', 'b', commit++)]);
      return a.stats().droppedFrameCountByReason.linkDown > 0;
    }, 'frames lost to the stopped peer');
    await deliverOne(await harness.restart('b'), 'a delivery after the restart');
    assert.ok(a.stats().reconnectCount >= 1, 'the new connection counts as a reconnect');
  });

  it('a node of another cluster is refused both ways', async (harness) => {
    const [a, c] = await harness.start([
      { nodeId: 'a' },
      { nodeId: 'c', clusterId: 'other-cluster' },
    ]);
    assert.ok(a && c);
    const atA = collect(a);
    const atC = collect(c);
    await waitFor(() => {
      a.send([heartbeat('a', 'c', 1)]);
      c.send([heartbeat('c', 'a', 1)]);
      return c.stats().refusedConnectionCount > 0 && a.stats().refusedConnectionCount > 0;
    }, 'refusals on both sides');
    assert.equal(atA.frames.length, 0);
    assert.equal(atC.frames.length, 0);
    const refusal = (line: { fields: Readonly<Record<string, unknown>> }) =>
      line.fields.code === 'WRONG_CLUSTER';
    assert.ok(harness.logger('c').has(refusal), 'the refusal is logged with its reason');
  });

  it('a node missing from the receiver peer map is refused', async (harness) => {
    const [a, b] = await harness.start([{ nodeId: 'a' }, { nodeId: 'b' }]);
    assert.ok(a && b);
    const atB = collect(b);
    b.setPeers(new Map());
    await waitFor(() => {
      a.send([heartbeat('a', 'b', 1)]);
      return b.stats().refusedConnectionCount > 0;
    }, 'a refusal');
    assert.equal(atB.frames.length, 0);
    assert.ok(harness.logger('b').has((line) => line.fields.code === 'UNKNOWN_NODE'));
  });

  it('setPeers removes and re-adds a peer', async (harness) => {
    const [a, b] = await harness.start([{ nodeId: 'a' }, { nodeId: 'b' }]);
    assert.ok(a && b);
    const atB = collect(b);
    a.setPeers(new Map());
    a.send([heartbeat('a', 'b', 1)]);
    assert.equal(a.stats().droppedFrameCountByReason.unknownPeer, 1);
    assert.deepStrictEqual(Object.keys(a.stats().peers), []);
    a.setPeers(
      new Map([
        ['a', harness.addressOf('a')],
        ['b', harness.addressOf('b')],
      ]),
    );
    a.send([heartbeat('a', 'b', 2)]);
    await waitFor(() => atB.frames.length === 1, 'delivery after re-adding');
    assert.deepStrictEqual(atB.frames, [heartbeat('a', 'b', 2)]);
  });

  it('a snapshot of several megabytes arrives intact, between the frames around it', async (harness) => {
    const limits = {
      frameBytesMax: 64 * 1024,
      peerBufferBytesMax: 1024 * 1024,
      snapshotBytesMax: 16 * 1024 * 1024,
    };
    const [a, b] = await harness.start([{ nodeId: 'a' }, { nodeId: 'b' }], limits);
    assert.ok(a && b);
    const atB = collect(b);
    const snapshot: SnapshotMessage = {
      type: 'Snapshot',
      from: 'a',
      to: 'b',
      term: 4,
      snapshot: {
        meta: { index: 9_000, term: 3, config: { voters: ['a', 'b'], learners: [] } },
        data: new Uint8Array(randomBytes(6 * 1024 * 1024 + 3)),
      },
    };
    a.send([heartbeat('a', 'b', 1), snapshot, heartbeat('a', 'b', 2)]);
    a.send([{ ...snapshot, term: 5 }]);
    await waitFor(() => atB.frames.length === 3, 'the snapshot and both heartbeats', 20_000);
    assert.deepStrictEqual(atB.frames, [heartbeat('a', 'b', 1), snapshot, heartbeat('a', 'b', 2)]);
    assert.equal(
      a.stats().droppedFrameCountByReason.snapshotBusy,
      1,
      'one snapshot streams at a time',
    );
  });

  it('appends with large and small entries arrive intact, and stay intact as more arrive', async (harness) => {
    const [a, b] = await harness.start([{ nodeId: 'a' }, { nodeId: 'b' }], {
      frameBytesMax: 1024 * 1024,
      peerBufferBytesMax: 8 * 1024 * 1024,
    });
    assert.ok(a && b);
    const atB = collect(b);
    // Entry sizes around the codec's reference threshold and beyond a socket read, so the
    // writes gather referenced runs and the reads split packets anywhere.
    const sizes = [0, 1, 100, 2047, 2048, 2049, 33_000, 70_000, 5];
    const append = (round: number): Frame => ({
      type: 'Append',
      from: 'a',
      to: 'b',
      term: 1,
      prevLogIndex: round * sizes.length,
      prevLogTerm: 1,
      commit: round,
      entries: sizes.map((size, position) => ({
        index: round * sizes.length + position + 1,
        term: 1,
        kind: 'normal',
        data: new Uint8Array(randomBytes(size)),
      })),
    });
    const first = Array.from({ length: 6 }, (_, round) => append(round));
    a.send(first.flatMap((frame, round) => [frame, heartbeat('a', 'b', round)]));
    await waitFor(() => atB.frames.length === 12, 'the first appends');
    const second = Array.from({ length: 6 }, (_, round) => append(round + 6));
    a.send(second);
    await waitFor(() => atB.frames.length === 18, 'the second appends');
    const expected = [
      ...first.flatMap((frame, round) => [frame, heartbeat('a', 'b', round)]),
      ...second,
    ];
    assert.deepStrictEqual(atB.frames, expected);
  });

  it('frames larger than frameBytesMax are dropped as oversize, and so are snapshots over their limit', async (harness) => {
    const [a] = await harness.start([{ nodeId: 'a' }, { nodeId: 'b' }], {
      frameBytesMax: 4096,
      peerBufferBytesMax: 65_536,
      snapshotBytesMax: 8192,
    });
    assert.ok(a);
    a.send([{ type: 'Forward', from: 'a', to: 'b', requestId: 1, data: new Uint8Array(5000) }]);
    a.send([
      {
        type: 'Snapshot',
        from: 'a',
        to: 'b',
        term: 1,
        snapshot: {
          meta: { index: 1, term: 1, config: { voters: ['a'], learners: [] } },
          data: new Uint8Array(9000),
        },
      },
    ]);
    assert.equal(a.stats().droppedFrameCountByReason.oversize, 2);
  });

  it('stats count frames and bytes on both sides', async (harness) => {
    const [a, b] = await harness.start([{ nodeId: 'a' }, { nodeId: 'b' }]);
    assert.ok(a && b);
    const atB = collect(b);
    a.send(Array.from({ length: 20 }, (_, commit) => heartbeat('a', 'b', commit)));
    await waitFor(() => atB.frames.length === 20, 'twenty frames');
    const sent = a.stats();
    const got = b.stats();
    assert.equal(sent.sentFrameCount, 20);
    assert.equal(sent.peers.b?.sentFrameCount, 20);
    assert.equal(got.receivedFrameCount, 20);
    assert.ok(sent.sentBytes > 20 * 8 && got.receivedBytes > 20 * 8);
    assert.equal(sent.droppedFrameCount, 0);
  });

  it('frames with no handler are counted; a replaced handler gets the rest', async (harness) => {
    const [a, b] = await harness.start([{ nodeId: 'a' }, { nodeId: 'b' }]);
    assert.ok(a && b);
    const first: Frame[] = [];
    const unsubscribe = b.onFrame((frame) => first.push(frame));
    a.send([heartbeat('a', 'b', 1)]);
    await waitFor(() => first.length === 1, 'the first frame');
    unsubscribe();
    a.send([heartbeat('a', 'b', 2)]);
    await waitFor(
      () => b.stats().droppedFrameCountByReason.noHandler === 1,
      'a frame without handler',
    );
    const second = collect(b);
    a.send([heartbeat('a', 'b', 3)]);
    await waitFor(() => second.frames.length === 1, 'the replaced handler');
    assert.equal(first.length, 1);
  });

  it('close is idempotent and later sends are dropped', async (harness) => {
    const [a] = await harness.start([{ nodeId: 'a' }, { nodeId: 'b' }]);
    assert.ok(a);
    await a.close();
    await a.close();
    a.send([heartbeat('a', 'b', 1)]);
    assert.equal(a.stats().droppedFrameCountByReason.closed, 1);
  });
}
