/**
 * Helpers for SDK tests: every delivered message of a node, read page by page off the wire
 * and named as the SDK names them (the wire's `index` is `position`).
 */
import type { Message } from '../../src/client/index.ts';
import { call } from '../server/cluster.ts';

export async function allMessages(url: string): Promise<Message[]> {
  const messages: Message[] = [];
  for (let from = 1; messages.length < 1_000_000; ) {
    const answer = await call(`${url}/v1/messages?from=${from}&limit=1000`);
    if (answer.status !== 200) throw new Error(`/v1/messages answered ${answer.status}`);
    if (answer.body.messages.length === 0) return messages;
    for (const { index, ...fields } of answer.body.messages as { index: number }[]) {
      messages.push({ position: index, ...fields } as Message);
    }
    from = answer.body.next;
  }
  throw new Error('too many messages');
}

/** Checks that `client`'s seqs 1..count each appear exactly once, at dense positions. */
export function checkExactlyOnce(
  messages: readonly Message[],
  client: string,
  count: number,
): string | null {
  for (const [at, message] of messages.entries()) {
    if (message.position !== at + 1) return `position ${message.position} at place ${at + 1}`;
  }
  const seqs = messages.filter((message) => message.client === client).map((m) => m.seq);
  if (seqs.length !== count) return `${seqs.length} messages of ${client}, expected ${count}`;
  const sorted = [...seqs].sort((a, b) => a - b);
  for (const [at, seq] of sorted.entries()) if (seq !== at + 1) return `seq ${seq} at ${at + 1}`;
  return null;
}
