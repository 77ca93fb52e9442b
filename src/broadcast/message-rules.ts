/**
 * What makes a client message acceptable, in one place. The node checks every broadcast with
 * these rules, the batch builder asserts them on what it writes, and the HTTP server checks
 * request fields with them after parsing the JSON shape, so the rules cannot drift apart.
 *
 * Each check returns a typed problem naming the field as the caller calls it (the HTTP API
 * says `client` where the library says `clientId`), or null. Pure: no I/O, no state.
 */
import { isWellFormedString } from '../transport/bytes.ts';
import { assertSafeNatural } from '../util/assert.ts';

/** One message as the batch format carries it; the rules below say what is valid. */
export interface ClientMessage {
  /** Empty for anonymous messages. */
  readonly clientId: string;
  /** >= 1 with a client id; 0 when anonymous. */
  readonly seq: number;
  /** Empty when the message has no topic. */
  readonly topic: string;
  readonly payload: Uint8Array;
  /**
   * Who sent it, as the node that took it in authenticated them (the HTTP server's identity
   * name); absent or empty when nobody was authenticated. A session belongs to the owner of
   * its first message, and the session table refuses anyone else (sessions.ts).
   */
  readonly owner?: string;
  /**
   * The sending client's random session nonce; absent or empty when it sent none. Two
   * clients that picked one client id differ in it, and the session table refuses the one
   * that did not start the session (session_conflict) instead of answering it duplicate.
   */
  readonly nonce?: string;
  /**
   * What the message is about (an account, an order): consumer groups send the messages of
   * one key to one member, in order, and a compacted topic keeps the newest message per key.
   * Absent or empty: no key.
   */
  readonly key?: string;
}

/** A client id travels with a u16 length in the batch; 255 bytes keep headers small. */
export const clientIdBytesMax = 255;
export const topicBytesMax = 255;
/** Topics starting with this are the system's own (membership records); clients may not use them. */
export const reservedTopicPrefix = '$';
/**
 * Client ids starting with this are the nodes' own sessions (`$<node id>.<hex>`, for messages
 * sent without a session): a client may not name one, so nobody can write in them.
 */
export const reservedClientIdPrefix = '$';

/** What every session id of node `nodeId`'s own begins with: `$<node id>.` then random hex. */
export function ownSessionPrefix(nodeId: string): string {
  return `${reservedClientIdPrefix}${nodeId}.`;
}
export const ownerBytesMax = 255;
/** A key travels with a u8 length in the batch, and in every stored record. */
export const keyBytesMax = 255;
/** A nonce is 1–64 characters of [0-9A-Za-z_-]: 128 random bits fit with room to spare. */
export const nonceLengthMax = 64;
const noncePattern = /^[0-9A-Za-z_-]{1,64}$/;

export type MessageRule = 'payload' | 'clientId' | 'seq' | 'topic' | 'owner' | 'nonce' | 'key';

export interface MessageProblem {
  readonly code: 'invalid_argument' | 'payload_too_large';
  /** Which rule broke. */
  readonly rule: MessageRule;
  /** The offending field, in the caller's own words. */
  readonly field: string;
  /** A sentence that names the field, fit to show to whoever sent it. */
  readonly message: string;
  readonly details: Readonly<Record<string, number>>;
}

function invalid(rule: MessageRule, field: string, message: string): MessageProblem {
  return { code: 'invalid_argument', rule, field, message, details: {} };
}

export function payloadProblem(
  payload: unknown,
  payloadBytesMax: number,
  field = 'payload',
): MessageProblem | null {
  if (!(payload instanceof Uint8Array)) return invalid('payload', field, `${field} must be bytes`);
  if (payload.length > payloadBytesMax) {
    return {
      code: 'payload_too_large',
      rule: 'payload',
      field,
      message: `${field} is over the limit`,
      details: { payloadBytes: payload.length, payloadBytesMax },
    };
  }
  return null;
}

/**
 * C0 and C1 control characters and DEL. Ids and topics end up in logs, terminals and
 * metrics labels, where a NUL or an ESC sequence truncates a line or rewrites a screen.
 */
export function hasControlCharacter(text: string): boolean {
  for (let at = 0; at < text.length; at++) {
    const code = text.charCodeAt(at);
    if (code <= 0x1f || (code >= 0x7f && code <= 0x9f)) return true;
  }
  return false;
}

/**
 * Control characters, and lone surrogates: `"\ud800"` is a valid JSON string but has no
 * UTF-8 form, so the batch would carry U+FFFD instead and the message would be delivered
 * under another client id, topic or key than the one sent (another client's session, even),
 * while its sender, waiting for its own, heard nothing until its deadline.
 */
function characterProblem(rule: MessageRule, text: string, field: string): MessageProblem | null {
  if (hasControlCharacter(text)) {
    return invalid(rule, field, `${field} must not contain control characters`);
  }
  if (!isWellFormedString(text)) {
    return invalid(rule, field, `${field} must be valid Unicode, without lone surrogates`);
  }
  return null;
}

/**
 * `fromLog`: the entries already written before the control-character rule existed stay
 * valid, so that rule is applied where messages enter, not where the log is read (what the
 * log carries was decoded from UTF-8, so it holds no lone surrogate); and the log carries
 * the nodes' own sessions (`$…`), which no caller may name.
 */
export function clientIdProblem(
  clientId: unknown,
  field = 'clientId',
  fromLog = false,
): MessageProblem | null {
  if (typeof clientId !== 'string') return invalid('clientId', field, `${field} must be a string`);
  if (clientId === '') return invalid('clientId', field, `${field} must not be empty`);
  if (Buffer.byteLength(clientId) > clientIdBytesMax) {
    return invalid(
      'clientId',
      field,
      `${field} must be at most ${clientIdBytesMax} bytes of UTF-8`,
    );
  }
  const characters = fromLog ? null : characterProblem('clientId', clientId, field);
  if (characters !== null) return characters;
  if (!fromLog && clientId.startsWith(reservedClientIdPrefix)) {
    return invalid(
      'clientId',
      field,
      `${field} must not start with ${reservedClientIdPrefix} (the nodes' own sessions)`,
    );
  }
  return null;
}

/** The identity a message is sent as: at most 255 bytes of UTF-8; empty means nobody. */
export function ownerProblem(owner: unknown, field = 'owner'): MessageProblem | null {
  if (typeof owner !== 'string') return invalid('owner', field, `${field} must be a string`);
  if (Buffer.byteLength(owner) > ownerBytesMax) {
    return invalid('owner', field, `${field} must be at most ${ownerBytesMax} bytes of UTF-8`);
  }
  return null;
}

/** A session nonce: 1–64 characters of [0-9A-Za-z_-]. */
export function nonceProblem(nonce: unknown, field = 'nonce'): MessageProblem | null {
  if (typeof nonce !== 'string' || !noncePattern.test(nonce)) {
    return invalid(
      'nonce',
      field,
      `${field} must be 1–${nonceLengthMax} characters of 0-9, A-Z, a-z, _ and -`,
    );
  }
  return null;
}

/**
 * A message's key: 1 to 255 bytes of UTF-8 without control characters. `fromLog`: what the
 * log carries is only checked for its length, like topics.
 */
export function keyProblem(key: unknown, field = 'key', fromLog = false): MessageProblem | null {
  if (typeof key !== 'string') return invalid('key', field, `${field} must be a string`);
  if (key === '') return invalid('key', field, `${field} must not be empty (leave it out)`);
  if (Buffer.byteLength(key) > keyBytesMax) {
    return invalid('key', field, `${field} must be at most ${keyBytesMax} bytes of UTF-8`);
  }
  return fromLog ? null : characterProblem('key', key, field);
}

/** A session's seqs are 1, 2, 3 …, and must stay exact in a double (the batch's f64). */
export function seqProblem(seq: unknown, field = 'seq'): MessageProblem | null {
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
    return invalid('seq', field, `${field} must be an integer >= 1`);
  }
  return null;
}

/**
 * A run of `count` seqs from `firstSeq`, as one session's batch carries them: the first is a
 * seq, and so is the last, `firstSeq + count - 1`. A malformed run is refused whole rather
 * than taken with an error each. A run of no messages has no last seq to check.
 */
export function runSeqProblem(
  firstSeq: unknown,
  count: number,
  field = 'seq',
): MessageProblem | null {
  assertSafeNatural(count, "a run's message count");
  const first = seqProblem(firstSeq, field);
  if (first !== null || count <= 1) return first;
  // Compared, not summed: past 2^53 `firstSeq + count - 1` rounds, and the 1 taken off can
  // bring it back to 2^53 - 1 (2^53 - 1 + 2 rounds to 2^53). Both sides here are exact.
  if ((firstSeq as number) > Number.MAX_SAFE_INTEGER - (count - 1)) {
    return invalid(
      'seq',
      field,
      `${field} ${firstSeq} with ${count} messages runs past the largest seq, 2^53 - 1`,
    );
  }
  return null;
}

export function topicProblem(
  topic: unknown,
  options: {
    readonly field: string;
    readonly reservedAllowed: boolean;
    readonly fromLog?: boolean;
  },
): MessageProblem | null {
  const { field } = options;
  if (typeof topic !== 'string') return invalid('topic', field, `${field} must be a string`);
  if (Buffer.byteLength(topic) > topicBytesMax) {
    return invalid('topic', field, `${field} must be at most ${topicBytesMax} bytes of UTF-8`);
  }
  const characters = options.fromLog === true ? null : characterProblem('topic', topic, field);
  if (characters !== null) return characters;
  if (!options.reservedAllowed && topic.startsWith(reservedTopicPrefix)) {
    return invalid(
      'topic',
      field,
      `${field} must not start with ${reservedTopicPrefix} (reserved)`,
    );
  }
  return null;
}

/**
 * A seq belongs to a client's session: both are given or neither. Which field a refusal
 * names is the surface's choice: the HTTP API names the missing one; the library names
 * `seq` either way, since its seq is the option that needs explaining.
 */
export function sessionPairProblem(
  clientId: unknown,
  seq: unknown,
  names: { readonly clientId: string; readonly seq: string; readonly blame: 'missing' | 'seq' },
): MessageProblem | null {
  if (clientId !== undefined && seq === undefined) {
    return invalid(
      'seq',
      names.seq,
      `${names.seq} is required with ${names.clientId} (1, 2, 3 … per ${names.clientId})`,
    );
  }
  if (clientId === undefined && seq !== undefined) {
    const field = names.blame === 'missing' ? names.clientId : names.seq;
    return invalid(
      names.blame === 'missing' ? 'clientId' : 'seq',
      field,
      `${names.clientId} is required with ${names.seq}`,
    );
  }
  return null;
}

/**
 * The message as a batch carries it: an anonymous one has an empty client id and seq 0,
 * and a reserved topic is allowed, because only the node itself writes such messages.
 */
export function batchedMessageProblem(message: ClientMessage): MessageProblem | null {
  const anonymous = message.clientId === '';
  if (anonymous && message.seq !== 0) {
    return invalid('seq', 'seq', 'an anonymous message has seq 0');
  }
  const owner = message.owner ?? '';
  const nonce = message.nonce ?? '';
  return (
    (anonymous ? null : clientIdProblem(message.clientId, 'clientId', true)) ??
    (anonymous ? null : seqProblem(message.seq)) ??
    ownerProblem(owner) ??
    (nonce === '' ? null : nonceProblem(nonce)) ??
    ((message.key ?? '') === '' ? null : keyProblem(message.key, 'key', true)) ??
    topicProblem(message.topic, { field: 'topic', reservedAllowed: true, fromLog: true }) ??
    payloadProblem(message.payload, Number.POSITIVE_INFINITY)
  );
}
