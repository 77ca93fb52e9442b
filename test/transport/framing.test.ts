// Proves the length-prefixed splitter rebuilds exactly the packets that were framed, however
// the stream is cut into chunks (fast-check), and that it refuses empty or oversized packets
// as soon as their length is known while buffering no more than the limit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  FramingError,
  lengthPrefixBytes,
  PacketSplitter,
  writeLengthPrefix,
} from '../../src/transport/framing.ts';

function frameAll(packets: readonly Uint8Array[]): Buffer {
  const parts = packets.map((packet) => {
    const framed = Buffer.alloc(lengthPrefixBytes + packet.byteLength);
    writeLengthPrefix(framed, 0, packet.byteLength);
    framed.set(packet, lengthPrefixBytes);
    return framed;
  });
  return Buffer.concat(parts);
}

function drain(splitter: PacketSplitter): Uint8Array[] {
  const packets: Uint8Array[] = [];
  for (let packet = splitter.next(); packet !== null; packet = splitter.next()) {
    packets.push(Uint8Array.from(packet));
  }
  return packets;
}

function framingErrorCode(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof FramingError, `expected FramingError, got ${String(error)}`);
    return error.code;
  }
  assert.fail('expected a FramingError');
}

test('packets survive any chunking of the stream', () => {
  const scenario = fc.record({
    packets: fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 20 }),
    cuts: fc.array(fc.nat(), { maxLength: 30 }),
  });
  fc.assert(
    fc.property(scenario, ({ packets, cuts }) => {
      const stream = frameAll(packets);
      const points = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort(
        (a, b) => a - b,
      );
      const splitter = new PacketSplitter(300);
      const received: Uint8Array[] = [];
      let start = 0;
      for (const end of [...points, stream.length]) {
        splitter.push(stream.subarray(start, end));
        received.push(...drain(splitter));
        start = end;
      }
      assert.deepStrictEqual(
        received,
        packets.map((packet) => Uint8Array.from(packet)),
      );
      assert.equal(splitter.hasPartialPacket, false);
      assert.equal(splitter.bufferedBytes, 0);
    }),
    { numRuns: 1_000 },
  );
});

test('an oversized length is refused from its four bytes alone', () => {
  const splitter = new PacketSplitter(1024);
  splitter.push(Uint8Array.from([0xff, 0xff, 0xff]));
  assert.equal(splitter.next(), null);
  splitter.push(Uint8Array.from([0xf0]));
  assert.equal(
    framingErrorCode(() => splitter.next()),
    'PACKET_TOO_LARGE',
  );
});

test('an empty packet is refused', () => {
  const splitter = new PacketSplitter(1024);
  splitter.push(Uint8Array.from([0, 0, 0, 0, 1]));
  assert.equal(
    framingErrorCode(() => splitter.next()),
    'EMPTY_PACKET',
  );
});

test('a packet trickling in one byte at a time is assembled in one buffer of its size', () => {
  const packet = Uint8Array.from({ length: 5_000 }, (_, index) => index % 251);
  const stream = frameAll([packet]);
  const splitter = new PacketSplitter(8_192);
  let result: Uint8Array | null = null;
  for (let offset = 0; offset < stream.length; offset++) {
    splitter.push(stream.subarray(offset, offset + 1));
    result = splitter.next();
    assert.ok(splitter.bufferedBytes <= packet.byteLength, 'buffering never exceeds the packet');
    if (offset < stream.length - 1) assert.equal(result, null);
  }
  assert.deepStrictEqual(result, packet);
});

test('the limit can be raised between packets, as after a handshake', () => {
  const stream = frameAll([new Uint8Array(10).fill(1), new Uint8Array(100).fill(2)]);
  const splitter = new PacketSplitter(16);
  splitter.push(stream);
  assert.equal(splitter.next()?.byteLength, 10);
  splitter.packetBytesMax = 128;
  assert.equal(splitter.next()?.byteLength, 100);
});

test('a stream that stops inside a packet is reported as partial', () => {
  const splitter = new PacketSplitter(64);
  splitter.push(frameAll([new Uint8Array(20)]).subarray(0, 10));
  assert.equal(splitter.next(), null);
  assert.equal(splitter.hasPartialPacket, true);
});
