// The batch codec: what is encoded decodes to the same messages, and any byte string either
// decodes or fails with BatchFormatError (never another exception, never an out-of-range read).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  BatchBuilder,
  BatchFormatError,
  batchOf,
  type ClientMessage,
  decodeBatch,
  encodeBatch,
} from '../../src/broadcast/batch.ts';

const clientMessage: fc.Arbitrary<ClientMessage> = fc.oneof(
  fc.record({
    clientId: fc.string({ minLength: 1, maxLength: 40 }),
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    topic: fc.string({ maxLength: 20 }),
    payload: fc.uint8Array({ maxLength: 300 }),
  }),
  fc.record({
    clientId: fc.constant(''),
    seq: fc.constant(0),
    topic: fc.string({ maxLength: 20 }),
    payload: fc.uint8Array({ maxLength: 300 }),
  }),
);

test('decode(encode(messages)) gives back the messages and the log time', () => {
  fc.assert(
    fc.property(
      fc.array(clientMessage, { maxLength: 20 }),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      (messages, time) => {
        const decoded = decodeBatch(encodeBatch(messages, time));
        assert.equal(Object.is(decoded.logTimeMs, time) || decoded.logTimeMs === time, true);
        assert.equal(decoded.messages.length, messages.length);
        decoded.messages.forEach((message, position) => {
          const original = messages[position]!;
          assert.equal(message.clientId, original.clientId);
          assert.equal(message.seq, original.seq);
          assert.equal(message.topic, original.topic);
          assert.deepEqual(new Uint8Array(message.payload), original.payload);
        });
      },
    ),
  );
});

test('arbitrary bytes decode or fail with BatchFormatError only', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        decodeBatch(bytes);
      } catch (error) {
        assert.ok(error instanceof BatchFormatError, String(error));
      }
    }),
  );
});

test('a truncated or extended batch is refused', () => {
  const batch = encodeBatch([{ clientId: 'c', seq: 1, topic: '', payload: new Uint8Array(10) }], 5);
  assert.throws(() => decodeBatch(batch.subarray(0, batch.length - 1)), BatchFormatError);
  const longer = new Uint8Array(batch.length + 1);
  longer.set(batch);
  assert.throws(() => decodeBatch(longer), /trailing bytes/);
});

test('the builder resets after finish and counts messages and bytes', () => {
  const builder = new BatchBuilder();
  builder.add({ clientId: 'a', seq: 1, topic: 't', payload: new Uint8Array(3) });
  assert.equal(builder.messageCount, 1);
  const first = builder.finish(1);
  // After finish, byteLength is the empty header again; the batch adds one run and one message.
  const runHeaderBytes = 2 + 1 + 8 + 2 + 1 + 4;
  assert.equal(first.length, builder.byteLength + runHeaderBytes + 4 + 3);
  assert.equal(builder.messageCount, 0);
  assert.throws(() => builder.add({ clientId: 'a', seq: 0, topic: '', payload: new Uint8Array() }));
});

test('consecutive seqs of one client and topic share one run', () => {
  const payload = new Uint8Array(1);
  const batch = batchOf(
    [
      { clientId: 'a', seq: 1, topic: 't', payload },
      { clientId: 'a', seq: 2, topic: 't', payload },
      { clientId: 'a', seq: 3, topic: 'u', payload },
      { clientId: 'a', seq: 5, topic: 'u', payload },
      { clientId: '', seq: 0, topic: '', payload },
      { clientId: '', seq: 0, topic: '', payload },
    ],
    0,
  );
  assert.deepEqual(
    batch.runs.map((run) => [run.clientId, run.firstSeq, run.topic, run.payloads.length]),
    [
      ['a', 1, 't', 2],
      ['a', 3, 'u', 1],
      ['a', 5, 'u', 1],
      ['', 0, '', 2],
    ],
  );
});
