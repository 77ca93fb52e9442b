/**
 * GET /v1/digest?from=N&count=M: a SHA-256 over the delivered messages at positions
 * from … from + count - 1 (fewer if fewer are delivered yet), each as position, client, seq,
 * topic and payload with their lengths, so that two nodes that delivered the same sequence
 * answer the same digest and any difference in any field changes it. `abcast verify`
 * compares nodes range by range and narrows a mismatch down to its first position.
 */
import type { DeliveredMessage } from '../../broadcast/deliveries.ts';
import { type Sha256Hasher, sha256Hasher } from '../../util/digest.ts';
import type { RouteContext } from '../context.ts';
import { sendJson } from '../respond.ts';
import { integerParameter, queryParameters } from '../validate.ts';

/** Positions one request may cover: a few megabytes of hashing, a few milliseconds. */
export const digestCountMax = 65_536;
/** Positions read from the node at a time. */
const readChunkCount = 1024;

const u32 = (value: number): Buffer => {
  const bytes = Buffer.allocUnsafe(4);
  bytes.writeUInt32BE(value, 0);
  return bytes;
};

const f64 = (value: number): Buffer => {
  const bytes = Buffer.allocUnsafe(8);
  bytes.writeDoubleBE(value, 0);
  return bytes;
};

function hashMessage(hash: Sha256Hasher, message: DeliveredMessage): void {
  const client = Buffer.from(message.clientId, 'utf8');
  const topic = Buffer.from(message.topic, 'utf8');
  hash.update(f64(message.position));
  hash.update(u32(client.byteLength)).update(client);
  hash.update(f64(message.seq));
  hash.update(u32(topic.byteLength)).update(topic);
  hash.update(u32(message.payload.byteLength)).update(message.payload);
}

/** The digest this route answers for exactly `messages` (dense, in order). */
export function digestOfMessages(messages: readonly DeliveredMessage[]): string {
  const hash = sha256Hasher();
  for (const message of messages) hashMessage(hash, message);
  return hash.hex();
}

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
