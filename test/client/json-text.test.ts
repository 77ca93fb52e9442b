// The SDK's JSON text of a payload (jsonText, src/client/client.ts) is JSON.stringify's,
// whatever the payload: a string it quotes as it is and a string with something to escape
// (quotes, backslashes, control characters, surrogates paired or lone) alike.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { asciiAsItIs, jsonText } from '../../src/client/client.ts';

test('the JSON text of any string is what JSON.stringify gives', () => {
  const strings = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.string({ unit: 'grapheme', maxLength: 300 }),
    fc.string({ maxLength: 300 }),
    fc.constantFrom('', '"', '\\', '\u0000', '\u001f', '\u007f', '\u2028', '\ud800', '\udc00x'),
  );
  fc.assert(
    fc.property(strings, (text) => {
      assert.equal(jsonText(text), JSON.stringify(text));
      // The frame copies such a string a byte a character, its length its byte count.
      if (asciiAsItIs(text)) {
        assert.equal(`"${text}"`, JSON.stringify(text));
        assert.deepEqual(Buffer.from(text, 'latin1'), Buffer.from(text, 'utf8'));
      }
    }),
    { numRuns: 2000 },
  );
});

test('ASCII strings with nothing to escape are told apart from the rest', () => {
  for (const text of ['', 'plain', ' !#[]~\u007f', 'x'.repeat(300)]) assert.ok(asciiAsItIs(text));
  for (const text of ['"', '\\', '\u0000', '\u001f', 'ü', '\u2028', '\ud800', 'a\u0080']) {
    assert.ok(!asciiAsItIs(text), JSON.stringify(text));
  }
  assert.ok(!asciiAsItIs(1));
});

test('the JSON text of any other value is what JSON.stringify gives', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      assert.equal(jsonText(value), JSON.stringify(value));
    }),
  );
  assert.equal(jsonText(undefined), undefined);
});
