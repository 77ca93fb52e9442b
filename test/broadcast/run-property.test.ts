// Property: broadcastRun answers a run as that many single broadcasts would. Two one-node
// clusters get the same random history of runs (sessions started or not, seqs delivered,
// skipped or sent again, someone else's session); one takes each run whole, the other as
// a broadcast per message, every call awaited before the next. Outcome by outcome they
// agree: delivered at the same position or as the same duplicate, or refused with the
// same code (and the same expected seq).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { BroadcastError } from '../../src/broadcast/errors.ts';
import type { BroadcastNode, BroadcastRun } from '../../src/broadcast/node.ts';
import type { BroadcastResult } from '../../src/broadcast/pending.ts';
import { encode, TwinCluster } from './twin-cluster.ts';

let whole: TwinCluster;
let single: TwinCluster;

before(async () => {
  // Short deadlines: a run held for a gap that never fills expires in a fifth of a second.
  const tuning = { requestTimeoutMs: 200, retryIntervalMs: 50 };
  whole = await TwinCluster.start({ ids: ['n1'], tuning });
  single = await TwinCluster.start({ ids: ['n1'], tuning });
  await whole.waitForLeader();
  await single.waitForLeader();
});

after(async () => {
  await whole.close();
  await single.close();
});

/** A run as the old broadcastRun took it: one broadcast per message, all in one turn. */
function perMessage(
  node: BroadcastNode,
  run: BroadcastRun,
): Promise<PromiseSettledResult<BroadcastResult>[]> {
  return Promise.allSettled(
    run.messages.map((message, offset) =>
      node.broadcast(message.payload, {
        clientId: run.clientId,
        seq: run.firstSeq + offset,
        ...(message.topic === undefined ? {} : { topic: message.topic }),
        ...(run.owner === undefined ? {} : { owner: run.owner }),
      }),
    ),
  );
}

/** What must agree: the log index of a fresh delivery depends on batching, not on the rules. */
function shapeOf(outcome: PromiseSettledResult<BroadcastResult>): unknown {
  if (outcome.status === 'fulfilled') {
    const { position, duplicate, index } = outcome.value;
    return { position, duplicate, indexed: index !== null };
  }
  const reason = outcome.reason as unknown;
  assert.ok(reason instanceof BroadcastError, String(reason));
  return { code: reason.code, expectedSeq: reason.details.expectedSeq };
}

const step = fc.record({
  client: fc.constantFrom('a', 'b'),
  // From the seq after the client's last one sent: mostly right on, sometimes sent again,
  // sometimes skipping ahead (a gap).
  shift: fc.constantFrom(0, 0, 0, 0, -1, -3, 1, 2),
  length: fc.integer({ min: 1, max: 4 }),
  owner: fc.constantFrom('', '', '', 'other'),
  topic: fc.constantFrom(undefined, 't'),
});

let history = 0;

test('broadcastRun outcomes equal a broadcast per message over random histories', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 8 }), async (steps) => {
      // A namespace per history: sessions of earlier histories do not meet this one.
      history++;
      const nextSeq = new Map<string, number>();
      for (const { client, shift, length, owner, topic } of steps) {
        const firstSeq = Math.max(1, (nextSeq.get(client) ?? 1) + shift);
        nextSeq.set(client, Math.max(nextSeq.get(client) ?? 1, firstSeq + length));
        const run: BroadcastRun = {
          clientId: `h${history}-${client}`,
          firstSeq,
          ...(owner === '' ? {} : { owner }),
          messages: Array.from({ length }, (_, offset) => ({
            payload: encode(`${client}-${firstSeq + offset}`),
            ...(topic === undefined ? {} : { topic }),
          })),
        };
        const [asRun, asSingles] = await Promise.all([
          whole.node('n1').broadcastRun(run),
          perMessage(single.node('n1'), run),
        ]);
        assert.deepEqual(asRun.map(shapeOf), asSingles.map(shapeOf), JSON.stringify(run));
      }
    }),
    { numRuns: 40 },
  );
  whole.assertConsistent();
  single.assertConsistent();
});
