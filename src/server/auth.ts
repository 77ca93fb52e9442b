/**
 * Who may do what on the HTTP API: the auth file (`abcast start --auth FILE`), the
 * identities it names, and the rules a request is checked against.
 *
 * The file is JSON:
 *
 *   {"identities": [
 *     {"name": "alice", "role": "write", "tokenSha256": "<64 hex>",
 *      "publish": ["orders.*"], "subscribe": ["orders.*", "prices"]},
 *     {"name": "ops", "role": "admin"}
 *   ]}
 *
 * A token is 256 random bits the client presents as `Authorization: Bearer <token>`; the
 * file keeps only its SHA-256, so a leaked file gives no token away (a 256-bit secret needs
 * no slow hash: nobody can guess one to test against it). An entry without a token is
 * reached by a client certificate naming it (the cluster CA's `abcast://client/<name>`).
 *
 * Roles nest: `read` (messages, stream, barrier, status, consumers and their acks: a reader
 * keeps its own cursor) < `write` (+ broadcast) < `admin`
 * (+ members, leader transfer, metrics). `publish` and `subscribe` narrow the topics; absent,
 * every topic. A pattern is a topic where `*` stands for any run of characters (none too),
 * so `orders.*` covers `orders.eu` and `orders.eu.paid`, and `*` covers every topic and the
 * messages without one. Nothing here does I/O: the CLI reads the file and hands the text.
 */
import { assert } from '../util/assert.ts';
import { equalInConstantTime, sha256 } from '../util/digest.ts';

export type AccessRole = 'read' | 'write' | 'admin';

const roleRanks: Readonly<Record<AccessRole, number>> = { read: 1, write: 2, admin: 3 };
export const accessRoles: readonly AccessRole[] = ['read', 'write', 'admin'];

/** Whether `role` may do what `required` allows. */
export function roleAllows(role: AccessRole, required: AccessRole): boolean {
  return roleRanks[role] >= roleRanks[required];
}

/** A set of topic patterns, or null for every topic. */
export type TopicPatterns = readonly string[] | null;

export interface Identity {
  readonly name: string;
  readonly role: AccessRole;
  /** SHA-256 of the token, 32 bytes; null when only a client certificate reaches it. */
  readonly tokenSha256: Uint8Array | null;
  readonly publish: TopicPatterns;
  readonly subscribe: TopicPatterns;
}

/** A mistake in an auth file: `field` is its path, such as `identities[2].role`. */
export class AuthFileError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'AuthFileError';
  }
}

/** An identity's name: also a certificate's name and a log field, so plain characters. */
const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const sha256Pattern = /^[0-9a-f]{64}$/;
const patternBytesMax = 255;
const patternsMax = 256;
const identitiesMax = 10_000;

/** The SHA-256 of a token, as the file keeps it (lowercase hex). */
export function tokenSha256Hex(token: string): string {
  return Buffer.from(sha256(token)).toString('hex');
}

/** Whether `topic` (empty: no topic) matches `pattern`, where `*` is any run of characters. */
export function topicMatches(pattern: string, topic: string): boolean {
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === topic;
  const first = parts[0] as string;
  const last = parts[parts.length - 1] as string;
  if (topic.length < first.length + last.length) return false;
  if (!topic.startsWith(first) || !topic.endsWith(last)) return false;
  // The middle parts in order, each as early as it fits: greedy is exact for `*` alone.
  let at = first.length;
  const end = topic.length - last.length;
  for (const part of parts.slice(1, -1)) {
    const found = topic.indexOf(part, at);
    if (found < 0 || found + part.length > end) return false;
    at = found + part.length;
  }
  return true;
}

/** Whether `patterns` cover `topic`; null patterns cover everything. */
export function topicAllowed(patterns: TopicPatterns, topic: string): boolean {
  return patterns === null || patterns.some((pattern) => topicMatches(pattern, topic));
}

function objectAt(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AuthFileError(field, 'must be a JSON object');
  }
  return value as Record<string, unknown>;
}

function patternsAt(value: unknown, field: string): TopicPatterns {
  if (value === undefined) return null;
  if (!Array.isArray(value) || value.length > patternsMax) {
    throw new AuthFileError(field, `must be a list of at most ${patternsMax} topic patterns`);
  }
  return value.map((pattern: unknown, at) => {
    if (typeof pattern !== 'string' || Buffer.byteLength(pattern) > patternBytesMax) {
      throw new AuthFileError(
        `${field}[${at}]`,
        `must be a topic pattern of at most ${patternBytesMax} bytes`,
      );
    }
    return pattern;
  });
}

const identityFields = ['name', 'role', 'tokenSha256', 'publish', 'subscribe'];

function identityAt(value: unknown, field: string): Identity {
  const entry = objectAt(value, field);
  for (const key of Object.keys(entry)) {
    if (!identityFields.includes(key)) {
      throw new AuthFileError(
        `${field}.${key}`,
        `unknown field; expected ${identityFields.join(', ')}`,
      );
    }
  }
  const { name, role, tokenSha256 } = entry;
  if (typeof name !== 'string' || !namePattern.test(name)) {
    throw new AuthFileError(
      `${field}.name`,
      'must be 1–64 characters of A-Z, a-z, 0-9, ".", "_" and "-", starting with a letter or digit',
    );
  }
  if (typeof role !== 'string' || !accessRoles.includes(role as AccessRole)) {
    throw new AuthFileError(`${field}.role`, `must be one of ${accessRoles.join(', ')}`);
  }
  if (
    tokenSha256 !== undefined &&
    (typeof tokenSha256 !== 'string' || !sha256Pattern.test(tokenSha256))
  ) {
    throw new AuthFileError(
      `${field}.tokenSha256`,
      'must be the SHA-256 of the token as 64 lowercase hex digits',
    );
  }
  return {
    name,
    role: role as AccessRole,
    tokenSha256: tokenSha256 === undefined ? null : Buffer.from(tokenSha256, 'hex'),
    publish: patternsAt(entry.publish, `${field}.publish`),
    subscribe: patternsAt(entry.subscribe, `${field}.subscribe`),
  };
}

/** The identities of one auth file, found by token or by name. */
export class AuthTable {
  private readonly byName = new Map<string, Identity>();

  constructor(readonly identities: readonly Identity[]) {
    for (const identity of identities) {
      assert(!this.byName.has(identity.name), 'identity names are unique');
      this.byName.set(identity.name, identity);
    }
  }

  /**
   * The identity whose token this is, or null. Every entry is compared, each in constant
   * time, so how long it takes says nothing about which entry (if any) came close.
   */
  byToken(token: string): Identity | null {
    const presented = sha256(token);
    let found: Identity | null = null;
    for (const identity of this.identities) {
      if (identity.tokenSha256 === null) continue;
      if (equalInConstantTime(presented, identity.tokenSha256) && found === null) {
        found = identity;
      }
    }
    return found;
  }

  /** The identity a client certificate names, or null. */
  named(name: string): Identity | null {
    return this.byName.get(name) ?? null;
  }
}

/** Parses an auth file's text; throws AuthFileError naming the first field that is wrong. */
export function parseAuthFile(text: string): AuthTable {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new AuthFileError('(file)', `is not JSON: ${(error as Error).message}`);
  }
  const root = objectAt(parsed, '(file)');
  for (const key of Object.keys(root)) {
    if (key !== 'identities') {
      throw new AuthFileError(key, 'unknown field; the file holds "identities"');
    }
  }
  const list = root.identities;
  if (!Array.isArray(list) || list.length > identitiesMax) {
    throw new AuthFileError(
      'identities',
      `must be a list of at most ${identitiesMax} {name, role, tokenSha256?, publish?, subscribe?}`,
    );
  }
  const identities = list.map((entry: unknown, at) => identityAt(entry, `identities[${at}]`));
  const seen = new Set<string>();
  identities.forEach((identity, at) => {
    if (seen.has(identity.name)) {
      throw new AuthFileError(`identities[${at}].name`, `"${identity.name}" is named twice`);
    }
    seen.add(identity.name);
  });
  return new AuthTable(identities);
}

/** The file's JSON form of one identity (what `abcast token create` writes). */
export interface IdentityEntry {
  readonly name: string;
  readonly role: AccessRole;
  readonly tokenSha256?: string;
  readonly publish?: readonly string[];
  readonly subscribe?: readonly string[];
}
