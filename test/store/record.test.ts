// Store records laid out back to back in one buffer (as a segment batches its appends) are
// byte for byte the records encoded one by one, each reads back as the message it holds,
// and a flipped byte in any body fails its checksum.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeRecordAt,
  encodeRecord,
  recordBytesOf,
  type StoredMessage,
  writeRecord,
} from '../../src/store/index.ts';

const text = (maxLength: number) =>
  fc
    .string({ unit: 'binary', minLength: 0, maxLength })
    .filter((value) => !value.includes('\uFFFD'));

const storedMessage: fc.Arbitrary<StoredMessage> = fc
  .record({
    index: fc.integer({ min: 1, max: 1_000_000 }),
    term: fc.integer({ min: 1, max: 1_000 }),
    clientId: text(12),
    seq: fc.integer({ min: 0, max: 1_000_000 }),
    topic: text(12),
    payload: fc.uint8Array({ maxLength: 64 }),
    logTimeMs: fc.integer({ min: 0, max: 2 ** 45 }),
    key: fc.option(
      text(10).filter((value) => value.length > 0),
      { nil: undefined },
    ),
    compacted: fc.boolean(),
  })
  .map(({ key, compacted, payload, ...rest }) => ({
    ...rest,
    position: 1,
    payload: compacted ? new Uint8Array(0) : payload,
    ...(key === undefined ? {} : { key }),
    ...(compacted ? { compacted: true } : {}),
  }));

test('records written back to back equal the records encoded one by one, and read back', () => {
  fc.assert(
    fc.property(
      fc.array(storedMessage, { minLength: 1, maxLength: 8 }),
      fc.nat({ max: 7 }),
      (drafts, flipAt) => {
        const messages = drafts.map((draft, at) => ({ ...draft, position: at + 1 }));
        const total = messages.reduce((sum, message) => sum + recordBytesOf(message), 0);
        const laid = Buffer.alloc(total + 3);
        let end = 0;
        for (const message of messages) end = writeRecord(message, laid, end);
        assert.equal(end, total);
        const expected = Buffer.concat(messages.map((message) => encodeRecord(message)));
        assert.deepEqual(laid.subarray(0, end), expected);
        let at = 0;
        for (const message of messages) {
          const found = decodeRecordAt(laid, at);
          assert.equal(found.kind, 'record');
          if (found.kind !== 'record') return;
          assert.deepEqual(
            { ...found.message, payload: [...found.message.payload] },
            {
              ...message,
              payload: [...message.payload],
            },
          );
          at += found.recordBytes;
        }
        const flipped = Buffer.from(expected);
        const recordBytes = recordBytesOf(messages[0] as StoredMessage);
        const bodyAt = 8 + (flipAt % (recordBytes - 8));
        flipped[bodyAt] = (flipped[bodyAt] as number) ^ 0x01;
        assert.equal(decodeRecordAt(flipped, 0).kind, 'invalid');
      },
    ),
  );
});
