// The SDK's ack coalescing: many message.ack() calls in a burst become few requests, each
// carrying the highest position acked so far, one in flight at a time; every call resolves
// once a request covering its position succeeded, and fails with that request's error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConsumerAcks } from '../../src/client/consumer-acks.ts';

test('a burst of acks is one or two requests, each for the highest position so far', async () => {
  const sent: number[] = [];
  const acks = new ConsumerAcks('billing', async (_name, position) => {
    sent.push(position);
    return position;
  });
  await Promise.all(Array.from({ length: 100 }, (_, at) => acks.ack(at + 1)));
  assert.ok(sent.length <= 2, `sent ${sent.join(',')}`);
  assert.equal(sent.at(-1), 100);
  await acks.ack(50); // covered already: no request
  assert.equal(sent.at(-1), 100);
});

test('a failed request fails the acks it carried; a later ack tries again', async () => {
  let fail = true;
  const sent: number[] = [];
  const acks = new ConsumerAcks('billing', async (_name, position) => {
    sent.push(position);
    if (fail) throw new Error('down');
    return position;
  });
  await assert.rejects(acks.ack(3), /down/);
  fail = false;
  await acks.ack(4);
  assert.deepEqual(sent, [3, 4]);
});
