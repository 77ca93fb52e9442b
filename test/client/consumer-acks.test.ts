// The SDK's ack coalescing: many message.ack() calls in a burst become few requests, each
// carrying the highest position acked so far, one in flight at a time; every call resolves
// once a request covering its position succeeded, and fails with that request's error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ConsumerAcks, GroupAcks } from '../../src/client/consumer-acks.ts';
import { ClientError } from '../../src/client/errors.ts';

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

/** A consumer's cursor acks whose requests the test answers one by one. */
function controlledConsumerAcks() {
  const requests: { position: number; succeed: () => void; fail: (e: Error) => void }[] = [];
  const acks = new ConsumerAcks(
    'billing',
    (_name, position) =>
      new Promise((resolve, reject) => {
        requests.push({ position, succeed: () => resolve(position), fail: reject });
      }),
  );
  return { acks, requests };
}

test('an ack made while a request fails is sent on its own, not failed with it', async () => {
  const { acks, requests } = controlledConsumerAcks();
  const carried = watch(acks.ack(3));
  const covered = watch(acks.ack(2)); // below the request in flight: it rides on it
  await settled();
  const later = watch(acks.ack(5)); // made while the request runs
  requests[0]!.fail(new Error('down'));
  await settled();
  assert.equal(carried.state, 'rejected');
  assert.equal(covered.state, 'rejected');
  assert.equal(later.state, 'waiting');
  assert.deepEqual(
    requests.map((request) => request.position),
    [3, 5],
  );
  requests[1]!.succeed();
  await settled();
  assert.equal(later.state, 'resolved');
});

test('a cursor ack fails only if a request covering it failed after it was made', async () => {
  const op = fc.oneof(
    fc.record({ ack: fc.integer({ min: 1, max: 20 }) }),
    fc.record({ answer: fc.constantFrom('ok' as const, 'fail' as const) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
      const { acks, requests } = controlledConsumerAcks();
      let clock = 0;
      let cursor = 0; // what the log holds: the highest position of a request that landed
      const failures: { position: number; at: number }[] = [];
      const tracked: { position: number; state: string; madeAt: number }[] = [];
      let answered = 0;
      const answer = async (ok: boolean) => {
        const request = requests[answered];
        if (request === undefined) return;
        answered += 1;
        if (ok) {
          cursor = Math.max(cursor, request.position);
          request.succeed();
        } else {
          failures.push({ position: request.position, at: clock++ });
          request.fail(new Error('down'));
        }
        await settled();
      };
      for (const each of ops) {
        if ('ack' in each) {
          const entry = { position: each.ack, state: 'waiting', madeAt: clock++ };
          tracked.push(entry);
          acks.ack(each.ack).then(
            () => {
              entry.state = 'resolved';
            },
            () => {
              entry.state = 'rejected';
            },
          );
          await settled();
        } else await answer(each.answer === 'ok');
      }
      for (let round = 0; answered < requests.length; round++) {
        assert.ok(round < 100, 'the requests end');
        await answer(true);
      }
      for (const entry of tracked) {
        assert.notEqual(entry.state, 'waiting', `ack ${entry.position} never settled`);
        if (entry.state === 'resolved') assert.ok(entry.position <= cursor);
        else {
          assert.ok(
            failures.some((f) => f.at > entry.madeAt && f.position >= entry.position),
            `ack ${entry.position} failed with no failed request covering it`,
          );
        }
      }
    }),
    { numRuns: 300 },
  );
});

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

type GroupOp =
  | { readonly ack: { readonly slot: number; readonly position: number } }
  | { readonly answer: 'ok' | 'fail' | 'notOwner' };

const groupOp: fc.Arbitrary<GroupOp> = fc.oneof(
  fc.record({
    ack: fc.record({ slot: fc.nat(2), position: fc.integer({ min: 1, max: 12 }) }),
  }),
  fc.record({ answer: fc.constantFrom('ok' as const, 'fail' as const, 'notOwner' as const) }),
);

interface TrackedAck {
  readonly slot: number;
  readonly position: number;
  readonly madeAt: number;
  state: 'waiting' | 'resolved' | 'rejected';
  rejectedAt: number;
}

test('a group ack fails only if no request that lands carries it, or a later ack', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(groupOp, { maxLength: 40 }), async (ops) => {
      let clock = 0;
      const { acks, requests } = controlledGroupAcks();
      const built: number[] = [];
      const landed: { readonly slots: Readonly<Record<string, number>>; builtAt: number }[] = [];
      const tracked: TrackedAck[] = [];
      let answered = 0;
      const answer = async (how: 'ok' | 'fail' | 'notOwner') => {
        const request = requests[answered];
        if (request === undefined) return;
        answered += 1;
        const at = clock++;
        if (how === 'ok') {
          landed.push({ slots: request.slots, builtAt: built[answered - 1] as number });
          request.succeed();
        } else if (how === 'fail') request.fail(new Error('down'));
        else {
          const lost = Object.keys(request.slots)[0] as string;
          // The other slots of the request land.
          const kept = { ...request.slots };
          delete kept[lost];
          landed.push({ slots: kept, builtAt: built[answered - 1] as number });
          request.fail(new ClientError('not_owner', 'moved', { slots: lost }));
        }
        await settled();
        for (const each of tracked) {
          if (each.state === 'rejected' && each.rejectedAt === -1) each.rejectedAt = at;
        }
      };
      const noteBuilt = () => {
        while (built.length < requests.length) built.push(clock++);
      };
      for (const op of ops) {
        if ('ack' in op) {
          const entry: TrackedAck = {
            ...op.ack,
            madeAt: clock++,
            state: 'waiting',
            rejectedAt: -1,
          };
          tracked.push(entry);
          acks.ack(op.ack.slot, op.ack.position).then(
            () => {
              entry.state = 'resolved';
            },
            () => {
              entry.state = 'rejected';
            },
          );
          await settled();
        } else await answer(op.answer);
        noteBuilt();
      }
      for (let round = 0; answered < requests.length; round++) {
        assert.ok(round < 100, 'the requests end');
        await answer('ok');
        noteBuilt();
      }
      for (const each of tracked) {
        assert.notEqual(each.state, 'waiting', 'every ack settles');
        const covering = landed.filter((request) => {
          const sent = request.slots[String(each.slot)];
          return sent !== undefined && sent >= each.position;
        });
        if (each.state === 'resolved') {
          assert.ok(covering.length > 0, 'a resolved ack landed');
          continue;
        }
        // Rejected: whatever landed and covers it carried a later ack made after it failed.
        for (const request of covering) {
          const laterAck = tracked.some(
            (other) =>
              other.slot === each.slot &&
              other.position >= each.position &&
              other.madeAt > each.rejectedAt &&
              other.madeAt < request.builtAt,
          );
          assert.ok(
            request.builtAt < each.madeAt || laterAck,
            `ack ${each.slot}@${each.position} failed, yet a request built after it landed`,
          );
        }
      }
    }),
    { numRuns: 200 },
  );
});
