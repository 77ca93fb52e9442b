// Redelivery after an ack deadline, on three real nodes in this process: a consumer with a
// deadline gets a message it does not ack again, in order, marked redelivered with a higher
// deliveryCount, and nothing it acked comes again; the deadline is refused out of bounds.
// And the group rule as pure functions (fast-check): every slot has one owner among the live
// members, the same whatever order the members joined in, a slot leaves a live owner only
// by its release, and a dead owner's slots move with their unacked messages marked. And
// `abcast tail --consumer --member` as a group member that acks what it printed.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import {
  ConsumerGroup,
  type GroupCommand,
  groupSlotCount,
  rendezvousOwner,
} from '../../src/broadcast/consumer-groups.ts';
import { connect } from '../../src/client/index.ts';
import { kill, spawnCli } from '../cli/helpers.ts';
import { waitFor } from '../support/ports.ts';
import { call, type HttpCluster, startHttpCluster } from './cluster.ts';

let cluster: HttpCluster;

before(async () => {
  cluster = await startHttpCluster();
});

after(async () => {
  await cluster.close();
});

test('an unacked message comes again after the deadline, marked; acked ones never', {
  timeout: 30_000,
}, async () => {
  const leader = await cluster.leader();
  const refused = await call(`${leader.url}/v1/consumers/audit/settings`, {
    body: { ackDeadlineMs: 5 },
  });
  assert.equal(refused.status, 400);
  assert.equal(refused.body.field, 'ackDeadlineMs');
  // Long enough that a loaded machine acks the first two before their deadline passes (an ack
  // is a broadcast through the cluster); the redeliveries of the last two wait for it.
  const set = await call(`${leader.url}/v1/consumers/audit/settings`, {
    body: { ackDeadlineMs: 1_500 },
  });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  const client = connect({ endpoints: cluster.members.map((m) => m.url) });
  const first = await client.broadcast({ n: 1 }, { topic: 'audit' });
  for (let n = 2; n <= 4; n++) await client.broadcast({ n }, { topic: 'audit' });
  await client.ackConsumer('audit', (first.position as number) - 1);
  const seen: { position: number; count: number | undefined; redelivered: boolean | undefined }[] =
    [];
  const stop = new AbortController();
  for await (const message of client.subscribe({ consumer: 'audit', signal: stop.signal })) {
    seen.push({
      position: message.position,
      count: message.deliveryCount,
      redelivered: message.redelivered,
    });
    const n = (message.payload as { n: number }).n;
    // The first two are acked at once; the third only on its second delivery.
    if (n <= 2 || (n === 3 && message.deliveryCount === 2)) await message.ack?.();
    if (n === 4 && message.deliveryCount === 2) stop.abort();
  }
  const start = first.position as number;
  assert.deepEqual(
    seen.map((entry) => [entry.position - start + 1, entry.count, entry.redelivered]),
    [
      [1, 1, false],
      [2, 1, false],
      [3, 1, false],
      [4, 1, false],
      [3, 2, true],
      [4, 2, true],
    ],
  );
  const listed = await call(`${leader.url}/v1/consumers/audit`);
  assert.equal(listed.body.ackDeadlineMs, 1_500);
  client.close();
});

test('a group member gets its unacked key again after the deadline, in order, then the rest', {
  timeout: 30_000,
}, async () => {
  const leader = await cluster.leader();
  const set = await call(`${leader.url}/v1/consumers/ledger/settings`, {
    body: { ackDeadlineMs: 1_500 },
  });
  assert.equal(set.status, 200);
  const client = connect({ endpoints: cluster.members.map((m) => m.url) });
  const positions: number[] = [];
  for (let n = 1; n <= 3; n++) {
    positions.push((await client.broadcast({ n }, { key: 'acct-1' })).position as number);
  }
  const seen: [number, number | undefined, boolean | undefined][] = [];
  const stop = new AbortController();
  for await (const message of client.subscribe({
    consumer: 'ledger',
    member: 'solo',
    leaseMs: 5000,
    signal: stop.signal,
  })) {
    if (message.key !== 'acct-1') {
      await message.ack?.(); // the earlier tests' messages, in other slots
      continue;
    }
    seen.push([message.position, message.deliveryCount, message.redelivered]);
    // Nothing of acct-1 is acked on the first delivery; everything on the second.
    if (message.deliveryCount === 2) await message.ack?.();
    if (message.position === positions[2] && message.deliveryCount === 2) stop.abort();
  }
  const [a, b, c] = positions as [number, number, number];
  assert.deepEqual(seen, [
    [a, 1, false],
    [b, 1, false],
    [c, 1, false],
    [a, 2, true],
    [b, 2, true],
    [c, 2, true],
  ]);
  const group = await call(`${leader.url}/v1/consumers/ledger`);
  const slot = group.body.slots.find(
    (entry: { owner: string | null; index: number }) => entry.index === c,
  );
  assert.equal(slot?.owner, 'solo', 'the slot of acct-1 is done through its last message');
  client.close();
});

test("abcast tail --consumer --member prints a member's messages and acks them per slot", {
  timeout: 30_000,
}, async () => {
  const leader = await cluster.leader();
  const client = connect({ endpoints: [leader.url] });
  const positions: number[] = [];
  for (const key of ['t-1', 't-2', 't-1']) {
    positions.push((await client.broadcast({ key }, { topic: 'tailed', key })).position as number);
  }
  client.close();
  const tail = spawnCli([
    ...['tail', '--node', leader.url, '--topic', 'tailed'],
    ...['--consumer', 'tailers', '--member', 't1'],
  ]);
  try {
    const printed = () =>
      tail
        .stdout()
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as { index: number; key: string; slot: number });
    await waitFor(() => printed().length >= 3, 'tail printed the three messages');
    assert.deepEqual(
      printed().map((message) => message.index),
      positions,
    );
    const slots = new Map(printed().map((message) => [message.slot, message.index]));
    await waitFor(async () => {
      const group = await call(`${leader.url}/v1/consumers/tailers`);
      return [...slots].every(([slot, index]) => group.body.slots[slot].index >= index);
    }, 'tail acked what it printed, per slot');
  } finally {
    await kill(tail);
  }
});

const at = (lastPosition: number, logTimeMs: number) => ({ lastPosition, logTimeMs });

test('rendezvous: one owner per slot among the members, whatever their order', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/), { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 0, max: groupSlotCount - 1 }),
      (members, slot) => {
        const owner = rendezvousOwner(slot, members);
        assert.ok(owner !== null && members.includes(owner));
        assert.equal(rendezvousOwner(slot, [...members].reverse()), owner);
        // Removing another member never moves the slot (few slots move per change).
        const others = members.filter((member) => member !== owner);
        if (others.length > 0)
          assert.equal(rendezvousOwner(slot, [owner as string, ...others.slice(1)]), owner);
      },
    ),
  );
});

test('a slot leaves a live owner only by its release; a dead owner loses it at once', () => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { minLength: 1, maxLength: 4 }),
      (joins) => {
        const group = new ConsumerGroup('g');
        let time = 0;
        for (const member of joins) {
          const before = group.slots.map((slot) => slot.owner);
          const live = new Set(group.members.map((m) => m.member));
          group.apply({ op: 'join', name: 'g', member, leaseMs: 1000, slots: {} }, at(10, ++time));
          group.slots.forEach((slot, index) => {
            const previous = before[index];
            if (previous !== null && previous !== undefined && live.has(previous)) {
              assert.equal(
                slot.owner,
                previous,
                'a live owner keeps its slot until it releases it',
              );
            }
          });
        }
        for (let slot = 0; slot < groupSlotCount; slot++) {
          const state = group.slots[slot];
          const owner = state?.owner as string;
          if (group.target(slot) !== owner) {
            group.apply({ op: 'release', name: 'g', member: owner, slot }, at(10, ++time));
          }
          assert.equal(group.slots[slot]?.owner, group.target(slot), 'released to its target');
        }
        // Everyone but the last joiner goes silent past its lease: their slots move at once,
        // with what they may have been handed marked for redelivery.
        const survivor = joins.at(-1) as string;
        const command: GroupCommand = {
          op: 'join',
          name: 'g',
          member: survivor,
          leaseMs: 1000,
          slots: {},
        };
        group.apply(command, at(10, time + 999));
        group.apply(command, at(12, time + 5000));
        for (const slot of group.slots) {
          assert.equal(slot.owner, survivor);
        }
        assert.equal(group.members.length, 1);
      },
    ),
  );
});

test('acks are cumulative per slot, by its owner only, never past the delivered end', () => {
  const group = new ConsumerGroup('g');
  group.apply({ op: 'join', name: 'g', member: 'a', leaseMs: 1000, slots: {} }, at(5, 1));
  group.apply({ op: 'gack', name: 'g', member: 'a', slots: { '3': 9 } }, at(7, 2));
  assert.equal(group.slots[3]?.doneThrough, 7);
  group.apply({ op: 'gack', name: 'g', member: 'a', slots: { '3': 4 } }, at(8, 3));
  assert.equal(group.slots[3]?.doneThrough, 7);
  group.apply({ op: 'gack', name: 'g', member: 'b', slots: { '3': 8 } }, at(8, 4));
  assert.equal(group.slots[3]?.doneThrough, 7, 'a non-owner acks nothing');
  const copy = ConsumerGroup.fromJSON(JSON.parse(JSON.stringify(group.toJSON())));
  assert.deepEqual(copy.toJSON(), group.toJSON());
});
