/** A delivered message as the store keeps it, for tests: fields derived from its position. */
import type { StoredMessage } from '../../src/store/index.ts';

export function storedMessage(
  position: number,
  fields: { readonly topic?: string; readonly logTimeMs?: number; readonly payload?: string } = {},
): StoredMessage {
  const topic = fields.topic ?? 'orders';
  return {
    position,
    index: position,
    term: 1,
    clientId: 'c',
    seq: position,
    topic,
    payload: new TextEncoder().encode(fields.payload ?? `${topic}-${position}`),
    logTimeMs: fields.logTimeMs ?? 1_000 + position,
  };
}
