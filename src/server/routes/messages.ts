/**
 * GET /v1/messages?from=N&limit=M[&topic=T]: one page of delivered messages in order, and
 * `next`, the position to ask for next. With a topic, a page examines at most
 * `messagesScanMax` positions, so it may hold fewer than `limit` messages (even none) while
 * `next` still moves on.
 */
import type { DeliveredMessage } from '../../broadcast/deliveries.ts';
import { checkSubscribe } from '../access.ts';
import type { RouteContext, ServedNode } from '../context.ts';
import { toWireMessage } from '../messages.ts';
import { sendJson } from '../respond.ts';
import { integerParameter, queryParameters, topicParameter } from '../validate.ts';

/** Positions read from the node at a time while filtering by topic. */
const scanChunkCount = 1024;

interface Page {
  readonly messages: DeliveredMessage[];
  readonly next: number;
}

function readByTopic(
  node: ServedNode,
  request: { from: number; limit: number; topic: string; scanMax: number },
): Page {
  const messages: DeliveredMessage[] = [];
  let cursor = request.from;
  while (messages.length < request.limit && cursor - request.from < request.scanMax) {
    const chunkCount = Math.min(scanChunkCount, request.scanMax - (cursor - request.from));
    const chunk = node.read(cursor, chunkCount);
    for (const message of chunk) {
      cursor = message.position + 1;
      if (message.topic === request.topic) messages.push(message);
      if (messages.length === request.limit) break;
    }
    if (chunk.length < chunkCount) break; // the end of what is delivered
  }
  return { messages, next: cursor };
}

/**
 * Cuts a page once its payloads pass `bytesMax`, keeping one message at least, so that a
 * page of large messages is not a response of gigabytes; `next` then resumes after the cut.
 */
function capPageBytes(page: Page, bytesMax: number): Page {
  let bytes = 0;
  for (let count = 0; count < page.messages.length; count++) {
    const message = page.messages[count] as DeliveredMessage;
    bytes += message.payload.byteLength;
    if (bytes > bytesMax && count > 0) {
      const last = page.messages[count - 1] as DeliveredMessage;
      return { messages: page.messages.slice(0, count), next: last.position + 1 };
    }
  }
  return page;
}

export async function messagesRoute(context: RouteContext): Promise<void> {
  const { node, settings } = context.server;
  const query = queryParameters(context.url, ['from', 'limit', 'topic']);
  const from = integerParameter(query.get('from'), 'from', {
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    fallback: 1,
  });
  const limit = integerParameter(query.get('limit'), 'limit', {
    min: 1,
    max: settings.messagesLimitMax,
    fallback: settings.messagesLimitDefault,
  });
  const topic = topicParameter(query);
  checkSubscribe(context.identity, topic);
  let page: Page;
  if (topic === undefined) {
    const messages = node.read(from, limit);
    page = { messages, next: from + messages.length };
  } else {
    page = readByTopic(node, { from, limit, topic, scanMax: settings.messagesScanMax });
  }
  page = capPageBytes(page, settings.messagesPageBytesMax);
  sendJson(context.response, 200, { messages: page.messages.map(toWireMessage), next: page.next });
}
