// Proves the copy-free paths of the peer wire: a gathered encoding (header pieces around
// references to large entry data) carries exactly the bytes of the plain encoding and
// references, not copies, the large runs; decoding with views yields the same frame as
// decoding with copies; and packets cut at any byte boundary, fed as fresh reads the way a
// socket delivers them, decode to the frames that were sent, their entries intact after
// every later read (nothing a kept entry views is reused).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { AppendMessage, Entry } from '../../src/raft/types.ts';
import {
  decodeFrame,
  encodeFrame,
  gatherFrame,
  measureGatheredFrame,
  referencedRunBytesMin,
} from '../../src/transport/codec.ts';
import {
  lengthPrefixBytes,
  PacketSplitter,
  writeLengthPrefix,
} from '../../src/transport/framing.ts';
import { decodeKept } from '../../src/transport/inbound.ts';
import type { Frame } from '../../src/transport/types.ts';
import { frameArbitrary } from './arbitraries.ts';

const entryDataArbitrary = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.uint8Array({ minLength: referencedRunBytesMin - 2, maxLength: referencedRunBytesMin + 2 }),
  fc.uint8Array({ minLength: 3000, maxLength: 6000 }),
);

const appendArbitrary: fc.Arbitrary<AppendMessage> = fc
  .record({
    prevLogIndex: fc.nat({ max: 1000 }),
    prevLogTerm: fc.integer({ min: 1, max: 5 }),
    termSteps: fc.array(fc.nat({ max: 2 }), { maxLength: 6 }),
    data: fc.array(entryDataArbitrary, { minLength: 6, maxLength: 6 }),
    commit: fc.nat({ max: 1000 }),
  })
  .map(({ prevLogIndex, prevLogTerm, termSteps, data, commit }) => {
    let term = prevLogTerm;
    const entries: Entry[] = termSteps.map((step, position) => {
      term += step;
      return { index: prevLogIndex + 1 + position, term, kind: 'normal', data: data[position]! };
    });
    return {
      type: 'Append',
      from: 'n1',
      to: 'n2',
      term,
      prevLogIndex,
      prevLogTerm,
      entries,
      commit,
    };
  });

const anyFrameArbitrary: fc.Arbitrary<Frame> = fc.oneof(frameArbitrary, appendArbitrary);

function gatheredPacket(frame: Frame): Uint8Array[] {
  const size = measureGatheredFrame(frame);
  const pieces = gatherFrame(frame, size, lengthPrefixBytes);
  writeLengthPrefix(pieces[0], 0, size.byteCount);
  return pieces;
}

function entriesOf(frame: Frame): readonly Entry[] {
  return frame.type === 'Append' ? frame.entries : [];
}

test('a gathered encoding is the plain encoding and references the large runs', () => {
  fc.assert(
    fc.property(anyFrameArbitrary, (frame) => {
      const pieces = gatheredPacket(frame);
      const joined = Buffer.concat(pieces);
      const plain = encodeFrame(frame);
      assert.equal(joined.readUInt32BE(0), plain.byteLength);
      assert.deepEqual(joined.subarray(lengthPrefixBytes), Buffer.from(plain));
      for (const entry of entriesOf(frame)) {
        const referenced = pieces.some((piece) => piece === entry.data);
        assert.equal(referenced, entry.data.byteLength >= referencedRunBytesMin);
      }
    }),
    { numRuns: 500 },
  );
});

test('decoding with views yields the frame decoding with copies does, viewing its input', () => {
  fc.assert(
    fc.property(anyFrameArbitrary, (frame) => {
      const bytes = Uint8Array.from(encodeFrame(frame));
      const viewed = decodeFrame(bytes, 0, bytes.byteLength, true);
      assert.deepEqual(viewed, decodeFrame(bytes));
      for (const entry of entriesOf(viewed)) {
        if (entry.data.byteLength > 0) assert.equal(entry.data.buffer, bytes.buffer);
      }
    }),
    { numRuns: 500 },
  );
});

/** What one connection receives: every packet, cut at `cuts`, each read a fresh buffer. */
function receive(stream: Buffer, cuts: readonly number[]): Frame[] {
  const splitter = new PacketSplitter(1 << 20);
  const received: Frame[] = [];
  let start = 0;
  for (const end of [...cuts, stream.byteLength]) {
    if (end <= start) continue;
    splitter.push(Uint8Array.from(stream.subarray(start, end)));
    start = end;
    for (let packet = splitter.next(); packet !== null; packet = splitter.next()) {
      const decoded = decodeKept(packet, splitter.ownsLastPacket);
      assert.equal(decoded.kind, 'Frame');
      if (decoded.kind === 'Frame') received.push(decoded.frame);
    }
  }
  return received;
}

test('packets cut at any byte boundary decode to the frames sent, kept entries intact', () => {
  fc.assert(
    fc.property(
      fc.array(appendArbitrary, { minLength: 1, maxLength: 4 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (frames, cutSeeds) => {
        const stream = Buffer.concat(frames.flatMap(gatheredPacket));
        const cuts = [...new Set(cutSeeds.map((seed) => seed % stream.byteLength))].sort(
          (a, b) => a - b,
        );
        assert.deepEqual(receive(stream, cuts), frames);
      },
    ),
    { numRuns: 300 },
  );
});

test('one packet cut at every single byte boundary decodes whole', () => {
  const frame = fc.sample(appendArbitrary, { numRuns: 1, seed: 7 })[0]!;
  const withLarge: AppendMessage = {
    ...frame,
    entries: [
      {
        index: frame.prevLogIndex + 1,
        term: frame.prevLogTerm,
        kind: 'normal',
        data: new Uint8Array(3000).fill(7),
      },
      {
        index: frame.prevLogIndex + 2,
        term: frame.prevLogTerm,
        kind: 'normal',
        data: Uint8Array.of(1, 2, 3),
      },
    ],
    term: frame.prevLogTerm,
  };
  const stream = Buffer.concat([...gatheredPacket(withLarge), ...gatheredPacket(withLarge)]);
  for (let cut = 1; cut < stream.byteLength; cut++) {
    assert.deepEqual(receive(stream, [cut]), [withLarge, withLarge], `cut at ${cut}`);
  }
});

test('a large packet sharing a larger read keeps no view of the read (socket reads are Buffers)', () => {
  const frame: AppendMessage = {
    type: 'Append',
    from: 'n1',
    to: 'n2',
    term: 1,
    prevLogIndex: 0,
    prevLogTerm: 0,
    entries: [{ index: 1, term: 1, kind: 'normal', data: new Uint8Array(1500).fill(9) }],
    commit: 0,
  };
  const packet = Buffer.concat(gatheredPacket(frame));
  // One read the way Node hands it over: a Buffer holding this packet and more bytes after.
  const read = Buffer.alloc(64 * 1024);
  packet.copy(read, 0);
  const splitter = new PacketSplitter(1 << 20);
  splitter.push(read);
  const bytes = splitter.next();
  assert.ok(bytes !== null && !splitter.ownsLastPacket);
  assert.ok(bytes.byteLength >= 1024 && bytes.byteLength * 2 < read.byteLength);
  const decoded = decodeKept(bytes, splitter.ownsLastPacket);
  assert.equal(decoded.kind, 'Frame');
  const data = entriesOf(decoded.kind === 'Frame' ? decoded.frame : frame)[0]!.data;
  assert.deepEqual(Uint8Array.from(data), frame.entries[0]!.data);
  // Copied out whole: the entry pins at most its packet, not the 64 KiB read around it.
  assert.ok(data.buffer !== read.buffer, 'the entry views the read');
  assert.ok(data.buffer.byteLength <= bytes.byteLength);
});
