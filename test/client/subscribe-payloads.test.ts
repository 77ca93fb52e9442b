/**
 * What a subscription over stream records makes of each payload's bytes, against a scripted
 * fake node (node:http on 127.0.0.1): JSON text (a leading byte order mark ignored) is the
 * parsed value; anything else comes as `payload: null` with the bytes in `payloadBase64`, as
 * the events give it. The SDK decodes a payload once and checks it as UTF-8 exactly only when
 * the decoded text holds U+FFFD (the mark of bytes that are not UTF-8, and a character of its
 * own), so both kinds of text with U+FFFD are here.
 */
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { test } from 'node:test';
import fc from 'fast-check';
import { connect, type Message } from '../../src/client/index.ts';
import { fakeStreamNode } from './fake-stream-node.ts';

const cases: readonly { name: string; bytes: Buffer; payload: unknown; base64: boolean }[] = [
  { name: 'JSON object', bytes: Buffer.from('{"a":[1,2]}'), payload: { a: [1, 2] }, base64: false },
  {
    name: 'byte order mark, then JSON',
    bytes: Buffer.from([0xef, 0xbb, 0xbf, ...Buffer.from('"x"')]),
    payload: 'x',
    base64: false,
  },
  {
    name: 'U+FFFD itself, in a JSON string',
    bytes: Buffer.from('"a\uFFFDb"'),
    payload: 'a\uFFFDb',
    base64: false,
  },
  {
    name: 'bytes that are not UTF-8',
    bytes: Buffer.from([0x22, 0xff, 0x22]),
    payload: null,
    base64: true,
  },
  {
    name: 'a UTF-8 surrogate (not UTF-8)',
    bytes: Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]),
    payload: null,
    base64: true,
  },
  { name: 'UTF-8 that is not JSON', bytes: Buffer.from('not json'), payload: null, base64: true },
  { name: 'JSON null', bytes: Buffer.from('null'), payload: null, base64: false },
];

test('a records stream: each payload as the parsed JSON value, or as base64 bytes', async () => {
  const node = await fakeStreamNode([
    {
      recordPositions: cases.map((_, at) => at + 1),
      recordPayloads: cases.map((entry) => entry.bytes),
      end: false,
    },
  ]);
  const client = connect({ endpoints: [node.url] });
  const controller = new AbortController();
  // Bounds a hang only (a stalled stream ends the loop, and the count below says so): the
  // records arrive in one write, read within a few turns of the loop.
  const hangTimer = setTimeout(() => controller.abort(), 10_000);
  try {
    const read: Message[] = [];
    for await (const message of client.subscribe({ from: 1, signal: controller.signal })) {
      read.push(message);
      if (read.length === cases.length) break;
    }
    assert.equal(read.length, cases.length, 'every record was read within 10 s');
    for (const [at, entry] of cases.entries()) {
      const message = read[at] as Message;
      assert.equal(message.position, at + 1, entry.name);
      assert.deepEqual(message.payload, entry.payload, entry.name);
      assert.equal(
        message.payloadBase64,
        entry.base64 ? entry.bytes.toString('base64') : undefined,
        entry.name,
      );
    }
  } finally {
    clearTimeout(hangTimer);
    controller.abort();
    client.close();
    await node.close();
  }
});

// What the SDK's one decoding pass rests on: bytes that are not UTF-8 never decode to text
// without U+FFFD, so text without it needs no exact check.
test('bytes that are not UTF-8 decode to text that holds U+FFFD', () => {
  const tricky = [
    [0xed, 0xa0, 0x80], // a surrogate
    [0xc0, 0x80], // an overlong NUL
    [0xe0, 0x80, 0x80], // overlong
    [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
    [0xe2, 0x82], // cut short
    [0xff],
  ];
  for (const bytes of tricky) {
    const buffer = Buffer.from(bytes);
    assert.equal(isUtf8(buffer), false);
    assert.ok(buffer.toString('utf8').includes('\uFFFD'), `${bytes}`);
  }
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 48 }), (bytes) => {
      const buffer = Buffer.from(bytes);
      return isUtf8(buffer) || buffer.toString('utf8').includes('\uFFFD');
    }),
    { numRuns: 20_000 },
  );
});
