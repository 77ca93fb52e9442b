/**
 * A model of the cluster's broadcast contract behind two HTTP endpoints on 127.0.0.1 that
 * share one log, with faults drawn from a seeded generator: requests lost on the way,
 * answers lost after the message was delivered, 503s, delays, and a partition that
 * swallows everything. It sequences as the session table does (docs/api.md): a session's
 * next seq is delivered, a lower one is a duplicate answered with its original index, a
 * higher one waits for the gap to fill and then gets 409 sequence_gap, a seq above 1 of an
 * unknown session gets 409 session_unknown, and a payload starting with "bad" is refused 413 without taking its seq.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Delivered {
  readonly client: string;
  readonly seq: number;
  readonly payload: unknown;
}

export interface FaultRates {
  readonly loseRequest: number;
  readonly loseAnswer: number;
  readonly unavailable: number;
  readonly delayed: number;
  readonly delayMsMax: number;
}

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

interface SessionState {
  next: number;
  readonly indexBySeq: Map<number, number>;
}

const gapHoldMs = 100;

/** Mulberry32: small, seedable, good enough to draw faults. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FaultyCluster {
  readonly log: Delivered[] = [];
  /** Every request with what became of it, for a failing run's trace. */
  readonly requests: string[] = [];
  partitioned = false;
  private readonly sessions = new Map<string, SessionState>();
  /** Messages waiting for a gap in their session to fill, woken when it moves. */
  private readonly waiting = new Map<string, Set<() => void>>();
  private readonly servers: Server[] = [];
  private readonly swallowed: ServerResponse[] = [];
  private closed = false;

  private constructor(
    private readonly random: () => number,
    private readonly rates: FaultRates,
  ) {}

  static async start(seed: number, rates: FaultRates, endpointCount = 2) {
    const cluster = new FaultyCluster(seededRandom(seed), rates);
    const urls: string[] = [];
    for (let n = 0; n < endpointCount; n++) {
      const server = createServer((request, response) => cluster.serve(request, response));
      await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
      cluster.servers.push(server);
      urls.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    }
    return { cluster, urls };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const wakers of this.waiting.values()) for (const wake of wakers) wake();
    for (const response of this.swallowed) response.destroy();
    for (const server of this.servers) {
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    }
  }

  private serve(request: IncomingMessage, response: ServerResponse): void {
    let text = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => {
      text += chunk;
    });
    request.on('end', () => {
      void this.handle(request.url ?? '', text, response);
    });
  }

  private async handle(url: string, text: string, response: ServerResponse): Promise<void> {
    if (url === '/v1/status') {
      // The client's leader search: no endpoint says it leads, so it keeps its own order.
      reply(response, { status: 200, body: { role: 'follower' } });
      return;
    }
    const draw = this.random();
    const { loseRequest, unavailable, loseAnswer, delayed, delayMsMax } = this.rates;
    const what = requestSummary(url, text);
    if (this.partitioned || draw < loseRequest) {
      this.requests.push(`${what} lost`);
      this.swallowed.push(response);
      return;
    }
    if (draw < loseRequest + unavailable) {
      this.requests.push(`${what} 503`);
      reply(response, { status: 503, body: { error: 'no_leader', message: 'no leader' } });
      return;
    }
    const answerLost = draw < loseRequest + unavailable + loseAnswer;
    if (this.random() < delayed) await sleep(this.random() * delayMsMax);
    const body = JSON.parse(text) as Record<string, unknown>;
    let answer: Answer;
    if (url === '/v1/broadcast') {
      answer = await this.offer(String(body.client), Number(body.seq), body.payload);
    } else if (url === '/v1/broadcast/batch') {
      const messages = body.messages as { payload: unknown }[];
      // Offered in seq order, synchronously, as the node hands a batch to the log.
      const offers = messages.map((message, offset) =>
        this.offer(String(body.client), Number(body.seq) + offset, message.payload),
      );
      const results = (await Promise.all(offers)).map((one) =>
        one.status === 200 ? one.body : { ...one.body, status: one.status },
      );
      answer = { status: 200, body: { results } };
    } else {
      answer = { status: 404, body: { error: 'not_found', message: 'no such route' } };
    }
    const told = JSON.stringify(answer.body).slice(0, 300);
    if (answerLost || this.partitioned) {
      this.requests.push(`${what} answer lost: ${told}`);
      this.swallowed.push(response);
      return;
    }
    this.requests.push(`${what} ${answer.status} ${told}`);
    reply(response, answer);
  }

  /** One message through the session rules; waits (bounded) while its session has a gap. */
  private async offer(client: string, seq: number, payload: unknown): Promise<Answer> {
    if (typeof payload === 'string' && payload.startsWith('bad')) {
      return { status: 413, body: { error: 'payload_too_large', message: 'too large' } };
    }
    const deadlineMs = Date.now() + gapHoldMs;
    for (;;) {
      const session = this.sessions.get(client);
      if (session === undefined && seq === 1) {
        this.sessions.set(client, { next: 1, indexBySeq: new Map() });
        continue;
      }
      if (session === undefined) {
        return { status: 409, body: { error: 'session_unknown', message: 'unknown session' } };
      }
      if (seq < session.next) {
        const index = session.indexBySeq.get(seq) ?? null;
        return { status: 200, body: { index, term: 1, duplicate: true } };
      } else if (seq === session.next) {
        this.log.push({ client, seq, payload });
        session.indexBySeq.set(seq, this.log.length);
        session.next += 1;
        this.wake(client);
        return { status: 200, body: { index: this.log.length, term: 1, duplicate: false } };
      }
      const leftMs = deadlineMs - Date.now();
      if (leftMs <= 0 || this.closed) {
        const expectedSeq = session.next;
        return { status: 409, body: { error: 'sequence_gap', message: 'gap', expectedSeq } };
      }
      await this.changeOf(client, leftMs);
    }
  }

  private wake(client: string): void {
    const wakers = this.waiting.get(client);
    if (wakers === undefined) return;
    this.waiting.delete(client);
    for (const wake of wakers) wake();
  }

  private changeOf(client: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      let wakers = this.waiting.get(client);
      if (wakers === undefined) {
        wakers = new Set();
        this.waiting.set(client, wakers);
      }
      const done = () => {
        clearTimeout(timer);
        wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      wakers.add(done);
    });
  }
}

function requestSummary(url: string, text: string): string {
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    const messages = Array.isArray(body.messages)
      ? (body.messages as { payload: unknown }[]).map((m) => m.payload)
      : [body.payload];
    return `${url} ${body.client}#${body.seq} ${messages.join(',')}`;
  } catch {
    return `${url} (unreadable)`;
  }
}

function reply(response: ServerResponse, answer: Answer): void {
  response.writeHead(answer.status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(answer.body));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
