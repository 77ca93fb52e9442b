// Proves exactly-once and per-client order for callers' own sessions on three in-memory
// nodes: the same (clientId, seq) sent to two nodes at once is delivered once and both callers
// get its position; a seq that skips ahead is held until the missing one arrives; a session
// must start at seq 1; a retry after delivery answers with the original position.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { encode, Outcome, rejection, TwinCluster, waitFor } from './twin-cluster.ts';

let cluster: TwinCluster;

before(async () => {
  // Retries of held messages come every 100 ms; a refused run must not wait for them.
  cluster = await TwinCluster.start({ tuning: { retryIntervalMs: 100 } });
  await cluster.waitForLeader();
});

after(async () => {
  await cluster.close();
});

test('the same (clientId, seq) sent to two nodes at once is delivered once, at one position', async () => {
  const leader = await cluster.waitForLeader();
  const [first, second] = cluster.followers(leader) as [string, string];
  for (let seq = 1; seq <= 20; seq++) {
    const payload = encode(`twice-${seq}`);
    const targets = seq % 2 === 0 ? [first, second] : [leader, first];
    const [a, b] = await Promise.all(
      targets.map((id) => cluster.node(id).broadcast(payload, { clientId: 'twice', seq })),
    );
    assert.equal(a?.position, b?.position, `seq ${seq}: both callers get the same position`);
    assert.ok(a?.position !== null);
  }
  const last = cluster.recorder.lastPosition;
  await cluster.waitConverged();
  assert.ok(cluster.node(leader).status().lastPosition >= last);
  for (let seq = 1; seq <= 20; seq++) {
    assert.ok(cluster.recorder.positionOf('twice', seq) !== undefined, `seq ${seq} delivered`);
  }
  cluster.assertConsistent();
});

test('a retry after delivery answers at once with the original position, on any node', async () => {
  const leader = await cluster.waitForLeader();
  const original = await cluster
    .node(leader)
    .broadcast(encode('retried'), { clientId: 'retry', seq: 1 });
  assert.equal(original.duplicate, false);
  await cluster.waitDelivered(original.position as number);
  for (const id of cluster.ids) {
    const retry = await cluster
      .node(id)
      .broadcast(encode('retried'), { clientId: 'retry', seq: 1 });
    assert.equal(retry.duplicate, true, id);
    assert.equal(retry.position, original.position, id);
  }
  assert.deepEqual(cluster.recorder.positionsOfText('retried'), [original.position]);
});

test('seq 3 sent before seq 2 is held until 2 arrives, then both are delivered in order', async () => {
  const leader = await cluster.waitForLeader();
  const follower = cluster.followers(leader)[0] as string;
  await cluster.node(leader).broadcast(encode('gap-1'), { clientId: 'gap', seq: 1 });
  const appliedBefore = cluster.node(follower).status().appliedIndex;
  const third = new Outcome(
    cluster.node(follower).broadcast(encode('gap-3'), { clientId: 'gap', seq: 3 }),
  );
  // Seq 3 reaches the log, is refused (sequence_gap) and stays pending.
  await waitFor(
    () => cluster.node(follower).status().appliedIndex > appliedBefore,
    'seq 3 committed and refused',
  );
  assert.equal(third.settled, false, 'seq 3 waits for seq 2');
  assert.equal(cluster.recorder.positionOf('gap', 3), undefined, 'seq 3 not delivered yet');
  const second = await cluster
    .node(cluster.followers(leader)[1] as string)
    .broadcast(encode('gap-2'), { clientId: 'gap', seq: 2 });
  await waitFor(() => third.settled, 'seq 3 delivered after seq 2');
  assert.equal(third.error, undefined);
  assert.equal(third.result?.position, (second.position as number) + 1);
  cluster.assertConsistent();
});

test('a new client starting at seq 5 is refused with session_unknown', async () => {
  const leader = await cluster.waitForLeader();
  const error = await rejection(
    cluster.node(leader).broadcast(encode('late'), { clientId: 'fresh', seq: 5 }),
  );
  assert.equal(error.code, 'session_unknown');
  assert.equal(error.details.expectedSeq, 1);
  assert.equal(cluster.recorder.positionOf('fresh', 5), undefined);
  // The session can still start properly afterwards.
  const start = await cluster
    .node(leader)
    .broadcast(encode('start'), { clientId: 'fresh', seq: 1 });
  assert.equal(start.duplicate, false);
});

test('every message of a refused run is answered, not only its first', async () => {
  const leader = await cluster.waitForLeader();
  const node = cluster.node(leader);
  // Made in one turn, the three travel as one run (5, 6, 7) in one batch.
  const outcomes = [5, 6, 7].map(
    (seq) => new Outcome(node.broadcast(encode(`run-${seq}`), { clientId: 'run', seq })),
  );
  await waitFor(() => outcomes[0]?.settled === true, 'seq 5 refused');
  await new Promise((resolve) => setImmediate(resolve));
  // The run was decided at once: its other messages need no retry to learn it.
  assert.deepEqual(
    outcomes.map((outcome) => outcome.code),
    ['session_unknown', 'session_unknown', 'session_unknown'],
  );
});

test('a duplicate whose position is forgotten answers position null, as documented', async () => {
  const leader = await cluster.waitForLeader();
  const node = cluster.node(leader);
  // Sessions remember 4096 positions per client; 4200 messages push seq 1 out.
  const sends = Array.from({ length: 4200 }, (_, offset) =>
    node.broadcast(encode(`many-${offset + 1}`), { clientId: 'many', seq: offset + 1 }),
  );
  await Promise.all(sends);
  const retry = await node.broadcast(encode('many-1'), { clientId: 'many', seq: 1 });
  assert.equal(retry.duplicate, true);
  assert.equal(retry.position, null);
});
