/**
 * GET /v1/messages?from=N&limit=M[&topic=T]: one page of delivered messages in order, and
 * `next`, the position to ask for next. With a topic, a page examines at most
 * `messagesScanMax` positions, so it may hold fewer than `limit` messages (even none) while
 * `next` still moves on.
 */
import type { DeliveredMessage } from '../../broadcast/deliveries.ts';
import { BroadcastError } from '../../broadcast/errors.ts';
import { checkSubscribe } from '../access.ts';
import type { RouteContext } from '../context.ts';
import { toWireMessage } from '../messages.ts';
import { sendJson } from '../respond.ts';
import { integerParameter, queryParameters, topicParameter } from '../validate.ts';

interface Page {
  readonly messages: DeliveredMessage[];
  readonly next: number;
}

/**
 * Cuts a page once its payloads pass `bytesMax`, keeping one message at least, so that a
 * page of large messages is not a response of gigabytes; `next` then resumes after the cut.
 */
export function capPageBytes(page: Page, bytesMax: number): Page {
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

/** The caller's credentials, so that a peer checks the same identity. */
export function forwardedHeaders(context: RouteContext): Record<string, string> {
  const authorization = context.request.headers.authorization;
  return authorization === undefined ? {} : { authorization };
}

/**
 * This node lacks the page (it is backfilling): the same request goes to a peer, whose
 * answer is relayed as it is. False when no peer answered.
 */
async function forwardToPeer(context: RouteContext): Promise<boolean> {
  const peers = context.server.peerReads ?? null;
  if (peers === null) return false;
  const answer = await context.within(
    peers.get(`${context.url.pathname}${context.url.search}`, {
      signal: context.signal,
      headers: forwardedHeaders(context),
    }),
  );
  if (answer === null) return false;
  sendJson(context.response, answer.status, JSON.parse(answer.body), {
    'x-abcast-served-by': answer.peer,
  });
  return true;
}

/** `from` (default 1) and `limit` (at most `limits.max`) of a page's query. */
export function pageParameters(
  query: ReadonlyMap<string, string>,
  limits: { readonly fallback: number; readonly max: number },
): { from: number; limit: number } {
  const from = integerParameter(query.get('from'), 'from', {
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    fallback: 1,
  });
  const limit = integerParameter(query.get('limit'), 'limit', {
    min: 1,
    max: limits.max,
    fallback: limits.fallback,
  });
  return { from, limit };
}

export async function messagesRoute(context: RouteContext): Promise<void> {
  const { node, settings } = context.server;
  const query = queryParameters(context.url, ['from', 'limit', 'topic']);
  const { from, limit } = pageParameters(query, {
    fallback: settings.messagesLimitDefault,
    max: settings.messagesLimitMax,
  });
  const topic = topicParameter(query);
  checkSubscribe(context.identity, topic);
  let page: Page;
  try {
    if (topic === undefined) {
      const messages = node.read(from, limit);
      page = { messages, next: from + messages.length };
    } else {
      // The store's topic index skips the other topics' positions without reading them.
      page = node.readTopic(topic, from, limit, settings.messagesScanMax);
    }
  } catch (error) {
    if (!(error instanceof BroadcastError) || error.code !== 'not_held') throw error;
    if (await forwardToPeer(context)) return;
    throw error;
  }
  page = capPageBytes(page, settings.messagesPageBytesMax);
  sendJson(context.response, 200, { messages: page.messages.map(toWireMessage), next: page.next });
}
