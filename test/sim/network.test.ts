// The simulated network and agenda behave as specified: losses, duplicates and latencies
// follow the fault settings, partitions cut exactly the links they name (both ways, one way,
// or around one node) until healed, a seed replays the same fates, and the event queue pops
// in (tick, order, insertion) order like a naive sort.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { EventQueue } from '../../src/sim/event-queue.ts';
import {
  drawPartition,
  type NetworkFaults,
  perfectNetwork,
  SimNetwork,
} from '../../src/sim/network.ts';
import { AssertionError } from '../../src/util/assert.ts';
import { Prng } from '../../src/util/prng.ts';

const lossless: NetworkFaults = { ...perfectNetwork, latencyTicksMin: 2, latencyTicksMax: 5 };

test('a lossless network delivers each message once within its latency bounds', () => {
  const network = new SimNetwork(3, new Prng(1), lossless);
  const seen = new Set<number>();
  for (let round = 0; round < 1000; round++) {
    const delays = network.plan(0, 1);
    assert.equal(delays.length, 1);
    const delay = delays[0] as number;
    assert.ok(delay >= 2 && delay <= 5, `delay ${delay} within [2, 5]`);
    seen.add(delay);
  }
  assert.deepEqual([...seen].sort(), [2, 3, 4, 5], 'every latency occurs, so messages reorder');
});

test('loss and duplication follow their probabilities', () => {
  const lossy = new SimNetwork(2, new Prng(2), { ...lossless, dropProbability: 1 });
  assert.deepEqual(lossy.plan(0, 1), []);
  const doubled = new SimNetwork(2, new Prng(3), { ...lossless, duplicateProbability: 1 });
  assert.equal(doubled.plan(1, 0).length, 2);
  const some = new SimNetwork(2, new Prng(4), { ...lossless, dropProbability: 0.25 });
  let lost = 0;
  for (let round = 0; round < 4000; round++) if (some.plan(0, 1).length === 0) lost++;
  assert.ok(lost > 800 && lost < 1200, `about a quarter lost (${lost} of 4000)`);
});

test('delay spikes hold some messages far beyond the normal latency', () => {
  const network = new SimNetwork(2, new Prng(5), {
    ...lossless,
    delaySpikeProbability: 0.5,
    delaySpikeTicksMax: 100,
  });
  const delays = Array.from({ length: 200 }, () => network.plan(0, 1)[0] as number);
  assert.ok(
    delays.some((delay) => delay > 20),
    'some message is held back',
  );
  assert.ok(
    delays.every((delay) => delay <= 105),
    'never beyond latency + spike',
  );
});

test('a symmetric partition cuts both ways; a one-way partition only one; heal restores', () => {
  const network = new SimNetwork(4, new Prng(6), lossless);
  network.applyPartition({ kind: 'symmetric', side: [0, 1], other: [2, 3] });
  assert.deepEqual(network.plan(0, 2), []);
  assert.deepEqual(network.plan(3, 1), []);
  assert.equal(network.plan(0, 1).length, 1, 'links inside a side stay up');
  assert.equal(network.plan(2, 3).length, 1);
  network.applyPartition({ kind: 'one-way', side: [0], other: [1, 2, 3] });
  assert.equal(network.linkUp(0, 1), false, 'the side cannot send');
  assert.equal(network.linkUp(1, 0), true, 'but still hears the others');
  assert.equal(network.linkUp(2, 3), true, 'the previous partition is replaced');
  network.heal();
  for (let from = 0; from < 4; from++) {
    for (let to = 0; to < 4; to++) assert.equal(network.linkUp(from, to), true);
  }
  assert.equal(network.partition, null);
});

test('drawn partitions split the nodes into two non-empty sides; isolate picks the leader', () => {
  fc.assert(
    fc.property(fc.nat(), fc.integer({ min: 2, max: 9 }), (seed, count) => {
      const prng = new Prng(seed);
      const nodes = Array.from({ length: count }, (_, index) => index);
      for (const kind of ['symmetric', 'one-way'] as const) {
        const spec = drawPartition(prng, kind, nodes, null);
        assert.ok(spec.side.length > 0 && spec.other.length > 0);
        assert.deepEqual(
          [...spec.side, ...spec.other].sort((a, b) => a - b),
          nodes,
        );
      }
      const leader = count - 1;
      assert.deepEqual(drawPartition(prng, 'isolate', nodes, leader).side, [leader]);
    }),
  );
});

test('the same seed replays the same fates', () => {
  const faults = { ...lossless, dropProbability: 0.3, duplicateProbability: 0.2 };
  const fates = (seed: number) => {
    const network = new SimNetwork(3, new Prng(seed), faults);
    return Array.from({ length: 200 }, (_, round) => network.plan(round % 3, (round + 1) % 3));
  };
  assert.deepEqual(fates(9), fates(9));
  assert.notDeepEqual(fates(9), fates(10));
});

test('bad fault settings and unknown nodes are refused', () => {
  assert.throws(
    () => new SimNetwork(2, new Prng(1), { ...lossless, dropProbability: 1.5 }),
    AssertionError,
  );
  assert.throws(
    () => new SimNetwork(2, new Prng(1), { ...lossless, latencyTicksMax: 1 }),
    AssertionError,
  );
  const network = new SimNetwork(2, new Prng(1), lossless);
  assert.throws(() => network.plan(0, 2), AssertionError);
});

test('the event queue pops like a stable sort by (tick, order)', () => {
  const event = fc.record({ atTicks: fc.nat(50), order: fc.integer({ min: -1, max: 5 }) });
  fc.assert(
    fc.property(fc.array(event, { maxLength: 300 }), (events) => {
      const queue = new EventQueue<number>(1000);
      for (const [position, item] of events.entries())
        queue.push(item.atTicks, item.order, position);
      const expected = events
        .map((item, position) => ({ ...item, position }))
        .sort((a, b) => a.atTicks - b.atTicks || a.order - b.order || a.position - b.position)
        .map((item) => item.position);
      const popped: number[] = [];
      while (queue.size > 0) popped.push(queue.pop());
      assert.deepEqual(popped, expected);
      assert.equal(queue.peekTicks(), Number.POSITIVE_INFINITY);
    }),
  );
});

test('the event queue refuses to grow past its bound', () => {
  const queue = new EventQueue<string>(2);
  queue.push(0, 0, 'a');
  queue.push(0, 0, 'b');
  assert.throws(() => queue.push(0, 0, 'c'), AssertionError);
});
