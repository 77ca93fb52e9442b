/**
 * POST /v1/broadcast/batch: a run of one session's messages — seqs `seq`, `seq + 1`, … — in
 * one request, answered with one result per message, in order. It is the same as that many
 * POST /v1/broadcast calls sent back to back (each message is exactly once by its
 * `(client, seq)`, and a retry may resend any of them one by one), minus the per-request
 * cost that caps JSON over HTTP at about ten thousand requests a second here.
 */
import { runSeqProblem } from '../../broadcast/message-rules.ts';
import { checkPublish } from '../access.ts';
import type { RouteContext } from '../context.ts';
import { HttpError, invalidArgument, toHttpError } from '../errors.ts';
import { sendJson } from '../respond.ts';
import {
  optionalClientId,
  optionalKey,
  optionalNonce,
  optionalSeq,
  optionalTopic,
  rejectUnknownFields,
} from '../validate.ts';
import { answerBody, checkedPayload, senderOf } from './broadcast.ts';

/** Messages one batch may carry. */
export const batchMessagesMax = 1_000;

/** Refuses a run of `count` seqs from `firstSeq` whose first or last one is no seq (400). */
export function checkRunSeqs(firstSeq: number, count: number): void {
  const problem = runSeqProblem(firstSeq, count);
  if (problem !== null) throw invalidArgument(problem.field, problem.message);
}

/** The whole body at most: room for many small messages, or a few at the payload limit. */
const batchBodyBytesMin = 4 << 20;

interface BatchMessage {
  readonly payload: Uint8Array;
  readonly topic?: string;
  readonly key?: string;
}

function parseMessages(value: unknown, payloadBytesMax: number): BatchMessage[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > batchMessagesMax) {
    throw invalidArgument(
      'messages',
      `messages must be a list of 1–${batchMessagesMax} {payload, topic?, key?} objects`,
    );
  }
  return value.map((item: unknown, at) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw invalidArgument(
        `messages[${at}]`,
        `messages[${at}] must be a {payload, topic?, key?} object`,
      );
    }
    try {
      return parseMessage(item as Record<string, unknown>, payloadBytesMax);
    } catch (error) {
      throw inMessage(error, at);
    }
  });
}

function parseMessage(message: Record<string, unknown>, payloadBytesMax: number): BatchMessage {
  rejectUnknownFields(message, ['payload', 'topic', 'key']);
  if (!Object.hasOwn(message, 'payload')) {
    throw invalidArgument('payload', 'every message needs a payload');
  }
  const topic = optionalTopic(message);
  const key = optionalKey(message);
  return { payload: checkedPayload(message.payload, payloadBytesMax), topic, key };
}

/**
 * A message's 400 with the field named in the whole body (`messages[3].topic`), as the
 * binary port's runs name it: "topic" alone would not say which of a thousand messages.
 */
function inMessage(error: unknown, at: number): unknown {
  if (!(error instanceof HttpError) || typeof error.details.field !== 'string') return error;
  const field = `messages[${at}].${error.details.field}`;
  return invalidArgument(field, `${field}: ${error.message}`);
}

export async function broadcastBatchRoute(context: RouteContext): Promise<void> {
  const { node, settings, metrics, environment } = context.server;
  const body = await context.readJson({
    emptyAllowed: false,
    bodyBytesMax: Math.max(batchBodyBytesMin, settings.bodyBytesMax),
  });
  rejectUnknownFields(body, ['client', 'seq', 'messages', 'nonce']);
  const client = optionalClientId(body);
  const seq = optionalSeq(body);
  const nonce = optionalNonce(body);
  if (client === undefined || seq === undefined) {
    throw invalidArgument(
      client === undefined ? 'client' : 'seq',
      'a batch is a run of one session: client and the first seq are required',
    );
  }
  const messages = parseMessages(body.messages, settings.payloadBytesMax);
  checkRunSeqs(seq, messages.length);
  // All or nothing: one message the identity may not publish refuses the batch before any
  // is handed to the node, so a refused batch leaves no gap in its session.
  messages.forEach((message, at) => {
    checkPublish(context.identity, message.topic ?? '', `messages[${at}].topic`);
  });
  const sender = senderOf(context, nonce);
  const startedMs = environment.monotonicMs();
  const settled = await context.within(
    node.broadcastRun({ clientId: client, firstSeq: seq, ...sender, messages }),
  );
  const seconds = (environment.monotonicMs() - startedMs) / 1000;
  const results = settled.map((outcome) => {
    if (outcome.status === 'fulfilled') {
      metrics.broadcastDone(seconds, outcome.value.duplicate);
      return answerBody(node, outcome.value);
    }
    const error = toHttpError(outcome.reason);
    if (error.code === 'internal') {
      const reason =
        outcome.reason instanceof Error ? outcome.reason.stack : String(outcome.reason);
      context.server.logger.error(
        { url: context.request.url, reason },
        'a batched broadcast failed',
      );
    }
    return { ...error.details, error: error.code, message: error.message, status: error.status };
  });
  sendJson(context.response, 200, { results });
}
