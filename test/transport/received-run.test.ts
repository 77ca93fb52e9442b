// Proves the node's read of the binary client port (ClientFrameDecoder.pushAtNode) gives back
// every frame as the general decoder does, a broadcastRun as one object per message shaped
// for the node (no key: undefined), however the stream is cut and whatever frames lie
// around it: topics and keys read once per change (a memo that compared lengths only, or
// kept a string across a change, gives another string back), and payloads that pin at most
// about twice their frame, as each socket read is memory of its own (fast-check). It
// refuses what push refuses, with the same code, and never throws.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type BroadcastRunFrame,
  type ClientFrame,
  ClientFrameDecoder,
  ClientFrameError,
  encodeClientFrame,
  type ReceivedRun,
} from '../../src/transport/client-frames.ts';

const frameBytesMax = 64 << 10;

/** Same lengths, other bytes: a memo must compare the bytes, not just their count. */
const repeatedText = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('', 'ab', 'ac', 'ba', 'é', 'orders') },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
);
const payload = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.json(),
  fc.integer({ min: 0, max: 3000 }).map((length) => JSON.stringify('x'.repeat(length))),
);
const runFrame = fc
  .record({
    requestId: fc.integer({ min: 0, max: 0xffff_ffff }),
    headers: fc.dictionary(fc.stringMatching(/^[a-z-]{1,10}$/), fc.string({ maxLength: 20 }), {
      maxKeys: 2,
    }),
    clientId: fc.string({ maxLength: 20 }),
    firstSeq: fc.maxSafeNat(),
    nonce: fc.string({ maxLength: 16 }),
    messages: fc.array(fc.record({ payload, topic: repeatedText, key: repeatedText }), {
      maxLength: 20,
    }),
  })
  .map((fields): BroadcastRunFrame => ({ type: 'broadcastRun', ...fields }));
/** Frames between runs, some large, so that a small run may share a read with much else. */
const otherFrame = fc.oneof(
  fc
    .string({ maxLength: 20 })
    .map((token): ClientFrame => ({ type: 'hello', requestId: 0, token })),
  fc.uint8Array({ maxLength: 6000 }).map(
    (body): ClientFrame => ({
      type: 'request',
      requestId: 1,
      method: 'POST',
      path: '/v1/broadcast',
      headers: {},
      body,
    }),
  ),
);

/** What the node must be handed for a run: what was sent, text as UTF-8, key '' as none. */
function expectedRun(frame: BroadcastRunFrame): unknown {
  const { type: _type, messages, ...fields } = frame;
  return {
    ...fields,
    headers: { ...fields.headers },
    // Each as the log's message of its session: client id and seq written in, no empty key.
    messages: messages.map((message, at) => ({
      clientId: frame.clientId,
      seq: frame.firstSeq + at,
      topic: message.topic,
      payload: [...Buffer.from(message.payload)],
      ...(message.key === '' ? {} : { key: message.key }),
    })),
  };
}

function plainRun(run: ReceivedRun): unknown {
  return {
    ...run,
    headers: { ...run.headers },
    // A message keeps its payload as a range of the frame: read through `payload` and
    // through the range it must be the same bytes.
    messages: run.messages.map((message) => {
      const { clientId, seq, topic, key, payloadSource, payloadStart, payloadBytes } = message;
      const ranged = payloadSource.subarray(payloadStart, payloadStart + payloadBytes);
      assert.deepEqual([...ranged], [...message.payload]);
      return {
        clientId,
        seq,
        topic,
        payload: [...message.payload],
        ...(key === undefined ? {} : { key }),
      };
    }),
  };
}

/** `bytes` cut at the given points, each piece in memory of its own as a socket reads it. */
function socketReads(bytes: Uint8Array, points: readonly number[]): Uint8Array[] {
  const cuts = [...new Set(points.map((point) => point % (bytes.length + 1)))].sort(
    (a, b) => a - b,
  );
  const reads: Uint8Array[] = [];
  let from = 0;
  for (const point of [...cuts, bytes.length]) {
    if (point > from) reads.push(Buffer.from(bytes.subarray(from, point)));
    from = point;
  }
  return reads;
}

test('runs read at the node are what was sent, however the stream is cut, payloads pinning at most twice their frame', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(runFrame, otherFrame), { minLength: 1, maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      (frames, points) => {
        const wire = Buffer.concat(frames.map(encodeClientFrame));
        const decoder = new ClientFrameDecoder(frameBytesMax);
        const runs: ReceivedRun[] = [];
        const others: ClientFrame[] = [];
        for (const read of socketReads(wire, points)) {
          const error = decoder.pushAtNode(read, {
            frame: (frame) => others.push(frame),
            run: (run) => runs.push(run),
          });
          assert.equal(error, null);
        }
        assert.equal(decoder.hasPartialFrame, false);
        const sentRuns = frames.filter((frame) => frame.type === 'broadcastRun');
        assert.deepEqual(runs.map(plainRun), sentRuns.map(expectedRun));
        assert.deepEqual(
          others.map((frame) => frame.type),
          frames.filter((frame) => frame.type !== 'broadcastRun').map((frame) => frame.type),
        );
        runs.forEach((run, at) => {
          const frameBytes = encodeClientFrame(sentRuns[at] as ClientFrame).length - 4;
          for (const message of run.messages) {
            const pinned = message.payloadSource.buffer.byteLength;
            assert.ok(
              pinned <= 2 * frameBytes,
              `a payload pins ${pinned} bytes for a frame of ${frameBytes}`,
            );
          }
        });
      },
    ),
    { numRuns: 500 },
  );
});

test('pushAtNode refuses what push refuses, with the same code, and never throws', () => {
  const flipped = fc
    .tuple(
      runFrame,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    )
    .map(([frame, flips]) => {
      const wire = Buffer.from(encodeClientFrame(frame));
      for (const [at, value] of flips) wire[4 + (at % (wire.length - 4))] = value;
      return wire;
    });
  fc.assert(
    fc.property(fc.oneof(flipped, fc.uint8Array({ minLength: 1, maxLength: 300 })), (bytes) => {
      const pushed = new ClientFrameDecoder(frameBytesMax).push(Uint8Array.from(bytes));
      const handled: unknown[] = [];
      const error = new ClientFrameDecoder(frameBytesMax).pushAtNode(Uint8Array.from(bytes), {
        frame: (frame) => handled.push(frame.type),
        run: () => handled.push('broadcastRun'),
      });
      assert.ok(error === null || error instanceof ClientFrameError);
      assert.equal(error?.code, pushed.error?.code);
      assert.deepEqual(
        handled,
        pushed.frames.map((frame) => frame.type),
      );
    }),
    { numRuns: 1000 },
  );
});

test('a topic or key that is not UTF-8 is malformed, also where one of its length was read before', () => {
  const wire = Buffer.from(
    encodeClientFrame({
      type: 'broadcastRun',
      requestId: 1,
      headers: {},
      clientId: 'c',
      firstSeq: 1,
      nonce: '',
      messages: [
        { payload: '1', topic: 'ab', key: 'ab' },
        { payload: '2', topic: 'ab', key: 'ab' },
      ],
    }),
  );
  for (const field of ['topic', 'key']) {
    const bad = Buffer.from(wire);
    // The second message's topic, or its key, becomes 0xff 0xff: same length, not UTF-8.
    const secondPayload = bad.indexOf(Buffer.from([0, 0, 0, 1, 0x32]));
    const at = secondPayload + 5 + 2 + (field === 'topic' ? 0 : 4);
    assert.equal(bad.subarray(at, at + 2).toString(), 'ab');
    bad[at] = 0xff;
    bad[at + 1] = 0xff;
    const error = new ClientFrameDecoder(frameBytesMax).pushAtNode(bad, {
      frame: () => assert.fail('no frame'),
      run: () => assert.fail('no run'),
    });
    assert.equal(error?.code, 'frame_malformed', field);
  }
});
