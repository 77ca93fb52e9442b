/**
 * What simulated clients send: each message's topic and payload are a pure function of
 * (client, sequence, salt), so the checkers can recompute what a client proposed and tell an
 * invented or corrupted message from a real one without storing every payload.
 */
import type { ClientMessage } from '../broadcast/batch.ts';
import { assert, assertSafeNatural } from '../util/assert.ts';
import { finish32, mix32 } from './hash.ts';

/** Simulated clients are numbered from 0; the batch format names them by string. */
export function clientName(clientIndex: number): string {
  assertSafeNatural(clientIndex, 'clientIndex');
  return `c${clientIndex}`;
}

const topics = ['', 'orders', 'audit'] as const;

export function messageFor(
  clientIndex: number,
  sequence: number,
  salt: number,
  payloadBytesMax: number,
): ClientMessage {
  assert(Number.isSafeInteger(sequence) && sequence >= 1, 'sequences start at 1');
  assertSafeNatural(payloadBytesMax, 'payloadBytesMax');
  let state = finish32(mix32(mix32(salt, clientIndex), sequence));
  const topic = topics[state % topics.length] as string;
  state = finish32(state + 1);
  const length = state % (payloadBytesMax + 1);
  const payload = new Uint8Array(length);
  for (let offset = 0; offset < length; offset++) {
    if ((offset & 3) === 0) state = finish32(state + offset + 1);
    payload[offset] = (state >>> ((offset & 3) * 8)) & 0xff;
  }
  return { clientId: clientName(clientIndex), seq: sequence, topic, payload };
}

export function sameBytes(left: Uint8Array, right: Uint8Array): boolean {
  if (left.length !== right.length) return false;
  for (let offset = 0; offset < left.length; offset++) {
    if (left[offset] !== right[offset]) return false;
  }
  return true;
}

/** The client index behind a simulated client's name, or null for a name no client has. */
export function clientIndexOf(clientId: string): number | null {
  if (clientId.length < 2 || clientId[0] !== 'c') return null;
  const digits = clientId.slice(1);
  if (!/^(0|[1-9][0-9]{0,6})$/.test(digits)) return null;
  return Number(digits);
}
