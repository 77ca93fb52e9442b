/**
 * Checks that bytes are one JSON text (RFC 8259), byte by byte, without building a value:
 * a payload that arrives as JSON text (the binary protocol's broadcastRun) is stored as it
 * came instead of being parsed and serialised again, which was most of a broadcast's cost on
 * the node. What it accepts, `JSON.parse` of its UTF-8 accepts too (test/server/json-text
 * compares them), so every stored payload reads back as JSON.
 *
 * The stored text must also fit where it is spliced: an event stream's `data:` line ends at
 * a line break, so JSON whitespace that holds a CR or LF is reported (`lineBreaks`) for the
 * caller to re-encode; inside strings JSON allows no raw control character at all.
 */
import { isUtf8 } from 'node:buffer';

export type JsonTextVerdict =
  /** Valid, and fit to store byte for byte. */
  | { readonly kind: 'storable' }
  /** Valid, with CR or LF between tokens: store a re-encoding instead. */
  | { readonly kind: 'lineBreaks' }
  | { readonly kind: 'invalid'; readonly reason: string };

const storable: JsonTextVerdict = { kind: 'storable' };
const lineBreaks: JsonTextVerdict = { kind: 'lineBreaks' };

const quote = 0x22;
const backslash = 0x5c;
const comma = 0x2c;
const colon = 0x3a;
const openBracket = 0x5b;
const closeBracket = 0x5d;
const openBrace = 0x7b;
const closeBrace = 0x7d;
const minus = 0x2d;
const plus = 0x2b;
const dot = 0x2e;
const zero = 0x30;
const nine = 0x39;

const inArray = 0;
const inObject = 1;

/** Bytes that may follow a backslash in a string: " \ / b f n r t (u is read apart). */
const simpleEscapes = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);
const literals = ['true', 'false', 'null'].map((word) => Buffer.from(word));

/**
 * The scan's state. Checking is synchronous and never re-entered, so one set serves every
 * call and a check allocates nothing but its DataView unless the text is refused.
 */
const noText = new Uint8Array(0);
let text: Uint8Array = noText;
/** The same bytes, read four at a time. */
const noWords = new DataView(noText.buffer);
let words: DataView<ArrayBufferLike> = noWords;
let sawLineBreak = false;
let containers = new Uint8Array(64);

function isDigit(byte: number | undefined): boolean {
  return byte !== undefined && byte >= zero && byte <= nine;
}

function isHexDigit(byte: number | undefined): boolean {
  if (byte === undefined) return false;
  return isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

/** The first byte at or after `at` that is not JSON whitespace. */
function skipSpace(at: number): number {
  for (; at < text.length; at++) {
    const byte = text[at];
    if (byte === 0x20 || byte === 0x09) continue;
    if (byte === 0x0a || byte === 0x0d) {
      sawLineBreak = true;
      continue;
    }
    break;
  }
  return at;
}

/**
 * 1 for a byte that stands for itself inside a string: anything but a quote, a backslash or
 * a control character (UTF-8 was checked whole beforehand, so bytes of 0x80 and up pass).
 */
const plainInString = new Uint8Array(256);
for (let byte = 0x20; byte < 256; byte++) {
  plainInString[byte] = byte === quote || byte === backslash ? 0 : 1;
}

/**
 * Whether none of the four bytes of `word` is a quote, a backslash or below 0x20, by the
 * classic word-at-a-time tests (a byte's top bit is set where one of them holds; a borrow
 * may set it above a true hit as well, never without one).
 */
function plainWord(word: number): boolean {
  const quotes = word ^ 0x22222222;
  const backslashes = word ^ 0x5c5c5c5c;
  const hits =
    ((quotes - 0x01010101) & ~quotes) |
    ((backslashes - 0x01010101) & ~backslashes) |
    ((word - 0x20202020) & ~word);
  return (hits & 0x80808080) === 0;
}

/** Past the string that opens at `at` (a quote), or -1. */
function skipString(at: number): number {
  const bytes = text;
  const end = bytes.length;
  at++;
  for (;;) {
    // Most of a payload is runs of plain bytes: four at a time, then one at a time up to
    // the byte that needs a look.
    while (at + 4 <= end && plainWord(words.getUint32(at, true))) at += 4;
    while (at < end && plainInString[bytes[at] as number] === 1) at++;
    if (at >= end) return -1;
    const byte = bytes[at];
    if (byte === quote) return at + 1;
    if (byte !== backslash) return -1; // a raw control character
    const escaped = bytes[at + 1];
    if (escaped === 0x75) {
      for (let digit = 2; digit < 6; digit++) if (!isHexDigit(bytes[at + digit])) return -1;
      at += 6;
    } else if (escaped !== undefined && simpleEscapes.has(escaped)) at += 2;
    else return -1;
  }
}

/** Past the number that starts at `at`, or -1: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
function skipNumber(at: number): number {
  if (text[at] === minus) at++;
  if (text[at] === zero) at++;
  else if (isDigit(text[at])) while (isDigit(text[at])) at++;
  else return -1;
  if (text[at] === dot) {
    at++;
    if (!isDigit(text[at])) return -1;
    while (isDigit(text[at])) at++;
  }
  if (text[at] === 0x65 || text[at] === 0x45) {
    at++;
    if (text[at] === plus || text[at] === minus) at++;
    if (!isDigit(text[at])) return -1;
    while (isDigit(text[at])) at++;
  }
  return at;
}

function skipLiteral(at: number): number {
  for (const literal of literals) {
    if (text[at] !== literal[0]) continue;
    for (let offset = 1; offset < literal.length; offset++) {
      if (text[at + offset] !== literal[offset]) return -1;
    }
    return at + literal.length;
  }
  return -1;
}

/** Past a member's name and colon, at its value; -1 if they are not there. */
function skipName(at: number): number {
  if (text[at] !== quote) return -1;
  at = skipSpace(skipString(at));
  if (at < 1 || text[at] !== colon) return -1;
  return skipSpace(at + 1);
}

function refused(reason: string, at: number): JsonTextVerdict {
  return { kind: 'invalid', reason: `${reason} at byte ${at}` };
}

/**
 * Whether `bytes` is one JSON text nesting arrays and objects at most `depthMax` deep, and
 * whether it may be stored as it is.
 */
export function checkJsonText(bytes: Uint8Array, depthMax: number): JsonTextVerdict {
  if (!isUtf8(bytes)) return { kind: 'invalid', reason: 'it is not UTF-8' };
  if (containers.length <= depthMax) containers = new Uint8Array(depthMax + 1);
  text = bytes;
  words = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  sawLineBreak = false;
  try {
    return scan(depthMax);
  } finally {
    text = noText; // no reference kept to the caller's bytes
    words = noWords;
  }
}

function scan(depthMax: number): JsonTextVerdict {
  let depth = 0;
  let at = skipSpace(0);
  for (;;) {
    // A value starts at `at`.
    const byte = text[at];
    if (byte === openBrace || byte === openBracket) {
      if (++depth > depthMax) return refused(`nesting deeper than ${depthMax}`, at);
      const inside = byte === openBrace ? inObject : inArray;
      containers[depth] = inside;
      at = skipSpace(at + 1);
      if (text[at] === (inside === inObject ? closeBrace : closeBracket)) {
        at++;
        depth--;
      } else {
        const start = at;
        if (inside === inObject) at = skipName(at);
        if (at < 0) return refused('a member name and colon expected', start);
        continue;
      }
    } else {
      const start = at;
      if (byte === quote) at = skipString(at);
      else if (byte === minus || isDigit(byte)) at = skipNumber(at);
      else at = skipLiteral(at);
      if (at < 0) return refused(byte === undefined ? 'a value expected' : 'a bad value', start);
    }
    // After a value: close what it ends, or go on to the next one.
    for (;;) {
      at = skipSpace(at);
      if (depth === 0) {
        if (at !== text.length) return refused('bytes after the value', at);
        return sawLineBreak ? lineBreaks : storable;
      }
      const inside = containers[depth];
      const next = text[at];
      if (next === (inside === inObject ? closeBrace : closeBracket)) {
        at++;
        depth--;
        continue;
      }
      if (next !== comma) return refused('a comma or a close expected', at);
      at = skipSpace(at + 1);
      const start = at;
      if (inside === inObject) at = skipName(at);
      if (at < 0) return refused('a member name and colon expected', start);
      break;
    }
  }
}
