/**
 * POST /v1/broadcast: one message into the total order. Answers once it is committed on a
 * quorum and delivered on this node, with its position (`index`). A retried (client, seq)
 * answers with the original position and `duplicate: true`.
 */
import type { BroadcastResult } from '../../broadcast/pending.ts';
import type { RouteContext, ServedNode } from '../context.ts';
import { HttpError, invalidArgument } from '../errors.ts';
import { encodePayload } from '../messages.ts';
import { sendJson } from '../respond.ts';
import {
  optionalClientId,
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
}

function parseRequest(body: Record<string, unknown>, payloadBytesMax: number): BroadcastRequest {
  rejectUnknownFields(body, ['payload', 'client', 'seq', 'topic']);
  if (!Object.hasOwn(body, 'payload')) {
    throw invalidArgument('payload', 'payload is required (any JSON value)');
  }
  const client = optionalClientId(body);
  const seq = optionalSeq(body);
  requireSessionPair(client, seq);
  const topic = optionalTopic(body);
  return { payload: checkedPayload(body.payload, payloadBytesMax), client, seq, topic };
}

/** The payload's stored form (its JSON text), refused with a 413 when over the limit. */
export function checkedPayload(value: unknown, payloadBytesMax: number): Uint8Array {
  const payload = encodePayload(value);
  if (payload.length > payloadBytesMax) {
    throw new HttpError(
      413,
      'payload_too_large',
      `payload is ${payload.length} bytes as JSON; the limit is ${payloadBytesMax}`,
      { payloadBytesMax },
    );
  }
  return payload;
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
  const startedMs = environment.monotonicMs();
  const result = await context.within(
    node.broadcast(request.payload, {
      clientId: request.client,
      seq: request.seq,
      topic: request.topic,
    }),
  );
  metrics.broadcastDone((environment.monotonicMs() - startedMs) / 1000, result.duplicate);
  sendJson(context.response, 200, answerBody(node, result));
}
