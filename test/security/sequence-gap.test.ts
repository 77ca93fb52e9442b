// A broadcast whose seq skips ahead, against three real processes. It used to be proposed
// again after every applied entry until its request timed out: one 1 MB request wrote
// hundreds of megabytes of log. Now it waits in memory, bounded, and reaches the log once,
// when its turn comes; past the bound it is answered 409 sequence_gap at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAttackCluster } from './cluster.ts';

const requestTimeoutMs = 4_000;
const payloadBytes = 900_000;
const walBytes = 'abcast_storage_wal_written_bytes_total';

test('a gapped 1 MB broadcast writes nothing to the log until its turn, then once', {
  timeout: 90_000,
}, async () => {
  const cluster = await startAttackCluster(['--request-timeout-ms', String(requestTimeoutMs)]);
  try {
    const { at: leaderAt } = await cluster.agreedLeader();
    const followerAt = (leaderAt + 1) % cluster.ids.length;
    const send = (at: number, seq: number, payload: string) =>
      cluster.post(at, '/v1/broadcast', { payload, client: 'gapped', seq });
    assert.equal((await send(leaderAt, 1, 'first')).status, 200);
    const walBefore = await Promise.all(cluster.ids.map((_, at) => cluster.metric(at, walBytes)));

    const big = 'x'.repeat(payloadBytes);
    const startedMs = performance.now();
    const gapped = await send(followerAt, 3, big);
    const waitedMs = performance.now() - startedMs;
    // sequence_gap at its deadline; on a machine so loaded that the node's tick comes after
    // the HTTP backstop, 503 timeout at the same deadline. Either way it waited, unwritten.
    const gappedError = (gapped.body as { error: string }).error;
    assert.ok(
      (gapped.status === 409 && gappedError === 'sequence_gap') ||
        (gapped.status === 503 && gappedError === 'timeout'),
      JSON.stringify([gapped.status, gapped.body]),
    );
    assert.ok(waitedMs >= requestTimeoutMs * 0.9, `it waited for its turn (${waitedMs} ms)`);
    for (let at = 0; at < cluster.ids.length; at++) {
      const grewBytes = (await cluster.metric(at, walBytes)) - (walBefore[at] as number);
      assert.ok(grewBytes < payloadBytes, `${cluster.ids[at]} wrote ${grewBytes} bytes meanwhile`);
    }

    // Its turn comes: seq 3 waits on one node while seq 2 goes through another.
    const third = send(followerAt, 3, big);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal((await send(leaderAt, 2, 'second')).status, 200);
    const thirdAnswer = await third;
    assert.equal(thirdAnswer.status, 200, JSON.stringify(thirdAnswer.body));
    const positions = thirdAnswer.body as { index: number };
    assert.equal(positions.index, 3, 'delivered after seq 2, at the next position');
    for (let at = 0; at < cluster.ids.length; at++) {
      const grewBytes = (await cluster.metric(at, walBytes)) - (walBefore[at] as number);
      assert.ok(grewBytes < 2 * payloadBytes, `${cluster.ids[at]}: one copy (${grewBytes} B)`);
    }

    // Past the per-session bound (8 MiB held), a gapped message is refused at once.
    const flood = Array.from({ length: 10 }, (_, offset) => {
      const sentMs = performance.now();
      return send(followerAt, 10 + offset, big).then((answer) => ({
        ...answer,
        ms: performance.now() - sentMs,
      }));
    });
    const answers = await Promise.all(flood);
    // Each held one answers sequence_gap at its deadline (or, on a machine so loaded that
    // the node's tick comes after the HTTP backstop, 503 timeout); none is delivered.
    assert.ok(
      answers.every(
        (answer) =>
          answer.status === 409 ||
          (answer.status === 503 && (answer.body as { error: string }).error === 'timeout'),
      ),
      JSON.stringify(answers.map((answer) => [answer.status, answer.body])),
    );
    // Refused at the door (the bound named), not at the deadline: told by the answer, not by
    // its timing, which a loaded machine stretches.
    const atOnce = answers.filter((answer) =>
      /heldBytesPerSessionMax/.test(JSON.stringify(answer.body)),
    );
    assert.ok(atOnce.length >= 1, `some were refused at once: ${answers.map((a) => a.ms)}`);
    for (const answer of atOnce) assert.ok(answer.ms < requestTimeoutMs, `${answer.ms} ms`);
  } finally {
    await cluster.close();
  }
});
