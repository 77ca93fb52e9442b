/**
 * GET /v1/digest?from=N&count=M: a SHA-256 over the delivered messages at positions
 * from … from + count - 1 (fewer if fewer are delivered yet), each as position, client, seq,
 * topic and payload with their lengths, so that two nodes that delivered the same sequence
 * answer the same digest and any difference in any field changes it. `abcast verify`
 * compares nodes range by range and narrows a mismatch down to its first position.
 */
import { sha256Hasher } from '../../util/digest.ts';
import type { RouteContext } from '../context.ts';
import { hashMessage } from '../message-digest.ts';
import { sendJson } from '../respond.ts';
import { integerParameter, queryParameters } from '../validate.ts';

/** Positions one request may cover: a few megabytes of hashing, a few milliseconds. */
export const digestCountMax = 65_536;
/** Positions read from the node at a time. */
const readChunkCount = 1024;

export async function digestRoute(context: RouteContext): Promise<void> {
  const { node } = context.server;
  const query = queryParameters(context.url, ['from', 'count']);
  const from = integerParameter(query.get('from'), 'from', {
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    fallback: 1,
  });
  const count = integerParameter(query.get('count'), 'count', {
    min: 1,
    max: digestCountMax,
    fallback: digestCountMax,
  });
  const hash = sha256Hasher();
  let covered = 0;
  while (covered < count) {
    const chunk = node.read(from + covered, Math.min(readChunkCount, count - covered));
    for (const message of chunk) hashMessage(hash, message);
    covered += chunk.length;
    if (chunk.length === 0) break;
  }
  sendJson(context.response, 200, {
    from,
    count: covered,
    next: from + covered,
    digest: hash.hex(),
  });
}
