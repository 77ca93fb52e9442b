// Proves the binary client protocol's codec (src/transport/client-frames.ts) gives back every
// frame it encoded, however the stream is cut into chunks, and refuses, with a stable code
// and never an exception of another kind, every frame it did not: cut short, with bytes
// left over, oversized, of an unknown version or type, or random bytes (fast-check). The
// run frames (broadcastRun, runAnswer) are among them, and their counts and integers are
// checked against the bytes there are before anything is allocated for them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type ClientFrame,
  ClientFrameDecoder,
  ClientFrameError,
  clientFrameLimits,
  decodeClientFrame,
  encodeClientFrame,
  type RunResult,
  type RunResults,
  requestMethods,
  setRequestId,
} from '../../src/transport/client-frames.ts';

const frameBytesMax = 64 << 10;

const shortText = (bytesMax: number) =>
  fc.string({ maxLength: bytesMax }).filter((text) => Buffer.byteLength(text) <= bytesMax);
const headerName = fc.stringMatching(/^[a-z0-9-]{1,20}$/);
const headers = fc.dictionary(headerName, shortText(100), { maxKeys: 6 });
const body = fc.uint8Array({ maxLength: 2000 });
const requestId = fc.integer({ min: 0, max: 0xffff_ffff });

const known = fc.option(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), { nil: null });
const runResult: fc.Arbitrary<RunResult> = fc.oneof(
  fc.record({
    kind: fc.constant('ok' as const),
    position: known,
    term: known,
    duplicate: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('error' as const),
    status: fc.integer({ min: 100, max: 599 }),
    code: shortText(64),
    message: shortText(1024),
    details: fc.oneof(fc.constant(''), fc.json({ maxDepth: 2 })),
  }),
);

const frameArbitrary: fc.Arbitrary<ClientFrame> = fc.oneof(
  shortText(clientFrameLimits.tokenBytesMax).map(
    (token): ClientFrame => ({ type: 'hello', requestId: 0, token }),
  ),
  fc
    .record({
      windowRequests: fc.integer({ min: 0, max: 0xffff_ffff }),
      frameBytesMax: fc.integer({ min: 0, max: 0xffff_ffff }),
      nodeId: shortText(40),
    })
    .map((fields): ClientFrame => ({ type: 'welcome', requestId: 0, ...fields })),
  fc
    .record({
      requestId,
      method: fc.constantFrom(...requestMethods),
      path: shortText(200).map((text) => `/${text}`),
      headers,
      body,
    })
    .map((fields): ClientFrame => ({ type: 'request', ...fields })),
  fc
    .record({ requestId, status: fc.integer({ min: 100, max: 599 }), headers, body })
    .map((fields): ClientFrame => ({ type: 'answer', ...fields })),
  fc
    .record({ requestId, code: shortText(40), message: shortText(200) })
    .map((fields): ClientFrame => ({ type: 'goAway', ...fields })),
  fc
    .record({ requestId, status: fc.integer({ min: 100, max: 599 }), headers })
    .map((fields): ClientFrame => ({ type: 'streamHead', ...fields })),
  fc
    .record({ requestId, data: body })
    .map((fields): ClientFrame => ({ type: 'streamData', ...fields })),
  requestId.map((id): ClientFrame => ({ type: 'streamEnd', requestId: id })),
  requestId.map((id): ClientFrame => ({ type: 'cancel', requestId: id })),
  fc
    .record({
      requestId,
      headers,
      clientId: shortText(60),
      firstSeq: fc.maxSafeNat(),
      nonce: shortText(20),
      messages: fc.array(
        fc.record({
          // Bytes or text: text goes out as its UTF-8 and comes back as those bytes.
          payload: fc.oneof(body, fc.json()),
          topic: shortText(30),
          key: shortText(30),
        }),
        { maxLength: 12 },
      ),
    })
    .map((fields): ClientFrame => ({ type: 'broadcastRun', ...fields })),
  fc
    .record({ requestId, results: fc.array(runResult, { maxLength: 12 }) })
    .map((fields): ClientFrame => ({ type: 'runAnswer', ...fields })),
);

/** Frames compared with plain arrays for bodies (a decoded body is a view). */
function plain(frame: ClientFrame): unknown {
  if (frame.type === 'broadcastRun') {
    const messages = frame.messages.map((message) => ({
      ...message,
      payload: [...Buffer.from(message.payload)],
    }));
    return { ...frame, headers: { ...frame.headers }, messages };
  }
  if (frame.type === 'runAnswer') {
    return { ...frame, results: frame.results.map((result) => ({ ...result })) };
  }
  if ('body' in frame) return { ...frame, headers: { ...frame.headers }, body: [...frame.body] };
  if ('data' in frame) return { ...frame, data: [...frame.data] };
  if ('headers' in frame) return { ...frame, headers: { ...frame.headers } };
  return { ...frame };
}

/** Cuts `bytes` at the given points (sorted, deduplicated). */
function cut(bytes: Uint8Array, points: readonly number[]): Uint8Array[] {
  const sorted = [...new Set(points.map((point) => point % (bytes.length + 1)))].sort(
    (a, b) => a - b,
  );
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const point of sorted) {
    chunks.push(bytes.subarray(from, point));
    from = point;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

/**
 * For any frames, encoded and cut into chunks anyhow: `decode` reads the chunks with the
 * decoder, and must give the frames back as they were, nothing left partial.
 */
function everyChunkedStream(
  decode: (decoder: ClientFrameDecoder, chunks: Uint8Array[], wireBytes: number) => ClientFrame[],
): void {
  fc.assert(
    fc.property(
      fc.array(frameArbitrary, { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (frames, points) => {
        const wire = Buffer.concat(frames.map(encodeClientFrame));
        const decoder = new ClientFrameDecoder(frameBytesMax);
        const decoded = decode(decoder, cut(wire, points), wire.length);
        assert.deepEqual(decoded.map(plain), frames.map(plain));
        assert.equal(decoder.hasPartialFrame, false);
      },
    ),
  );
}

test('every frame comes back as it was encoded, however the stream is chunked', () => {
  everyChunkedStream((decoder, chunks) => {
    const decoded: ClientFrame[] = [];
    for (const chunk of chunks) {
      const { frames: out, error } = decoder.push(Uint8Array.from(chunk));
      assert.equal(error, null);
      decoded.push(...out.map((frame) => structuredClone(frame)));
    }
    return decoded;
  });
});

/** A runAnswer's results as read through RunResults, as objects (read while valid). */
function resultsOf(results: RunResults): RunResult[] {
  return Array.from({ length: results.count }, (_, at): RunResult => {
    if (!results.ok(at)) return { ...results.error(at) };
    const { position, term, duplicate } = {
      position: results.position(at),
      term: results.term(at),
      duplicate: results.duplicate(at),
    };
    return { kind: 'ok', position, term, duplicate };
  });
}

test('pushTo gives every frame as push does, runAnswers through reused columns, from one reused read buffer', () => {
  everyChunkedStream((decoder, chunks, wireBytes) => {
    // As a socket's onread: every chunk arrives in the same buffer, overwritten after.
    const readBuffer = Buffer.alloc(wireBytes + 1);
    const decoded: ClientFrame[] = [];
    for (const chunk of chunks) {
      readBuffer.set(chunk);
      const error = decoder.pushTo(readBuffer.subarray(0, chunk.length), {
        frame: (frame) => decoded.push(structuredClone(frame)),
        runAnswer: (id, results) =>
          decoded.push({ type: 'runAnswer', requestId: id, results: resultsOf(results) }),
      });
      readBuffer.fill(0xee);
      assert.equal(error, null);
    }
    return decoded;
  });
});

test('pushTo refuses what push refuses, with the same code', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), (bytes) => {
      const pushed = new ClientFrameDecoder(1024).push(bytes);
      const handled: ClientFrame[] = [];
      const error = new ClientFrameDecoder(1024).pushTo(bytes, {
        frame: (frame) => handled.push(frame),
        runAnswer: (id, results) =>
          handled.push({ type: 'runAnswer', requestId: id, results: resultsOf(results) }),
      });
      assert.equal(error?.code, pushed.error?.code);
      assert.deepEqual(handled.map(plain), pushed.frames.map(plain));
    }),
  );
});

test('a frame cut short or with bytes left over is refused as malformed', () => {
  fc.assert(
    fc.property(
      frameArbitrary,
      fc.nat(),
      fc.uint8Array({ minLength: 1, maxLength: 8 }),
      (frame, at, extra) => {
        const body = encodeClientFrame(frame).subarray(4);
        const shortBy = 1 + (at % (body.length - 1));
        const short = body.subarray(0, body.length - shortBy);
        assert.throws(() => decodeClientFrame(short), hasCode('frame_malformed'));
        const long = Buffer.concat([body, extra]);
        assert.throws(() => decodeClientFrame(long), hasCode('frame_malformed'));
      },
    ),
  );
});

test('an oversized or empty length is refused before its body is buffered', () => {
  const decoder = new ClientFrameDecoder(frameBytesMax);
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(frameBytesMax + 1);
  const { frames, error } = decoder.push(prefix);
  assert.deepEqual(frames, []);
  assert.equal(error?.code, 'frame_too_large');
  const empty = new ClientFrameDecoder(frameBytesMax).push(Buffer.alloc(4));
  assert.equal(empty.error?.code, 'frame_empty');
});

test('an unknown version or type is refused by its own code', () => {
  const hello = encodeClientFrame({ type: 'hello', requestId: 0, token: '' });
  const otherVersion = Buffer.from(hello);
  otherVersion[4] = 2;
  assert.equal(
    new ClientFrameDecoder(frameBytesMax).push(otherVersion).error?.code,
    'version_unsupported',
  );
  const otherType = Buffer.from(hello);
  otherType[5] = 99;
  assert.equal(
    new ClientFrameDecoder(frameBytesMax).push(otherType).error?.code,
    'frame_type_unknown',
  );
});

test('frames before a bad one are given back with the error', () => {
  const good = encodeClientFrame({ type: 'hello', requestId: 0, token: 't' });
  const bad = Buffer.alloc(4);
  bad.writeUInt32BE(frameBytesMax + 1);
  const { frames, error } = new ClientFrameDecoder(frameBytesMax).push(Buffer.concat([good, bad]));
  assert.equal(frames.length, 1);
  assert.equal(error?.code, 'frame_too_large');
});

test('random bytes decode to frames or a ClientFrameError, nothing else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const framed = Buffer.alloc(4 + bytes.length);
      framed.writeUInt32BE(bytes.length);
      framed.set(bytes, 4);
      const { error } = new ClientFrameDecoder(frameBytesMax).push(framed);
      assert.ok(error === null || error instanceof ClientFrameError);
      // Raw garbage, length prefix and all, is refused or waits for more; it never throws.
      const raw = new ClientFrameDecoder(frameBytesMax).push(bytes);
      assert.ok(raw.error === null || raw.error instanceof ClientFrameError);
    }),
  );
});

function hasCode(code: string): (error: unknown) => boolean {
  return (error) => error instanceof ClientFrameError && error.code === code;
}

/** A frame's body (no length prefix) of `type` with `fields` after the header. */
function frameBody(type: number, fields: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([1, type, 0, 0, 0, 7]), fields]);
}

test('a run claiming more messages or results than its bytes hold is refused before any is read', () => {
  // No headers, client "c", seq 1, no nonce, then 65535 messages in 10 bytes.
  const run = Buffer.from([0, 0, 0, 1, 0x63, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0xff, 0xff]);
  assert.throws(
    () => decodeClientFrame(frameBody(10, Buffer.concat([run, Buffer.alloc(10)]))),
    hasCode('frame_malformed'),
  );
  const answer = Buffer.from([0xff, 0xff, 1]);
  assert.throws(() => decodeClientFrame(frameBody(11, answer)), hasCode('frame_malformed'));
});

test('a seq, position or term over 2^53 - 1, or an unknown outcome, is malformed', () => {
  const run = (seqHigh: number) =>
    frameBody(10, Buffer.from([0, 0, 0, 1, 0x63, 0, seqHigh, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]));
  assert.equal(
    (decodeClientFrame(run(0x1f)) as { firstSeq: number }).firstSeq,
    0x1f_0000_0000_0001,
  );
  assert.throws(() => decodeClientFrame(run(0x20)), hasCode('frame_malformed'));
  const ok = (outcome: number, positionHigh: number) =>
    frameBody(
      11,
      Buffer.from([0, 1, outcome, 0, positionHigh, 0, 0, 0, 0, 0, 1, ...Buffer.alloc(8)]),
    );
  const decoded = decodeClientFrame(ok(2, 0x1f));
  assert.deepEqual(decoded.type === 'runAnswer' && decoded.results, [
    { kind: 'ok', position: 0x1f_0000_0000_0001, term: null, duplicate: true },
  ]);
  assert.throws(() => decodeClientFrame(ok(1, 0x20)), hasCode('frame_malformed'));
  assert.throws(() => decodeClientFrame(ok(4, 0)), hasCode('frame_malformed'));
});

test("a run's payloads outlive the bytes they were decoded from", () => {
  const wire = encodeClientFrame({
    type: 'broadcastRun',
    requestId: 3,
    headers: {},
    clientId: 'c',
    firstSeq: 1,
    nonce: '',
    messages: [{ payload: '{"a":1}', topic: 't', key: '' }],
  });
  const body = Uint8Array.from(wire.subarray(4));
  const frame = decodeClientFrame(body);
  body.fill(0);
  assert.equal(
    frame.type === 'broadcastRun' && Buffer.from(frame.messages[0]!.payload).toString(),
    '{"a":1}',
  );
});

test("a run read from the sender's records encodes as the same run spelt out", () => {
  const run = {
    type: 'broadcastRun',
    requestId: 2,
    headers: {},
    clientId: 'c',
    firstSeq: 7,
    nonce: '',
  } as const;
  const records = [
    { payload: 'a "b" ü', payloadQuoted: false, topic: undefined, key: undefined },
    { payload: 'plain ü', payloadQuoted: true, topic: 't', key: 'k' },
    { payload: '', payloadQuoted: true, topic: 't', key: undefined },
    { payload: 'ascii ~\x7f', payloadQuoted: true, payloadAscii: true, topic: 't', key: 'k' },
    { payload: '', payloadQuoted: true, payloadAscii: true, topic: undefined, key: undefined },
  ];
  const spelt = [
    { payload: 'a "b" ü', topic: '', key: '' },
    { payload: '"plain ü"', topic: 't', key: 'k' },
    { payload: '""', topic: 't', key: '' },
    { payload: '"ascii ~\x7f"', topic: 't', key: 'k' },
    { payload: '""', topic: '', key: '' },
  ];
  assert.deepEqual(
    encodeClientFrame({ ...run, messages: records }),
    encodeClientFrame({ ...run, messages: spelt }),
  );
});

test('setRequestId gives an encoded frame its id', () => {
  const wire = encodeClientFrame({
    type: 'broadcastRun',
    requestId: 0,
    headers: { authorization: 'Bearer x' },
    clientId: 'c',
    firstSeq: 5,
    nonce: 'n',
    messages: [{ payload: '1', topic: '', key: 'k' }],
  });
  setRequestId(wire, 0xfeed_beef);
  assert.equal(decodeClientFrame(wire.subarray(4)).requestId, 0xfeed_beef);
});

test('run frames with bytes flipped or garbage after their header decode or are refused, nothing else', () => {
  const runFrames = frameArbitrary.filter(
    (frame) => frame.type === 'broadcastRun' || frame.type === 'runAnswer',
  );
  fc.assert(
    fc.property(
      runFrames,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 6,
      }),
      (frame, flips) => {
        const body = Uint8Array.from(encodeClientFrame(frame).subarray(4));
        for (const [at, value] of flips) body[6 + (at % Math.max(1, body.length - 6))] = value;
        try {
          decodeClientFrame(body);
        } catch (error) {
          assert.ok(error instanceof ClientFrameError, String(error));
        }
      },
    ),
  );
  fc.assert(
    fc.property(fc.constantFrom(10, 11), fc.uint8Array({ maxLength: 200 }), (type, fields) => {
      try {
        decodeClientFrame(frameBody(type, fields));
      } catch (error) {
        assert.ok(error instanceof ClientFrameError, String(error));
      }
    }),
  );
});
