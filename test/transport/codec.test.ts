// Proves the frame codec round-trips every frame type and that decoding is total: fast-check
// generates frames (decode(encode(f)) deep-equals f), random bytes and mutated encodings (only
// CodecError, never another exception), plus pinned byte vectors for the format version 1.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeConfiguration } from '../../src/raft/config.ts';
import { type AppendMessage, type Message, termMax } from '../../src/raft/types.ts';
import { decodeFrame, encodeFrame, measureFrame } from '../../src/transport/codec.ts';
import { CodecError } from '../../src/transport/errors.ts';
import type { Frame } from '../../src/transport/types.ts';
import { frameArbitrary } from './arbitraries.ts';

const runs = { numRuns: 2_000 };

function decodesOrThrowsCodecError(bytes: Uint8Array): Frame | null {
  try {
    return decodeFrame(bytes);
  } catch (error) {
    assert.ok(error instanceof CodecError, `only CodecError escapes decode, got ${String(error)}`);
    return null;
  }
}

function codecErrorCode(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof CodecError, `expected CodecError, got ${String(error)}`);
    return error.code;
  }
  assert.fail('expected a CodecError');
}

const heartbeat: Message = {
  type: 'Heartbeat',
  from: 'n1',
  to: 'n2',
  term: 5,
  commit: 3,
  readRound: 0,
};

test('decode(encode(frame)) deep-equals the frame, for every frame type', () => {
  fc.assert(
    fc.property(frameArbitrary, (frame) => {
      const bytes = encodeFrame(frame);
      assert.equal(bytes.byteLength, measureFrame(frame));
      assert.deepStrictEqual(decodeFrame(bytes), frame);
    }),
    runs,
  );
});

test('arbitrary bytes decode to a valid frame or throw CodecError', () => {
  const framePrefixed = fc
    .tuple(fc.integer({ min: 1, max: 14 }), fc.uint8Array({ maxLength: 80 }))
    .map(([type, rest]) => Uint8Array.from([1, type, ...rest]));
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 120 }), framePrefixed), (bytes) => {
      const frame = decodesOrThrowsCodecError(bytes);
      if (frame !== null) assert.deepStrictEqual(decodeFrame(encodeFrame(frame)), frame);
    }),
    { numRuns: 20_000 },
  );
});

test('mutated, truncated and extended encodings decode or throw CodecError', () => {
  const mutation = fc.record({
    frame: frameArbitrary,
    flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 3 }),
    cut: fc.option(fc.nat()),
    extra: fc.uint8Array({ maxLength: 3 }),
  });
  fc.assert(
    fc.property(mutation, ({ frame, flips, cut, extra }) => {
      const bytes = Uint8Array.from(encodeFrame(frame));
      for (const [position, mask] of flips) {
        const index = position % bytes.length;
        bytes[index] = bytes[index]! ^ mask;
      }
      const end = cut === null ? bytes.length : cut % (bytes.length + 1);
      decodesOrThrowsCodecError(Uint8Array.from([...bytes.subarray(0, end), ...extra]));
    }),
    { numRuns: 10_000 },
  );
});

test('the format is pinned: a Heartbeat encodes to known bytes', () => {
  const bytes = encodeFrame(heartbeat);
  assert.equal(Buffer.from(bytes).toString('hex'), '0107026e31026e3205' + '0300');
  assert.deepStrictEqual(decodeFrame(Buffer.from('0107026e31026e32050300', 'hex')), heartbeat);
});

test('an Append stores entries without indexes and with term increases', () => {
  const append: AppendMessage = {
    type: 'Append',
    from: 'a',
    to: 'b',
    term: 7,
    prevLogIndex: 300,
    prevLogTerm: 6,
    commit: 299,
    entries: [
      { index: 301, term: 6, kind: 'normal', data: Uint8Array.from([0xaa]) },
      { index: 302, term: 7, kind: 'noop', data: new Uint8Array(0) },
    ],
  };
  const hex = Buffer.from(encodeFrame(append)).toString('hex');
  // version, type, "a", "b", term 7, prevLogIndex 300 (ac 02), prevLogTerm 6, commit 299 (ab 02),
  // 2 entries: (+0, normal, [aa]) and (+1, noop, []).
  assert.equal(
    hex,
    '0105' + '0161' + '0162' + '07' + 'ac02' + '06' + 'ab02' + '02' + '000001aa' + '010100',
  );
  assert.deepStrictEqual(decodeFrame(Buffer.from(hex, 'hex')), append);
});

test('decoded data is a copy that does not pin or share the input buffer', () => {
  const frame: Frame = {
    type: 'Forward',
    from: 'n2',
    to: 'n1',
    requestId: 9,
    data: Uint8Array.from([1, 2, 3]),
  };
  const bytes = Uint8Array.from(encodeFrame(frame));
  const decoded = decodeFrame(bytes);
  assert.equal(decoded.type, 'Forward');
  bytes.fill(0);
  assert.deepStrictEqual(decoded, frame);
  if (decoded.type === 'Forward') assert.equal(decoded.data.buffer.byteLength, 3);
});

test('lying counts and lengths are refused before anything is allocated', () => {
  // An Append announcing 2^40 entries in a handful of bytes.
  const lyingAppend = Buffer.from(
    '0105' + '0161' + '0162' + '07' + '00' + '00' + '00' + '8080808080808001',
    'hex',
  );
  assert.equal(
    codecErrorCode(() => decodeFrame(lyingAppend)),
    'LIMIT_EXCEEDED',
  );
  // A Forward whose data claims 2^35 bytes.
  const lyingForward = Buffer.from(
    '010d' + '0161' + '0162' + '01' + '8080808080' + '01' + 'ff',
    'hex',
  );
  assert.equal(
    codecErrorCode(() => decodeFrame(lyingForward)),
    'LIMIT_EXCEEDED',
  );
  // A node id claiming 1,000 bytes.
  assert.equal(
    codecErrorCode(() => decodeFrame(Buffer.from('0107e807', 'hex'))),
    'LIMIT_EXCEEDED',
  );
});

test('malformed inputs fail with the code that names the problem', () => {
  const cases: readonly [string, string][] = [
    ['', 'TRUNCATED'],
    ['02', 'UNSUPPORTED_VERSION'],
    ['0163', 'UNKNOWN_TYPE'],
    ['0107026e31026e32', 'TRUNCATED'],
    ['0107026e31026e3205030000', 'TRAILING_BYTES'],
    ['010700026e320503 00'.replace(' ', ''), 'INVALID_VALUE'], // empty from
    ['010702ffff026e32050300', 'INVALID_UTF8'],
    ['0107026e31026e3285000300', 'INVALID_VALUE'], // overlong varint
    ['0107026e31026e3280808080808080100300', 'INVALID_VALUE'], // 2^53: not safe
    ['0107026e31026e32ffffffffffffffff7f0300', 'INVALID_VALUE'], // longer than 8 bytes
    ['0102026e31026e320502', 'INVALID_VALUE'], // boolean byte 2
  ];
  for (const [hex, code] of cases) {
    assert.equal(
      codecErrorCode(() => decodeFrame(Buffer.from(hex, 'hex'))),
      code,
      hex,
    );
  }
});

test('the largest safe integers survive; terms and indexes never lose precision', () => {
  const frame: Frame = { ...heartbeat, term: termMax, commit: 2 ** 53 - 2 } as Frame;
  assert.deepStrictEqual(decodeFrame(encodeFrame(frame)), frame);
});

test('a term past termMax, or a configuration entry that is not one, is refused', () => {
  const refused = (frame: Frame, field: RegExp) =>
    assert.throws(
      () => encodeFrame(frame),
      (error: unknown) => error instanceof CodecError && field.test(error.message),
    );
  refused({ ...heartbeat, term: termMax + 1 } as Frame, /term is at most/);
  refused({ ...heartbeat, term: Number.MAX_SAFE_INTEGER } as Frame, /term is at most/);
  const appendOf = (data: Uint8Array): Frame => ({
    type: 'Append',
    from: 'a',
    to: 'b',
    term: 2,
    prevLogIndex: 0,
    prevLogTerm: 0,
    commit: 0,
    entries: [{ index: 1, term: 2, kind: 'config', data }],
  });
  refused(appendOf(new TextEncoder().encode('{"voters":[')), /not a configuration/);
  refused(appendOf(encodeConfiguration({ voters: [], learners: ['a'] })), /without voters/);
  const valid = appendOf(encodeConfiguration({ voters: ['a', 'b'], learners: [] }));
  assert.deepStrictEqual(decodeFrame(encodeFrame(valid)), valid);
});

test('the encoder refuses frames the decoder would refuse', () => {
  const append = (patch: Partial<AppendMessage>): AppendMessage => ({
    type: 'Append',
    from: 'a',
    to: 'b',
    term: 5,
    prevLogIndex: 10,
    prevLogTerm: 4,
    commit: 0,
    entries: [{ index: 11, term: 4, kind: 'normal', data: new Uint8Array(1) }],
    ...patch,
  });
  const snapshot = (voters: string[], learners: string[]): Frame => ({
    type: 'Snapshot',
    from: 'a',
    to: 'b',
    term: 1,
    snapshot: {
      meta: { index: 1, term: 1, config: { voters, learners } },
      data: new Uint8Array(0),
    },
  });
  const invalidFrames: readonly unknown[] = [
    null,
    { ...heartbeat, type: 'Gossip' },
    { ...heartbeat, from: '' },
    { ...heartbeat, to: 'x'.repeat(256) },
    { ...heartbeat, from: '\uD800' },
    { ...heartbeat, term: -1 },
    { ...heartbeat, term: 1.5 },
    { ...heartbeat, commit: 2 ** 53 },
    { ...heartbeat, readRound: '1' },
    append({ entries: [{ index: 12, term: 4, kind: 'normal', data: new Uint8Array(0) }] }),
    append({ entries: [{ index: 11, term: 3, kind: 'normal', data: new Uint8Array(0) }] }),
    append({ entries: [{ index: 11, term: 6, kind: 'normal', data: new Uint8Array(0) }] }),
    append({
      entries: [{ index: 11, term: 4, kind: 'blob' as 'normal', data: new Uint8Array(0) }],
    }),
    append({
      entries: [{ index: 11, term: 4, kind: 'normal', data: [1] as unknown as Uint8Array }],
    }),
    append({ prevLogTerm: 6 }),
    snapshot(['b', 'a'], []),
    snapshot(['a', 'a'], []),
    snapshot(['a'], ['a']),
    {
      type: 'ForwardResult',
      from: 'a',
      to: 'b',
      requestId: 1,
      result: { code: '', leaderId: null },
    },
    { type: 'Forward', from: 'a', to: 'b', requestId: -1, data: new Uint8Array(0) },
  ];
  for (const frame of invalidFrames) {
    assert.equal(
      codecErrorCode(() => encodeFrame(frame as Frame)),
      'INVALID_VALUE',
      JSON.stringify(frame),
    );
  }
});
