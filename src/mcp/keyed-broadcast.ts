/**
 * `broadcast` with an idempotency key, delivered once however often it is retried — after a
 * timeout, a reconnect, or a restart of this MCP server — with no state in this process.
 *
 * The key names a session of the cluster's own session table: the message goes out as
 * `(client = mcp-key.<SHA-256 of the key>, seq = 1)`. The session table is replicated state,
 * a pure function of the committed log (docs/api.md, "Exactly once"), so the first copy to
 * commit is delivered and every later copy of `(client, 1)` — from this process, a restarted
 * one, or another MCP server given the same key — is answered `duplicate` with the original
 * position, on any node, after leader changes and node restarts. Nothing about the key is
 * kept in memory here: a restarted server computes the same session from the key.
 *
 * Bounds (docs/mcp.md): the session expires after the cluster's session TTL (one hour of
 * log time by default) since the message; a retry after that is a new message. Each key
 * holds one session until then, counted against `--sessions-max` (and per identity with
 * `--auth`). A duplicate is checked against the original (same topic and payload), so a
 * key reused for another message is refused (`key_reused`) instead of silently answered.
 */
import { createHash } from 'node:crypto';
import type { Client } from '../client/index.ts';
import { ClientError } from '../client/index.ts';
import { callCluster } from './cluster-calls.ts';
import { ToolFailure } from './tool-errors.ts';

/** Session ids of keyed broadcasts start so; the rest is the key's digest. */
export const keySessionPrefix = 'mcp-key.';
/** A key is 1–200 bytes: it is hashed, so its length costs nothing on the wire. */
export const keyBytesMax = 200;

/** The session a key's message is sent in: the same in every process, for ever. */
export function keySession(key: string): string {
  const digest = createHash('sha256').update(`abcast-mcp-key\u0000${key}`).digest('base64url');
  return `${keySessionPrefix}${digest}`;
}

export interface KeyedBroadcast {
  readonly key: string;
  readonly payload: unknown;
  readonly topic: string | undefined;
  readonly boundMs: number;
  readonly signal?: AbortSignal;
}

export interface KeyedAnswer {
  readonly position: number | null;
  readonly duplicate: boolean;
}

interface WireAnswer {
  readonly index?: number | null;
  readonly duplicate?: boolean;
}

interface WireMessage {
  readonly index: number;
  readonly payload: unknown;
  readonly topic: string | null;
}

export async function broadcastWithKey(
  client: Client,
  request: KeyedBroadcast,
): Promise<KeyedAnswer> {
  const session = keySession(request.key);
  const body = JSON.stringify({
    payload: request.payload,
    client: session,
    seq: 1,
    ...(request.topic === undefined ? {} : { topic: request.topic }),
  });
  let answer: WireAnswer;
  try {
    answer = await callCluster<WireAnswer>(client, {
      method: 'POST',
      path: '/v1/broadcast',
      body,
      boundMs: request.boundMs,
      ...(request.signal === undefined ? {} : { signal: request.signal }),
    });
  } catch (error) {
    throw keyFailure(error, request.key);
  }
  const position = typeof answer.index === 'number' ? answer.index : null;
  const duplicate = answer.duplicate === true;
  if (duplicate && position !== null) await checkSameMessage(client, request, position);
  return { position, duplicate };
}

/**
 * A duplicate answer says only that `(client, 1)` was delivered; the message there must be
 * this one, or the key was given to two different messages. When the node no longer keeps
 * that position the check is skipped: the answer stands as the cluster gave it.
 */
async function checkSameMessage(
  client: Client,
  request: KeyedBroadcast,
  position: number,
): Promise<void> {
  let page: { messages?: WireMessage[] };
  try {
    page = await callCluster(client, {
      method: 'GET',
      path: `/v1/messages?from=${position}&limit=1`,
      boundMs: request.boundMs,
      ...(request.signal === undefined ? {} : { signal: request.signal }),
    });
  } catch (error) {
    if (error instanceof ClientError && error.code === 'compacted') return;
    throw error;
  }
  const original = page.messages?.[0];
  if (original === undefined || original.index !== position) return;
  const sameTopic = (original.topic ?? undefined) === request.topic;
  if (sameTopic && canonical(original.payload) === canonical(request.payload)) return;
  throw new ToolFailure(
    'key_reused',
    `The key "${request.key}" was already used for a different message (position ${position}); nothing was sent. Use a new key for a new message, or send exactly the same topic and payload to retry.`,
    { key: request.key, position },
  );
}

/** JSON text with object keys sorted, so two equal values compare equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) => {
    if (inner === null || typeof inner !== 'object' || Array.isArray(inner)) return inner;
    return Object.fromEntries(
      Object.entries(inner as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
    );
  });
}

/** The refusals a keyed session can meet, said in terms of the key. */
function keyFailure(error: unknown, key: string): unknown {
  if (!(error instanceof ClientError)) return error;
  if (error.code === 'session_forbidden' || error.code === 'session_conflict') {
    return new ToolFailure(
      'key_reused',
      `The key "${key}" belongs to a message sent by another identity or client; nothing was sent. Pick another key.`,
      { key },
    );
  }
  if (error.code === 'unavailable') {
    return new ToolFailure(
      'unavailable',
      `No node confirmed the message in time; it may or may not be delivered. Call broadcast again with the same key "${key}": it is delivered at most once and the answer tells its position.`,
      { key, ...error.details },
    );
  }
  return error;
}
