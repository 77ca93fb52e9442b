// Proves, with load running, that a minority never decides: broadcasts made on a leader cut
// off from the majority stay pending while it is cut off (none resolves), the majority elects
// a new leader and goes on, and after the heal everything acknowledged anywhere is delivered
// exactly once, at one position, on every node, and every broadcast the cut-off node accepted
// under its own session is delivered too (validity). Also for a two-node minority of five,
// for a one-way cut that leaves the old leader hearing nothing, and across leadership transfers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode, Load, Outcome, TwinCluster, waitFor } from './twin-cluster.ts';

const tuning = { requestTimeoutMs: 8_000, retryIntervalMs: 100 };

async function progressBy(cluster: TwinCluster, count: number, what: string): Promise<void> {
  const target = cluster.recorder.lastPosition + count;
  await waitFor(() => cluster.recorder.lastPosition >= target, what);
}

/** Every minority outcome settles, and none failed. */
async function assertAllDelivered(outcomes: readonly Outcome<unknown>[]): Promise<void> {
  await waitFor(() => outcomes.every((outcome) => outcome.settled), 'minority broadcasts settle');
  assert.deepEqual(
    outcomes.map((outcome) => outcome.code),
    outcomes.map(() => undefined),
    'every minority broadcast is delivered after the heal',
  );
}

test('a leader cut off mid-stream decides nothing; after the heal nothing is lost or doubled', async () => {
  const cluster = await TwinCluster.start({ tuning });
  try {
    await cluster.waitForLeader();
    const load = new Load(cluster, { clientCount: 3, ownIntervalMs: 10, ownPerNodeMax: 150 });
    await progressBy(cluster, 40, 'load before the partition');
    // Leadership may have moved under load: cut off whoever leads now.
    const leader = await cluster.waitForLeader();
    cluster.isolate(leader);
    const node = cluster.node(leader);
    const minority = [
      ...Array.from({ length: 20 }, (_, offset) => node.broadcast(encode(`cut-off-${offset}`))),
      node.broadcast(encode('cut-off-caller'), { clientId: 'cut-off', seq: 1 }),
    ].map((promise) => new Outcome(promise));
    const majority = cluster.followers(leader);
    await cluster.waitForLeader(majority);
    await waitFor(() => node.status().role !== 'leader', 'the old leader steps down');
    await progressBy(cluster, 40, 'the majority goes on');
    assert.ok(
      minority.every((outcome) => !outcome.settled),
      'nothing made on the cut-off side resolved while it was cut off',
    );
    for (let offset = 0; offset < 20; offset++) {
      assert.equal(cluster.recorder.positionsOfText(`cut-off-${offset}`).length, 0);
    }
    cluster.heal();
    await assertAllDelivered(minority);
    await load.stop();
    await waitFor(() => load.own.every(({ outcome }) => outcome.settled), 'own broadcasts settle');
    await cluster.waitConverged();
    load.assertDelivered();
    // Nothing failed on a healthy cluster: every own broadcast was delivered.
    assert.deepEqual(
      load.own.filter(({ outcome }) => outcome.error !== undefined).map(({ text }) => text),
      [],
    );
    cluster.assertConsistent();
  } finally {
    await cluster.close();
  }
});

test('five nodes: a leader with one follower is a minority and decides nothing', async () => {
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const cluster = await TwinCluster.start({ ids, tuning });
  try {
    await cluster.waitForLeader();
    const load = new Load(cluster, { clientCount: 2, ownIntervalMs: 20, ownPerNodeMax: 60 });
    await progressBy(cluster, 20, 'load before the partition');
    const leader = await cluster.waitForLeader();
    const companion = cluster.followers(leader)[0] as string;
    const minorityIds = [leader, companion];
    const majorityIds = ids.filter((id) => !minorityIds.includes(id));
    cluster.partition(minorityIds, majorityIds);
    const minority = minorityIds.flatMap((id) =>
      Array.from(
        { length: 10 },
        (_, offset) => new Outcome(cluster.node(id).broadcast(encode(`${id}-minor-${offset}`))),
      ),
    );
    await cluster.waitForLeader(majorityIds);
    await progressBy(cluster, 20, 'the majority goes on');
    assert.ok(
      minority.every((outcome) => !outcome.settled),
      'the minority decided nothing',
    );
    cluster.heal();
    await assertAllDelivered(minority);
    await load.stop();
    await waitFor(() => load.own.every(({ outcome }) => outcome.settled), 'own settle');
    await cluster.waitConverged();
    load.assertDelivered();
    cluster.assertConsistent();
  } finally {
    await cluster.close();
  }
});

test('a one-way cut (the leader hears nobody) moves leadership; the old leader rejoins', async () => {
  const cluster = await TwinCluster.start({ tuning });
  try {
    await cluster.waitForLeader();
    const load = new Load(cluster, { clientCount: 2, ownIntervalMs: 20, ownPerNodeMax: 60 });
    await progressBy(cluster, 20, 'load before the cut');
    const leader = await cluster.waitForLeader();
    const others = cluster.followers(leader);
    for (const id of others) cluster.network.cutOneWay(id, leader);
    const stranded = Array.from(
      { length: 10 },
      (_, offset) => new Outcome(cluster.node(leader).broadcast(encode(`deaf-${offset}`))),
    );
    const next = await cluster.waitForLeader(others);
    assert.notEqual(next, leader);
    await progressBy(cluster, 20, 'the others go on');
    assert.ok(
      stranded.every((outcome) => !outcome.settled),
      'the deaf node decided nothing',
    );
    cluster.heal();
    await assertAllDelivered(stranded);
    await load.stop();
    await waitFor(() => load.own.every(({ outcome }) => outcome.settled), 'own settle');
    await cluster.waitConverged();
    load.assertDelivered();
    cluster.assertConsistent();
  } finally {
    await cluster.close();
  }
});

test('a leadership transfer mid-stream loses nothing: refused proposals are retried', async () => {
  const cluster = await TwinCluster.start({ tuning });
  try {
    const load = new Load(cluster, { clientCount: 3, ownIntervalMs: 10, ownPerNodeMax: 80 });
    for (let round = 0; round < 3; round++) {
      const leader = await cluster.waitForLeader();
      await progressBy(cluster, 20, `load before transfer ${round}`);
      const target = cluster.followers(leader)[round % 2] as string;
      const transfer = cluster.node(leader).transferLeadership(target);
      assert.ok(transfer.accepted, transfer.detail);
      await waitFor(() => cluster.leaderId() === target, `${target} leads`);
    }
    await load.stop();
    await waitFor(() => load.own.every(({ outcome }) => outcome.settled), 'own settle');
    await cluster.waitConverged();
    load.assertDelivered();
    assert.deepEqual(
      load.own.filter(({ outcome }) => outcome.error !== undefined).map(({ text }) => text),
      [],
      'a transfer fails no broadcast',
    );
    cluster.assertConsistent();
  } finally {
    await cluster.close();
  }
});
