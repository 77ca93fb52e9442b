/**
 * Reading the log back over HTTP (GET /v1/messages), to check what was delivered against
 * what the clients were told: the independent witness of an example's checks.
 */
import type { Message } from '../../src/client/index.ts';
import { assert } from '../../src/util/assert.ts';
import { ExampleError } from './errors.ts';

const pageLimitCount = 1_000;
const requestTimeoutMs = 5_000;
/** Enough pages for 10 million positions; a log longer than that is not an example's. */
const pageCountMax = 10_000;

/** Every message of `topic` from position 1 up to `throughIndex`, as `endpoint` serves them. */
export async function readTopic(
  endpoint: string,
  topic: string,
  throughIndex: number,
): Promise<Message[]> {
  assert(Number.isSafeInteger(throughIndex) && throughIndex >= 0, 'a position is an integer');
  const messages: Message[] = [];
  let from = 1;
  for (let page = 0; from <= throughIndex; page++) {
    if (page >= pageCountMax) {
      throw new ExampleError('invalid_argument', `the log of ${topic} is too long to read back`);
    }
    const query = new URLSearchParams({ from: String(from), limit: String(pageLimitCount), topic });
    const response = await fetch(`${endpoint}/v1/messages?${query}`, {
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    if (!response.ok) {
      throw new ExampleError('timeout', `${endpoint} answered ${response.status} to /v1/messages`, {
        body: await response.text(),
      });
    }
    const body = (await response.json()) as { messages: Message[]; next: number };
    for (const message of body.messages) {
      if (message.index <= throughIndex) messages.push(message);
    }
    if (body.next <= from) {
      // Nothing more delivered on this node yet: it has not reached throughIndex.
      throw new ExampleError('timeout', `${endpoint} has not delivered up to ${throughIndex}`);
    }
    from = body.next;
  }
  return messages;
}

/** The node's GET /v1/barrier: a position covering everything acknowledged before it. */
export async function barrierOf(endpoint: string): Promise<number> {
  const response = await fetch(`${endpoint}/v1/barrier`, {
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  if (!response.ok) throw new ExampleError('timeout', `${endpoint} answered ${response.status}`);
  const { index } = (await response.json()) as { index: number };
  assert(Number.isSafeInteger(index), 'a barrier is a position');
  return index;
}
