// Proves the byte formats round-trip and detect damage: CRC-32 against the standard check
// value and the portable twin against zlib's; WAL records and snapshot files encoded and
// decoded by fast-check, and every single-byte flip in a record caught by its checksum.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Entry } from '../../src/raft/types.ts';
import {
  decodeItems,
  encodeRecord,
  encodeRecordHeader,
  parseRecordAt,
  RECORD_HEADER_BYTES,
  RecordBodyBuilder,
  type WalItem,
} from '../../src/storage/codec.ts';
import { StorageError } from '../../src/storage/errors.ts';
import { decodeSnapshotFile, encodeSnapshotFile } from '../../src/storage/snapshot-file.ts';
import { crc32, crc32IsNative, crc32Portable } from '../../src/util/crc32.ts';
import { plainEntries } from './helpers.ts';

const entryArbitrary = (index: number): fc.Arbitrary<Entry> =>
  fc.record({
    index: fc.constant(index),
    term: fc.nat({ max: 2 ** 40 }),
    kind: fc.constantFrom('normal' as const, 'noop' as const, 'config' as const),
    data: fc.uint8Array({ maxLength: 9000 }),
  });

const itemArbitrary: fc.Arbitrary<WalItem> = fc.oneof(
  fc.record({
    type: fc.constant('hardState' as const),
    hardState: fc.record({
      term: fc.maxSafeNat(),
      vote: fc.option(fc.string({ minLength: 1, maxLength: 40 })),
      commit: fc.maxSafeNat(),
    }),
  }),
  fc.record({ type: fc.constant('truncate' as const), fromIndex: fc.maxSafeNat() }),
  fc.record({ type: fc.constant('reset' as const), index: fc.maxSafeNat(), term: fc.maxSafeNat() }),
  fc
    .tuple(fc.integer({ min: 1, max: 2 ** 50 }), fc.integer({ min: 1, max: 6 }))
    .chain(([first, count]) =>
      fc.tuple(...Array.from({ length: count }, (_, offset) => entryArbitrary(first + offset))),
    )
    .map((entries) => ({ type: 'entries' as const, entries })),
);

function plainItems(items: readonly WalItem[]): unknown[] {
  return items.map((item) =>
    item.type === 'entries'
      ? { ...item, entries: plainEntries(item.entries) }
      : JSON.parse(JSON.stringify(item)),
  );
}

describe('crc32', () => {
  it('gives the standard check value and agrees with the portable twin', () => {
    const check = Buffer.from('123456789');
    assert.equal(crc32(check), 0xcbf43926);
    assert.equal(crc32Portable(check), 0xcbf43926);
    assert.equal(typeof crc32IsNative, 'boolean');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.uint8Array({ maxLength: 200 }), (a, b) => {
        assert.equal(crc32Portable(a), crc32(a));
        assert.equal(crc32Portable(b, crc32Portable(a)), crc32(Buffer.concat([a, b])));
      }),
    );
  });
});

describe('WAL records', () => {
  it('round-trip any items, whole or gathered from chunks', () => {
    fc.assert(
      fc.property(fc.array(itemArbitrary, { minLength: 1, maxLength: 5 }), (items) => {
        const record = encodeRecord(items);
        const parsed = parseRecordAt(record, 0);
        assert.ok(parsed.ok, 'the record verifies');
        assert.equal(parsed.endOffset, record.length);
        assert.deepEqual(plainItems(decodeItems(parsed.body)), plainItems(items));
        const builder = new RecordBodyBuilder();
        for (const item of items) builder.add(item);
        const chunks = builder.finish();
        assert.deepEqual(Buffer.concat([encodeRecordHeader(chunks), ...chunks]), record);
      }),
      { numRuns: 200 },
    );
  });

  it('catches every single-byte flip in a record', () => {
    const record = encodeRecord([
      { type: 'hardState', hardState: { term: 3, vote: 'n2', commit: 7 } },
      {
        type: 'entries',
        entries: [{ index: 8, term: 3, kind: 'normal', data: Buffer.from('abc') }],
      },
    ]);
    for (let offset = 0; offset < record.length; offset++) {
      const damaged = Buffer.from(record);
      damaged[offset] = (damaged[offset] ?? 0) ^ 0x01;
      assert.equal(parseRecordAt(damaged, 0).ok, false, `a flip at byte ${offset} is caught`);
    }
    assert.equal(parseRecordAt(record.subarray(0, RECORD_HEADER_BYTES - 1), 0).ok, false);
    assert.equal(parseRecordAt(record.subarray(0, record.length - 1), 0).ok, false);
  });
});

describe('snapshot files', () => {
  it('round-trip and refuse damage', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 52 }),
        fc.maxSafeNat(),
        fc.uint8Array({ maxLength: 5000 }),
        fc.array(fc.string({ minLength: 1, maxLength: 8 }), { maxLength: 5 }),
        (index, term, data, voters) => {
          const snapshot = { meta: { index, term, config: { voters, learners: ['x'] } }, data };
          const file = Buffer.concat(encodeSnapshotFile(snapshot));
          const decoded = decodeSnapshotFile(file, 'snapshot.bin');
          assert.deepEqual(decoded.meta, snapshot.meta);
          assert.deepEqual(Buffer.from(decoded.data), Buffer.from(data));
          const damaged = Buffer.from(file);
          const offset = damaged.length - 1;
          damaged[offset] = (damaged[offset] ?? 0) ^ 0x80;
          assert.throws(
            () => decodeSnapshotFile(damaged, 'snapshot.bin'),
            (error: unknown) => error instanceof StorageError && error.code === 'CORRUPT_SNAPSHOT',
          );
        },
      ),
      { numRuns: 100 },
    );
  });
});
