/**
 * Killing the leader (its HTTP server and its node) while 1,000 broadcasts from one SDK
 * client are in flight: every broadcast still resolves, and the survivors' log holds each
 * of the client's seqs 1..1000 exactly once, at dense positions — retries of the same
 * (client, seq) after the failover are never delivered twice.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { startHttpCluster } from '../server/cluster.ts';
import { waitFor } from '../support/ports.ts';
import { allMessages, checkExactlyOnce } from './support.ts';

test('the leader dies during 1,000 concurrent broadcasts: each delivered exactly once', async () => {
  const cluster = await startHttpCluster({ requestTimeoutMs: 3_000 }, { requestTimeoutMs: 3_000 });
  const client = connect({
    endpoints: cluster.members.map((m) => m.url),
    clientId: 'c-failover',
    requestTimeoutMs: 4_000,
  });
  try {
    const leader = await cluster.leader();
    let answeredCount = 0;
    const sending = Promise.all(
      Array.from({ length: 1000 }, (_, at) =>
        client.broadcast({ n: at + 1 }).then((answer) => {
          answeredCount += 1;
          return answer;
        }),
      ),
    );
    await waitFor(() => answeredCount >= 100, '100 broadcasts answered', 20_000);
    assert.ok(answeredCount < 1000, 'the leader dies while broadcasts are in flight');
    await leader.http.close();
    await cluster.stopNode(leader.id);
    const answers = await sending;
    assert.equal(new Set(answers.map((answer) => answer.position)).size, 1000);
    const survivor = cluster.members.find((member) => member.id !== leader.id)!;
    const messages = await allMessages(survivor.url);
    assert.equal(checkExactlyOnce(messages, 'c-failover', 1000), null);
    const last = messages.at(-1)!.position;
    for (const answer of answers) assert.ok(answer.position !== null && answer.position <= last);
  } finally {
    client.close();
    await cluster.close();
  }
});
