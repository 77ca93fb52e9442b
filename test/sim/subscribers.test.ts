// What simulated SDK subscribers yield is checked against the order the nodes agree on. The
// checker, fed hand-made streams, accepts a dense run, a topic's messages with progress
// marks, and a resumption at retention's floor, and fails a gap, a repeat, a message unlike
// the one delivered, one never delivered, and a skipped message of the topic. In the
// simulated world, a subscriber whose node crashes while it reads fails over to another node
// through the real subscribe code and binary streams, and yields what the checker expects;
// one whose node is removed while it runs fails over too, once that node, hearing no leader,
// ends its stream with no_leader.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Message } from '../../src/client/subscribe.ts';
import type { NodeId } from '../../src/raft/types.ts';
import type { CommonMessage } from '../../src/sim/runtime/delivery-checker.ts';
import { SubscriberChecker } from '../../src/sim/runtime/subscriber-checker.ts';
import { runRuntimeSeed } from '../../src/sim/runtime/world.ts';
import { type Property, ViolationContext } from '../../src/sim/violation.ts';

class Recording extends ViolationContext {
  readonly failed: string[] = [];

  override fail(property: Property, detail: string, _nodes: readonly NodeId[]): void {
    this.failed.push(`${property}: ${detail}`);
  }
}

/** Positions 1..6: topics red, blue, red, none, red, blue. */
const common: CommonMessage[] = ['red', 'blue', 'red', '', 'red', 'blue'].map((topic, at) => ({
  clientId: 'c',
  seq: at + 1,
  topic,
  payloadText: JSON.stringify({ n: at + 1 }),
  logTimeMs: at,
  firstNode: 'n1',
}));

function checkerOver(deliveredCount = common.length) {
  const context = new Recording({ seed: 1, nodeCount: null, unsafe: null, profile: null }, []);
  const checker = new SubscriberChecker(
    context,
    (position) => (position <= deliveredCount ? common[position - 1] : undefined),
    () => deliveredCount,
  );
  return { context, checker };
}

/** The message delivered at `position`, as the SDK yields it. */
function yielded(position: number, change: Partial<Message> = {}): Message {
  const known = common[position - 1] as CommonMessage;
  return {
    position,
    term: 1,
    payload: JSON.parse(known.payloadText),
    client: known.clientId,
    seq: known.seq,
    topic: known.topic === '' ? null : known.topic,
    time: known.logTimeMs,
    ...change,
  };
}

function feedAll(checker: SubscriberChecker, positions: readonly number[]): void {
  for (const position of positions) checker.onMessage('all', yielded(position));
}

test('a dense run from its start, and a topic with progress marks, pass', () => {
  const { context, checker } = checkerOver();
  checker.onSubscribed({ name: 'all', from: 2, topic: null });
  for (const position of [2, 3, 4, 5, 6]) checker.onMessage('all', yielded(position));
  checker.onSubscribed({ name: 'red', from: 1, topic: 'red' });
  checker.onMessage('red', yielded(1));
  checker.onProgress('red', 2);
  checker.onMessage('red', yielded(3));
  checker.onMessage('red', yielded(5));
  checker.onProgress('red', 6);
  assert.deepEqual(context.failed, []);
  assert.deepEqual(checker.lagging(), []);
});

test('a gap, a repeat, a changed or undelivered message, a skipped topic message fail', () => {
  const cases: [string, (checker: SubscriberChecker) => void][] = [
    ['gap', (c) => feedAll(c, [1, 3])],
    ['repeat', (c) => feedAll(c, [1, 2, 2])],
    ['payload', (c) => c.onMessage('all', yielded(1, { payload: { n: 9 } }))],
    ['client', (c) => c.onMessage('all', yielded(1, { client: 'other' }))],
    ['seq', (c) => c.onMessage('all', yielded(1, { seq: 7 }))],
    ['topic', (c) => c.onMessage('all', yielded(1, { topic: 'blue' }))],
    ['undelivered', (c) => c.onMessage('all', { ...yielded(6), position: 7 })],
  ];
  for (const [name, feed] of cases) {
    const { context, checker } = checkerOver();
    checker.onSubscribed({ name: 'all', from: 1, topic: null });
    feed(checker);
    assert.equal(context.failed.length, 1, name);
    assert.match(context.failed[0] as string, /^subscriber order: all \(from 1\)/, name);
  }
  const { context, checker } = checkerOver();
  checker.onSubscribed({ name: 'red', from: 1, topic: 'red' });
  checker.onMessage('red', yielded(1));
  checker.onMessage('red', yielded(5)); // 3 is red too
  checker.onProgress('red', 7); // beyond what was delivered
  checker.onProgress('red', 5); // passed already
  assert.equal(context.failed.length, 3);
  assert.match(context.failed[0] as string, /skipping 3 of its topic/);
});

test('a compacted start resumes at the floor, which must lie ahead and within the order', () => {
  const { context, checker } = checkerOver();
  checker.onSubscribed({ name: 'all', from: 1, topic: null });
  checker.onMessage('all', yielded(1));
  checker.onCompacted('all', 4);
  assert.equal(checker.resumeFrom('all'), 4);
  checker.onMessage('all', yielded(4));
  assert.deepEqual(context.failed, []);
  checker.onCompacted('all', 5); // 5 is what it asks for: nothing was compacted before it
  checker.onCompacted('all', 9); // past the order
  assert.equal(context.failed.length, 2);
  assert.deepEqual(checker.lagging(), ['all at 4 of 6']);
});

/** A seed where `subscriber` reads from `crashed` when it crashes, and resumes at `next`. */
interface Failover {
  readonly seed: number;
  readonly path: string;
  readonly subscriber: string;
  readonly crashed: NodeId;
  readonly next: NodeId;
  readonly after: number;
}

const failovers: readonly Failover[] = [
  // Seed 8: s0 reads from position 1, at n2 from 5.1 s, which crashes at 5.6 s; it resumes
  // at n3 after 54.
  {
    seed: 8,
    path: 'over the binary ports',
    subscriber: 's0',
    crashed: 'n2',
    next: 'n3',
    after: 54,
  },
  // Seed 12: s0 reads topic red from position 1 at n1, which crashes at 2.1 s; it resumes
  // at n2 after 32.
  { seed: 12, path: 'over HTTP', subscriber: 's0', crashed: 'n1', next: 'n2', after: 32 },
];

for (const failover of failovers) {
  const { seed, path, subscriber, crashed, next, after } = failover;
  test(`a subscriber ${path} fails over when its node crashes, and yields what was delivered (seed ${seed})`, async () => {
    const lines: string[] = [];
    const result = await runRuntimeSeed({ seed, traceSink: (line) => lines.push(line) });
    assert.equal(result.violation, null, result.violation?.message);
    const opens = ` ${subscriber} opens a stream at`;
    assert.ok(
      lines.some((line) => line.includes(` ${subscriber} subscribes from`) && line.endsWith(path)),
    );
    // The stream open at `crashed` when it crashed, and the next one the subscriber opened.
    let opened = -1;
    let crash = -1;
    let resumed = -1;
    for (let at = 0; at < lines.length; at++) {
      const line = lines[at] as string;
      if (line.includes(opens)) {
        if (crash >= 0) {
          resumed = at;
          break;
        }
        opened = line.includes(`${opens} ${crashed} `) ? at : -1;
      } else if (opened >= 0 && line.includes(` ${crashed} crashes`)) {
        crash = at;
      }
    }
    assert.ok(opened >= 0 && crash > opened, `${crashed} crashed under ${subscriber}`);
    assert.ok(
      resumed > crash && (lines[resumed] as string).endsWith(`${opens} ${next} after ${after}`),
      `${subscriber} resumed at ${next} after ${after}: ${lines[resumed]}`,
    );
    // The checker saw every yield, and that each subscriber reached the last position.
    assert.ok(result.stats.positions > after, 'there was more to read after the failover');
    assert.ok(result.stats.subscriberMessages > 0, 'the subscribers yielded');
  });
}

// Seed 0x927c9: s0 reads from position 1 over the binary ports, at n2 from 303 ms; n2's
// removal is asked at 4743 ms, and n2 keeps running. Seeing itself removed (or, had it not
// seen it, after three election timeouts without a leader) it ends the stream with
// no_leader, and s0 resumes on another node after 31 without n2 crashing or being stopped;
// before, s0 stalled at 31.
test('a subscriber whose node is removed while it runs fails over, with no one stopping the node (seed 0x927c9)', async () => {
  const lines: string[] = [];
  const result = await runRuntimeSeed({ seed: 0x927c9, traceSink: (line) => lines.push(line) });
  assert.equal(result.violation, null, result.violation?.message);
  const removal = lines.findIndex((line) => line.includes('membership: remove n2 (asked'));
  assert.ok(removal >= 0, 'n2 is removed');
  assert.ok(lines.some((line) => line.endsWith('membership: remove n2 is in force')));
  const opens = ' s0 opens a stream at';
  let opened = removal - 1;
  while (opened >= 0 && !(lines[opened] as string).includes(opens)) opened--;
  assert.ok(lines[opened]?.includes(`${opens} n2 `), 's0 read n2 when n2 was removed');
  const resumed = lines.findIndex((line, at) => at > removal && line.includes(opens));
  assert.ok(resumed > removal, 's0 left n2');
  assert.ok(lines[resumed]?.endsWith(' after 31'), lines[resumed]);
  assert.ok(!lines[resumed]?.includes(`${opens} n2 `), 'to another node');
  const n2Down = lines.findIndex(
    (line, at) => at > opened && at < resumed && /\bn2 (crashes|stops|is stopped)/.test(line),
  );
  assert.equal(n2Down, -1, 'n2 was still running when s0 left it');
  assert.ok(result.stats.subscriberMessages > 31, 's0 yielded past 31');
});
