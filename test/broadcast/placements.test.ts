// A leader appends each (clientId, seq) once per term while it is not applied: copies that
// followers forward again (the SDK retrying across nodes, a node's retry timer) are answered
// with the index already placed, so slow commits do not fill the log with duplicates that
// slow them further (simulator seed 0x2bf, figure8). Proved on a real single-node core and
// the outbox's forward handler, reading the ForwardResult answers and the core's log.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeBatch } from '../../src/broadcast/batch.ts';
import { defaultGapHoldLimits } from '../../src/broadcast/gap-hold.ts';
import { Outbox } from '../../src/broadcast/outbox.ts';
import { PendingTable } from '../../src/broadcast/pending.ts';
import type { SessionTable } from '../../src/broadcast/sessions.ts';
import type { Frame, Transport } from '../../src/transport/types.ts';
import type { Environment } from '../../src/util/environment.ts';
import { TestCluster } from '../raft/harness.ts';

function leaderWithOutbox() {
  const cluster = new TestCluster(['n1']);
  const core = cluster.core('n1');
  core.campaign();
  cluster.stabilize();
  assert.equal(core.leader(), 'n1');
  const answers: Frame[] = [];
  let appliedIndex = core.status().commitIndex;
  const outbox = new Outbox({
    id: 'n1',
    core,
    transport: {
      send: (frames: readonly Frame[]) => answers.push(...frames),
    } as unknown as Transport,
    pending: new PendingTable(),
    environment: { monotonicMs: () => 0, nowMs: () => 0 } as unknown as Environment,
    batchBytesMax: 1 << 16,
    retryIntervalMs: 200,
    appliedIndex: () => appliedIndex,
    sessions: () => ({}) as SessionTable,
    gapHoldLimits: defaultGapHoldLimits,
    scheduleLoop: () => undefined,
    answerBeforeCommit: false,
  });
  const forward = (requestId: number, seqs: readonly number[]) => {
    const messages = seqs.map((seq) => ({
      clientId: 'c',
      seq,
      topic: '',
      payload: new Uint8Array([seq]),
    }));
    outbox.onForward('n2', requestId, encodeBatch(messages, 0));
    const answer = answers.at(-1);
    assert.ok(answer?.type === 'ForwardResult' && answer.requestId === requestId);
    assert.ok('index' in answer.result, 'the forward was appended or placed');
    return answer.result.index;
  };
  const apply = (index: number) => {
    for (let next = appliedIndex + 1; next <= index; next++) outbox.lostAt(next);
    appliedIndex = index;
  };
  return { core, forward, apply };
}

test('a copy of a placed message is answered with its index and appends nothing', () => {
  const { core, forward } = leaderWithOutbox();
  const first = forward(1, [1, 2]);
  const lastIndex = core.status().lastIndex;
  assert.equal(forward(2, [1, 2]), first);
  assert.equal(forward(3, [2]), first);
  assert.equal(core.status().lastIndex, lastIndex, 'no entry was appended for the copies');
});

test('only the messages not placed yet are appended, and the answer covers them all', () => {
  const { core, forward } = leaderWithOutbox();
  const first = forward(1, [1]);
  const second = forward(2, [1, 2]);
  assert.equal(second, first + 1);
  const appended = core.log().entries.find((entry) => entry.index === second);
  assert.ok(appended !== undefined);
  const expected = encodeBatch(
    [{ clientId: 'c', seq: 2, topic: '', payload: new Uint8Array([2]) }],
    0,
  );
  assert.deepEqual(Buffer.from(appended.data), Buffer.from(expected), 'seq 1 left out');
});

test('once the placed entry is applied, a copy goes to the log again', () => {
  const { forward, apply } = leaderWithOutbox();
  const first = forward(1, [1]);
  apply(first);
  assert.equal(forward(2, [1]), first + 1);
});
