// The chaos checker on hand-made histories: a clean run passes with the right figures, and
// for every property one small history that breaks it is reported under exactly that
// property (and nothing else), so each check is known to bite on its own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CheckOptions,
  type CheckResult,
  checkHistory,
  type DeliveredMessage,
  describeVerify,
  type NodeReading,
  type Property,
  type VerifyReport,
} from '../../src/chaos/checker.ts';
import type { HistoryEvent } from '../../src/chaos/history.ts';

const options: CheckOptions = {
  healedAtMs: null,
  recoveryBoundMs: 1_000,
  endMs: 100,
  violationsPerPropertyMax: 10,
  verify: null,
};

/** Builds a history: broadcasts by key, with their times and outcomes. */
class Script {
  readonly events: HistoryEvent[] = [];
  private opId = 1;

  broadcast(
    process: string,
    key: string,
    invokeMs: number,
    completeMs: number,
    outcome: { ok: number } | 'fail' | 'info',
  ): this {
    const opId = this.opId++;
    this.events.push({
      timeMs: invokeMs,
      process,
      opId,
      type: 'invoke',
      f: 'broadcast',
      value: { key, via: 'sdk', client: null, seq: null, node: null },
    });
    if (typeof outcome === 'object') {
      this.events.push({
        timeMs: completeMs,
        process,
        opId,
        type: 'ok',
        f: 'broadcast',
        value: { position: outcome.ok, duplicate: false },
      });
    } else {
      this.events.push({
        timeMs: completeMs,
        process,
        opId,
        type: outcome,
        f: 'broadcast',
        value: { error: 'timeout' },
      });
    }
    return this;
  }

  barrier(invokeMs: number, completeMs: number, position: number): this {
    const opId = this.opId++;
    this.events.push({
      timeMs: invokeMs,
      process: 'reader',
      opId,
      type: 'invoke',
      f: 'barrier',
      value: { node: null },
    });
    this.events.push({
      timeMs: completeMs,
      process: 'reader',
      opId,
      type: 'ok',
      f: 'barrier',
      value: { position, node: null },
    });
    return this;
  }

  observe(process: string, timeMs: number, observed: [number, string | null][]): this {
    this.events.push({
      timeMs,
      process,
      opId: this.opId++,
      type: 'ok',
      f: 'observe',
      value: { observed },
    });
    return this;
  }
}

function message(position: number, key: string | null, topic: string | null = null) {
  return { position, key, client: 'c', seq: position, topic } satisfies DeliveredMessage;
}

function node(
  id: string,
  keys: readonly (string | null)[],
  standing: NodeReading['standing'] = 'member',
  from = 1,
): NodeReading {
  return {
    node: id,
    standing,
    messages: keys.map((key, at) => message(from + at, key)),
    error: null,
  };
}

/** The properties violated, each once, sorted. */
function broken(result: CheckResult): Property[] {
  return (Object.keys(result.violationCounts) as Property[]).sort();
}

/** Three acknowledged broadcasts by two clients, on three agreeing nodes. */
function clean(): { script: Script; readings: NodeReading[] } {
  const script = new Script()
    .broadcast('a', 'a1', 0, 10, { ok: 1 })
    .broadcast('b', 'b1', 5, 12, { ok: 2 })
    .broadcast('a', 'a2', 11, 20, { ok: 3 })
    .barrier(21, 25, 3)
    .observe('sub', 30, [
      [1, 'a1'],
      [2, 'b1'],
      [3, 'a2'],
    ]);
  const keys = ['a1', 'b1', 'a2'];
  return { script, readings: [node('n1', keys), node('n2', keys), node('n3', keys)] };
}

test('a clean history passes, with its figures', () => {
  const { script, readings } = clean();
  script.broadcast('c', 'c1', 40, 50, 'info').broadcast('c', 'c2', 60, 70, 'fail');
  const result = checkHistory(script.events, readings, options);
  assert.deepEqual(result.violations, []);
  assert.equal(result.stats.acknowledged, 3);
  assert.equal(result.stats.unknown, 1);
  assert.equal(result.stats.unknownDelivered, 0);
  assert.equal(result.stats.failed, 1);
  assert.equal(result.stats.barriers, 1);
  assert.equal(result.stats.observedBySubscribers, 3);
  assert.equal(result.stats.delivered, 3);
  // From the last ack (20 ms) to the end (100 ms).
  assert.equal(result.stats.longestUnavailabilityMs, 80);
  assert.equal(result.stats.longestUnavailabilityFromMs, 20);
});

test('unavailability is counted from the first broadcast asked for, not while nodes start', () => {
  const script = new Script()
    .broadcast('a', 'a1', 60, 62, { ok: 1 })
    .broadcast('a', 'a2', 63, 95, { ok: 2 });
  const result = checkHistory(script.events, [node('n1', ['a1', 'a2'])], options);
  assert.deepEqual(result.violations, []);
  // 62 → 95 is the longest stretch; 0 → 62 was the cluster starting.
  assert.equal(result.stats.longestUnavailabilityMs, 33);
  assert.equal(result.stats.longestUnavailabilityFromMs, 62);
});

test('an unknown outcome delivered once is fine; system records are not invented', () => {
  const { script } = clean();
  script.broadcast('c', 'c1', 40, 50, 'info');
  const keys = ['a1', 'b1', 'a2', 'c1'];
  const withSystem = (id: string): NodeReading => ({
    ...node(id, keys),
    messages: [...node(id, keys).messages, message(5, null, '$abcast/membership')],
  });
  const readings = [withSystem('n1'), withSystem('n2')];
  const result = checkHistory(script.events, readings, options);
  assert.deepEqual(broken(result), []);
  assert.equal(result.stats.unknownDelivered, 1);
});

test('agreement: two nodes hold different messages at one position', () => {
  const { script } = clean();
  const result = checkHistory(
    script.events,
    [node('n1', ['a1', 'b1', 'a2']), node('n2', ['a1', 'a2', 'b1'])],
    options,
  );
  assert.ok(broken(result).includes('agreement'));
  assert.match(result.violations[0]?.message ?? '', /position 2/);
});

test('density: a node skips a position', () => {
  const { script } = clean();
  const holey: NodeReading = {
    node: 'n1',
    standing: 'member',
    messages: [message(1, 'a1'), message(2, 'b1'), message(4, 'a2')],
    error: null,
  };
  const result = checkHistory(script.events, [holey], options);
  assert.ok(broken(result).includes('density'));
});

test('duplicate: one message at two positions', () => {
  const { script } = clean();
  const keys = ['a1', 'b1', 'a2', 'b1'];
  const result = checkHistory(script.events, [node('n1', keys), node('n2', keys)], options);
  assert.deepEqual(broken(result), ['duplicate']);
});

test('invented: a message no client sent', () => {
  const { script } = clean();
  const keys = ['a1', 'b1', 'a2', 'ghost'];
  const result = checkHistory(script.events, [node('n1', keys)], options);
  assert.deepEqual(broken(result), ['invented']);
});

test('lost: an acknowledged message is not delivered', () => {
  const { script } = clean();
  const keys = ['a1', 'b1'];
  const result = checkHistory(script.events, [node('n1', keys), node('n2', keys)], options);
  assert.ok(broken(result).includes('lost'));
});

test('misplaced: an acknowledged message sits at another position', () => {
  const script = new Script()
    .broadcast('a', 'a1', 0, 10, { ok: 2 })
    .broadcast('b', 'b1', 0, 10, { ok: 1 });
  const result = checkHistory(script.events, [node('n1', ['a1', 'b1'])], options);
  assert.deepEqual(broken(result), ['misplaced']);
});

test('failed-delivered: a definite failure is delivered', () => {
  const { script } = clean();
  script.broadcast('c', 'c1', 40, 50, 'fail');
  const keys = ['a1', 'b1', 'a2', 'c1'];
  const result = checkHistory(script.events, [node('n1', keys)], options);
  assert.deepEqual(broken(result), ['failed-delivered']);
});

test("client-order: a client's acknowledged messages out of its issue order", () => {
  // Issued concurrently (pipelined), so real-time order says nothing; issue order does.
  const script = new Script()
    .broadcast('a', 'a1', 0, 10, { ok: 2 })
    .broadcast('a', 'a2', 1, 10, { ok: 1 });
  const result = checkHistory(script.events, [node('n1', ['a2', 'a1'])], options);
  assert.deepEqual(broken(result), ['client-order']);
});

test('real-time-order: a message invoked after an acknowledgement lands before it', () => {
  const script = new Script()
    .broadcast('a', 'a1', 0, 10, { ok: 2 })
    .broadcast('b', 'b1', 20, 30, 'info');
  const result = checkHistory(script.events, [node('n1', ['b1', 'a1'])], options);
  assert.deepEqual(broken(result), ['real-time-order']);
});

test('stale-barrier: a barrier after an acknowledgement answers below it', () => {
  const { script, readings } = clean();
  script.barrier(30, 35, 2);
  const result = checkHistory(script.events, readings, options);
  assert.deepEqual(broken(result), ['stale-barrier']);
});

test('a barrier concurrent with an acknowledgement may miss it', () => {
  const { script, readings } = clean();
  // Invoked at 15 ms, before a2 was acknowledged at 20 ms: 2 is a fine answer.
  script.barrier(15, 22, 2);
  assert.deepEqual(broken(checkHistory(script.events, readings, options)), []);
});

test('subscription: a gap, a repeat or a wrong message handed to a subscriber', () => {
  const { readings } = clean();
  const gap = clean().script.observe('late', 40, [
    [1, 'a1'],
    [3, 'a2'],
  ]);
  assert.deepEqual(broken(checkHistory(gap.events, readings, options)), ['subscription']);
  const repeat = clean().script.observe('late', 40, [
    [1, 'a1'],
    [1, 'a1'],
  ]);
  assert.deepEqual(broken(checkHistory(repeat.events, readings, options)), ['subscription']);
  const wrong = clean().script.observe('late', 40, [[2, 'a2']]);
  assert.deepEqual(broken(checkHistory(wrong.events, readings, options)), ['subscription']);
});

test('lagging: a live member behind the others, or unreadable; departed and damaged nodes may lag', () => {
  const { script } = clean();
  const keys = ['a1', 'b1', 'a2'];
  const behind = checkHistory(script.events, [node('n1', keys), node('n2', ['a1'])], options);
  assert.deepEqual(broken(behind), ['lagging']);
  const unreadable: NodeReading = { node: 'n2', standing: 'member', messages: [], error: 'down' };
  assert.deepEqual(broken(checkHistory(script.events, [node('n1', keys), unreadable], options)), [
    'lagging',
  ]);
  const tolerated = [
    node('n1', keys),
    node('n2', ['a1'], 'departed'),
    { node: 'n3', standing: 'damaged', messages: [], error: 'refused to start' } as NodeReading,
  ];
  assert.deepEqual(broken(checkHistory(script.events, tolerated, options)), []);
});

test("a departed or damaged node's sequence must still agree", () => {
  const { script } = clean();
  const result = checkHistory(
    script.events,
    [node('n1', ['a1', 'b1', 'a2']), node('n2', ['b1'], 'damaged')],
    options,
  );
  assert.deepEqual(broken(result), ['agreement']);
});

test('a node that keeps only a suffix (a snapshot) is checked where it holds', () => {
  const { script } = clean();
  const result = checkHistory(
    script.events,
    [node('n1', ['a1', 'b1', 'a2']), node('n2', ['a2'], 'member', 3)],
    options,
  );
  assert.deepEqual(broken(result), []);
});

test('no-recovery: no commit within the bound after the last heal; recovery time otherwise', () => {
  const { script, readings } = clean();
  const late = checkHistory(script.events, readings, {
    ...options,
    healedAtMs: 15,
    recoveryBoundMs: 2,
  });
  assert.deepEqual(broken(late), ['no-recovery']);
  const never = checkHistory(script.events, readings, { ...options, healedAtMs: 50 });
  assert.deepEqual(broken(never), ['no-recovery']);
  const fine = checkHistory(script.events, readings, { ...options, healedAtMs: 15 });
  assert.deepEqual(broken(fine), []);
  assert.equal(fine.stats.recoveryMs, 5);
});

test('verify: a difference abcast verify found, or a member it could not read, is a violation', () => {
  // The sequences read whole agree (verify hashes fields they do not carry, the payload).
  const { script, readings } = clean();
  const nodes = ['n1', 'n2', 'n3'];
  const with_ = (outcome: VerifyReport['outcome']) =>
    checkHistory(script.events, readings, { ...options, verify: { nodes, outcome } });
  const differ = with_({ kind: 'differ', position: 2, first: 1 });
  assert.deepEqual(broken(differ), ['verify']);
  assert.match(differ.violations[0]?.message ?? '', /differ at position 2/);
  assert.deepEqual(broken(with_({ kind: 'unreadable', reason: 'n3: ECONNREFUSED' })), ['verify']);
  assert.deepEqual(broken(with_({ kind: 'agree', first: 1, last: 3 })), []);
  assert.deepEqual(broken(with_({ kind: 'skipped', reason: 'one node' })), []);
  assert.equal(
    describeVerify({ nodes, outcome: { kind: 'agree', first: 1, last: 3 } }),
    '3 nodes agree on positions 1..3',
  );
});

test('violations beyond the cap are counted, not listed', () => {
  const script = new Script();
  const keys: string[] = [];
  for (let at = 1; at <= 30; at++) {
    script.broadcast('a', `k${at}`, at, at + 0.5, 'fail');
    keys.push(`k${at}`);
  }
  const result = checkHistory(script.events, [node('n1', keys)], {
    ...options,
    violationsPerPropertyMax: 5,
  });
  assert.equal(result.violationCounts['failed-delivered'], 30);
  assert.equal(result.violations.length, 5);
});
