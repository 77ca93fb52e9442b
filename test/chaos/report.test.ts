// report.html and the checker at the size of a long run: 200,000 events and 100,000
// delivered messages go through without a call taking more arguments than the engine allows
// (a 300 s run once died rendering its report so), and the page is self-contained and
// escapes what it shows.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkHistory, type NodeReading } from '../../src/chaos/checker.ts';
import type { HistoryEvent } from '../../src/chaos/history.ts';
import { faultSpans, renderReport } from '../../src/chaos/report.ts';
import type { ChaosSummary } from '../../src/chaos/summary.ts';

const messageCount = 100_000;

function longRun(): { history: HistoryEvent[]; readings: NodeReading[] } {
  const history: HistoryEvent[] = [];
  for (let at = 1; at <= messageCount; at++) {
    const key = at === 7 ? '<script>k7</script>' : `k${at}`;
    const value = { key, via: 'http' as const, client: null, seq: null, node: null };
    history.push({ timeMs: at, process: 'c', opId: at, type: 'invoke', f: 'broadcast', value });
    history.push({
      timeMs: at + 0.5,
      process: 'c',
      opId: at,
      type: 'ok',
      f: 'broadcast',
      value: { position: at === 7 ? 8 : at === 8 ? 7 : at, duplicate: false },
    });
  }
  history.splice(10, 0, {
    timeMs: 5,
    process: 'nemesis',
    opId: 0,
    type: 'info',
    f: 'fault:kill',
    value: { phase: 'start', nodes: ['n1'], detail: 'SIGKILL' },
  });
  const messages = Array.from({ length: messageCount }, (_, at) => ({
    position: at + 1,
    key: at + 1 === 7 ? '<script>k7</script>' : `k${at + 1}`,
    client: 'c',
    seq: at + 1,
    topic: null,
  }));
  return { history, readings: [{ node: 'n1', standing: 'member', messages, error: null }] };
}

test('a long history is checked and reported; the page escapes what it shows', () => {
  const { history, readings } = longRun();
  const result = checkHistory(history, readings, {
    healedAtMs: null,
    recoveryBoundMs: 1_000,
    endMs: messageCount + 1,
    violationsPerPropertyMax: 5,
    verify: null,
  });
  assert.equal(result.stats.acknowledged, messageCount);
  // k7 and k8 swapped places: misplaced, and out of the order of issue and of real time.
  assert.deepEqual(Object.keys(result.violationCounts).sort(), [
    'client-order',
    'misplaced',
    'real-time-order',
  ]);
  const summary = { seed: 1, nodes: 1, seconds: 1, violations: 2 } as unknown as ChaosSummary;
  const page = renderReport({ summary, result, history, readings });
  assert.match(page, /<svg /);
  assert.doesNotMatch(page, /<script>/, 'keys are escaped');
  assert.match(page, /&#60;script&#62;k7/);
  assert.doesNotMatch(page, /https?:\/\/(?!www\.w3\.org)/, 'nothing loaded from elsewhere');
});

test('fault spans pair starts with ends; outcomes are short spans', () => {
  const fault = (timeMs: number, kind: string, phase: 'start' | 'end' | 'outcome') =>
    ({
      timeMs,
      process: 'nemesis',
      opId: timeMs,
      type: 'info',
      f: `fault:${kind}`,
      value: { phase, nodes: ['n1'], detail: kind },
    }) as HistoryEvent;
  const spans = faultSpans([
    fault(100, 'kill', 'start'),
    fault(150, 'transfer', 'outcome'),
    fault(900, 'kill', 'end'),
  ]);
  assert.deepEqual(
    spans.map((span) => [span.kind, span.fromMs, span.toMs]),
    [
      ['transfer', 150, 450],
      ['kill', 100, 900],
    ],
  );
});
