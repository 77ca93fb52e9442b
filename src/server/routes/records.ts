/**
 * GET /v1/records?from=N&limit=M: delivered messages as the message store keeps them
 * (checksummed records, in base64): what a node backfilling its store fetches from its
 * peers (src/server/backfill.ts), and what it forwards a read of a position it lacks to.
 * Every topic: a reader limited to some topics may not call it.
 */
import { checkSubscribe } from '../access.ts';
import type { RouteContext } from '../context.ts';
import { encodeRecordsPage } from '../peers.ts';
import { sendJson } from '../respond.ts';
import { queryParameters } from '../validate.ts';
import { capPageBytes, pageParameters } from './messages.ts';

/**
 * Records per page at most: backfill moves millions of small messages, so pages are larger
 * than /v1/messages'; `messagesPageBytesMax` bounds them in bytes all the same.
 */
export const recordsLimitMax = 16_384;

export async function recordsRoute(context: RouteContext): Promise<void> {
  const { node, settings } = context.server;
  const query = queryParameters(context.url, ['from', 'limit']);
  const { from, limit } = pageParameters(query, {
    fallback: recordsLimitMax,
    max: recordsLimitMax,
  });
  checkSubscribe(context.identity, undefined);
  const messages = node.read(from, limit);
  const page = capPageBytes(
    { messages, next: from + messages.length },
    settings.messagesPageBytesMax,
  );
  sendJson(context.response, 200, encodeRecordsPage(from, page.messages));
}
