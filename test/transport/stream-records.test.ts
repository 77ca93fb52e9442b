// Stream records (src/transport/stream-records.ts), the binary body of GET /v1/stream: what
// the writer lays out, the reader gives back, item for item, however the bytes are cut into
// chunks (HTTP and the binary port chunk differently), and whatever the client ids, topics,
// keys and payload bytes; bytes that are not items are a StreamRecordError, never a wrong
// item or an out-of-bounds read.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type RecordMessage,
  type StreamRecord,
  StreamRecordError,
  StreamRecordReader,
  StreamRecordWriter,
} from '../../src/transport/stream-records.ts';

type Item =
  | { readonly kind: 'message'; readonly message: RecordMessage }
  | { readonly kind: 'progress'; readonly position: number }
  | { readonly kind: 'error'; readonly json: string }
  | { readonly kind: 'keepAlive' };

const position = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
// Few distinct values, so that runs repeat them (the writer and reader cache the last one).
const clientId = fc.constantFrom('', 'c1', 'client-ü', 'x'.repeat(300));
const topic = fc.constantFrom('', 'orders', 'tópico', 't'.repeat(255));

const message: fc.Arbitrary<Item> = fc
  .record({
    position,
    term: fc.integer({ min: 0, max: 2 ** 40 }),
    clientId,
    seq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    topic,
    logTimeMs: fc.integer({ min: 0, max: 2 ** 45 }),
    key: fc.option(fc.string({ minLength: 1, maxLength: 40 }), { nil: undefined }),
    payload: fc.uint8Array({ maxLength: 600 }),
  })
  .map(({ key, ...fields }) => ({
    kind: 'message' as const,
    message: key === undefined ? fields : { ...fields, key },
  }));

const item: fc.Arbitrary<Item> = fc.oneof(
  { arbitrary: message, weight: 6 },
  position.map((at) => ({ kind: 'progress' as const, position: at })),
  fc.json().map((json) => ({ kind: 'error' as const, json })),
  fc.constant({ kind: 'keepAlive' as const }),
);

function write(items: readonly Item[], chunkBytes: number): Buffer {
  const writer = new StreamRecordWriter(chunkBytes);
  const parts: Uint8Array[] = [];
  for (const each of items) {
    if (each.kind === 'message') writer.message(each.message);
    else if (each.kind === 'progress') writer.progress(each.position);
    else if (each.kind === 'error') writer.error(each.json);
    else writer.keepAlive();
    // Taken now and then, as a route does between writes.
    if (writer.pendingBytes > chunkBytes) parts.push(...writer.take());
  }
  parts.push(...writer.take());
  assert.equal(writer.pendingBytes, 0);
  return Buffer.concat(parts);
}

/** What the reader gives, copied out of its views and shaped as the written items. */
function asItem(record: StreamRecord): Item {
  if (record.kind !== 'message') return record;
  const { position, term, seq, time, clientId, topic, key } = record;
  const fields = { position, term, clientId, seq, topic, logTimeMs: time };
  const payload = new Uint8Array(record.bytes.subarray(record.payloadStart, record.payloadEnd));
  return {
    kind: 'message',
    message: key === undefined ? { ...fields, payload } : { ...fields, key, payload },
  };
}

function readInChunks(bytes: Uint8Array, cuts: readonly number[]): Item[] {
  const reader = new StreamRecordReader();
  const items: Item[] = [];
  let from = 0;
  for (const cut of [...cuts.map((at) => at % (bytes.length + 1)), bytes.length].sort(
    (a, b) => a - b,
  )) {
    // A copy that is overwritten after the push: the reader may not keep views of it.
    const chunk = Buffer.from(bytes.subarray(from, cut));
    reader.push(chunk, (record) => items.push(asItem(record)));
    chunk.fill(0xee);
    from = cut;
  }
  assert.equal(reader.hasPartialItem, false);
  return items;
}

test('the reader gives back every item written, however the bytes are chunked', () => {
  fc.assert(
    fc.property(
      fc.array(item, { maxLength: 60 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      fc.constantFrom(64, 1024, 256 << 10),
      (items, cuts, chunkBytes) => {
        const bytes = write(items, chunkBytes);
        assert.deepEqual(readInChunks(bytes, cuts), items);
      },
    ),
    { numRuns: 300 },
  );
});

test('items arriving a few bytes at a time, prefixes split too, come out whole and in order', () => {
  fc.assert(
    fc.property(
      fc.array(item, { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 1, max: 7 }),
      (items, stepBytes) => {
        const bytes = write(items, 1024);
        const cuts: number[] = [];
        for (let at = stepBytes; at < bytes.length; at += stepBytes) cuts.push(at);
        assert.deepEqual(readInChunks(bytes, cuts), items);
      },
    ),
    { numRuns: 100 },
  );
});

test('a stream cut inside an item is seen as cut, and nothing of that item comes out', () => {
  fc.assert(
    fc.property(fc.array(item, { minLength: 1, maxLength: 20 }), fc.nat(), (items, cutAt) => {
      const bytes = write(items, 1024);
      const cut = 1 + (cutAt % (bytes.length - 1));
      const reader = new StreamRecordReader();
      const seen: StreamRecord[] = [];
      reader.push(bytes.subarray(0, cut), (record) => seen.push(record));
      // Where items end: each is its u32 length and that many bytes.
      const ends: number[] = [];
      for (let at = 0; at < bytes.length; at += 4 + bytes.readUInt32BE(at)) {
        ends.push(at + 4 + bytes.readUInt32BE(at));
      }
      assert.equal(seen.length, ends.filter((end) => end <= cut).length);
      // Either the cut fell between items, or the reader holds the one begun.
      assert.equal(reader.hasPartialItem, !ends.includes(cut));
    }),
    { numRuns: 200 },
  );
});

test('bytes that are not items are refused with stream_malformed, never misread', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const reader = new StreamRecordReader();
      try {
        reader.push(bytes, () => undefined);
      } catch (error) {
        assert.ok(error instanceof StreamRecordError, String(error));
        assert.equal(error.code, 'stream_malformed');
      }
    }),
    { numRuns: 1000 },
  );
  // Lengths that claim more than the item holds.
  const forged = [
    Buffer.from([0, 0, 0, 0]), // an empty item
    Buffer.from([0, 0, 0, 2, 2, 0]), // a progress of one byte
    Buffer.from([0, 0, 0, 1, 9]), // an unknown kind
    Buffer.from([0xff, 0xff, 0xff, 0xff]), // past the largest item
  ];
  const cutMessage = Buffer.alloc(4 + 1 + 33 + 2);
  cutMessage.writeUInt32BE(cutMessage.length - 4, 0);
  cutMessage[4] = 1;
  cutMessage.writeUInt16BE(500, 4 + 1 + 33); // a client id of 500 bytes in none
  forged.push(cutMessage);
  for (const bytes of forged) {
    assert.throws(
      () => new StreamRecordReader().push(bytes, () => undefined),
      StreamRecordError,
      bytes.toString('hex'),
    );
  }
});
