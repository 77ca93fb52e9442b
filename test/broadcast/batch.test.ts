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
  payloadBytesOf,
} from '../../src/broadcast/batch.ts';
import { ReceivedRunMessage } from '../../src/transport/run-frames.ts';

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

test('one builder reused, with room made or not: every finished batch keeps its messages', () => {
  // finish hands its buffer over when the batch fills it: a later batch built by the same
  // builder must never write into an earlier one, and a run extended without its full check
  // must still refuse an invalid seq.
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          messages: fc.array(clientMessage, { minLength: 1, maxLength: 20 }),
          // 'exact': room for the batch to the byte, so that it is handed over uncopied.
          reserveBytes: fc.oneof(
            fc.constant(null),
            fc.constant('exact' as const),
            fc.integer({ min: 0, max: 20_000 }),
          ),
        }),
        { minLength: 1, maxLength: 6 },
      ),
      (batches) => {
        const builder = new BatchBuilder();
        const built = batches.map(({ messages, reserveBytes }, at) => {
          if (reserveBytes === 'exact') builder.reserveFor(encodeBatch(messages, at).length);
          else if (reserveBytes !== null) builder.reserveFor(reserveBytes);
          for (const message of messages) builder.add(message);
          return builder.finish(at);
        });
        built.forEach((data, at) => {
          const expected = batchOf((batches[at] as (typeof batches)[number]).messages, at);
          assert.deepEqual(decodeBatch(data).messages, expected.messages);
        });
      },
    ),
    { numRuns: 200 },
  );
  const builder = new BatchBuilder();
  builder.add({
    clientId: 'a',
    seq: Number.MAX_SAFE_INTEGER,
    topic: '',
    payload: new Uint8Array(),
  });
  assert.throws(() =>
    builder.add({
      clientId: 'a',
      seq: Number.MAX_SAFE_INTEGER + 1,
      topic: '',
      payload: new Uint8Array(),
    }),
  );
});

test('a run whose last seq is past 2^53 - 1 does not decode, however the sum rounds', () => {
  const builder = new BatchBuilder();
  for (const seq of [Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER]) {
    builder.add({ clientId: 'a', seq, topic: '', payload: new Uint8Array(1) });
  }
  const data = Buffer.from(builder.finish(1));
  assert.equal(decodeBatch(data).runs[0]?.payloads.length, 2, 'the largest safe run decodes');
  // The same run one seq later: its last seq, 2^53, is no safe integer.
  const firstSeqBytes = Buffer.alloc(8);
  firstSeqBytes.writeDoubleLE(Number.MAX_SAFE_INTEGER - 1);
  const at = data.indexOf(firstSeqBytes);
  assert.ok(at > 0, 'the run header holds its first seq');
  data.writeDoubleLE(Number.MAX_SAFE_INTEGER, at);
  assert.throws(() => decodeBatch(data), BatchFormatError);
});

test('a batch that fills the room made for it is handed over without a copy', () => {
  const builder = new BatchBuilder();
  const payload = new Uint8Array(1000);
  builder.reserveFor(13 + 18 + 100 * 1004);
  for (let seq = 1; seq <= 100; seq++) builder.add({ clientId: 'a', seq, topic: 't', payload });
  const handedOver = builder.finish(1);
  assert.equal(handedOver.length, 13 + 18 + 100 * 1004);
  assert.equal(handedOver.buffer.byteLength, handedOver.length, 'the buffer is the batch');
  // A small batch in a large buffer is copied out: it would keep the whole buffer alive.
  builder.reserveFor(1 << 20);
  builder.add({ clientId: 'a', seq: 101, topic: 't', payload });
  const copied = builder.finish(2);
  assert.ok(copied.buffer.byteLength < 1 << 20, 'a batch never keeps a mostly empty buffer');
});

// A run read off the binary port keeps each payload as a range of its frame
// (ReceivedRunMessage), counted and copied where it lies: a batch built from such messages,
// some replaced by another form as the run route does, is byte for byte the batch of the
// same messages with plain payloads, and each counts its payload's own bytes.
test('messages whose payloads are ranges of one buffer batch as plain messages do', () => {
  const ranged = fc.record({
    before: fc.uint8Array({ maxLength: 6 }),
    payload: fc.uint8Array({ maxLength: 300 }),
    topic: fc.constantFrom('', 't', 'orders'),
    key: fc.constantFrom('', 'k'),
    replaced: fc.option(fc.uint8Array({ maxLength: 40 }), { freq: 4 }),
  });
  fc.assert(
    fc.property(
      fc.array(ranged, { minLength: 1, maxLength: 12 }),
      fc.uint8Array({ maxLength: 6 }),
      fc.integer({ min: 1, max: 1000 }),
      (items, tail, firstSeq) => {
        const source = Buffer.concat([
          ...items.flatMap((item) => [item.before, item.payload]),
          tail,
        ]);
        let at = 0;
        const plain: ClientMessage[] = [];
        const inFrame = items.map((item, offset) => {
          at += item.before.length;
          const seq = firstSeq + offset;
          const key = item.key === '' ? undefined : item.key;
          const message = new ReceivedRunMessage(
            'c',
            seq,
            item.topic,
            source,
            at,
            item.payload.length,
            key,
          );
          at += item.payload.length;
          if (item.replaced !== null) message.payload = item.replaced;
          const payload = item.replaced ?? item.payload;
          assert.equal(payloadBytesOf(message), payload.length);
          assert.deepEqual([...message.payload], [...payload]);
          plain.push({
            clientId: 'c',
            seq,
            topic: item.topic,
            payload,
            ...(key === undefined ? {} : { key }),
          });
          return message;
        });
        const fromFrame = new BatchBuilder();
        for (const message of inFrame) fromFrame.add(message);
        assert.deepEqual(fromFrame.finish(5), encodeBatch(plain, 5));
      },
    ),
    { numRuns: 500 },
  );
});
