/**
 * GET /v1/barrier: a linearizable read index (ReadIndex, Raft thesis §6.4). The answer
 * `{"index": n}` comes once this node has delivered up to n, and n covers every message
 * acknowledged anywhere before the request arrived: a reader that has seen every position up
 * to n (on any node) has seen everything a linearizable read must see.
 */
import type { RouteContext } from '../context.ts';
import { sendJson } from '../respond.ts';
import { queryParameters } from '../validate.ts';

export async function barrierRoute(context: RouteContext): Promise<void> {
  queryParameters(context.url, []);
  const index = await context.within(context.server.node.barrier());
  sendJson(context.response, 200, { index });
}
