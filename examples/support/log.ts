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
/** Enough pages for 10 million positions; a log longer than that is not an example's. */
const pageCountMax = 10_000;
/** How long a restarted node may take to deliver everything before it is audited. */
const catchUpTimeoutMs = 30_000;
/** The pause after a failed connection, so that a node restarting is not asked in a spin. */
const retryPauseMs = 100;

/**
 * How long one GET of the log may go unanswered before it is sent again, and how long it may
 * take in all. A full page is 1,000 messages (about 230 KB of JSON), and the checks read six
 * at once from three nodes: on a loaded 2-core machine one can take longer than the first
 * bound, so each attempt's bound doubles (capped by the time left). A node that never answers
 * still fails the read once `totalTimeoutMs` has passed.
 */
export interface LogReadBounds {
  readonly firstAttemptTimeoutMs: number;
  readonly totalTimeoutMs: number;
}

export const logReadBounds: LogReadBounds = {
  firstAttemptTimeoutMs: 5_000,
  totalTimeoutMs: 30_000,
};

/** Every message of `topic` from `fromIndex` through `throughIndex`, as `endpoint` serves them. */
export async function readTopic(
  endpoint: string,
  topic: string,
  range: {
    readonly fromIndex: number;
    readonly throughIndex: number;
    readonly bounds: LogReadBounds;
  },
): Promise<LoggedMessage[]> {
  const { fromIndex, throughIndex, bounds } = range;
  assert(Number.isSafeInteger(fromIndex) && fromIndex >= 1, 'positions start at 1');
  assert(Number.isSafeInteger(throughIndex) && throughIndex >= 0, 'a position is an integer');
  const messages: LoggedMessage[] = [];
  let from = fromIndex;
  for (let page = 0; from <= throughIndex; page++) {
    if (page >= pageCountMax) {
      throw new ExampleError('invalid_argument', `the log of ${topic} is too long to read back`);
    }
    const query = new URLSearchParams({ from: String(from), limit: String(pageLimitCount), topic });
    const body = await getJson<{ messages: LoggedMessage[]; next: number }>(
      `${endpoint}/v1/messages?${query}`,
      `the page of ${topic} from ${from}`,
      bounds,
    );
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
export async function barrierOf(endpoint: string, bounds: LogReadBounds): Promise<number> {
  const { index } = await getJson<{ index: number }>(
    `${endpoint}/v1/barrier`,
    'the barrier',
    bounds,
  );
  assert(Number.isSafeInteger(index), 'a barrier is a position');
  return index;
}

/**
 * GETs `url`'s JSON body, sending the GET again when an attempt goes unanswered within its
 * bound or cannot connect: these GETs only read, so a second one is harmless. An answer other
 * than 2xx is the node's word, not retried. Once `bounds.totalTimeoutMs` has passed, throws
 * `timeout` naming `what`, the URL and how the last attempts failed.
 */
async function getJson<T>(url: string, what: string, bounds: LogReadBounds): Promise<T> {
  const { firstAttemptTimeoutMs, totalTimeoutMs } = bounds;
  assert(firstAttemptTimeoutMs > 0, 'an attempt has time to be answered');
  assert(totalTimeoutMs >= firstAttemptTimeoutMs, 'the read has time for one attempt');
  const deadlineMs = Date.now() + totalTimeoutMs;
  const misses: string[] = [];
  for (let attemptTimeoutMs = firstAttemptTimeoutMs; ; attemptTimeoutMs *= 2) {
    const leftMs = deadlineMs - Date.now();
    if (leftMs <= 0) {
      throw new ExampleError(
        'timeout',
        `timed out reading ${what} from ${url}: no answer within ${totalTimeoutMs} ms over ${misses.length} attempts (last: ${misses.slice(-3).join('; ')})`,
        { url, attemptCount: misses.length },
      );
    }
    const boundMs = Math.min(attemptTimeoutMs, leftMs);
    const signal = AbortSignal.timeout(boundMs);
    let answer: { readonly status: number; readonly text: string };
    try {
      const response = await fetch(url, { signal });
      answer = { status: response.status, text: await response.text() };
    } catch (error) {
      misses.push(signal.aborted ? `no answer within ${boundMs} ms` : reasonOf(error));
      if (!signal.aborted) await new Promise((resume) => setTimeout(resume, retryPauseMs));
      continue;
    }
    if (answer.status < 200 || answer.status > 299) {
      throw new ExampleError('timeout', `${url} answered ${answer.status} to ${what}`, {
        body: answer.text,
      });
    }
    return JSON.parse(answer.text) as T;
  }
}

/** Why fetch failed: it hides the reason (ECONNREFUSED, ECONNRESET) in `cause`. */
function reasonOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
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
  const throughIndex = await barrierOf(cluster.endpoints[0] as string, logReadBounds);
  return Promise.all(
    cluster.endpoints.map(async (endpoint) => {
      await pollUntil(
        async () =>
          ((await fetchStatus(endpoint))?.deliveredIndex ?? 0) >= throughIndex || undefined,
        `${endpoint} to deliver through ${throughIndex}`,
        catchUpTimeoutMs,
      );
      const perTopic = await Promise.all(
        topics.map((topic) =>
          readTopic(endpoint, topic, { fromIndex, throughIndex, bounds: logReadBounds }),
        ),
      );
      return perTopic.flat().sort((a, b) => a.index - b.index);
    }),
  );
}
