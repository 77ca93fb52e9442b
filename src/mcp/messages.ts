/**
 * Reading the total order for the tools and resources: pages of `GET /v1/messages`, a long
 * poll that returns as soon as something at or after a position is delivered, the recent
 * messages of a topic, and the cluster's status as every node sees it.
 */
import type { Client } from '../client/index.ts';
import { callCluster } from './cluster-calls.ts';

/** Messages one page returns at most: tool results land in a model's context. */
export const readLimitMax = 1_000;
/** A topic page examines at most this many positions (docs/api.md). */
const topicScanPositions = 10_000;
/** `abcast://messages/{topic}` shows at most this many of the latest messages. */
export const recentMessagesMax = 50;
const statusTimeoutMs = 1_500;

export interface MessageView {
  readonly position: number;
  readonly topic: string | null;
  readonly payload: unknown;
  /** Set when the payload is not JSON (sent as bytes through the library). */
  readonly payloadBase64?: string;
  /** The session that sent it, and its seq. */
  readonly client: string;
  readonly seq: number;
  /** The log's clock at this message (ms since the epoch), the same on every node. */
  readonly time: number;
}

export interface MessagePage {
  readonly messages: MessageView[];
  /** The `from` of the next read. */
  readonly next: number;
}

interface WireMessage {
  readonly index: number;
  readonly payload: unknown;
  readonly payloadBase64?: string;
  readonly client: string;
  readonly seq: number;
  readonly topic: string | null;
  readonly time: number;
}

export interface ReadOptions {
  readonly from: number;
  readonly topic?: string | undefined;
  readonly limit: number;
  readonly boundMs: number;
  readonly signal?: AbortSignal | undefined;
}

/** One page from `from` on (with a topic it may be empty while `next` moves on). */
export async function readPage(client: Client, options: ReadOptions): Promise<MessagePage> {
  const query = new URLSearchParams({ from: String(options.from), limit: String(options.limit) });
  if (options.topic !== undefined) query.set('topic', options.topic);
  const page = await callCluster<{ messages: WireMessage[]; next: number }>(client, {
    method: 'GET',
    path: `/v1/messages?${query}`,
    boundMs: options.boundMs,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  return { messages: page.messages.map(messageView), next: page.next };
}

/**
 * Messages from `from` on: what is delivered already, or else the first delivered while
 * waiting, at most `timeoutMs`. With a topic, pages that passed only other topics are read
 * on until the nodes' end, so the wait starts where nothing of the topic is left to read.
 */
export async function waitForMessages(
  client: Client,
  options: ReadOptions & { readonly timeoutMs: number },
): Promise<MessagePage & { readonly timedOut: boolean }> {
  let from = options.from;
  for (;;) {
    const page = await readPage(client, { ...options, from });
    if (page.messages.length > 0) return { ...page, timedOut: false };
    if (page.next <= from) break;
    from = page.next;
  }
  const waiting = new AbortController();
  const timer = setTimeout(() => waiting.abort(), options.timeoutMs);
  const onCancel = () => waiting.abort();
  options.signal?.addEventListener('abort', onCancel, { once: true });
  let passed = from - 1;
  const subscription = client.subscribe({
    from,
    ...(options.topic === undefined ? {} : { topic: options.topic }),
    signal: waiting.signal,
    onProgress: (position) => {
      passed = Math.max(passed, position);
    },
  });
  try {
    const first = await subscription.next();
    if (first.done === true) return { messages: [], next: passed + 1, timedOut: true };
    const message = first.value;
    // The rest of what is delivered by now comes in one page; the node read may lag the
    // stream's, so the streamed message stands in for an empty page.
    const page = await readPage(client, { ...options, from: message.position }).catch(() => null);
    if (page !== null && page.messages[0]?.position === message.position) {
      return { ...page, timedOut: false };
    }
    return {
      messages: [
        {
          position: message.position,
          topic: message.topic,
          payload: message.payload,
          client: message.client,
          seq: message.seq,
          time: message.time,
        },
      ],
      next: message.position + 1,
      timedOut: false,
    };
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onCancel);
    waiting.abort();
    void subscription.return(undefined).catch(() => undefined);
  }
}

/** The latest messages of `topic` among the last positions a topic page can scan. */
export async function recentMessages(
  client: Client,
  topic: string,
  boundMs: number,
): Promise<MessageView[]> {
  const status = await clusterStatus(client);
  const last = status.positions.delivered;
  let from = Math.max(status.positions.first, last - topicScanPositions + 1, 1);
  const found: MessageView[] = [];
  // Each page moves `next` on by at least one position: bounded by the scanned range.
  while (from <= last) {
    const page = await readPage(client, { from, topic, limit: readLimitMax, boundMs });
    found.push(...page.messages);
    if (found.length > recentMessagesMax) found.splice(0, found.length - recentMessagesMax);
    if (page.next <= from) break;
    from = page.next;
  }
  return found;
}

export interface NodeView {
  readonly endpoint: string;
  readonly reachable: boolean;
  readonly id?: string;
  readonly role?: string;
  readonly term?: number;
  readonly leader?: string | null;
  readonly deliveredPosition?: number;
  readonly firstPosition?: number;
}

export interface ClusterStatus {
  readonly leader: string | null;
  readonly term: number | null;
  readonly members: { id: string; address: string | null; voter: boolean }[];
  /** Across the nodes that answered: the furthest delivered, and the oldest still served. */
  readonly positions: { readonly delivered: number; readonly first: number };
  readonly nodes: NodeView[];
}

interface WireStatus {
  readonly id: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly deliveredIndex: number;
  readonly firstIndex: number;
  readonly members: { id: string; address: string | null; voter: boolean }[];
}

/** Every endpoint's `/v1/status`, each within a short deadline; the unreachable say so. */
export async function clusterStatus(client: Client): Promise<ClusterStatus> {
  const nodes = await Promise.all(
    client.settings.endpoints.map(async (endpoint): Promise<NodeView & { raw?: WireStatus }> => {
      const answer = await client.settings
        .exchange({
          method: 'GET',
          url: `${endpoint}/v1/status`,
          headers: { accept: 'application/json' },
          body: null,
          timeoutMs: statusTimeoutMs,
          signal: client.signal,
        })
        .catch(() => null);
      if (answer === null || answer.status !== 200) return { endpoint, reachable: false };
      const raw = JSON.parse(answer.body) as WireStatus;
      return {
        endpoint,
        reachable: true,
        id: raw.id,
        role: raw.role,
        term: raw.term,
        leader: raw.leader,
        deliveredPosition: raw.deliveredIndex,
        firstPosition: raw.firstIndex,
        raw,
      };
    }),
  );
  const answered = nodes.flatMap((node) => (node.raw === undefined ? [] : [node.raw]));
  const newest = answered.reduce<WireStatus | null>(
    (best, one) => (best === null || one.term > best.term ? one : best),
    null,
  );
  return {
    leader: newest?.leader ?? null,
    term: newest?.term ?? null,
    members: newest?.members ?? [],
    positions: {
      delivered: Math.max(0, ...answered.map((one) => one.deliveredIndex)),
      first:
        answered.length === 0 ? 1 : Math.max(1, Math.min(...answered.map((one) => one.firstIndex))),
    },
    nodes: nodes.map(({ raw: _raw, ...node }) => node),
  };
}

function messageView(message: WireMessage): MessageView {
  return {
    position: message.index,
    topic: message.topic,
    payload: message.payload,
    ...(message.payloadBase64 === undefined ? {} : { payloadBase64: message.payloadBase64 }),
    client: message.client,
    seq: message.seq,
    time: message.time,
  };
}
