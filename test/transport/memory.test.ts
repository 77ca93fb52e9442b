// Proves the in-memory transport keeps the transport contract (the shared conformance suite)
// and that its test controls behave like a network: cut links lose frames until healed, a
// paused receiver makes its senders drop at the buffer bound, and nothing is delivered inside
// send().
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeId } from '../../src/raft/types.ts';
import { MemoryNetwork, type MemoryTransport } from '../../src/transport/memory.ts';
import type { Frame } from '../../src/transport/types.ts';
import { type Harness, type Limits, type NodeSpec, runConformance } from './conformance.ts';
import { RecordingLogger, waitFor } from './helpers.ts';

const defaultLimits: Limits = {
  frameBytesMax: 4 * 1024 * 1024,
  peerBufferBytesMax: 16 * 1024 * 1024,
  snapshotBytesMax: 64 * 1024 * 1024,
};

class MemoryHarness implements Harness {
  readonly network = new MemoryNetwork();
  private readonly transports = new Map<NodeId, MemoryTransport>();
  private readonly specs = new Map<NodeId, Required<NodeSpec>>();
  private readonly loggers = new Map<NodeId, RecordingLogger>();
  private limits: Limits = defaultLimits;

  async start(
    nodes: readonly NodeSpec[],
    limits: Partial<Limits> = {},
  ): Promise<MemoryTransport[]> {
    this.limits = { ...defaultLimits, ...limits };
    for (const node of nodes)
      this.specs.set(node.nodeId, { nodeId: node.nodeId, clusterId: node.clusterId ?? 'test' });
    const started: MemoryTransport[] = [];
    for (const node of nodes) started.push(await this.launch(node.nodeId));
    return started;
  }

  addressOf(nodeId: NodeId): string {
    return `memory:${nodeId}`;
  }

  async stop(nodeId: NodeId): Promise<void> {
    await this.transports.get(nodeId)?.close();
  }

  restart(nodeId: NodeId): Promise<MemoryTransport> {
    return this.launch(nodeId);
  }

  logger(nodeId: NodeId): RecordingLogger {
    let logger = this.loggers.get(nodeId);
    if (logger === undefined) {
      logger = new RecordingLogger();
      this.loggers.set(nodeId, logger);
    }
    return logger;
  }

  async close(): Promise<void> {
    for (const transport of this.transports.values()) await transport.close();
  }

  private async launch(nodeId: NodeId): Promise<MemoryTransport> {
    const spec = this.specs.get(nodeId);
    assert.ok(spec !== undefined);
    const transport = this.network.createTransport({
      ...spec,
      logger: this.logger(nodeId),
      ...this.limits,
    });
    transport.setPeers(new Map([...this.specs.keys()].map((id) => [id, this.addressOf(id)])));
    await transport.start();
    this.transports.set(nodeId, transport);
    return transport;
  }
}

runConformance('memory', () => new MemoryHarness());

function heartbeat(from: NodeId, to: NodeId, commit: number): Frame {
  return { type: 'Heartbeat', from, to, term: 1, commit, readRound: 0 };
}

async function pair(limits: Partial<Limits> = {}) {
  const harness = new MemoryHarness();
  const [a, b] = await harness.start([{ nodeId: 'a' }, { nodeId: 'b' }], limits);
  assert.ok(a && b);
  const atB: Frame[] = [];
  b.onFrame((frame) => atB.push(frame));
  return { harness, network: harness.network, a, b, atB };
}

test('memory: a cut link loses frames until healed; a one-way cut leaves the other way working', async () => {
  const { harness, network, a, b, atB } = await pair();
  const atA: Frame[] = [];
  a.onFrame((frame) => atA.push(frame));
  network.cut('a', 'b');
  a.send([heartbeat('a', 'b', 1)]);
  assert.equal(a.stats().droppedFrameCountByReason.linkDown, 1);
  network.heal('a', 'b');
  network.cutOneWay('b', 'a');
  a.send([heartbeat('a', 'b', 2)]);
  b.send([heartbeat('b', 'a', 3)]);
  await waitFor(() => atB.length === 1, 'the healed direction');
  assert.deepStrictEqual(atB, [heartbeat('a', 'b', 2)]);
  assert.equal(atA.length, 0);
  assert.equal(b.stats().droppedFrameCountByReason.linkDown, 1);
  network.healAll();
  await harness.close();
});

test('memory: frames in flight when a link is cut are lost, as on a real network', async () => {
  const { harness, network, a, atB } = await pair();
  a.send([heartbeat('a', 'b', 1), heartbeat('a', 'b', 2)]);
  network.cut('a', 'b');
  await waitFor(
    () => a.stats().droppedFrameCountByReason.linkDown === 2,
    'the in-flight frames dropped',
  );
  assert.equal(atB.length, 0);
  await harness.close();
});

test('memory: a paused receiver fills its senders’ bounded buffers, which then drop', async () => {
  const { harness, network, a, atB } = await pair({
    frameBytesMax: 4096,
    peerBufferBytesMax: 64 * 1024,
  });
  network.pause('b');
  const data = new Uint8Array(1000);
  for (let requestId = 0; requestId < 200; requestId++) {
    a.send([{ type: 'Forward', from: 'a', to: 'b', requestId, data }]);
    assert.ok((a.stats().peers.b?.bufferedBytes ?? 0) <= 64 * 1024, 'the buffer stays bounded');
  }
  const dropped = a.stats().droppedFrameCountByReason.bufferFull;
  assert.ok(dropped > 100, `most frames were dropped (${dropped})`);
  network.resume('b');
  await waitFor(() => atB.length === 200 - dropped, 'the buffered frames');
  const ids = atB.map((frame) => (frame.type === 'Forward' ? frame.requestId : -1));
  assert.deepStrictEqual(
    ids,
    [...ids].sort((x, y) => x - y),
    'in send order',
  );
  assert.equal(ids[0], 0, 'the oldest frames were kept, the newest dropped');
  await harness.close();
});

test('memory: nothing is delivered inside send(), and a node id runs once per network', async () => {
  const { harness, network, a, atB } = await pair();
  a.send([heartbeat('a', 'b', 1)]);
  assert.equal(atB.length, 0);
  await waitFor(() => atB.length === 1, 'the delivery on a later turn');
  const twin = network.createTransport({
    nodeId: 'a',
    clusterId: 'test',
    logger: new RecordingLogger(),
    ...defaultLimits,
  });
  await assert.rejects(
    twin.start(),
    (error: unknown) => (error as { code?: string }).code === 'INVALID_STATE',
  );
  await harness.close();
});
