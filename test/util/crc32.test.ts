import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { crc32, crc32Implementation, crc32Portable } from '../../src/util/crc32.ts';

const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

describe('crc32', () => {
  it('names the implementation it took', () => {
    assert.ok(['accelerated', 'zlib', 'portable'].includes(crc32Implementation));
  });

  it('agrees with the portable twin on views at any offset, chained or not', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 70_000 }),
        fc.nat(),
        fc.nat(),
        fc.nat({ max: 0xffff_ffff }),
        (bytes, startSeed, endSeed, previous) => {
          // A view into a larger buffer, as the store and the WAL checksum them.
          const start = bytes.length === 0 ? 0 : startSeed % bytes.length;
          const end = start + (endSeed % (bytes.length - start + 1));
          const view = bytes.subarray(start, end);
          assert.equal(crc32(view), crc32Portable(view));
          assert.equal(crc32(view, previous), crc32Portable(view, previous));
          if (zlibCrc32 !== undefined && view.byteLength > 0) {
            assert.equal(crc32(view, previous), zlibCrc32(view, previous) >>> 0);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps the running value over an empty view, with or without memory behind it', () => {
    // zlib.crc32 answers 0 for the first of these, which would restart a chained checksum.
    for (const empty of [
      new Uint8Array(new ArrayBuffer(0)),
      new Uint8Array(0),
      Buffer.alloc(8).subarray(3, 3),
    ]) {
      assert.equal(crc32(empty, 0x1234_5678), 0x1234_5678);
      assert.equal(crc32(empty), 0);
    }
  });

  it('chains: the checksum of a then b is the checksum of a ‖ b', () => {
    const whole = Buffer.alloc(300_000);
    for (let at = 0; at < whole.length; at++) whole[at] = (at * 131 + 7) & 0xff;
    for (const cut of [0, 1, 4096, 150_001, whole.length]) {
      assert.equal(crc32(whole.subarray(cut), crc32(whole.subarray(0, cut))), crc32(whole));
    }
    assert.equal(crc32(whole), crc32Portable(whole));
  });
});
