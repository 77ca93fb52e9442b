/**
 * Messages on the wire. A payload travels through the log as the UTF-8 text of one
 * `JSON.stringify` of the value the caller sent, and comes back as that JSON value. Payloads
 * broadcast through the library as arbitrary bytes are not JSON: they come back as
 * `"payload": null` with the bytes in `payloadBase64`, so no message is ever hidden.
 */
import type { DeliveredMessage } from '../broadcast/deliveries.ts';
import { assert } from '../util/assert.ts';

export interface WireMessage {
  /** The message's position in the total order: dense from 1, the same on every node. */
  readonly index: number;
  /** The term of the log entry that carried it. */
  readonly term: number;
  readonly payload: unknown;
  readonly payloadBase64?: string;
  /** Null for a message sent without a session. */
  readonly client: string | null;
  readonly seq: number | null;
  readonly topic: string | null;
  /**
   * The cluster's clock as recorded in the log, in ms since the Unix epoch: non-decreasing
   * along positions and the same on every node (the leaders' wall clocks, made monotonic).
   */
  readonly time: number;
  /** The message's key; absent when it has none. */
  readonly key?: string;
  /**
   * True for a position of a compacted topic whose message a newer one with the same key
   * replaced: its payload is gone (null), its position stays.
   */
  readonly compacted?: true;
}

const encoder = new TextEncoder();
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The stored form of a JSON value: its compact JSON text in UTF-8. */
export function encodePayload(value: unknown): Uint8Array {
  const text = JSON.stringify(value);
  assert(typeof text === 'string', 'a value parsed from JSON serialises to JSON');
  return encoder.encode(text);
}

function decodePayload(bytes: Uint8Array): { payload: unknown; payloadBase64?: string } {
  try {
    return { payload: JSON.parse(utf8.decode(bytes)) };
  } catch {
    return { payload: null, payloadBase64: Buffer.from(bytes).toString('base64') };
  }
}

export function toWireMessage(message: DeliveredMessage): WireMessage {
  assert(Number.isSafeInteger(message.position) && message.position >= 1, 'positions start at 1');
  const anonymous = message.clientId === '';
  return {
    index: message.position,
    term: message.term,
    ...decodePayload(message.payload),
    client: anonymous ? null : message.clientId,
    seq: anonymous ? null : message.seq,
    topic: message.topic === '' ? null : message.topic,
    time: message.logTimeMs,
    ...(message.key === undefined ? {} : { key: message.key }),
    ...(message.compacted === true ? { compacted: true as const, payload: null } : {}),
  };
}
