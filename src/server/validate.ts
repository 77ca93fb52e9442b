/**
 * Hand-written validation of bodies and query strings. Every refusal is a 400 whose message
 * and `field` name the field, so a caller never has to guess what to fix. The rules of a
 * message's fields (client, seq, topic) are the runtime's own (broadcast/message-rules.ts):
 * here only the JSON shapes are checked and the problems turned into HTTP errors.
 */
import {
  clientIdProblem,
  keyProblem,
  type MessageProblem,
  nonceProblem,
  seqProblem,
  sessionPairProblem,
  topicProblem,
} from '../broadcast/message-rules.ts';
import { type HttpError, invalidArgument } from './errors.ts';

function refusal(problem: MessageProblem): HttpError {
  return invalidArgument(problem.field, problem.message);
}

/** A message field of `object` that the shared rule accepts, or undefined when absent. */
function optionalField<T>(
  object: Readonly<Record<string, unknown>>,
  field: string,
  problemOf: (value: unknown, field: string) => MessageProblem | null,
): T | undefined {
  const value = object[field];
  if (value === undefined) return undefined;
  const problem = problemOf(value, field);
  if (problem !== null) throw refusal(problem);
  return value as T;
}

/** A session's client id (the field `client` unless told), or undefined when absent. */
export function optionalClientId(
  object: Readonly<Record<string, unknown>>,
  field = 'client',
): string | undefined {
  return optionalField<string>(object, field, clientIdProblem);
}

/** A session's nonce (1–64 characters of [0-9A-Za-z_-]), or undefined when absent. */
export function optionalNonce(
  object: Readonly<Record<string, unknown>>,
  field = 'nonce',
): string | undefined {
  return optionalField<string>(object, field, nonceProblem);
}

/** A session's seq (a safe integer >= 1), or undefined when absent. */
export function optionalSeq(
  object: Readonly<Record<string, unknown>>,
  field = 'seq',
): number | undefined {
  return optionalField<number>(object, field, seqProblem);
}

/** A message's key (1–255 bytes of UTF-8, no control characters), or undefined when absent. */
export function optionalKey(
  object: Readonly<Record<string, unknown>>,
  field = 'key',
): string | undefined {
  return optionalField<string>(object, field, keyProblem);
}

/** A broadcast's topic; the reserved prefix is refused. Undefined when absent. */
export function optionalTopic(
  object: Readonly<Record<string, unknown>>,
  field = 'topic',
): string | undefined {
  return optionalField<string>(object, field, (value) =>
    topicProblem(value, { field, reservedAllowed: false }),
  );
}

/** Client and seq come together; a refusal names the missing one. */
export function requireSessionPair(client: string | undefined, seq: number | undefined): void {
  const problem = sessionPairProblem(client, seq, {
    clientId: 'client',
    seq: 'seq',
    blame: 'missing',
  });
  if (problem !== null) throw refusal(problem);
}

/** Refuses any field not in `allowed`: a typo ("sequence") must not be silently ignored. */
export function rejectUnknownFields(
  object: Readonly<Record<string, unknown>>,
  allowed: readonly string[],
): void {
  for (const name of Object.keys(object)) {
    if (!allowed.includes(name)) {
      throw invalidArgument(name, `unknown field "${name}"; expected one of ${allowed.join(', ')}`);
    }
  }
}

/** A string field of at most `bytesMax` UTF-8 bytes, or undefined when absent. */
export function optionalString(
  object: Readonly<Record<string, unknown>>,
  field: string,
  limits: { readonly bytesMax: number; readonly allowEmpty: boolean },
): string | undefined {
  const value = object[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalidArgument(field, `${field} must be a string`);
  if (!limits.allowEmpty && value === '')
    throw invalidArgument(field, `${field} must not be empty`);
  if (Buffer.byteLength(value) > limits.bytesMax) {
    throw invalidArgument(field, `${field} must be at most ${limits.bytesMax} bytes of UTF-8`);
  }
  return value;
}

/** An integer field >= `min` (a safe integer), or undefined when absent. */
export function optionalInteger(
  object: Readonly<Record<string, unknown>>,
  field: string,
  min: number,
): number | undefined {
  const value = object[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw invalidArgument(field, `${field} must be an integer >= ${min}`);
  }
  return value;
}

/** The query string, refusing unknown and repeated parameters. */
export function queryParameters(url: URL, allowed: readonly string[]): Map<string, string> {
  const parameters = new Map<string, string>();
  for (const [name, value] of url.searchParams) {
    if (!allowed.includes(name)) {
      const expected = allowed.length === 0 ? 'none' : allowed.join(', ');
      throw invalidArgument(name, `unknown query parameter "${name}"; expected ${expected}`);
    }
    if (parameters.has(name)) throw invalidArgument(name, `query parameter ${name} is repeated`);
    parameters.set(name, value);
  }
  return parameters;
}

const decimalDigits = /^[0-9]{1,16}$/;

/** A decimal integer in [min, max] (`max` inclusive), or `fallback` when absent. */
export function integerParameter(
  text: string | undefined,
  field: string,
  range: { readonly min: number; readonly max: number; readonly fallback: number },
): number {
  if (text === undefined) return range.fallback;
  const value = decimalDigits.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < range.min) {
    throw invalidArgument(
      field,
      `${field} must be an integer >= ${range.min} (got "${text.slice(0, 32)}")`,
    );
  }
  return Math.min(value, range.max);
}

/** The `topic` filter of a read: a non-empty string of at most 255 bytes, or undefined. */
export function topicParameter(query: ReadonlyMap<string, string>): string | undefined {
  const topic = query.get('topic');
  if (topic === undefined) return undefined;
  if (topic === '') throw invalidArgument('topic', 'topic must not be empty');
  // A filter may name a reserved topic: it matches nothing a client can read, harmlessly.
  const problem = topicProblem(topic, { field: 'topic', reservedAllowed: true });
  if (problem !== null) throw refusal(problem);
  return topic;
}
