// One client's batches travel on parallel HTTP connections, so the node may take a batch
// before the one it follows. The later batch waits for its turn, whole, and both are
// delivered in seq order. With a hold of 256 messages per session the overtaking batch of
// 1,000 was refused (sequence_gap), and a client with 10,000 messages in flight saw its
// messages creep back one backoff at a time until they failed `unavailable`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../support/ports.ts';
import { type HttpCluster, startHttpCluster } from './cluster.ts';

let cluster: HttpCluster;

before(async () => {
  cluster = await startHttpCluster();
});

after(async () => {
  await cluster.close();
});

function batch(client: string, firstSeq: number, count: number): string {
  const messages = Array.from({ length: count }, (_, at) => ({ payload: { seq: firstSeq + at } }));
  return JSON.stringify({ client, seq: firstSeq, messages });
}

test('a batch that overtakes the one before it waits for it, whole, and both are delivered in order', async () => {
  const leader = await cluster.leader();
  const post = (body: string) =>
    fetch(`${leader.url}/v1/broadcast/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
  // seq 1 first, so that the session is known and seq 1,002 on is plainly ahead of it.
  const first = await post(batch('overtaken', 1, 1));
  assert.equal(first.status, 200);
  const later = post(batch('overtaken', 1002, 1000));
  // The later batch is taken first: it waits, held, until the node has all 1,000 pending.
  await waitFor(
    () => leader.node.status().pendingMessageCount >= 1000,
    'the later batch held on the node',
  );
  const earlier = await post(batch('overtaken', 2, 1000));
  const laterAnswer = await later;
  for (const response of [earlier, laterAnswer]) {
    assert.equal(response.status, 200);
    const { results } = (await response.json()) as { results: Record<string, unknown>[] };
    assert.equal(results.length, 1000);
    for (const result of results) assert.equal(result.error, undefined, JSON.stringify(result));
  }
  const seqs: number[] = [];
  for (let from = 1; seqs.length < 2001; ) {
    const read = await fetch(`${leader.url}/v1/messages?from=${from}&limit=500`);
    const { messages } = (await read.json()) as {
      messages: { index: number; client: string; seq: number }[];
    };
    assert.ok(messages.length > 0, `positions from ${from} are delivered`);
    for (const message of messages) if (message.client === 'overtaken') seqs.push(message.seq);
    from = (messages.at(-1)?.index as number) + 1;
  }
  assert.deepEqual(
    seqs,
    Array.from({ length: 2001 }, (_, at) => at + 1),
  );
});
