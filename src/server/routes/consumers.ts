/**
 * Durable consumers: named cursors kept in the log (src/broadcast/stream-state.ts), so any
 * node resumes a consumer where it acknowledged last.
 *
 * - GET /v1/consumers: every consumer with its cursor and lag (positions delivered after it).
 * - GET /v1/consumers/:name: one of them (404 when unknown).
 * - POST /v1/consumers/:name/ack {"index": N}: everything up to N is processed. Committed
 *   through the log; answers once applied with the cursor (which never moves back).
 * - DELETE /v1/consumers/:name: forgets it.
 *
 * `GET /v1/stream?consumer=NAME` starts after the cursor (stream.ts).
 */
import type { ConsumerCursor } from '../../broadcast/stream-state.ts';
import type { RouteContext } from '../context.ts';
import { HttpError, invalidArgument } from '../errors.ts';
import { sendJson } from '../respond.ts';
import { queryParameters, rejectUnknownFields } from '../validate.ts';

function wireConsumer(cursor: ConsumerCursor, lastPosition: number) {
  return {
    name: cursor.name,
    index: cursor.position,
    lag: Math.max(0, lastPosition - cursor.position),
    ackTime: cursor.ackLogTimeMs,
  };
}

export async function listConsumersRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const { node } = context.server;
  const lastPosition = node.lastPosition;
  const consumers = node.consumers().map((cursor) => wireConsumer(cursor, lastPosition));
  sendJson(context.response, 200, { consumers, deliveredIndex: lastPosition });
}

export async function getConsumerRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const { node } = context.server;
  const name = context.params.name as string;
  const cursor = node.consumer(name);
  if (cursor === undefined) {
    throw new HttpError(404, 'not_found', `no consumer ${name}`, { name });
  }
  sendJson(context.response, 200, wireConsumer(cursor, node.lastPosition));
}

export async function ackConsumerRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const body = await context.readJson({ emptyAllowed: false });
  rejectUnknownFields(body, ['index']);
  const position = body.index;
  if (typeof position !== 'number' || !Number.isSafeInteger(position) || position < 0) {
    throw invalidArgument('index', 'index must be a position >= 0');
  }
  const { node } = context.server;
  const cursor = await context.within(node.ackConsumer(context.params.name as string, position));
  sendJson(context.response, 200, wireConsumer(cursor, node.lastPosition));
}

export async function deleteConsumerRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  await context.within(context.server.node.deleteConsumer(context.params.name as string));
  sendJson(context.response, 200, {});
}
