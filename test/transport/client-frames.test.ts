// Proves the binary client protocol's codec (src/transport/client-frames.ts) gives back every
// frame it encoded, however the stream is cut into chunks, and refuses, with a stable code
// and never an exception of another kind, every frame it did not: cut short, with bytes
// left over, oversized, of an unknown version or type, or random bytes (fast-check).
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
  requestMethods,
} from '../../src/transport/client-frames.ts';

const frameBytesMax = 64 << 10;

const shortText = (bytesMax: number) =>
  fc.string({ maxLength: bytesMax }).filter((text) => Buffer.byteLength(text) <= bytesMax);
const headerName = fc.stringMatching(/^[a-z0-9-]{1,20}$/);
const headers = fc.dictionary(headerName, shortText(100), { maxKeys: 6 });
const body = fc.uint8Array({ maxLength: 2000 });
const requestId = fc.integer({ min: 0, max: 0xffff_ffff });

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
);

/** Frames compared with plain arrays for bodies (a decoded body is a view). */
function plain(frame: ClientFrame): unknown {
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

test('every frame comes back as it was encoded, however the stream is chunked', () => {
  fc.assert(
    fc.property(
      fc.array(frameArbitrary, { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (frames, points) => {
        const wire = Buffer.concat(frames.map(encodeClientFrame));
        const decoder = new ClientFrameDecoder(frameBytesMax);
        const decoded: ClientFrame[] = [];
        for (const chunk of cut(wire, points)) {
          const { frames: out, error } = decoder.push(Uint8Array.from(chunk));
          assert.equal(error, null);
          decoded.push(...out.map((frame) => structuredClone(frame)));
        }
        assert.deepEqual(decoded.map(plain), frames.map(plain));
        assert.equal(decoder.hasPartialFrame, false);
      },
    ),
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
