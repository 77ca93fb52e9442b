/**
 * The digest of delivered messages that GET /v1/digest answers and backfill checks pages
 * against: each message as position, client, seq, topic and payload with their lengths, and
 * its key (when it has one) after them, so a digest of messages without keys is as before.
 */
import type { DeliveredMessage } from '../broadcast/deliveries.ts';
import { type Sha256Hasher, sha256Hasher } from '../util/digest.ts';

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

export function hashMessage(hash: Sha256Hasher, message: DeliveredMessage): void {
  const client = Buffer.from(message.clientId, 'utf8');
  const topic = Buffer.from(message.topic, 'utf8');
  hash.update(f64(message.position));
  hash.update(u32(client.byteLength)).update(client);
  hash.update(f64(message.seq));
  hash.update(u32(topic.byteLength)).update(topic);
  hash.update(u32(message.payload.byteLength)).update(message.payload);
  if (message.key !== undefined) {
    const key = Buffer.from(message.key, 'utf8');
    hash.update(u32(key.byteLength)).update(key);
  }
  if (message.compacted === true) hash.update(Buffer.from('compacted'));
}

/** The digest GET /v1/digest answers for exactly `messages` (dense, in order). */
export function digestOfMessages(messages: readonly DeliveredMessage[]): string {
  const hash = sha256Hasher();
  for (const message of messages) hashMessage(hash, message);
  return hash.hex();
}
