// Proves the runtime's operating errors on three in-memory nodes: bad input is refused with
// invalid_argument naming the field (or payload_too_large), a full node says overloaded, no
// quorum means timeout (outcome unknown: the message is still delivered after the heal), a
// failed write stops the node (storage_failed, nothing acknowledged after, its status says
// so), close() rejects
// what is pending with node_stopped, and bad input never wedges the node's own session.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BroadcastError } from '../../src/broadcast/errors.ts';
import type { BroadcastOptions } from '../../src/broadcast/node.ts';
import { encode, Outcome, rejection, TwinCluster, waitFor } from './twin-cluster.ts';

const requestTimeoutMs = 800;
const pendingMessagesMax = 50;
const payloadBytesMax = 1024;
let cluster: TwinCluster;

before(async () => {
  cluster = await TwinCluster.start({
    tuning: { requestTimeoutMs, pendingMessagesMax, payloadBytesMax, retryIntervalMs: 100 },
  });
  await cluster.waitForLeader();
});

after(async () => {
  await cluster.close();
});

/** The error of a call, whether it throws at once or rejects its promise. */
async function errorOf(call: () => Promise<unknown>): Promise<unknown> {
  try {
    await call();
  } catch (error) {
    return error;
  }
  return undefined;
}

/**
 * Runs `body` on a follower, then restarts that follower, so that whatever the test did to
 * its own session (refusals, a wedge if one regressed) cannot leak into the next tests.
 */
async function withFollower(body: (id: string) => Promise<void>): Promise<void> {
  const id = cluster.followers(await cluster.waitForLeader())[0] as string;
  try {
    await body(id);
  } finally {
    await cluster.restart(id);
    await cluster.waitForLeader();
  }
}

test('bad arguments are refused with invalid_argument naming the field', () =>
  withFollower(async (id) => {
    const node = cluster.node(id);
    const cases: [string, unknown, BroadcastOptions][] = [
      ['payload', 'not bytes', {}],
      ['payload', null, {}],
      ['seq', encode('x'), { seq: 1 }],
      ['seq', encode('x'), { clientId: 'c' }],
      ['seq', encode('x'), { clientId: 'c', seq: 0 }],
      ['seq', encode('x'), { clientId: 'c', seq: -1 }],
      ['seq', encode('x'), { clientId: 'c', seq: 1.5 }],
      ['seq', encode('x'), { clientId: 'c', seq: Number.NaN }],
      ['seq', encode('x'), { clientId: 'c', seq: 2 ** 53 }],
      ['clientId', encode('x'), { clientId: '', seq: 1 }],
      ['clientId', encode('x'), { clientId: 'c'.repeat(256), seq: 1 }],
      ['topic', encode('x'), { topic: 't'.repeat(256) }],
      ['topic', encode('x'), { clientId: 'c', seq: 1, topic: 'é'.repeat(128) }],
    ];
    for (const [field, payload, options] of cases) {
      const error = await errorOf(() => node.broadcast(payload as Uint8Array, options));
      assert.ok(error instanceof BroadcastError, `${field}: ${String(error)}`);
      assert.equal(error.code, 'invalid_argument', JSON.stringify(options));
      assert.equal(error.details.field, field, JSON.stringify(options));
    }
    assert.throws(() => node.deliveries({ from: 0 }), { code: 'invalid_argument' });
    assert.throws(() => node.deliveries({ from: 1.5 }), { code: 'invalid_argument' });
    assert.equal(node.status().pendingMessageCount, 0, 'nothing refused is pending');
  }));

test('arguments of the wrong type are refused with invalid_argument, not a TypeError', () =>
  withFollower(async (id) => {
    const node = cluster.node(id);
    const cases: BroadcastOptions[] = [
      { topic: 7 as unknown as string },
      { clientId: 7 as unknown as string, seq: 1 },
    ];
    for (const options of cases) {
      const error = await errorOf(() => node.broadcast(encode('x'), options));
      assert.ok(error instanceof BroadcastError, `${JSON.stringify(options)}: ${String(error)}`);
      assert.equal(error.code, 'invalid_argument');
    }
  }));

test('read() refuses a bad position with a typed error', () => {
  const node = cluster.node(cluster.runningIds()[0] as string);
  assert.throws(() => node.read(0, 10), { code: 'invalid_argument' });
});

test('bad input is reported through the returned promise, like every other refusal', () => {
  const node = cluster.node(cluster.runningIds()[0] as string);
  let promise: Promise<unknown> | undefined;
  assert.doesNotThrow(() => {
    promise = node.broadcast(encode('x'), { clientId: '', seq: 1 });
  });
  return assert.rejects(promise as Promise<unknown>, { code: 'invalid_argument' });
});

test('a payload over payloadBytesMax is refused with payload_too_large', async () => {
  const node = cluster.node(await cluster.waitForLeader());
  const error = await errorOf(() => node.broadcast(new Uint8Array(payloadBytesMax + 1)));
  assert.ok(error instanceof BroadcastError);
  assert.equal(error.code, 'payload_too_large');
  assert.equal(error.details.payloadBytes, payloadBytesMax + 1);
  assert.equal(error.details.payloadBytesMax, payloadBytesMax);
  const fits = await node.broadcast(new Uint8Array(payloadBytesMax), { clientId: 'big', seq: 1 });
  assert.equal(fits.duplicate, false);
});

test('a refused own-session broadcast does not block the ones after it', () =>
  withFollower(async (id) => {
    // Restart first: the node's own session must be untouched by the refusals above.
    await cluster.restart(id);
    await cluster.waitForLeader();
    const node = cluster.node(id);
    await node.broadcast(encode('before-the-bad-topic'));
    const error = await errorOf(() => node.broadcast(encode('x'), { topic: 't'.repeat(300) }));
    assert.equal((error as BroadcastError).code, 'invalid_argument');
    const next = new Outcome(node.broadcast(encode('after-the-bad-topic')));
    await waitFor(() => next.settled, 'the next broadcast settles', 3 * requestTimeoutMs);
    assert.equal(next.code, undefined, 'delivered, not timeout');
  }));

test('overloaded once pendingMessagesMax messages wait; a retry of a pending one joins it', async () => {
  const leader = await cluster.waitForLeader();
  const id = cluster.followers(leader)[0] as string;
  const node = cluster.node(id);
  // In one turn nothing can be delivered, so all of these are pending together.
  const accepted = Array.from(
    { length: pendingMessagesMax },
    (_, offset) =>
      new Outcome(node.broadcast(encode(`load-${offset}`), { clientId: 'load', seq: offset + 1 })),
  );
  const refused = await rejection(node.broadcast(encode('one-too-many')));
  assert.equal(refused.code, 'overloaded');
  assert.equal(refused.details.pendingMessagesMax, pendingMessagesMax);
  const rejoin = new Outcome(node.broadcast(encode('load-0'), { clientId: 'load', seq: 1 }));
  await waitFor(() => accepted.every((outcome) => outcome.settled) && rejoin.settled, 'delivered');
  assert.deepEqual(
    accepted.map((outcome) => outcome.code),
    accepted.map(() => undefined),
  );
  assert.equal(rejoin.result?.position, accepted[0]?.result?.position);
  assert.equal(node.status().pendingMessageCount, 0);
});

test('once an overload drains, the node’s own session works again', () =>
  withFollower(async (id) => {
    await cluster.restart(id);
    await cluster.waitForLeader();
    const node = cluster.node(id);
    const accepted = Array.from({ length: pendingMessagesMax }, (_, offset) =>
      node.broadcast(encode(`fill-${offset}`)),
    );
    assert.equal((await rejection(node.broadcast(encode('overloaded')))).code, 'overloaded');
    await Promise.all(accepted);
    const after = new Outcome(node.broadcast(encode('after-the-overload')));
    await waitFor(() => after.settled, 'the broadcast settles', 3 * requestTimeoutMs);
    assert.equal(after.code, undefined, 'delivered, not timeout');
  }));

test('no quorum: timeout; after the heal the message is delivered once anyway', async () => {
  const leader = await cluster.waitForLeader();
  const lonely = cluster.followers(leader)[1] as string;
  cluster.isolate(lonely);
  const started = Date.now();
  const error = await rejection(cluster.node(lonely).broadcast(encode('unknown-outcome')));
  assert.equal(error.code, 'timeout');
  assert.ok(Date.now() - started >= requestTimeoutMs - 20, 'not before the timeout');
  assert.equal(cluster.recorder.positionsOfText('unknown-outcome').length, 0);
  const barrier = await rejection(cluster.node(lonely).barrier());
  assert.equal(barrier.code, 'no_leader');
  cluster.heal();
  await waitFor(
    () => cluster.recorder.positionsOfText('unknown-outcome').length > 0,
    'the node retried its own message after the heal',
  );
  await cluster.waitConverged();
  assert.equal(cluster.recorder.positionsOfText('unknown-outcome').length, 1);
  cluster.assertConsistent();
});

test('a failed write stops the node: storage_failed, and nothing is acknowledged after', async () => {
  const leader = await cluster.waitForLeader();
  const node = cluster.node(leader);
  const deliveredBefore = node.status().lastPosition;
  assert.equal(node.status().stopped, null);
  cluster.disk(leader).failNextWrites(1);
  const failed = await rejection(
    node.broadcast(encode('never-acknowledged'), { clientId: 'failing', seq: 1 }),
  );
  assert.equal(failed.code, 'storage_failed');
  const later = await rejection(
    node.broadcast(encode('after-the-failure'), { clientId: 'failing', seq: 2 }),
  );
  assert.equal(later.code, 'storage_failed');
  // Its role is stale (it may still say leader); the status says it stopped, and why.
  assert.equal(node.status().stopped?.code, 'storage_failed');
  // The others elect a new leader and go on; the stopped node delivers nothing more.
  const survivors = cluster.followers(leader);
  const next = await cluster.waitForLeader(survivors);
  const goingOn = await cluster
    .node(next)
    .broadcast(encode('the-cluster-goes-on'), { clientId: 'going-on', seq: 1 });
  assert.ok((goingOn.position as number) > deliveredBefore);
  assert.ok(node.status().lastPosition <= deliveredBefore + 1, 'the stopped node is frozen');
  assert.equal(cluster.recorder.positionsOfText('after-the-failure').length, 0);
  // Restarted on the same disk, it recovers and catches up.
  await cluster.restart(leader);
  await cluster.waitConverged();
  cluster.assertConsistent();
});

test('close() rejects pending broadcasts with node_stopped and resolves', async () => {
  const leader = await cluster.waitForLeader();
  const id = cluster.followers(leader)[0] as string;
  cluster.isolate(id);
  const node = cluster.node(id);
  const pending = Array.from({ length: 10 }, (_, offset) =>
    rejection(node.broadcast(encode(`closing-${offset}`))),
  );
  await new Promise((resolve) => setImmediate(resolve));
  await cluster.stop(id);
  for (const error of await Promise.all(pending)) assert.equal(error.code, 'node_stopped');
  assert.equal((await rejection(node.broadcast(encode('after-close')))).code, 'node_stopped');
  cluster.heal();
  await cluster.startNode(id);
  await cluster.waitConverged();
});

test('barrier() settles within its timeout even when the node cannot catch up', async () => {
  const leader = await cluster.waitForLeader();
  const lagging = cluster.followers(leader)[0] as string;
  // The follower hears heartbeats and read answers but receives no entries.
  const rule = cluster.dropFrames(
    (frame) => (frame.type === 'Append' || frame.type === 'Snapshot') && frame.to === lagging,
  );
  try {
    await cluster.node(leader).broadcast(encode('the-follower-lacks-this'));
    const barrier = new Outcome(cluster.node(lagging).barrier());
    await waitFor(() => barrier.settled, 'the barrier settles', 2 * requestTimeoutMs).catch(
      () => undefined,
    );
    await cluster.stop(lagging);
    await waitFor(() => barrier.settled, 'the barrier settles once the node stops', 5_000);
    assert.ok(barrier.code !== undefined, 'it rejects: the node could not catch up');
  } finally {
    rule.remove();
    if (!cluster.isRunning(lagging)) await cluster.startNode(lagging);
  }
});
