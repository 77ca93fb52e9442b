// The SDK's ack coalescing: many message.ack() calls in a burst become few requests, each
// carrying the highest position acked so far, one in flight at a time; every call resolves
// once a request covering its position succeeded, and fails with that request's error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConsumerAcks, GroupAcks } from '../../src/client/consumer-acks.ts';

test('a burst of acks is one or two requests, each for the highest position so far', async () => {
  const sent: number[] = [];
  const acks = new ConsumerAcks('billing', async (_name, position) => {
    sent.push(position);
    return position;
  });
  await Promise.all(Array.from({ length: 100 }, (_, at) => acks.ack(at + 1)));
  assert.ok(sent.length <= 2, `sent ${sent.join(',')}`);
  assert.equal(sent.at(-1), 100);
  await acks.ack(50); // covered already: no request
  assert.equal(sent.at(-1), 100);
});

test('a failed request fails the acks it carried; a later ack tries again', async () => {
  let fail = true;
  const sent: number[] = [];
  const acks = new ConsumerAcks('billing', async (_name, position) => {
    sent.push(position);
    if (fail) throw new Error('down');
    return position;
  });
  await assert.rejects(acks.ack(3), /down/);
  fail = false;
  await acks.ack(4);
  assert.deepEqual(sent, [3, 4]);
});

/** A member's acks whose requests the test answers one by one. */
function controlledGroupAcks() {
  const requests: {
    readonly slots: Readonly<Record<string, number>>;
    readonly succeed: () => void;
    readonly fail: (error: Error) => void;
  }[] = [];
  const acks = new GroupAcks(
    'billing',
    'worker-1',
    (_name, _member, slots) =>
      new Promise((resolve, reject) => {
        requests.push({ slots: { ...slots }, succeed: () => resolve(null), fail: reject });
      }),
  );
  return { acks, requests };
}

/** How a promise has settled so far: its outcome is read after the microtasks ran. */
function watch(promise: Promise<void>): { state: 'waiting' | 'resolved' | 'rejected' } {
  const seen = { state: 'waiting' as 'waiting' | 'resolved' | 'rejected' };
  promise.then(
    () => {
      seen.state = 'resolved';
    },
    () => {
      seen.state = 'rejected';
    },
  );
  return seen;
}

const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

test('a failed group ack request fails only the acks it carried', async () => {
  const { acks, requests } = controlledGroupAcks();
  const carried = watch(acks.ack(1, 5));
  await settled();
  assert.deepEqual(
    requests.map((request) => request.slots),
    [{ 1: 5 }],
  );
  // Made while the request runs: it waits for a request of its own.
  const later = watch(acks.ack(2, 7));
  requests[0]?.fail(new Error('down'));
  await settled();
  assert.equal(carried.state, 'rejected');
  assert.equal(later.state, 'waiting');
  assert.deepEqual(
    requests.map((request) => request.slots),
    [{ 1: 5 }, { 2: 7 }],
  );
  requests[1]?.succeed();
  await settled();
  assert.equal(later.state, 'resolved');
});

test('a carried group ack that a later ack of its slot covers takes the later outcome', async () => {
  const { acks, requests } = controlledGroupAcks();
  const carried = watch(acks.ack(1, 5));
  await settled();
  const above = watch(acks.ack(1, 8));
  requests[0]?.fail(new Error('down'));
  await settled();
  // The cursor at 8 covers 5: failing 5 would be false once 8 lands.
  assert.equal(carried.state, 'waiting');
  assert.equal(above.state, 'waiting');
  assert.deepEqual(requests[1]?.slots, { 1: 8 });
  requests[1]?.succeed();
  await settled();
  assert.deepEqual([carried.state, above.state], ['resolved', 'resolved']);
});

test('a later group ack below a failed one is still sent', async () => {
  const { acks, requests } = controlledGroupAcks();
  const carried = watch(acks.ack(1, 5));
  await settled();
  const below = watch(acks.ack(1, 3));
  requests[0]?.fail(new Error('down'));
  await settled();
  assert.equal(carried.state, 'rejected');
  assert.deepEqual(requests[1]?.slots, { 1: 3 });
  requests[1]?.succeed();
  await settled();
  assert.equal(below.state, 'resolved');
});
