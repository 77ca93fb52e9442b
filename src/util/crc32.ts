/**
 * CRC-32 (IEEE 802.3, the zlib/PNG polynomial), incremental: `crc32(b, crc32(a))` equals
 * `crc32(a ‖ b)`. Node 20.15+ computes it natively in `zlib.crc32`; older 20.x releases get a
 * table-driven implementation with the same results.
 */
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

const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

export const crc32: Crc32 =
  typeof native === 'function'
    ? (data, previous = 0) => native(data, previous) >>> 0
    : crc32Portable;

export const crc32IsNative: boolean = typeof native === 'function';
