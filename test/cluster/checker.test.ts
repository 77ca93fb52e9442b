// The delivery checker of the multi-process tests must be able to fail: hand-made histories
// with a divergent node, a duplicate, a gap, a reordered client and a lost acknowledged
// message are each rejected.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProcessCluster } from '../../src/cli/process-cluster.ts';
import { checkDeliveries, type ReadMessage, RetryingClient } from './helpers.ts';

const message = (position: number, clientId: string, seq: number): ReadMessage => ({
  position,
  clientId,
  seq,
  payload: `${clientId}:${seq}`,
});
const good = [message(1, 'a', 1), message(2, 'b', 1), message(3, 'a', 2)];

function clientWith(acknowledged: [number, number][]): RetryingClient {
  const client = new RetryingClient('a', {} as ProcessCluster, 0);
  for (const [seq, position] of acknowledged) client.acknowledged.set(seq, position);
  return client;
}

test('a correct history passes', () => {
  checkDeliveries(
    [good, good],
    [
      clientWith([
        [1, 1],
        [2, 3],
      ]),
    ],
  );
});

test('divergence, duplicates, gaps, reordering and loss are caught', () => {
  const divergent = [message(1, 'a', 1), message(2, 'a', 2), message(3, 'b', 1)];
  assert.throws(() => checkDeliveries([good, divergent], []), /same sequence/);
  assert.throws(() => checkDeliveries([[...good, message(4, 'a', 2)]], []), /once/);
  assert.throws(() => checkDeliveries([[message(1, 'a', 1), message(3, 'b', 1)]], []), /dense/);
  assert.throws(() => checkDeliveries([[message(1, 'a', 2), message(2, 'a', 1)]], []), /seq order/);
  assert.throws(() => checkDeliveries([good], [clientWith([[3, 4]])]), /is delivered/);
  assert.throws(() => checkDeliveries([good], [clientWith([[2, 2]])]), /acknowledged position/);
  const invented = [{ ...message(1, 'a', 1), payload: 'forged' }];
  assert.throws(() => checkDeliveries([invented], []), /invented/);
});
