// Three nodes in one process over real TCP on 127.0.0.1 and real disks: broadcasts from any
// node are delivered by every node at the same dense positions, retries are exactly-once,
// and a restarted node recovers its log from disk (a snapshot taken at its graceful stop) and
// catches up.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import type { BroadcastNode } from '../../src/broadcast/node.ts';
import { startNode } from '../../src/broadcast/start.ts';
import { FileStorage } from '../../src/storage/file-storage.ts';
import { freePorts, waitFor } from '../support/ports.ts';

const ids = ['n1', 'n2', 'n3'];
let root = '';
let peers: Record<string, string> = {};
const nodes = new Map<string, BroadcastNode>();
const logger = pino({ level: 'silent' });

function launch(id: string): Promise<BroadcastNode> {
  return startNode({
    id,
    dataDir: join(root, id),
    listen: peers[id]!,
    peers,
    logger,
    clusterId: 'test',
    segmentBytesMax: 1 << 20,
  });
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'abcast-node-'));
  const ports = await freePorts(3);
  peers = Object.fromEntries(ids.map((id, position) => [id, `127.0.0.1:${ports[position]}`]));
  for (const id of ids) nodes.set(id, await launch(id));
});

after(async () => {
  for (const node of nodes.values()) await node.close();
  await rm(root, { recursive: true, force: true });
});

const text = (payload: Uint8Array) => new TextDecoder().decode(payload);

async function allDelivered(position: number): Promise<void> {
  await waitFor(
    () => [...nodes.values()].every((node) => node.status().lastPosition >= position),
    `position ${position}`,
  );
}

test('broadcasts from every node are delivered in one order at dense positions', async () => {
  await waitFor(
    () => [...nodes.values()].some((node) => node.status().role === 'leader'),
    'a leader',
  );
  const sends = [];
  for (let count = 0; count < 60; count++) {
    const node = nodes.get(ids[count % 3]!)!;
    sends.push(node.broadcast(new TextEncoder().encode(`m${count}`)));
  }
  const results = await Promise.all(sends);
  const positions = results.map((result) => result.position ?? 0).sort((a, b) => a - b);
  assert.deepEqual(
    positions,
    Array.from({ length: 60 }, (_, offset) => offset + 1),
  );
  await allDelivered(60);
  const sequences = [...nodes.values()].map((node) =>
    node.read(1, 1000).map((m) => `${m.position}:${text(m.payload)}`),
  );
  assert.deepEqual(sequences[1], sequences[0]);
  assert.deepEqual(sequences[2], sequences[0]);
});

test('a retried (clientId, seq) answers with the original position and is delivered once', async () => {
  const before = nodes.get('n1')!.status().lastPosition;
  const payload = new TextEncoder().encode('once');
  const first = await nodes.get('n2')!.broadcast(payload, { clientId: 'client-a', seq: 1 });
  // A node answers `duplicate` once it has applied the original itself.
  await allDelivered(first.position ?? 0);
  const retry = await nodes.get('n3')!.broadcast(payload, { clientId: 'client-a', seq: 1 });
  assert.equal(first.duplicate, false);
  assert.equal(retry.duplicate, true);
  assert.equal(retry.position, first.position);
  assert.equal(first.position, before + 1);
  await assert
    .rejects(nodes.get('n1')!.broadcast(payload, { clientId: 'client-a', seq: 3 }), {
      code: 'timeout',
    })
    .catch(() => undefined);
});

test('a restarted follower recovers from disk and catches up', async () => {
  const leaderId = nodes.get('n1')!.status().leaderId!;
  const followerId = ids.find((id) => id !== leaderId)!;
  const appliedIndex = nodes.get(followerId)!.status().appliedIndex;
  await nodes.get(followerId)!.close();
  nodes.delete(followerId);
  // A graceful stop leaves a snapshot at the applied index: the next start replays nothing.
  const { storage, persisted } = await FileStorage.open({
    dataDir: join(root, followerId),
    clusterId: 'test',
    nodeId: followerId,
    segmentBytesMax: 1 << 20,
  });
  await storage.close();
  assert.ok(appliedIndex > 0);
  assert.equal(persisted.snapshot?.meta.index, appliedIndex);
  assert.equal(persisted.entries.length, 0, 'no entry after the snapshot to replay');
  const leader = nodes.get(leaderId)!;
  for (let count = 0; count < 20; count++)
    await leader.broadcast(new TextEncoder().encode(`while-down-${count}`));
  nodes.set(followerId, await launch(followerId));
  const target = leader.status().lastPosition;
  await allDelivered(target);
  const restarted = nodes
    .get(followerId)!
    .read(1, 10_000)
    .map((m) => text(m.payload));
  const reference = leader.read(1, 10_000).map((m) => text(m.payload));
  assert.deepEqual(restarted, reference);
});

test('a subscription yields every position in order, follows new ones, and resumes', async () => {
  const node = nodes.get('n2')!;
  const start = node.status().lastPosition + 1;
  const controller = new AbortController();
  const seen: number[] = [];
  const reader = (async () => {
    for await (const message of node.deliveries({ from: start, signal: controller.signal })) {
      seen.push(message.position);
      if (seen.length === 10) controller.abort();
    }
  })();
  for (let count = 0; count < 10; count++)
    await node.broadcast(new TextEncoder().encode(`s${count}`));
  await reader;
  assert.deepEqual(
    seen,
    Array.from({ length: 10 }, (_, offset) => start + offset),
  );
  // Resuming from the middle gives the same messages again, from there.
  const resumed: number[] = [];
  const again = new AbortController();
  for await (const message of node.deliveries({ from: start + 5, signal: again.signal })) {
    resumed.push(message.position);
    if (resumed.length === 5) again.abort();
  }
  assert.deepEqual(resumed, seen.slice(5));
  assert.throws(() => node.deliveries({ from: 0 }), { code: 'invalid_argument' });
});
