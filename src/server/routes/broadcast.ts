/**
 * POST /v1/broadcast: one message into the total order. Answers once it is committed on a
 * quorum and delivered on this node, with its position (`index`). A retried (client, seq)
 * answers with the original position and `duplicate: true`.
 *
 * With authentication on, the identity must be allowed to publish on the topic, and the
 * session is bound to whoever sent its seq 1 (sessions.ts): another identity in it gets 403
 * `session_forbidden`, another `nonce` of the same identity 409 `session_conflict`.
 */
import type { BroadcastResult } from '../../broadcast/pending.ts';
import { checkPublish } from '../access.ts';
import type { RouteContext, ServedNode } from '../context.ts';
import { HttpError, invalidArgument } from '../errors.ts';
import { encodePayload } from '../messages.ts';
import { sendJson } from '../respond.ts';
import {
  optionalClientId,
  optionalKey,
  optionalNonce,
  optionalSeq,
  optionalTopic,
  rejectUnknownFields,
  requireSessionPair,
} from '../validate.ts';

interface BroadcastRequest {
  readonly payload: Uint8Array;
  readonly client?: string;
  readonly seq?: number;
  readonly topic?: string;
  readonly nonce?: string;
  readonly key?: string;
}

function parseRequest(body: Record<string, unknown>, payloadBytesMax: number): BroadcastRequest {
  rejectUnknownFields(body, ['payload', 'client', 'seq', 'topic', 'nonce', 'key']);
  if (!Object.hasOwn(body, 'payload')) {
    throw invalidArgument('payload', 'payload is required (any JSON value)');
  }
  const client = optionalClientId(body);
  const seq = optionalSeq(body);
  requireSessionPair(client, seq);
  const topic = optionalTopic(body);
  const nonce = optionalNonce(body);
  if (nonce !== undefined && client === undefined) {
    throw invalidArgument('nonce', 'a nonce belongs to a session: give client and seq with it');
  }
  const key = optionalKey(body);
  const payload = checkedPayload(body.payload, payloadBytesMax);
  return { payload, client, seq, topic, nonce, key };
}

/**
 * Who sends a session's messages: the identity's name as the session's owner (only with
 * authentication on), and the client's nonce when it gave one.
 */
export function senderOf(
  context: RouteContext,
  nonce: string | undefined,
): { owner?: string; nonce?: string } {
  return {
    ...(context.identity === null ? {} : { owner: context.identity.name }),
    ...(nonce === undefined ? {} : { nonce }),
  };
}

/** The payload's stored form (its JSON text), refused with a 413 when over the limit. */
export function checkedPayload(value: unknown, payloadBytesMax: number): Uint8Array {
  const payload = encodePayload(value);
  if (payload.length > payloadBytesMax) throw payloadTooLarge(payload.length, payloadBytesMax);
  return payload;
}

/** The 413 for a payload whose stored form (its JSON text) is `byteCount` bytes. */
export function payloadTooLarge(byteCount: number, payloadBytesMax: number): HttpError {
  return new HttpError(
    413,
    'payload_too_large',
    `payload is ${byteCount} bytes as JSON; the limit is ${payloadBytesMax}`,
    { payloadBytesMax },
  );
}

/** The term of the entry that carried `position`, if this node still keeps it. */
export function termAt(node: ServedNode, position: number): number | null {
  try {
    return node.read(position, 1)[0]?.term ?? null;
  } catch {
    return null; // compacted: the original term is no longer known here
  }
}

export function answerBody(node: ServedNode, result: BroadcastResult) {
  // A duplicate older than the client's remembered window has no known position.
  const index = result.position === null || result.position < 1 ? null : result.position;
  const term = result.term ?? (index === null ? null : termAt(node, index));
  return { index, term, duplicate: result.duplicate };
}

export async function broadcastRoute(context: RouteContext): Promise<void> {
  const { node, settings, metrics, environment } = context.server;
  const body = await context.readJson({ emptyAllowed: false });
  const request = parseRequest(body, settings.payloadBytesMax);
  checkPublish(context.identity, request.topic ?? '', 'topic');
  const startedMs = environment.monotonicMs();
  const result = await context.within(
    node.broadcast(request.payload, {
      clientId: request.client,
      seq: request.seq,
      topic: request.topic,
      key: request.key,
      ...senderOf(context, request.nonce),
    }),
  );
  metrics.broadcastDone((environment.monotonicMs() - startedMs) / 1000, result.duplicate);
  sendJson(context.response, 200, answerBody(node, result));
}
