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
 *
 * A run's payloads usually lie in one buffer (the frame they came in): a `JsonTextChecker`
 * reads them all through one DataView, and a payload asks for a UTF-8 check only when one
 * of its strings holds a byte of 0x80 or above (outside strings JSON is ASCII), so checking
 * an ASCII payload allocates nothing and calls nothing native.
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

/** A byte that stands for itself inside a string. */
const plain = 1;
/** A byte of 0x80 or above: plain once the text is known to be UTF-8. */
const high = 2;
/** By byte, inside a string: plain, high, or 0 for a quote, a backslash or a control byte. */
const stringByteKinds = new Uint8Array(256);
for (let byte = 0x20; byte < 256; byte++) {
  stringByteKinds[byte] = byte === quote || byte === backslash ? 0 : byte >= 0x80 ? high : plain;
}

function isDigit(byte: number | undefined): boolean {
  return byte !== undefined && byte >= zero && byte <= nine;
}

function isHexDigit(byte: number | undefined): boolean {
  if (byte === undefined) return false;
  return isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

/**
 * Whether none of the four bytes of `word` is a quote, a backslash or below 0x20, nor (with
 * `highMask` 0x80808080) 0x80 or above, by the classic word-at-a-time tests (a byte's top
 * bit is set where one of them holds; a borrow may set it above a true hit as well, never
 * without one).
 */
function plainWord(word: number, highMask: number): boolean {
  return (wordHits(word, highMask) & 0x80808080) === 0;
}

/**
 * A word's hits for `plainWord`: a byte's top bit is set at (or above) each. Only the top
 * bits are read, and a byte's top bit after `x ^ c` (c below 0x80) is the word's own: the
 * three tests' `& ~x` are one `& ~word`, and with `highMask` set (a byte of 0x80 or above
 * is a hit anyway) none is needed.
 */
function wordHits(word: number, highMask: number): number {
  const lows = ((word ^ 0x22222222) - 0x01010101) | ((word ^ 0x5c5c5c5c) - 0x01010101);
  const hits = lows | (word - 0x20202020);
  return highMask === 0 ? hits & ~word : hits | word;
}

function refused(reason: string, at: number): JsonTextVerdict {
  return { kind: 'invalid', reason: `${reason} at byte ${at}` };
}

/**
 * Checks texts one after another, reading the words of every text that lies in the same
 * buffer as the last through the same DataView. Checking is synchronous; a checker keeps
 * the last buffer it read (drop the checker with the run it checked).
 *
 * A text is a range of `text`, [start, end): a run's payloads are checked where they lie
 * in its frame, without a view made for each. Nothing at or past `end` is read as part of
 * it (`byteAt`), and a position in a refusal counts from `start`.
 */
export class JsonTextChecker {
  private text: Uint8Array = new Uint8Array(0);
  private start = 0;
  private end = 0;
  /** The buffer `words` reads, and where `text` starts in it. */
  private wordsBuffer: ArrayBufferLike = this.text.buffer;
  private words = new DataView(this.wordsBuffer);
  private wordsBase = 0;
  private sawLineBreak = false;
  /** 0x80808080 until the text is known to be UTF-8; then 0 (high bytes are plain). */
  private highMask = 0x80808080;
  private containers = new Uint8Array(64);

  /**
   * Whether `bytes` is one JSON text nesting arrays and objects at most `depthMax` deep, and
   * whether it may be stored as it is.
   */
  check(bytes: Uint8Array, depthMax: number): JsonTextVerdict {
    return this.checkRange(bytes, 0, bytes.length, depthMax);
  }

  /** `check` of the bytes `source[start, end)`, read where they are. */
  checkRange(source: Uint8Array, start: number, end: number, depthMax: number): JsonTextVerdict {
    if (!(start >= 0 && start <= end && end <= source.length)) {
      throw new RangeError(`[${start}, ${end}) is not a range of ${source.length} bytes`);
    }
    if (this.containers.length <= depthMax) this.containers = new Uint8Array(depthMax + 1);
    if (source.buffer !== this.wordsBuffer) {
      this.wordsBuffer = source.buffer;
      this.words = new DataView(source.buffer);
    }
    this.text = source;
    this.start = start;
    this.end = end;
    this.wordsBase = source.byteOffset;
    this.sawLineBreak = false;
    this.highMask = 0x80808080;
    return this.scan(depthMax);
  }

  /** The text's byte at `at`; undefined past its end, even where the buffer goes on. */
  private byteAt(at: number): number | undefined {
    return at < this.end ? this.text[at] : undefined;
  }

  /** The first byte at or after `at` that is not JSON whitespace. */
  private skipSpace(at: number): number {
    const text = this.text;
    const end = this.end;
    for (; at < end; at++) {
      const byte = text[at];
      if (byte === 0x20 || byte === 0x09) continue;
      if (byte === 0x0a || byte === 0x0d) {
        this.sawLineBreak = true;
        continue;
      }
      break;
    }
    return at;
  }

  /** Past the string that opens at `at` (a quote), or -1 (or -2: the text is not UTF-8). */
  private skipString(at: number): number {
    const bytes = this.text;
    const end = this.end;
    const words = this.words;
    const base = this.wordsBase;
    at++;
    for (;;) {
      // Most of a payload is runs of plain bytes: sixteen at a time, then eight, four and
      // one at a time up to the byte that needs a look.
      const highMask = this.highMask;
      while (
        at + 16 <= end &&
        ((wordHits(words.getUint32(base + at, true), highMask) |
          wordHits(words.getUint32(base + at + 4, true), highMask) |
          wordHits(words.getUint32(base + at + 8, true), highMask) |
          wordHits(words.getUint32(base + at + 12, true), highMask)) &
          0x80808080) ===
          0
      ) {
        at += 16;
      }
      if (
        at + 8 <= end &&
        ((wordHits(words.getUint32(base + at, true), highMask) |
          wordHits(words.getUint32(base + at + 4, true), highMask)) &
          0x80808080) ===
          0
      ) {
        at += 8;
      }
      if (at + 4 <= end && plainWord(words.getUint32(base + at, true), highMask)) at += 4;
      let kind = 0;
      while (at < end) {
        kind = stringByteKinds[bytes[at] as number] as number;
        if (kind !== plain && (kind !== high || highMask !== 0)) break;
        at++;
      }
      if (at >= end) return -1;
      if (kind === high) {
        // The first byte past ASCII: the whole text is checked once, then such bytes pass.
        if (!isUtf8(bytes.subarray(this.start, end))) return -2;
        this.highMask = 0;
        continue;
      }
      const byte = bytes[at];
      if (byte === quote) return at + 1;
      if (byte !== backslash) return -1; // a raw control character
      const escaped = this.byteAt(at + 1);
      if (escaped === 0x75) {
        for (let digit = 2; digit < 6; digit++) if (!isHexDigit(this.byteAt(at + digit))) return -1;
        at += 6;
      } else if (escaped !== undefined && simpleEscapes.has(escaped)) at += 2;
      else return -1;
    }
  }

  /** Past the number that starts at `at`, or -1: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
  private skipNumber(at: number): number {
    if (this.byteAt(at) === minus) at++;
    if (this.byteAt(at) === zero) at++;
    else if (isDigit(this.byteAt(at))) while (isDigit(this.byteAt(at))) at++;
    else return -1;
    if (this.byteAt(at) === dot) {
      at++;
      if (!isDigit(this.byteAt(at))) return -1;
      while (isDigit(this.byteAt(at))) at++;
    }
    if (this.byteAt(at) === 0x65 || this.byteAt(at) === 0x45) {
      at++;
      if (this.byteAt(at) === plus || this.byteAt(at) === minus) at++;
      if (!isDigit(this.byteAt(at))) return -1;
      while (isDigit(this.byteAt(at))) at++;
    }
    return at;
  }

  private skipLiteral(at: number): number {
    for (const literal of literals) {
      if (this.byteAt(at) !== literal[0]) continue;
      for (let offset = 1; offset < literal.length; offset++) {
        if (this.byteAt(at + offset) !== literal[offset]) return -1;
      }
      return at + literal.length;
    }
    return -1;
  }

  /** Past a member's name and colon, at its value; below 0 if they are not there. */
  private skipName(at: number): number {
    if (this.byteAt(at) !== quote) return -1;
    const past = this.skipString(at);
    if (past < 0) return past;
    at = this.skipSpace(past);
    if (this.byteAt(at) !== colon) return -1;
    return this.skipSpace(at + 1);
  }

  private scan(depthMax: number): JsonTextVerdict {
    const { containers, start: textStart, end } = this;
    let depth = 0;
    let at = this.skipSpace(textStart);
    for (;;) {
      // A value starts at `at`.
      const byte = this.byteAt(at);
      if (byte === openBrace || byte === openBracket) {
        if (++depth > depthMax) {
          return refused(`nesting deeper than ${depthMax}`, at - textStart);
        }
        const inside = byte === openBrace ? inObject : inArray;
        containers[depth] = inside;
        at = this.skipSpace(at + 1);
        if (this.byteAt(at) === (inside === inObject ? closeBrace : closeBracket)) {
          at++;
          depth--;
        } else {
          const start = at;
          if (inside === inObject) at = this.skipName(at);
          if (at < 0) return this.refusedName(at, start);
          continue;
        }
      } else {
        const start = at;
        if (byte === quote) at = this.skipString(at);
        else if (byte === minus || isDigit(byte)) at = this.skipNumber(at);
        else at = this.skipLiteral(at);
        if (at === -2) return notUtf8;
        if (at < 0) {
          return refused(
            byte === undefined ? 'a value expected' : 'a bad value',
            start - textStart,
          );
        }
      }
      // After a value: close what it ends, or go on to the next one.
      for (;;) {
        at = this.skipSpace(at);
        if (depth === 0) {
          if (at !== end) return refused('bytes after the value', at - textStart);
          return this.sawLineBreak ? lineBreaks : storable;
        }
        const inside = containers[depth];
        const next = this.byteAt(at);
        if (next === (inside === inObject ? closeBrace : closeBracket)) {
          at++;
          depth--;
          continue;
        }
        if (next !== comma) return refused('a comma or a close expected', at - textStart);
        at = this.skipSpace(at + 1);
        const start = at;
        if (inside === inObject) at = this.skipName(at);
        if (at < 0) return this.refusedName(at, start);
        break;
      }
    }
  }

  private refusedName(failure: number, at: number): JsonTextVerdict {
    return failure === -2 ? notUtf8 : refused('a member name and colon expected', at - this.start);
  }
}

const notUtf8: JsonTextVerdict = { kind: 'invalid', reason: 'it is not UTF-8' };

/**
 * Whether `bytes` is one JSON text nesting arrays and objects at most `depthMax` deep, and
 * whether it may be stored as it is (a checker of its own: for many texts, keep one).
 */
export function checkJsonText(bytes: Uint8Array, depthMax: number): JsonTextVerdict {
  return new JsonTextChecker().check(bytes, depthMax);
}
