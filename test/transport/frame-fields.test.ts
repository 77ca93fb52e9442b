// FrameReader.detach: what is read after it stays as it was when the chunk the frame came in
// (a socket read, a Buffer) is overwritten or reused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrameReader } from '../../src/transport/frame-fields.ts';

test('bytes read after detach survive the socket read being overwritten', () => {
  const read = Buffer.alloc(64);
  read.writeUInt32BE(3, 0);
  read.set([7, 8, 9], 4);
  const reader = new FrameReader(read.subarray(0, 7));
  reader.detach();
  const bytes = reader.bytes('the payload');
  read.fill(0xee);
  assert.deepEqual([...bytes], [7, 8, 9]);
});
