// Proves the throttled logger lets one line per kind through per interval and reports the
// number held back on the next line, with a pinned clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ThrottledLogger } from '../../src/transport/log-throttle.ts';
import { RecordingLogger } from './helpers.ts';

test('one line per kind per interval; the next line counts the suppressed ones', () => {
  const sink = new RecordingLogger();
  let nowMs = 0;
  const logger = new ThrottledLogger(sink, 1_000, () => nowMs);
  for (let count = 0; count < 5; count++) logger.warn({ code: 'WRONG_CLUSTER' }, 'refused');
  logger.warn({ code: 'UNKNOWN_NODE' }, 'refused');
  logger.error({ code: 'WRONG_CLUSTER' }, 'refused');
  assert.equal(sink.lines.length, 3);
  nowMs = 1_000;
  logger.warn({ code: 'WRONG_CLUSTER' }, 'refused');
  assert.deepStrictEqual(sink.lines.at(-1), {
    level: 'warn',
    fields: { code: 'WRONG_CLUSTER', suppressedCount: 4 },
    message: 'refused',
  });
});

test('the number of tracked kinds is bounded', () => {
  const sink = new RecordingLogger();
  const logger = new ThrottledLogger(sink, 60_000, () => 0);
  for (let kind = 0; kind < 10_000; kind++) logger.info({ reason: `r${kind}` }, 'line');
  assert.equal(sink.lines.length, 10_000);
  logger.info({ reason: 'r0' }, 'line');
  assert.equal(sink.lines.length, 10_001, 'an evicted kind may log again');
});
