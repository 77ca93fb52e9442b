/**
 * CRC-32 (IEEE 802.3, the zlib/PNG polynomial), incremental: `crc32(b, crc32(a))` equals
 * `crc32(a ‖ b)`. Every node checksums each message twice on its way to disk (the WAL
 * record, the store's frame), so the fastest implementation at hand is taken:
 * `@node-rs/crc32` (carry-less multiplication, ~3× zlib's speed on frames of tens of KB),
 * else `zlib.crc32` (Node 20.15+), else a table-driven one. All give the same results.
 */
import { createRequire } from 'node:module';
import * as zlib from 'node:zlib';

export type Crc32 = (data: Uint8Array, previous?: number) => number;

const crcTable: Uint32Array = buildTable();

function buildTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let value = byte;
    for (let bit = 0; bit < 8; bit++) {
      value = value & 1 ? 0xedb88320 ^ (value >>> 1) : value >>> 1;
    }
    table[byte] = value >>> 0;
  }
  return table;
}

/** The portable implementation; exported so tests can compare it with the native one. */
export function crc32Portable(data: Uint8Array, previous = 0): number {
  let crc = (previous ^ 0xffffffff) >>> 0;
  for (let offset = 0; offset < data.length; offset++) {
    crc = crcTable[(crc ^ (data[offset] as number)) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

type NativeCrc32 = (data: Uint8Array, value?: number) => number;

/**
 * The accelerated binding, or undefined where its prebuilt binary does not load (a platform
 * it is not built for): a checksum never stops a node from starting.
 */
function loadAccelerated(): NativeCrc32 | undefined {
  try {
    const loaded = createRequire(import.meta.url)('@node-rs/crc32') as { crc32?: NativeCrc32 };
    return typeof loaded.crc32 === 'function' ? loaded.crc32 : undefined;
  } catch {
    return undefined;
  }
}

const accelerated = loadAccelerated();
const native = (zlib as { crc32?: NativeCrc32 }).crc32;

function fromNative(compute: NativeCrc32): Crc32 {
  // zlib answers 0 for an empty view without memory behind it (its NULL-buffer case),
  // whatever `previous` was: a chained checksum would restart there.
  return (data, previous = 0) =>
    data.byteLength === 0 ? previous >>> 0 : compute(data, previous) >>> 0;
}

export const crc32: Crc32 =
  accelerated !== undefined
    ? fromNative(accelerated)
    : typeof native === 'function'
      ? fromNative(native)
      : crc32Portable;

export const crc32IsNative: boolean = accelerated !== undefined || typeof native === 'function';

/** Which implementation `crc32` is: for tests and start-up logs. */
export const crc32Implementation: 'accelerated' | 'zlib' | 'portable' =
  accelerated !== undefined ? 'accelerated' : typeof native === 'function' ? 'zlib' : 'portable';
