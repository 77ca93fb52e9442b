/**
 * The binary protocol's broadcastRun frame (docs/protocol.md): POST /v1/broadcast/batch with
 * each payload's JSON text carried as bytes and the results answered as a runAnswer frame.
 * The rules are the batch route's — the identity may publish on every topic or the run is
 * refused whole (403), client, seq, nonce, topics and keys checked by the same rules (400),
 * a payload over the limit refused (413) — and so are the answers: a run refused whole is
 * an ordinary answer frame with HTTP's status and error body; a run taken has one result
 * per message, each a position or the error a single broadcast would have had.
 *
 * What is new is what does not happen: no JSON parse of a body, no re-encoding of payloads
 * (their text is checked byte by byte and stored as it came, json-text.ts), no JSON answer.
 */
import {
  clientIdProblem,
  keyProblem,
  type MessageProblem,
  nonceProblem,
  seqProblem,
  topicProblem,
} from '../../broadcast/message-rules.ts';
import type { RunMessage } from '../../broadcast/node.ts';
import type { BroadcastRunFrame, RunResult } from '../../transport/client-frames.ts';
import { clientFrameLimits } from '../../transport/client-frames.ts';
import { checkPublish } from '../access.ts';
import { jsonNestingDepthMax } from '../body.ts';
import type { RouteContext } from '../context.ts';
import { invalidArgument, toHttpError } from '../errors.ts';
import { checkJsonText } from '../json-text.ts';
import { encodePayload } from '../messages.ts';
import type { Route } from '../router.ts';
import { answerBody, payloadTooLarge, senderOf } from './broadcast.ts';
import { batchMessagesMax } from './broadcast-batch.ts';

/**
 * The route a broadcastRun frame runs as: the batch route's name (metrics, logs, the
 * deadline's advice to retry with the same client and seq) and its role.
 */
export function broadcastRunRoute(
  frame: BroadcastRunFrame,
  answer: (results: readonly RunResult[]) => void,
): Route {
  return {
    method: 'POST',
    pattern: '/v1/broadcast/batch',
    access: 'write',
    handler: (context) => runBroadcasts(context, frame, answer),
  };
}

function refusal(problem: MessageProblem): Error {
  return invalidArgument(problem.field, problem.message);
}

/** Rules checked once per distinct topic: a run's messages usually share one. */
const topicRule = { field: 'topic', reservedAllowed: false } as const;

function checkedSession(frame: BroadcastRunFrame): void {
  const problem =
    clientIdProblem(frame.clientId, 'client') ??
    seqProblem(frame.firstSeq, 'seq') ??
    (frame.nonce === '' ? null : nonceProblem(frame.nonce, 'nonce'));
  if (problem !== null) throw refusal(problem);
  const count = frame.messages.length;
  if (count === 0 || count > batchMessagesMax) {
    throw invalidArgument('messages', `a run carries 1–${batchMessagesMax} messages, not ${count}`);
  }
}

/**
 * The payload as stored: its text as it came when it may be (valid JSON without line
 * breaks between tokens), else re-encoded compactly; refused when not JSON or too large.
 */
function storedPayload(payload: Uint8Array, at: number, payloadBytesMax: number): Uint8Array {
  const verdict = checkJsonText(payload, jsonNestingDepthMax);
  if (verdict.kind === 'invalid') {
    const field = `messages[${at}].payload`;
    throw invalidArgument(field, `${field} is not JSON text: ${verdict.reason}`);
  }
  const stored =
    verdict.kind === 'storable'
      ? payload
      : encodePayload(JSON.parse(Buffer.from(payload).toString('utf8')));
  if (stored.length > payloadBytesMax) throw payloadTooLarge(stored.length, payloadBytesMax);
  return stored;
}

/** The run's messages as the node takes them, every rule checked; throws the first refusal. */
function checkedMessages(context: RouteContext, frame: BroadcastRunFrame): RunMessage[] {
  const { payloadBytesMax } = context.server.settings;
  /** Each topic where it first appears in a run of the same topic, for checkPublish. */
  const topicsAt: [string, number][] = [];
  const messages = frame.messages.map((message, at): RunMessage => {
    const { topic, key } = message;
    if (topic !== topicsAt[topicsAt.length - 1]?.[0]) {
      if (topicProblem(topic, topicRule) !== null) {
        const field = `messages[${at}].topic`;
        throw refusal(topicProblem(topic, { field, reservedAllowed: false }) as MessageProblem);
      }
      topicsAt.push([topic, at]);
    }
    if (key !== '' && keyProblem(key) !== null) {
      throw refusal(keyProblem(key, `messages[${at}].key`) as MessageProblem);
    }
    const payload = storedPayload(message.payload as Uint8Array, at, payloadBytesMax);
    return {
      payload,
      ...(topic === '' ? {} : { topic }),
      ...(key === '' ? {} : { key }),
    };
  });
  for (const [topic, at] of topicsAt) {
    checkPublish(context.identity, topic, `messages[${at}].topic`);
  }
  return messages;
}

/** An error message cut to what a result carries (1 KiB of UTF-8). */
function resultMessage(message: string): string {
  return Buffer.byteLength(message) <= clientFrameLimits.messageBytesMax
    ? message
    : `${message.slice(0, 300)}…`;
}

function errorResult(context: RouteContext, reason: unknown): RunResult {
  const error = toHttpError(reason);
  if (error.code === 'internal') {
    const stack = reason instanceof Error ? reason.stack : String(reason);
    context.server.logger.error({ reason: stack }, 'a broadcast of a binary run failed');
  }
  const details = Object.keys(error.details).length === 0 ? '' : JSON.stringify(error.details);
  return {
    kind: 'error',
    status: error.status,
    code: error.code,
    message: resultMessage(error.message),
    details: Buffer.byteLength(details) <= clientFrameLimits.detailsBytesMax ? details : '',
  };
}

async function runBroadcasts(
  context: RouteContext,
  frame: BroadcastRunFrame,
  answer: (results: readonly RunResult[]) => void,
): Promise<void> {
  const { node, metrics, environment } = context.server;
  checkedSession(frame);
  // All or nothing, as a batch: a refused run leaves no gap in its session.
  const messages = checkedMessages(context, frame);
  const sender = senderOf(context, frame.nonce === '' ? undefined : frame.nonce);
  const startedMs = environment.monotonicMs();
  const settled = await context.within(
    node.broadcastRun({ clientId: frame.clientId, firstSeq: frame.firstSeq, ...sender, messages }),
  );
  const seconds = (environment.monotonicMs() - startedMs) / 1000;
  const counts = { fresh: 0, duplicates: 0 };
  const results = settled.map((outcome): RunResult => {
    if (outcome.status === 'rejected') return errorResult(context, outcome.reason);
    if (outcome.value.duplicate) counts.duplicates++;
    else counts.fresh++;
    const body = answerBody(node, outcome.value);
    return { kind: 'ok', position: body.index, term: body.term, duplicate: body.duplicate };
  });
  metrics.broadcastsDone(seconds, counts);
  if (context.response.answerable) answer(results);
}
