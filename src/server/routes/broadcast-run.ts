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
import { SettledOutcomes, type SettledRun } from '../../broadcast/pending.ts';
import type {
  BroadcastRunFrame,
  ReceivedRun,
  ReceivedRunMessage,
  RunErrorResult,
  RunResults,
} from '../../transport/client-frames.ts';
import { clientFrameLimits } from '../../transport/client-frames.ts';
import { receivedRunMessage } from '../../transport/run-frames.ts';
import { checkPublish } from '../access.ts';
import { jsonNestingDepthMax } from '../body.ts';
import type { RouteContext } from '../context.ts';
import { invalidArgument, toHttpError } from '../errors.ts';
import { JsonTextChecker } from '../json-text.ts';
import { encodePayload } from '../messages.ts';
import type { Route } from '../router.ts';
import { payloadTooLarge, senderOf, termAt } from './broadcast.ts';
import { batchMessagesMax, checkRunSeqs } from './broadcast-batch.ts';

/**
 * The route a broadcastRun frame runs as: the batch route's name (metrics, logs, the
 * deadline's advice to retry with the same client and seq) and its role. A run read off
 * the wire (ReceivedRun) has its messages passed to the node as they were read; a frame
 * built in process is turned into one first.
 */
export function broadcastRunRoute(
  run: ReceivedRun | BroadcastRunFrame,
  answer: (results: RunResults) => void,
): Route {
  return {
    method: 'POST',
    pattern: '/v1/broadcast/batch',
    access: 'write',
    handler: (context) => runBroadcasts(context, 'type' in run ? receivedRunOf(run) : run, answer),
  };
}

/** A frame built in process, as the node reads one off the wire. */
function receivedRunOf(frame: BroadcastRunFrame): ReceivedRun {
  const { headers, clientId, firstSeq, nonce, requestId } = frame;
  const messages = frame.messages.map(({ payload, topic, key }, at) =>
    receivedRunMessage(
      clientId,
      firstSeq + at,
      topic,
      typeof payload === 'string' ? Buffer.from(payload) : payload,
      key,
    ),
  );
  return { requestId, headers, clientId, firstSeq, nonce, messages };
}

function refusal(problem: MessageProblem): Error {
  return invalidArgument(problem.field, problem.message);
}

/** Rules checked once per distinct topic: a run's messages usually share one. */
const topicRule = { field: 'topic', reservedAllowed: false } as const;

function checkedSession(run: ReceivedRun): void {
  const problem =
    clientIdProblem(run.clientId, 'client') ??
    seqProblem(run.firstSeq, 'seq') ??
    (run.nonce === '' ? null : nonceProblem(run.nonce, 'nonce'));
  if (problem !== null) throw refusal(problem);
  const count = run.messages.length;
  if (count === 0 || count > batchMessagesMax) {
    throw invalidArgument('messages', `a run carries 1–${batchMessagesMax} messages, not ${count}`);
  }
  checkRunSeqs(run.firstSeq, count);
}

/**
 * The payload to store instead of the message's own, or null to store it as it came (valid
 * JSON without line breaks between tokens): a compact re-encoding. Refused when not JSON or
 * too large. The text is checked where it lies in the frame.
 */
function storedPayload(
  checker: JsonTextChecker,
  message: ReceivedRunMessage,
  at: number,
  payloadBytesMax: number,
): Uint8Array | null {
  const { payloadSource, payloadStart, payloadBytes } = message;
  const payloadEnd = payloadStart + payloadBytes;
  const verdict = checker.checkRange(payloadSource, payloadStart, payloadEnd, jsonNestingDepthMax);
  if (verdict.kind === 'invalid') {
    const field = `messages[${at}].payload`;
    throw invalidArgument(field, `${field} is not JSON text: ${verdict.reason}`);
  }
  if (verdict.kind === 'storable') {
    if (payloadBytes > payloadBytesMax) throw payloadTooLarge(payloadBytes, payloadBytesMax);
    return null;
  }
  const stored = encodePayload(JSON.parse(Buffer.from(message.payload).toString('utf8')));
  if (stored.length > payloadBytesMax) throw payloadTooLarge(stored.length, payloadBytesMax);
  return stored;
}

/**
 * Checks every rule of the run's messages, in place: a payload to store in another form is
 * replaced by it. Topics and keys are checked where they change (a run's topic is mostly
 * one string, read once); payloads in one pass over the frame. Throws the first refusal.
 */
function checkMessages(context: RouteContext, messages: ReceivedRunMessage[]): void {
  const { payloadBytesMax } = context.server.settings;
  const checker = new JsonTextChecker();
  /** Each topic where it first appears in a run of the same topic, for checkPublish. */
  const topicsAt: [string, number][] = [];
  let lastTopic: string | null = null;
  let lastKey: string | undefined;
  for (let at = 0; at < messages.length; at++) {
    const message = messages[at] as ReceivedRunMessage;
    const { topic, key } = message;
    if (topic !== lastTopic) {
      if (topicProblem(topic, topicRule) !== null) {
        const field = `messages[${at}].topic`;
        throw refusal(topicProblem(topic, { field, reservedAllowed: false }) as MessageProblem);
      }
      topicsAt.push([topic, at]);
      lastTopic = topic;
    }
    if (key !== undefined && key !== lastKey) {
      if (keyProblem(key) !== null) {
        throw refusal(keyProblem(key, `messages[${at}].key`) as MessageProblem);
      }
      lastKey = key;
    }
    const stored = storedPayload(checker, message, at, payloadBytesMax);
    if (stored !== null) message.payload = stored;
  }
  for (const [topic, at] of topicsAt) {
    checkPublish(context.identity, topic, `messages[${at}].topic`);
  }
}

/** An error message cut to what a result carries (1 KiB of UTF-8). */
function resultMessage(message: string): string {
  return Buffer.byteLength(message) <= clientFrameLimits.messageBytesMax
    ? message
    : `${message.slice(0, 300)}…`;
}

function errorResult(context: RouteContext, reason: unknown): RunErrorResult {
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

/**
 * The node's outcomes as the results of a runAnswer, read where they are: what a single
 * POST /v1/broadcast would have answered for each message (its index and term, or its
 * error), without an object per result.
 */
class RunAnswerResults implements RunResults {
  readonly count: number;

  constructor(
    private readonly context: RouteContext,
    private readonly settled: SettledRun,
  ) {
    this.count = settled.count;
  }

  ok(at: number): boolean {
    return this.settled.delivered(at);
  }

  /** A duplicate older than the client's remembered window has no known position. */
  position(at: number): number | null {
    const position = this.settled.position(at);
    return position === null || position < 1 ? null : position;
  }

  term(at: number): number | null {
    const term = this.settled.term(at);
    if (term !== null) return term;
    const position = this.position(at);
    return position === null ? null : termAt(this.context.server.node, position);
  }

  duplicate(at: number): boolean {
    return this.settled.duplicate(at);
  }

  error(at: number): RunErrorResult {
    return errorResult(this.context, this.settled.reason(at));
  }

  /** How many were delivered now, and how many before. */
  counts(): { fresh: number; duplicates: number } {
    const counts = { fresh: 0, duplicates: 0 };
    const { settled } = this;
    for (let at = 0; at < settled.count; at++) {
      if (!settled.delivered(at)) continue;
      if (settled.duplicate(at)) counts.duplicates++;
      else counts.fresh++;
    }
    return counts;
  }
}

/**
 * Checks the run and hands it to the node. Nothing here waits: the run and its messages are
 * not kept while the node works on them (a run lives through a whole round, and so would
 * every message object the frame was read into).
 */
async function runBroadcasts(
  context: RouteContext,
  run: ReceivedRun,
  answer: (results: RunResults) => void,
): Promise<void> {
  checkedSession(run);
  // All or nothing, as a batch: a refused run leaves no gap in its session.
  checkMessages(context, run.messages);
  const sender = senderOf(context, run.nonce === '' ? undefined : run.nonce);
  const { clientId, firstSeq, messages } = run;
  const startedMs = context.server.environment.monotonicMs();
  // The messages were read for this run alone (readReceivedRun): the log may keep them.
  const taken = { clientId, firstSeq, ...sender, messages, messagesKept: true };
  const { node } = context.server;
  const settled =
    node.broadcastRunSettled?.(taken) ??
    node.broadcastRun(taken).then((outcomes) => new SettledOutcomes(outcomes));
  return answerRun(context, settled, startedMs, answer);
}

async function answerRun(
  context: RouteContext,
  settled: Promise<SettledRun>,
  startedMs: number,
  answer: (results: RunResults) => void,
): Promise<void> {
  const outcomes = await context.within(settled);
  const { metrics, environment } = context.server;
  const seconds = (environment.monotonicMs() - startedMs) / 1000;
  const results = new RunAnswerResults(context, outcomes);
  metrics.broadcastsDone(seconds, results.counts());
  if (context.response.answerable) answer(results);
}
