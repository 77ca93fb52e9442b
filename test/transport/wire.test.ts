// Proves the link packets (Hello, Welcome, Refuse, snapshot streams) round-trip, that Hello of
// any version is still readable so it can be refused politely, that packet decoding is total
// (fast-check: only CodecError), and that a chunked snapshot reassembles byte for byte while
// out-of-order or oversized streams are refused.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import type { SnapshotMessage } from '../../src/raft/types.ts';
import { CodecError, ProtocolError } from '../../src/transport/errors.ts';
import { PacketSplitter } from '../../src/transport/framing.ts';
import { SnapshotAssembler, SnapshotSender } from '../../src/transport/snapshot-stream.ts';
import {
  decodePacket,
  encodeHello,
  encodeRefuse,
  encodeSnapshotChunkHeader,
  encodeWelcome,
} from '../../src/transport/wire.ts';

function snapshotMessage(dataBytes: number): SnapshotMessage {
  return {
    type: 'Snapshot',
    from: 'n1',
    to: 'n2',
    term: 3,
    snapshot: {
      meta: { index: 120, term: 2, config: { voters: ['n1', 'n2', 'n3'], learners: ['n4'] } },
      data: new Uint8Array(randomBytes(dataBytes)),
    },
  };
}

/** Sends `message` through a sender, the framing and an assembler, as a link would. */
function stream(message: SnapshotMessage, chunkBytes: number): SnapshotMessage {
  const sender = new SnapshotSender(message, 7, chunkBytes);
  const splitter = new PacketSplitter(chunkBytes + 64);
  const assembler = new SnapshotAssembler(message.snapshot.data.byteLength);
  let result: SnapshotMessage | null = null;
  let packetCount = 0;
  while (!sender.done) {
    for (const piece of sender.nextPieces()) splitter.push(piece);
    for (let bytes = splitter.next(); bytes !== null; bytes = splitter.next()) {
      packetCount++;
      const packet = decodePacket(bytes);
      if (packet.kind === 'SnapshotBegin')
        assembler.begin(packet.streamId, packet.totalBytes, packet.header);
      else if (packet.kind === 'SnapshotChunk')
        result = assembler.chunk(packet.streamId, packet.offset, packet.data);
      else assert.fail(`unexpected ${packet.kind}`);
    }
  }
  assert.equal(packetCount, 1 + Math.ceil(message.snapshot.data.byteLength / chunkBytes));
  assert.ok(result !== null, 'the last chunk completes the snapshot');
  return result;
}

test('Hello, Welcome and Refuse round-trip', () => {
  const hello = { version: 1, clusterId: 'prod-eu', from: 'n1', to: 'n2' };
  assert.deepStrictEqual(decodePacket(encodeHello(hello)), { kind: 'Hello', ...hello });
  assert.deepStrictEqual(decodePacket(encodeWelcome('n2')), { kind: 'Welcome', nodeId: 'n2' });
  assert.deepStrictEqual(decodePacket(encodeRefuse('WRONG_CLUSTER', 'not prod-us')), {
    kind: 'Refuse',
    code: 'WRONG_CLUSTER',
    detail: 'not prod-us',
  });
});

test('a Hello from another protocol version is readable, other packets of it are not', () => {
  const hello = { version: 9, clusterId: 'c', from: 'n1', to: 'n2' };
  assert.deepStrictEqual(decodePacket(encodeHello(hello)), { kind: 'Hello', ...hello });
  const welcome = Uint8Array.from(encodeWelcome('n2'));
  welcome[0] = 9;
  assert.throws(
    () => decodePacket(welcome),
    (error: unknown) => error instanceof CodecError && error.code === 'UNSUPPORTED_VERSION',
  );
});

test('a Hello with the wrong magic is refused', () => {
  const hello = Uint8Array.from(encodeHello({ version: 1, clusterId: 'c', from: 'n1', to: 'n2' }));
  hello[2] = 0x5a;
  assert.throws(() => decodePacket(hello), CodecError);
});

test('arbitrary bytes decode to a packet or throw CodecError', () => {
  const packetPrefixed = fc
    .tuple(
      fc.constantFrom(1, 2),
      fc.integer({ min: 0x3f, max: 0x45 }),
      fc.uint8Array({ maxLength: 60 }),
    )
    .map(([version, type, rest]) => Uint8Array.from([version, type, ...rest]));
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 80 }), packetPrefixed), (bytes) => {
      try {
        decodePacket(bytes);
      } catch (error) {
        assert.ok(error instanceof CodecError, `only CodecError escapes, got ${String(error)}`);
      }
    }),
    { numRuns: 20_000 },
  );
});

test('a chunked snapshot reassembles byte for byte, whatever the chunk size', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 20_000 }),
      fc.integer({ min: 1, max: 4_096 }),
      (dataBytes, chunkBytes) => {
        const message = snapshotMessage(dataBytes);
        assert.deepStrictEqual(stream(message, chunkBytes), message);
      },
    ),
    { numRuns: 200 },
  );
});

test('a several-megabyte snapshot reassembles intact', () => {
  const message = snapshotMessage(5 * 1024 * 1024 + 17);
  assert.deepStrictEqual(stream(message, 256 * 1024), message);
});

test('out-of-order, foreign and oversized streams are refused', () => {
  const header = snapshotMessage(0);
  const protocolCode = (run: () => unknown): string => {
    try {
      run();
    } catch (error) {
      assert.ok(error instanceof ProtocolError);
      return error.code;
    }
    return 'none';
  };
  const assembler = new SnapshotAssembler(100);
  assert.equal(
    protocolCode(() => assembler.begin(1, 101, header)),
    'SNAPSHOT_TOO_LARGE',
  );
  assert.equal(
    protocolCode(() => assembler.chunk(1, 0, new Uint8Array(1))),
    'SNAPSHOT_OUT_OF_ORDER',
  );
  assembler.begin(1, 10, header);
  assert.equal(
    protocolCode(() => assembler.begin(2, 10, header)),
    'SNAPSHOT_OUT_OF_ORDER',
  );
  assert.equal(
    protocolCode(() => assembler.chunk(2, 0, new Uint8Array(1))),
    'SNAPSHOT_OUT_OF_ORDER',
  );
  assert.equal(
    protocolCode(() => assembler.chunk(1, 5, new Uint8Array(1))),
    'SNAPSHOT_OUT_OF_ORDER',
  );
  assert.equal(
    protocolCode(() => assembler.chunk(1, 0, new Uint8Array(11))),
    'SNAPSHOT_OUT_OF_ORDER',
  );
  assert.equal(assembler.chunk(1, 0, new Uint8Array(4)), null);
  assert.equal(assembler.chunk(1, 4, new Uint8Array(6))?.snapshot.data.byteLength, 10);
  assert.equal(assembler.active, false);
});

test('a chunk without data or a begin without a Snapshot header is malformed', () => {
  assert.throws(() => decodePacket(encodeSnapshotChunkHeader(1, 0)), CodecError);
});
