// Store segments keep their records in frames, one checksum per frame (record.ts). This
// proves that a segment written record by record before frames (each record its own
// checksum) still reads, and goes on in frames; that a frame torn by a crash is cut whole
// while the frames before it read; that a byte flipped in the middle of a frame makes the
// whole frame read as damaged, from its first position; that a record inside a frame that
// carries a checksum of its own is refused; and that a cut inside a frame keeps a frame
// that reads after a reopen.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStoreFiles, MessageStore, type StoredMessage } from '../../src/store/index.ts';
import { encodeRecord, frameHeaderBytes, RecordWalker } from '../../src/store/record.ts';
import { Segment, segmentName, sparseEveryCount } from '../../src/store/segment.ts';
import { crc32 } from '../../src/util/crc32.ts';
import { storedMessage } from '../support/stored-message.ts';

const message = (position: number): StoredMessage => storedMessage(position);
const positions = (messages: readonly StoredMessage[]): number[] =>
  messages.map((stored) => stored.position);
const range = (first: number, last: number): number[] =>
  Array.from({ length: last - first + 1 }, (_, at) => first + at);

/** Byte offsets of every frame in a file of frames only. */
function frameOffsets(bytes: Buffer): number[] {
  const offsets: number[] = [];
  for (let at = 0; at < bytes.length; ) {
    const head = bytes.readUInt32LE(at);
    assert.ok(head >= 0x8000_0000, `a frame at ${at}`);
    offsets.push(at);
    at += frameHeaderBytes + (head - 0x8000_0000);
  }
  return offsets;
}

function fileOf(files: MemoryStoreFiles, name: string): Buffer {
  const bytes = Buffer.alloc(files.size(name));
  files.read(name, bytes, 0);
  return bytes;
}

test('a segment of records written one by one (no frames) reads, and goes on in frames', () => {
  const files = new MemoryStoreFiles();
  const unframed = range(1, 150).map((position) => encodeRecord(message(position)));
  files.write(segmentName(1), Buffer.concat(unframed), 0);
  let store = new MessageStore({ files, segmentBytesMax: 1 << 20 });
  assert.deepEqual(store.ranges(), [{ first: 1, last: 150 }]);
  for (const from of [1, 64, 65, 100, 150]) {
    assert.deepEqual(store.read(from, 3), range(from, Math.min(150, from + 2)).map(message));
  }
  for (let position = 151; position <= 300; position++) store.append(message(position));
  store.flush();
  const bytes = fileOf(files, segmentName(1));
  const oldBytes = unframed.reduce((sum, record) => sum + record.length, 0);
  assert.ok(bytes.readUInt32LE(oldBytes) >= 0x8000_0000, 'the new records are framed');
  // Reopened without its index (as after a crash): the scan reads both kinds.
  files.remove(`${segmentName(1)}.idx`);
  store = new MessageStore({ files, segmentBytesMax: 1 << 20 });
  assert.deepEqual(store.ranges(), [{ first: 1, last: 300 }]);
  assert.deepEqual(positions(store.read(1, 1000)), range(1, 300));
  for (const from of [129, 150, 151, 193, 257, 300]) {
    assert.deepEqual(store.read(from, 2), range(from, Math.min(300, from + 1)).map(message));
  }
});

test('a frame torn by a crash is cut whole; the frames before it read', () => {
  const files = new MemoryStoreFiles();
  let store = new MessageStore({ files, segmentBytesMax: 1 << 20 });
  for (let position = 1; position <= 200; position++) store.append(message(position));
  store.flush();
  const offsets = frameOffsets(fileOf(files, segmentName(1)));
  assert.deepEqual(offsets.length, Math.ceil(200 / sparseEveryCount), 'a frame per stride');
  // Only part of the last frame reached the disk.
  const lastFrame = offsets.at(-1) as number;
  files.truncate(segmentName(1), lastFrame + frameHeaderBytes + 30);
  files.remove(`${segmentName(1)}.idx`);
  store = new MessageStore({ files, segmentBytesMax: 1 << 20 });
  const kept = 3 * sparseEveryCount;
  assert.equal(store.lastPosition, kept);
  assert.equal(files.size(segmentName(1)), lastFrame, 'the torn frame is cut off');
  assert.deepEqual(positions(store.read(1, 1000)), range(1, kept));
  for (let position = kept + 1; position <= 210; position++) store.append(message(position));
  store.flush();
  assert.deepEqual(positions(store.read(kept - 1, 1000)), range(kept - 1, 210));
});

test('a byte flipped in the middle of a frame: the frame reads as damaged from its start', () => {
  const files = new MemoryStoreFiles();
  const segment = new Segment(files, 1);
  for (let position = 1; position <= 200; position++) segment.append(message(position));
  segment.flush();
  const bytes = fileOf(files, segmentName(1));
  const offsets = frameOffsets(bytes);
  const second = offsets[1] as number;
  const middle = Math.floor((second + (offsets[2] as number)) / 2);
  files.write(segmentName(1), Buffer.from([(bytes[middle] as number) ^ 0x10]), middle);
  const frameFirst = sparseEveryCount + 1;
  assert.deepEqual(positions(segment.read(1, 1000)), range(1, sparseEveryCount));
  assert.equal(segment.damagedFrom, frameFirst);
  segment.damagedFrom = null;
  // A read that starts inside the damaged frame finds it too, and gives nothing.
  assert.deepEqual(segment.read(frameFirst + 10, 5), []);
  assert.equal(segment.damagedFrom, frameFirst);
  segment.damagedFrom = null;
  // The frame after it is whole.
  assert.deepEqual(positions(segment.read(2 * sparseEveryCount + 1, 3)), range(129, 131));
  assert.equal(segment.damagedFrom, null);
});

test('a record inside a frame that carries a checksum of its own is refused', () => {
  const files = new MemoryStoreFiles();
  const segment = new Segment(files, 1);
  for (let position = 1; position <= 3; position++) segment.append(message(position));
  segment.flush();
  const bytes = fileOf(files, segmentName(1));
  const walker = new RecordWalker();
  const first = walker.at(bytes, 0);
  assert.equal(first.kind, 'record');
  assert.equal(walker.frameStart, 0);
  assert.equal(walker.frameEnd, bytes.length);
  if (first.kind !== 'record') return;
  const secondAt = first.recordBytes;
  assert.equal(walker.at(bytes, secondAt).kind, 'record');
  // A checksum field that is not 0 inside a frame: not a record a segment wrote.
  const forged = Buffer.from(bytes);
  forged.writeUInt32LE(1, secondAt + 4);
  walker.reset();
  assert.equal(walker.at(forged, 0).kind, 'invalid', 'the frame checksum covers it');
  // Even with the frame's checksum made to match, the record is refused.
  const walkerAfter = new RecordWalker();
  const resealed = Buffer.from(forged);
  resealed.writeUInt32LE(crc32(resealed.subarray(frameHeaderBytes)), 4);
  assert.equal(walkerAfter.at(resealed, 0).kind, 'record');
  assert.equal(walkerAfter.at(resealed, secondAt).kind, 'invalid');
});

test('a cut inside a frame keeps a frame that reads, also after a reopen', () => {
  const files = new MemoryStoreFiles();
  let store = new MessageStore({ files, segmentBytesMax: 1 << 20 });
  for (let position = 1; position <= 150; position++) store.append(message(position));
  store.flush();
  store.truncateAfter(100);
  assert.deepEqual(positions(store.read(60, 1000)), range(60, 100));
  const offsets = frameOffsets(fileOf(files, segmentName(1)));
  assert.equal(offsets.length, 2, 'the cut frame keeps its header');
  store.close();
  files.remove(`${segmentName(1)}.idx`);
  store = new MessageStore({ files, segmentBytesMax: 1 << 20 });
  assert.equal(store.lastPosition, 100);
  for (let position = 101; position <= 130; position++) store.append(message(position));
  store.flush();
  assert.deepEqual(positions(store.read(1, 1000)), range(1, 130));
});
