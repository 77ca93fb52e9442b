// Per-topic retention (src/broadcast/retention.ts): a topic's floor is the first of its
// messages within its age in log time, the same on two stores cut into different segments
// (so every node answers alike), found without reading older segments; a read of the topic
// below it is compacted naming that floor while other topics and plain reads are untouched;
// and the cut of the retained range stops at a segment holding a message its topic keeps
// longer. A naive twin (a scan of every message) checks the floor on random logs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DeliveryLog } from '../../src/broadcast/deliveries.ts';
import { BroadcastError } from '../../src/broadcast/errors.ts';
import { retentionCut, topicFloor } from '../../src/broadcast/retention.ts';
import { MemoryStoreFiles, MessageStore, type StoredMessage } from '../../src/store/index.ts';
import { storedMessage } from '../support/stored-message.ts';

const secondMs = 1000;

function logOf(
  messages: readonly StoredMessage[],
  segmentBytesMax: number,
  topics: Record<string, number | null>,
  logNowMs: () => number,
): DeliveryLog {
  const log = new DeliveryLog({
    store: new MessageStore({ files: new MemoryStoreFiles(), segmentBytesMax }),
    backfill: true,
    retainBytesMax: null,
  });
  log.setTopicRetention(topics, logNowMs);
  for (const stored of messages) log.append(stored);
  log.notify();
  return log;
}

/** 60 messages, one a second, alternating orders / prices / audit. */
const history = Array.from({ length: 60 }, (_, at) =>
  storedMessage(at + 1, {
    topic: ['orders', 'prices', 'audit'][at % 3] as string,
    logTimeMs: (at + 1) * secondMs,
  }),
);

test("a topic read below the topic's floor is compacted, naming that floor, on every node", () => {
  const nowMs = 60 * secondMs;
  const topics = { orders: 10 * secondMs, audit: null };
  // Two nodes, their stores cut into segments of different sizes.
  const nodes = [200, 1500].map((bytes) => logOf(history, bytes, topics, () => nowMs));
  for (const log of nodes) {
    // orders messages sit at 1, 4, 7 …; the first within 10 s of log time 60 s is at 52.
    assert.equal(log.topicFloor('orders'), 52);
    assert.equal(log.topicFloor('audit'), null, 'forever: the retained range decides');
    assert.equal(log.topicFloor('prices'), null, 'no override');
    assert.throws(
      () => log.readTopic('orders', 10, 10, 1000),
      (error: unknown) =>
        error instanceof BroadcastError &&
        error.code === 'compacted' &&
        error.details.firstPosition === 52,
    );
    const page = log.readTopic('orders', 52, 10, 1000);
    assert.deepEqual(
      page.messages.map((stored) => stored.position),
      [52, 55, 58],
    );
    assert.equal(log.readTopic('prices', 1, 1, 1000).messages[0]?.position, 2);
    assert.equal(log.read(1, 1)[0]?.topic, 'orders', 'a read by position is not a topic read');
  }
});

test('a topic floor moves forward with the log clock, and past the end when all are old', () => {
  let nowMs = 60 * secondMs;
  const log = logOf(history, 400, { orders: 10 * secondMs }, () => nowMs);
  assert.equal(log.topicFloor('orders'), 52);
  nowMs = 65 * secondMs;
  assert.equal(log.topicFloor('orders'), 55);
  nowMs = 500 * secondMs;
  assert.equal(log.topicFloor('orders'), 61, 'nothing kept: the floor is past the last');
});

test('the floor matches a naive scan of every message, whatever the segments', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom('a', 'b'), fc.integer({ min: 0, max: 3 })), {
        minLength: 1,
        maxLength: 80,
      }),
      fc.integer({ min: 100, max: 2000 }),
      fc.integer({ min: 0, max: 250 }),
      (steps, segmentBytesMax, cutoffMs) => {
        let clockMs = 0;
        const messages = steps.map(([topic, gapMs], at) => {
          clockMs += gapMs;
          return storedMessage(at + 1, { topic, logTimeMs: clockMs });
        });
        const store = new MessageStore({ files: new MemoryStoreFiles(), segmentBytesMax });
        for (const stored of messages) store.append(stored);
        store.flush();
        const found = topicFloor(store, {
          topic: 'a',
          from: 1,
          lastPosition: messages.length,
          cutoffMs,
        });
        const naive =
          messages.find((stored) => stored.topic === 'a' && stored.logTimeMs >= cutoffMs)
            ?.position ?? messages.length + 1;
        assert.deepEqual(found, { floor: naive });
      },
    ),
  );
});

test('the cut stops at a segment holding a message its topic keeps longer', () => {
  const segments = [
    { first: 1, last: 10, sizeBytes: 100, firstLogTimeMs: 1_000, lastLogTimeMs: 10_000 },
    { first: 11, last: 20, sizeBytes: 100, firstLogTimeMs: 11_000, lastLogTimeMs: 20_000 },
    { first: 21, last: 30, sizeBytes: 100, firstLogTimeMs: 21_000, lastLogTimeMs: 30_000 },
    { first: 31, last: 40, sizeBytes: 100, firstLogTimeMs: 31_000, lastLogTimeMs: 40_000 },
  ];
  const nowMs = 40_000;
  const byAge = { ageMs: 5_000, bytesMax: null };
  assert.equal(retentionCut(segments, byAge, nowMs), 31, 'without overrides');
  // "audit" is in the second segment only, kept forever: the cut stops before it.
  const holds = (segment: { first: number }, topic: string) =>
    topic === 'audit' && segment.first === 11;
  assert.equal(retentionCut(segments, { ...byAge, topics: { audit: null } }, nowMs, holds), 11);
  // Kept 25 s: the second segment's last message (20 s) is within 40 - 25 = 15 s, so the
  // segment stays; kept 15 s, it is older than 25 s and may go.
  assert.equal(retentionCut(segments, { ...byAge, topics: { audit: 25_000 } }, nowMs, holds), 11);
  assert.equal(retentionCut(segments, { ...byAge, topics: { audit: 15_000 } }, nowMs, holds), 31);
  // In the first segment, kept forever: nothing goes.
  const first = (segment: { first: number }, topic: string) =>
    topic === 'audit' && segment.first === 1;
  assert.equal(retentionCut(segments, { ...byAge, topics: { audit: null } }, nowMs, first), 0);
});
