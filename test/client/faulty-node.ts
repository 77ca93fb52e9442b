/**
 * A model of the cluster's broadcast contract behind two HTTP endpoints on 127.0.0.1 that
 * share one log, with faults drawn from a seeded generator: requests lost on the way,
 * answers lost after the message was delivered, 503s, delays, and a partition that
 * swallows everything. It sequences as the session table does (docs/api.md): a session's
 * next seq is delivered, a lower one is a duplicate answered with its original index, a
 * higher one waits for the gap to fill and then gets 409 sequence_gap, a seq above 1 of an
 * unknown session gets 409 session_unknown, and a payload starting with "bad" is refused 413
 * without taking its seq (in a batch, the whole batch is refused 413 before any message is
 * looked at, as the batch route checks every payload first).
 *
 * Further faults, all off by default and drawn from a second generator so that the first
 * one's draws stay as they were: an endpoint that goes down for a while (its connections
 * reset, new ones closed at once); a slow commit (the message is delivered only after the
 * client's attempt timed out, and the late answer goes nowhere); a request processed twice
 * (a retry racing a forward: the second copy lands a little later and its answer is
 * dropped); a 503 with Retry-After, either `no_leader` before anything happened or
 * `timeout` while the message goes on into the log, as a node whose deadline passed before
 * the commit answers; and a gap answered 409 sequence_gap at once instead of held. Sessions
 * are never forgotten: the SDK documents it cannot survive that mid-flight.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Delivered {
  readonly client: string;
  readonly seq: number;
  readonly payload: unknown;
  readonly topic: string | undefined;
}

export interface FaultRates {
  readonly loseRequest: number;
  readonly loseAnswer: number;
  readonly unavailable: number;
  readonly delayed: number;
  readonly delayMsMax: number;
  /** A request finds its endpoint crashing: it stays down for up to downForMsMax. */
  readonly down?: number;
  readonly downForMsMax?: number;
  /** The request is processed only after slowMsMin..slowMsMax, its answer too late. */
  readonly slowCommit?: number;
  readonly slowMsMin?: number;
  readonly slowMsMax?: number;
  /** The request is processed once more, up to duplicateDelayMsMax later. */
  readonly duplicate?: number;
  readonly duplicateDelayMsMax?: number;
  /** 503 no_leader with Retry-After, nothing done. */
  readonly noLeaderRetryAfter?: number;
  /** 503 timeout with Retry-After while the message goes on into the log. */
  readonly timeoutRetryAfter?: number;
  /** Gaps are answered 409 sequence_gap at once, not held. */
  readonly gapAtOnce?: number;
  /** The Retry-After the 503s above carry, in seconds (a real node's default is 1). */
  readonly retryAfterSeconds?: number;
}

/** What the second generator drew for one request. */
type Extra = 'none' | 'down' | 'slow' | 'duplicate' | 'noLeader' | 'timeout' | 'gapAtOnce';

/** One message of a request, as the model offers it. */
interface Offered {
  readonly payload: unknown;
  readonly topic: string | undefined;
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
  /** Per endpoint: until when it is down (0: up). */
  private readonly downUntilMs: number[] = [];
  private readonly swallowed: ServerResponse[] = [];
  /** Background work (slow commits, second copies) still running, awaited at close. */
  private readonly background = new Set<Promise<unknown>>();
  private closed = false;
  private rates: FaultRates;

  private constructor(
    private readonly random: () => number,
    private readonly extraRandom: () => number,
    rates: FaultRates,
  ) {
    this.rates = rates;
  }

  static async start(seed: number, rates: FaultRates, endpointCount = 2) {
    const cluster = new FaultyCluster(seededRandom(seed), seededRandom(seed ^ 0x5bd1e995), rates);
    const urls: string[] = [];
    for (let n = 0; n < endpointCount; n++) {
      const server = createServer((request, response) => cluster.serve(n, request, response));
      // A down endpoint refuses at once: the connection is closed before any byte.
      server.on('connection', (socket: Socket) => {
        if (!cluster.isDown(n)) return;
        cluster.requests.push(`@${n} refused a connection (down)`);
        socket.destroy();
      });
      await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
      cluster.servers.push(server);
      cluster.downUntilMs.push(0);
      urls.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    }
    return { cluster, urls };
  }

  /** The faults stop: no more losses, 503s, delays or outages from now on. */
  calm(): void {
    this.partitioned = false;
    this.rates = { loseRequest: 0, loseAnswer: 0, unavailable: 0, delayed: 0, delayMsMax: 0 };
    this.downUntilMs.fill(0);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const wakers of this.waiting.values()) for (const wake of wakers) wake();
    for (const response of this.swallowed) response.destroy();
    await Promise.all(this.background);
    for (const server of this.servers) {
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    }
  }

  private isDown(endpoint: number): boolean {
    return Date.now() < (this.downUntilMs[endpoint] ?? 0);
  }

  private serve(endpoint: number, request: IncomingMessage, response: ServerResponse): void {
    let text = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => {
      text += chunk;
    });
    request.on('end', () => {
      void this.handle(endpoint, request.url ?? '', text, response);
    });
  }

  /** Which of the further faults hits this request, if any. */
  private drawExtra(): Extra {
    const r = this.rates;
    const kinds: [Extra, number][] = [
      ['down', r.down ?? 0],
      ['slow', r.slowCommit ?? 0],
      ['duplicate', r.duplicate ?? 0],
      ['noLeader', r.noLeaderRetryAfter ?? 0],
      ['timeout', r.timeoutRetryAfter ?? 0],
      ['gapAtOnce', r.gapAtOnce ?? 0],
    ];
    if (kinds.every(([, rate]) => rate === 0)) return 'none'; // the second generator stays put
    let draw = this.extraRandom();
    for (const [kind, rate] of kinds) {
      if (draw < rate) return kind;
      draw -= rate;
    }
    return 'none';
  }

  private async handle(
    endpoint: number,
    url: string,
    text: string,
    response: ServerResponse,
  ): Promise<void> {
    if (url === '/v1/status') {
      // The client's leader search: no endpoint says it leads, so it keeps its own order.
      reply(response, { status: 200, body: { role: 'follower' } });
      return;
    }
    const what = `${requestSummary(url, text)} @${endpoint}`;
    if (this.isDown(endpoint)) {
      this.requests.push(`${what} reset (down)`);
      response.socket?.destroy();
      return;
    }
    const extra = this.drawExtra();
    if (extra === 'down') {
      this.goDown(endpoint, what);
      return;
    }
    const draw = this.random();
    const { loseRequest, unavailable, loseAnswer, delayed, delayMsMax } = this.rates;
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
    if (extra === 'noLeader') {
      this.requests.push(`${what} 503 no_leader Retry-After`);
      this.replyRetryAfter(response, 'no_leader');
      return;
    }
    const answerLost = draw < loseRequest + unavailable + loseAnswer;
    if (this.random() < delayed) await sleep(this.random() * delayMsMax);
    if (extra === 'timeout') {
      // The node's deadline passed before the commit: the message goes on into the log.
      this.requests.push(`${what} 503 timeout Retry-After (goes on)`);
      this.replyRetryAfter(response, 'timeout');
      // It commits after the answer: the deadline passed because the commit was slow.
      const laterMs = this.extraRandom() * (this.rates.slowMsMax ?? 0);
      this.inBackground(
        sleep(laterMs).then(() => this.process(url, text, false)),
        `${what} went on after ${Math.round(laterMs)} ms`,
      );
      return;
    }
    if (extra === 'slow') await sleep(this.slowMs());
    if (extra === 'duplicate') {
      const laterMs = this.extraRandom() * (this.rates.duplicateDelayMsMax ?? 0);
      this.inBackground(
        sleep(laterMs).then(() => this.process(url, text, false)),
        `${what} second copy after ${Math.round(laterMs)} ms`,
      );
    }
    const answer = await this.process(url, text, extra === 'gapAtOnce');
    const told = JSON.stringify(answer.body).slice(0, 300);
    const note = extra === 'none' ? '' : ` (${extra})`;
    if (answerLost || this.partitioned || this.isDown(endpoint)) {
      this.requests.push(`${what} answer lost${note}: ${told}`);
      this.swallowed.push(response);
      return;
    }
    this.requests.push(`${what} ${answer.status}${note} ${told}`);
    reply(response, answer);
  }

  /** The endpoint crashes: every connection to it resets, and it refuses new ones a while. */
  private goDown(endpoint: number, what: string): void {
    const forMs = this.extraRandom() * (this.rates.downForMsMax ?? 0);
    this.downUntilMs[endpoint] = Date.now() + forMs;
    this.requests.push(`${what} reset: endpoint ${endpoint} down for ${Math.round(forMs)} ms`);
    this.servers[endpoint]?.closeAllConnections();
  }

  private slowMs(): number {
    const { slowMsMin = 0, slowMsMax = 0 } = this.rates;
    return slowMsMin + this.extraRandom() * Math.max(0, slowMsMax - slowMsMin);
  }

  private replyRetryAfter(response: ServerResponse, code: string): void {
    response.writeHead(503, {
      'content-type': 'application/json',
      'retry-after': String(this.rates.retryAfterSeconds ?? 1),
    });
    response.end(JSON.stringify({ error: code, message: code }));
  }

  private inBackground(work: Promise<unknown>, what: string): void {
    const tracked = work.then(
      (answer) => {
        const told = JSON.stringify((answer as Answer | undefined)?.body ?? null).slice(0, 300);
        this.requests.push(`${what}: ${told}`);
      },
      (error: unknown) => this.requests.push(`${what} failed: ${String(error)}`),
    );
    this.background.add(tracked);
    void tracked.finally(() => this.background.delete(tracked));
  }

  /** One request through the session rules, as a node's broadcast routes answer it. */
  private async process(url: string, text: string, gapAtOnce: boolean): Promise<Answer> {
    const body = JSON.parse(text) as Record<string, unknown>;
    const client = String(body.client);
    if (url === '/v1/broadcast') {
      const message = { payload: body.payload, topic: topicOf(body) };
      if (refused(message.payload)) return tooLarge();
      return this.offer(client, Number(body.seq), message, gapAtOnce);
    }
    if (url !== '/v1/broadcast/batch') {
      return { status: 404, body: { error: 'not_found', message: 'no such route' } };
    }
    const messages = (body.messages as Record<string, unknown>[]).map((message) => ({
      payload: message.payload,
      topic: topicOf(message),
    }));
    // The route checks every payload before it hands any to the node: one too large
    // refuses the whole batch.
    if (messages.some((message) => refused(message.payload))) return tooLarge();
    // Offered in seq order, synchronously, as the node hands a batch to the log.
    const offers = messages.map((message, offset) =>
      this.offer(client, Number(body.seq) + offset, message, gapAtOnce),
    );
    const results = (await Promise.all(offers)).map((one) =>
      one.status === 200 ? one.body : { ...one.body, status: one.status },
    );
    return { status: 200, body: { results } };
  }

  /** One message through the session rules; waits (bounded) while its session has a gap. */
  private async offer(
    client: string,
    seq: number,
    message: Offered,
    gapAtOnce: boolean,
  ): Promise<Answer> {
    const deadlineMs = Date.now() + (gapAtOnce ? 0 : gapHoldMs);
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
        this.log.push({ client, seq, payload: message.payload, topic: message.topic });
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

function refused(payload: unknown): boolean {
  return typeof payload === 'string' && payload.startsWith('bad');
}

function tooLarge(): Answer {
  return { status: 413, body: { error: 'payload_too_large', message: 'too large' } };
}

function topicOf(body: Record<string, unknown>): string | undefined {
  return typeof body.topic === 'string' ? body.topic : undefined;
}

/** A payload as the trace shows it: its name, without the padding some carry. */
export function payloadName(payload: unknown): string {
  return String(payload).split('|')[0] as string;
}

function requestSummary(url: string, text: string): string {
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    const messages = Array.isArray(body.messages)
      ? (body.messages as { payload: unknown }[]).map((m) => payloadName(m.payload))
      : [payloadName(body.payload)];
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
