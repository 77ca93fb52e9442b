// Proves the byte-level JSON check (src/server/json-text.ts) agrees with its naive twin,
// JSON.parse of the UTF-8 text with the nesting counted afterwards: on JSON values printed
// compactly and indented, on texts mutated a character at a time, on strings of JSON's own
// characters and on random bytes (fast-check). What it calls storable has no CR or LF, so
// it can be spliced into an event stream's data line as it is.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkJsonText, JsonTextChecker } from '../../src/server/json-text.ts';

const depthMax = 4;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function depthOf(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  return 1 + Math.max(0, ...children.map(depthOf));
}

/** The twin: 'storable', 'lineBreaks' or 'invalid', by JSON.parse. */
function naiveVerdict(bytes: Uint8Array): string {
  let text: string;
  let value: unknown;
  try {
    text = utf8.decode(bytes);
    value = JSON.parse(text);
  } catch {
    return 'invalid';
  }
  if (depthOf(value) > depthMax) return 'invalid';
  return /[\r\n]/.test(text) ? 'lineBreaks' : 'storable';
}

function agrees(bytes: Uint8Array): void {
  const verdict = checkJsonText(bytes, depthMax);
  assert.equal(verdict.kind, naiveVerdict(bytes), Buffer.from(bytes).toString('utf8'));
  if (verdict.kind === 'storable') {
    assert.ok(!bytes.includes(0x0a) && !bytes.includes(0x0d), 'no line break is stored');
  }
}

const jsonValue = fc.jsonValue({ maxDepth: 6 });
const printed = fc.oneof(
  jsonValue.map((value) => JSON.stringify(value)),
  jsonValue.map((value) => JSON.stringify(value, null, 2)),
  jsonValue.map((value) => JSON.stringify(value, null, '\t')),
  fc.json({ maxDepth: 6 }),
);
const alphabet = fc.constantFrom(
  ...'{}[],:"\\/ \t\n\r0123456789.eE+-truefalsnub\u0001\u00e9\u2028\ufeff',
);

test('JSON values, compact or indented, are valid exactly when no deeper than the bound', () => {
  fc.assert(
    fc.property(printed, (text) => agrees(Buffer.from(text))),
    { numRuns: 500 },
  );
});

test('texts changed a character at a time are judged as JSON.parse judges them', () => {
  fc.assert(
    fc.property(
      printed,
      fc.array(fc.tuple(fc.nat(), fc.nat({ max: 2 }), alphabet), { minLength: 1, maxLength: 3 }),
      (text, edits) => {
        let edited = text;
        for (const [where, how, character] of edits) {
          const at = where % (edited.length + 1);
          if (how === 0) edited = edited.slice(0, at) + character + edited.slice(at);
          else if (how === 1) edited = edited.slice(0, at) + edited.slice(at + 1);
          else edited = edited.slice(0, at) + character + edited.slice(at + 1);
        }
        agrees(Buffer.from(edited));
      },
    ),
    { numRuns: 2000 },
  );
});

test("strings of JSON's own characters and random bytes are judged as JSON.parse judges them", () => {
  fc.assert(
    fc.property(fc.array(alphabet, { maxLength: 24 }), (characters) =>
      agrees(Buffer.from(characters.join(''))),
    ),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => agrees(bytes)),
    {
      numRuns: 1000,
    },
  );
});

test('examples at the edges', () => {
  const cases: [string, string][] = [
    ['-0', 'storable'],
    ['1E+2', 'storable'],
    ['01', 'invalid'],
    ['1.', 'invalid'],
    ['.5', 'invalid'],
    ['"\\u00e9\\ud800"', 'storable'],
    ['"\\x41"', 'invalid'],
    ['"tab\there"', 'invalid'],
    ['\ufeff1', 'invalid'],
    [' [1 , 2 ] ', 'storable'],
    ['[1,\n2]', 'lineBreaks'],
    ['[[[[1]]]]', 'storable'],
    ['[[[[[1]]]]]', 'invalid'],
    ['{"a":1,}', 'invalid'],
    ['', 'invalid'],
    ['nul', 'invalid'],
  ];
  for (const [text, kind] of cases) {
    assert.equal(checkJsonText(Buffer.from(text), depthMax).kind, kind, text);
    agrees(Buffer.from(text));
  }
});

// Strings are read four bytes at a time until a byte needs a look: a quote, a backslash or a
// control character must be found wherever it falls in a word, and at the very end of the
// bytes, in views that start at any offset of their buffer.
const stringPiece = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
  { weight: 3, arbitrary: fc.stringMatching(/^[a-z ]{0,9}$/) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '"',
      '\\',
      '\\"',
      '\\\\',
      '\\u00e9',
      '\\u12',
      '\\n',
      '\\q',
      '\u0000',
      '\u001f',
      '\u007f',
      '\n',
      '\t',
      ' ',
      '!',
      '#',
      '[',
      '\\/',
      '\u00a2',
      '\u2028',
      '\ud83d\ude00',
    ),
  },
);

test('strings with a byte that needs a look at every place in a word agree with JSON.parse', () => {
  fc.assert(
    fc.property(
      fc.array(stringPiece, { maxLength: 12 }),
      fc.constantFrom('', '"', '"}', '"]', '",1]', 'x'),
      fc.constantFrom('"', '["', '{"a":"', '{"a', ' "'),
      fc.nat({ max: 7 }),
      (pieces, close, open, offset) => {
        const text = Buffer.from(`${open}${pieces.join('')}${close}`);
        // The same bytes at each offset of a larger buffer, as a socket's chunk hands them.
        const holder = new Uint8Array(text.length + offset + 3).fill(0x22);
        holder.set(text, offset);
        agrees(holder.subarray(offset, offset + text.length));
      },
    ),
    { numRuns: 3000 },
  );
});

test('long plain strings with one byte changed anywhere agree with JSON.parse', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 300 }),
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      (length, where, byte) => {
        const bytes = Buffer.from(JSON.stringify('x'.repeat(length)));
        bytes[where % bytes.length] = byte;
        agrees(bytes);
      },
    ),
    { numRuns: 3000 },
  );
});

// Bytes of 0x80 and above are checked as UTF-8 only once a string holds one: a bad
// sequence, a lone continuation byte, an overlong form or a surrogate must be refused
// wherever it falls (inside a string, in a name, outside strings), and good ones accepted.
const utf8Piece = fc.oneof(
  stringPiece,
  fc.constantFrom(
    Buffer.from([0x80]),
    Buffer.from([0xc3]),
    Buffer.from([0xc3, 0x28]),
    Buffer.from([0xc0, 0xaf]),
    Buffer.from([0xe2, 0x82]),
    Buffer.from([0xed, 0xa0, 0x80]),
    Buffer.from([0xf0, 0x9f, 0x98]),
    Buffer.from([0xf4, 0x90, 0x80, 0x80]),
    Buffer.from([0xff]),
    Buffer.from([0xef, 0xbb, 0xbf]),
  ),
);

test('bytes past ASCII, valid UTF-8 or not, anywhere in a text agree with JSON.parse', () => {
  fc.assert(
    fc.property(
      fc.array(utf8Piece, { maxLength: 10 }),
      fc.constantFrom('"', '{"', '["x",'),
      fc.constantFrom('"', '"}', '":1}', '"]', ''),
      (pieces, open, close) => {
        const parts = pieces.map((piece) =>
          typeof piece === 'string' ? Buffer.from(piece) : piece,
        );
        agrees(Buffer.concat([Buffer.from(open), ...parts, Buffer.from(close)]));
      },
    ),
    { numRuns: 3000 },
  );
});

// A run's payloads lie side by side in its frame, with the frame's own fields between them:
// one checker reads them all through one view of that buffer, and must judge each exactly
// as it judges it alone, never reading past a payload's end into the next field.
test('texts that share a buffer, checked by one checker, are judged as each alone', () => {
  const text = fc.oneof(
    printed.map((item) => Buffer.from(item)),
    fc.array(alphabet, { maxLength: 16 }).map((characters) => Buffer.from(characters.join(''))),
    fc
      .array(utf8Piece, { maxLength: 6 })
      .map((pieces) =>
        Buffer.concat([
          Buffer.from('"'),
          ...pieces.map((piece) => (typeof piece === 'string' ? Buffer.from(piece) : piece)),
          Buffer.from('"'),
        ]),
      ),
  );
  fc.assert(
    fc.property(
      fc.array(fc.tuple(text, fc.uint8Array({ maxLength: 5 })), { minLength: 1, maxLength: 8 }),
      (items) => {
        const buffer = Buffer.concat(items.flat());
        const checker = new JsonTextChecker();
        let at = 0;
        for (const [bytes, gap] of items) {
          const view = new Uint8Array(buffer.buffer, buffer.byteOffset + at, bytes.length);
          const verdict = checker.check(view, depthMax);
          const shown = bytes.toString('utf8');
          assert.equal(verdict.kind, checkJsonText(bytes, depthMax).kind, shown);
          assert.equal(verdict.kind, naiveVerdict(bytes), shown);
          at += bytes.length + gap.length;
        }
      },
    ),
    { numRuns: 1000 },
  );
});

// The run route checks each payload where it lies in its frame (checkRange), bytes of the
// frame's other fields right before and after it: each verdict, reason and position
// included, must be the one the payload gets alone, whatever its neighbours hold.
test('a text checked as a range of a larger buffer is judged exactly as alone', () => {
  const text = fc.oneof(
    printed.map((item) => Buffer.from(item)),
    fc.array(alphabet, { maxLength: 16 }).map((characters) => Buffer.from(characters.join(''))),
    fc.uint8Array({ maxLength: 12 }).map((bytes) => Buffer.from(bytes)),
  );
  const neighbour = fc.oneof(
    fc.uint8Array({ maxLength: 6 }),
    fc.array(alphabet, { maxLength: 6 }).map((characters) => Buffer.from(characters.join(''))),
  );
  fc.assert(
    fc.property(
      fc.array(fc.tuple(neighbour, text), { minLength: 1, maxLength: 6 }),
      neighbour,
      (items, tail) => {
        const buffer = Buffer.concat([...items.flat(), tail]);
        const checker = new JsonTextChecker();
        let at = 0;
        for (const [before, bytes] of items) {
          at += before.length;
          const verdict = checker.checkRange(buffer, at, at + bytes.length, depthMax);
          assert.deepEqual(verdict, checkJsonText(Buffer.from(bytes), depthMax), bytes.toString());
          at += bytes.length;
        }
      },
    ),
    { numRuns: 2000 },
  );
});

test('checkRange refuses a range outside its buffer', () => {
  const checker = new JsonTextChecker();
  assert.throws(() => checker.checkRange(Buffer.from('[1]'), 2, 4, depthMax), RangeError);
  assert.throws(() => checker.checkRange(Buffer.from('[1]'), 2, 1, depthMax), RangeError);
});
