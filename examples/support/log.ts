/**
 * Reading the log back over HTTP (GET /v1/messages), to check what was delivered against
 * what the clients were told: the independent witness of an example's checks.
 */
import { assert } from '../../src/util/assert.ts';
import { type Cluster, fetchStatus } from './cluster.ts';
import { ExampleError, pollUntil } from './errors.ts';

/**
 * A message exactly as GET /v1/messages gives it (docs/api.md): read straight off the wire,
 * not through the SDK, so its position is the wire's `index`.
 */
export interface LoggedMessage {
  readonly index: number;
  readonly term: number;
  readonly payload: unknown;
  readonly client: string;
  readonly seq: number;
  readonly topic: string | null;
  readonly time: number;
}

const pageLimitCount = 1_000;
const requestTimeoutMs = 5_000;
/** Enough pages for 10 million positions; a log longer than that is not an example's. */
const pageCountMax = 10_000;
/** How long a restarted node may take to deliver everything before it is audited. */
const catchUpTimeoutMs = 30_000;

/** Every message of `topic` from `fromIndex` through `throughIndex`, as `endpoint` serves them. */
export async function readTopic(
  endpoint: string,
  topic: string,
  range: { readonly fromIndex: number; readonly throughIndex: number },
): Promise<LoggedMessage[]> {
  const { fromIndex, throughIndex } = range;
  assert(Number.isSafeInteger(fromIndex) && fromIndex >= 1, 'positions start at 1');
  assert(Number.isSafeInteger(throughIndex) && throughIndex >= 0, 'a position is an integer');
  const messages: LoggedMessage[] = [];
  let from = fromIndex;
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
    const body = (await response.json()) as { messages: LoggedMessage[]; next: number };
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

/**
 * Each node's copy of the messages of `topics` (merged in index order) from `fromIndex`
 * through the cluster's barrier now, read once the node has delivered that far.
 */
export async function readLogs(
  cluster: Cluster,
  topics: readonly string[],
  fromIndex: number,
): Promise<LoggedMessage[][]> {
  const throughIndex = await barrierOf(cluster.endpoints[0] as string);
  return Promise.all(
    cluster.endpoints.map(async (endpoint) => {
      await pollUntil(
        async () =>
          ((await fetchStatus(endpoint))?.deliveredIndex ?? 0) >= throughIndex || undefined,
        `${endpoint} to deliver through ${throughIndex}`,
        catchUpTimeoutMs,
      );
      const perTopic = await Promise.all(
        topics.map((topic) => readTopic(endpoint, topic, { fromIndex, throughIndex })),
      );
      return perTopic.flat().sort((a, b) => a.index - b.index);
    }),
  );
}
