/**
 * Three real nodes in this process (TCP on 127.0.0.1, temp data dirs), an HTTP server on
 * each, and small helpers to call them with Node's built-in fetch.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { BroadcastNode } from '../../src/broadcast/node.ts';
import { type StartNodeOptions, startNode } from '../../src/broadcast/start.ts';
import {
  createHttpServer,
  type HttpServer,
  type HttpServerOptions,
} from '../../src/server/http.ts';
import { freePorts, waitFor } from '../support/ports.ts';

export interface ClusterMember {
  readonly id: string;
  readonly node: BroadcastNode;
  readonly http: HttpServer;
  readonly url: string;
}

export interface HttpCluster {
  readonly members: readonly ClusterMember[];
  readonly peers: Readonly<Record<string, string>>;
  member(id: string): ClusterMember;
  leader(): Promise<ClusterMember>;
  follower(): Promise<ClusterMember>;
  /** Stops one node's runtime (its HTTP server stays up); once only. */
  stopNode(id: string): Promise<void>;
  close(): Promise<void>;
}

export type ServerOverrides = Partial<Omit<HttpServerOptions, 'node' | 'logger' | 'peers'>>;

export const logger = pino({ level: 'silent' });

export async function startHttpCluster(
  overrides: ServerOverrides = {},
  nodeOverrides: Partial<
    Pick<StartNodeOptions, 'retention' | 'storeSegmentBytesMax' | 'requestTimeoutMs'>
  > = {},
): Promise<HttpCluster> {
  const root = await mkdtemp(join(tmpdir(), 'abcast-http-'));
  const ports = await freePorts(3);
  const ids = ['n1', 'n2', 'n3'];
  const peers = Object.fromEntries(ids.map((id, at) => [id, `127.0.0.1:${ports[at]}`]));
  const members: ClusterMember[] = [];
  const stopped = new Set<string>();
  const stopNode = async (id: string) => {
    if (stopped.has(id)) return;
    stopped.add(id);
    await members.find((member) => member.id === id)?.node.close();
  };
  const close = async () => {
    for (const member of members) await member.http.close();
    for (const member of members) await stopNode(member.id);
    await rm(root, { recursive: true, force: true });
  };
  try {
    for (const id of ids) {
      const node = await startNode({
        id,
        dataDir: join(root, id),
        listen: peers[id]!,
        peers,
        logger,
        clusterId: 'http-test',
        segmentBytesMax: 1 << 20,
        ...nodeOverrides,
      });
      const http = createHttpServer({ node, logger, peers, ...overrides });
      members.push({ id, node, http, url: await http.listen('127.0.0.1:0') });
    }
  } catch (error) {
    await close();
    throw error;
  }
  const leader = async () => {
    let found: ClusterMember | undefined;
    await waitFor(() => {
      found = members.find((member) => member.node.status().role === 'leader');
      return found !== undefined && members.every((m) => m.node.status().leaderId === found!.id);
    }, 'a leader known to every node');
    return found!;
  };
  return {
    members,
    peers,
    member: (id) => members.find((member) => member.id === id)!,
    leader,
    stopNode,
    follower: async () => {
      const current = await leader();
      return members.find((member) => member.id !== current.id)!;
    },
    close,
  };
}

export interface JsonAnswer {
  readonly status: number;
  readonly headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: tests read answers field by field and assert them
  readonly body: any;
}

export async function call(
  url: string,
  init: {
    method?: string;
    body?: unknown;
    rawBody?: string | Uint8Array<ArrayBuffer>;
    headers?: Record<string, string>;
  } = {},
): Promise<JsonAnswer> {
  const body = init.rawBody ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
  const response = await fetch(url, {
    method: init.method ?? (body === undefined ? 'GET' : 'POST'),
    headers: { 'content-type': 'application/json', ...init.headers },
    body,
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? null : JSON.parse(text),
  };
}

/** POSTs /v1/broadcast. */
export function broadcast(url: string, body: unknown): Promise<JsonAnswer> {
  return call(`${url}/v1/broadcast`, { method: 'POST', body });
}

/** One Server-Sent Events block: a message event, an error event, or a comment. */
export interface StreamEvent {
  readonly id: string | null;
  readonly event: string | null;
  readonly data: string | null;
  readonly comment: string | null;
  readonly retry: string | null;
}

function parseBlock(block: string): StreamEvent {
  const fields: Record<string, string> = {};
  let comment: string | null = null;
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) comment = line.slice(1).trim();
    else {
      const colon = line.indexOf(':');
      const name = colon < 0 ? line : line.slice(0, colon);
      fields[name] = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    }
  }
  return {
    id: fields.id ?? null,
    event: fields.event ?? null,
    data: fields.data ?? null,
    comment,
    retry: fields.retry ?? null,
  };
}

export interface EventReader {
  readonly status: number;
  readonly headers: Headers;
  /** The next block, comments included; fails after `timeoutMs`. */
  next(timeoutMs?: number): Promise<StreamEvent>;
  /** The next message or error event (skipping comments, `retry:` and progress events). */
  nextMessage(timeoutMs?: number): Promise<StreamEvent>;
  close(): void;
}

export async function openEvents(
  url: string,
  headers: Record<string, string> = {},
): Promise<EventReader> {
  const controller = new AbortController();
  const response = await fetch(url, { headers, signal: controller.signal });
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  const queue: StreamEvent[] = [];
  const fill = async () => {
    while (queue.length === 0) {
      const { value, done } = await reader.read();
      if (done) throw new Error('the event stream ended');
      buffer += value;
      for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
        queue.push(parseBlock(buffer.slice(0, cut)));
        buffer = buffer.slice(cut + 2);
      }
    }
    return queue.shift()!;
  };
  const next = (timeoutMs = 10_000) => withTimeout(fill(), timeoutMs, 'the next event');
  return {
    status: response.status,
    headers: response.headers,
    next,
    nextMessage: async (timeoutMs = 10_000) => {
      for (;;) {
        const event = await next(timeoutMs);
        if (event.data !== null && event.event !== 'progress') return event;
      }
    },
    close: () => controller.abort(),
  };
}

export async function withTimeout<T>(
  promise: Promise<T>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** One sample of a Prometheus text exposition, e.g. metric(text, 'abcast_term'). */
export function metric(text: string, series: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  if (line === undefined) throw new Error(`no sample ${series}`);
  return Number(line.slice(series.length + 1));
}

export async function scrape(url: string): Promise<string> {
  const response = await fetch(`${url}/metrics`);
  return response.text();
}

/**
 * Broadcasts rounds of 100 `payload`s (1.6 MB of 16 KiB ones) through `leader` while a reader
 * of `follower`'s stream from `start` has stopped reading, until the events the follower
 * wrote stop growing for two rounds running (the kernel's socket buffers absorb a few MB
 * first), measuring once the writes settled (a loaded machine writes late). Returns how
 * many were sent, how many events were written, and the most bytes streams held meanwhile.
 */
export async function fillPausedStream(
  leader: ClusterMember,
  follower: ClusterMember,
  start: number,
  payload: Uint8Array,
): Promise<{ sentCount: number; eventsWritten: number; bufferedBytesMax: number }> {
  const events = (text: string) => metric(text, 'abcast_http_stream_events_total');
  const eventsBefore = events(await scrape(follower.url));
  let sentCount = 0;
  let bufferedBytesMax = 0;
  let eventsWritten = 0;
  for (let round = 0, stalledRounds = 0; round < 40 && stalledRounds < 2; round++) {
    const sends = Array.from({ length: 100 }, () => leader.node.broadcast(payload));
    await Promise.all(sends);
    sentCount += sends.length;
    await waitFor(() => follower.node.status().lastPosition >= start + sentCount - 1, 'delivered');
    let text = await scrape(follower.url);
    for (let settle = 0; settle < 20; settle++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const again = await scrape(follower.url);
      const settled = events(again) === events(text);
      text = again;
      if (settled) break;
    }
    bufferedBytesMax = Math.max(
      bufferedBytesMax,
      metric(text, 'abcast_http_stream_buffered_bytes'),
    );
    const written = events(text) - eventsBefore;
    stalledRounds = written < eventsWritten + 10 ? stalledRounds + 1 : 0;
    eventsWritten = written;
  }
  return { sentCount, eventsWritten, bufferedBytesMax };
}
