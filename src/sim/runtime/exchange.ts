/**
 * How simulated SDK clients reach the nodes: an `HttpExchange` that carries each request
 * over a simulated client network to the real route handlers of the node it names (its
 * `InProcessServer`), and the answer back. Requests and answers can be lost, late, or cut by
 * a partition of the client from some nodes; a node that is down refuses the connection;
 * a request whose answer never comes fails at its deadline, as a socket timeout does.
 */
import type {
  HttpExchange,
  HttpExchangeRequest,
  RunExchangeAnswer,
  RunExchangeRequest,
  StreamAnswer,
} from '../../client/exchange.ts';
import type { NodeId } from '../../raft/types.ts';
import type { InProcessServer, InProcessStreamAnswer } from '../../server/in-process.ts';
import { decodeClientFrame, encodeClientFrame } from '../../transport/client-frames.ts';
import { lengthPrefixBytes } from '../../transport/framing.ts';
import { assert } from '../../util/assert.ts';
import type { Prng } from '../../util/prng.ts';
import type { Life, SimScheduler } from './scheduler.ts';

export interface ClientNetworkFaults {
  readonly requestLossProbability: number;
  readonly answerLossProbability: number;
  readonly latencyMsMin: number;
  readonly latencyMsMax: number;
}

export const calmClientNetwork: ClientNetworkFaults = {
  requestLossProbability: 0,
  answerLossProbability: 0,
  latencyMsMin: 1,
  latencyMsMax: 3,
};

export type ExchangeEvent =
  | {
      readonly kind: 'request';
      readonly client: string;
      readonly node: NodeId;
      /** `GET /v1/status`, say, or `broadcastRun` for that frame. */
      readonly what: string;
      readonly fate: 'sent' | 'lost' | 'refused';
    }
  | {
      readonly kind: 'answer';
      readonly client: string;
      readonly node: NodeId;
      readonly status: number;
      readonly fate: 'delivered' | 'lost';
    };

/**
 * Whether a client's runs of broadcasts go as broadcastRun frames, as the SDK sends them
 * over the binary port, and which nodes play a build without the frame (the SDK then sends
 * them POST /v1/broadcast/batch, as it does after such a node's goAway).
 */
export interface RunFrames {
  readonly nodesWithoutFrame: ReadonlySet<NodeId>;
  /**
   * How much longer than one latency an older node's goAway takes on a new probe
   * connection (a slow connect, a handshake queued behind others): 0 mostly, now and then
   * long enough that the runs waiting on it see their session cut, or time out.
   */
  readonly probeDelayMs: () => number;
}

/** How a broadcastRun frame is named in ExchangeEvents. */
export const runFrameCall = 'broadcastRun';

/** What one call carries and how the node serves it. */
interface Call<T> {
  readonly what: string;
  readonly url: string;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  readonly serve: (server: InProcessServer, clientGone: AbortSignal) => Promise<T>;
  readonly statusOf: (answer: T) => number;
}

/** The servers clients can reach, and the faults between clients and nodes. */
export class ClientNetwork {
  faults: ClientNetworkFaults = calmClientNetwork;
  private readonly servers = new Map<NodeId, { server: InProcessServer; life: Life }>();
  /** "client|node" pairs that cannot reach each other. */
  private readonly cuts = new Set<string>();
  /** The streams open to each node: reset when it goes down. */
  private readonly streams = new Map<NodeId, Set<SimStream>>();

  constructor(
    private readonly scheduler: SimScheduler,
    private readonly prng: Prng,
    private readonly observe: (event: ExchangeEvent) => void,
    /**
     * Whether `client` reaches `node` at all, beyond the cuts: between nodes, the partitions
     * of the nodes' own network hold for their HTTP too.
     */
    private readonly linked: (client: string, node: NodeId) => boolean = () => true,
  ) {}

  attach(node: NodeId, server: InProcessServer, life: Life): void {
    this.servers.set(node, { server, life });
  }

  detach(node: NodeId): void {
    this.servers.delete(node);
    for (const stream of this.streams.get(node) ?? []) {
      stream.reset(`${node} went down`, this.latencyMs());
    }
    this.streams.delete(node);
  }

  cut(client: string, node: NodeId): void {
    this.cuts.add(`${client}|${node}`);
  }

  heal(): void {
    this.cuts.clear();
  }

  private latencyMs(): number {
    return this.prng.between(this.faults.latencyMsMin, this.faults.latencyMsMax);
  }

  /** Whether `client` reaches `node` now: not cut off, and linked. */
  reaches(client: string, node: NodeId): boolean {
    return !this.cuts.has(`${client}|${node}`) && this.linked(client, node);
  }

  /**
   * The exchange one client uses; its timers belong to the client's life. With `runs`, it
   * also carries broadcastRun frames: encoded and decoded by the protocol's own codec, and
   * served by the node's run route, as the binary port does.
   */
  exchangeFor(client: string, life: Life, runs: RunFrames | null = null): HttpExchange {
    const exchange = (request: HttpExchangeRequest) =>
      this.exchange(client, life, {
        what: `${request.method} ${pathOf(request.url)}`,
        url: request.url,
        timeoutMs: request.timeoutMs,
        signal: request.signal,
        serve: (server, clientGone) =>
          server.handle(
            {
              method: request.method,
              url: pathOf(request.url),
              headers: request.headers,
              body: request.body,
            },
            clientGone,
          ),
        statusOf: (response) => response.status,
      });
    const openStream = (
      url: string,
      headers: Readonly<Record<string, string>>,
      signal: AbortSignal,
      timeoutMs: number,
    ) => this.openStream(client, life, { url, headers, signal, timeoutMs });
    if (runs === null) return Object.assign(exchange, { openStream });
    const probes = new OlderNodeProbes(this.scheduler, life, (node, delayMs) =>
      this.goAwayOf(client, life, node, delayMs),
    );
    const broadcastRun = (request: RunExchangeRequest): Promise<RunExchangeAnswer | null> => {
      const node = new URL(request.url).hostname;
      if (!runs.nodesWithoutFrame.has(node)) return this.exchangeRun(client, life, request);
      return probes.refusal(node, request, () => this.latencyMs() + runs.probeDelayMs());
    };
    return Object.assign(exchange, { broadcastRun, openStream });
  }

  /**
   * GET /v1/stream in process: the request and the head go as any call's (lost, late,
   * refused, cut), then the body's bytes follow in order, each after a latency. A cut, a
   * loss, or the node going down resets the stream: the body errors, and the node sees its
   * consumer gone.
   */
  private openStream(
    client: string,
    life: Life,
    request: {
      readonly url: string;
      readonly headers: Readonly<Record<string, string>>;
      readonly signal: AbortSignal;
      readonly timeoutMs: number;
    },
  ): Promise<StreamAnswer> {
    const node = new URL(request.url).hostname;
    const stream = new SimStream(this.scheduler, life, request.signal, () => {
      this.streams.get(node)?.delete(stream);
    });
    const carry = (bytes: Uint8Array | null) => {
      const lost =
        !this.reaches(client, node) ||
        this.prng.chance(
          (this.faults.requestLossProbability + this.faults.answerLossProbability) / 8,
        );
      if (lost) stream.reset(`${client}'s stream from ${node} is cut`, this.latencyMs());
      else stream.carry(bytes, this.latencyMs());
    };
    const answer = this.exchange<InProcessStreamAnswer>(client, life, {
      what: `GET ${pathOf(request.url).split('?')[0]}`,
      url: request.url,
      timeoutMs: request.timeoutMs,
      signal: stream.signal,
      serve: (server, clientGone) => {
        clientGone.addEventListener('abort', () => stream.reset('the stream was given up', 0));
        let streams = this.streams.get(node);
        if (streams === undefined) {
          streams = new Set();
          this.streams.set(node, streams);
        }
        streams.add(stream);
        const path = pathOf(request.url);
        const body = {
          data: (bytes: Uint8Array) => carry(bytes),
          end: (clean: boolean) => {
            if (clean) carry(null);
            else stream.reset(`${node} cut the stream off`, this.latencyMs());
          },
        };
        return server.handleStream(
          { method: 'GET', url: path, headers: request.headers, body: null },
          stream.serverSignal,
          body,
        );
      },
      statusOf: (answer) => (answer.kind === 'whole' ? answer.response.status : answer.status),
    });
    return answer.then(
      (head) => {
        if (head.kind === 'whole') {
          stream.reset('answered whole', 0);
          return { ...head.response, body: wholeBody(head.response.body) };
        }
        return { status: head.status, headers: head.headers, body: stream.body };
      },
      (error: unknown) => {
        stream.reset('no answer', 0);
        throw error;
      },
    );
  }

  /**
   * What becomes of a probe connection to an older node after `delayMs`: its goAway, the
   * connection refused (the node is down), or lost (cut off: its runs time out, and the
   * next run tries a new connection).
   */
  private goAwayOf(client: string, life: Life, node: NodeId, delayMs: number): Promise<ProbeEnd> {
    return new Promise((resolve) => {
      this.scheduler.schedule(delayMs, life, () => {
        if (!this.reaches(client, node)) resolve('lost');
        else resolve(this.servers.has(node) ? 'goAway' : 'refused');
      });
    });
  }

  private exchangeRun(
    client: string,
    life: Life,
    request: RunExchangeRequest,
  ): Promise<RunExchangeAnswer> {
    const { clientId, firstSeq, nonce, messages, headers } = request;
    // Through the codec both ways, as on a socket: what the node takes is what decodes.
    const sent = decodeClientFrame(
      withoutLengthPrefix(
        encodeClientFrame({
          type: 'broadcastRun',
          requestId: 1,
          headers,
          clientId,
          firstSeq,
          nonce,
          messages,
        }),
      ),
    );
    assert(sent.type === 'broadcastRun', 'a run decodes as a run');
    return this.exchange(client, life, {
      what: runFrameCall,
      url: request.url,
      timeoutMs: request.timeoutMs,
      signal: request.signal,
      serve: async (server, clientGone) => {
        const answer = await server.handleRun(sent, clientGone);
        if (answer.kind === 'refused') return answer;
        const received = decodeClientFrame(
          withoutLengthPrefix(
            encodeClientFrame({ type: 'runAnswer', requestId: 1, results: answer.results }),
          ),
        );
        assert(received.type === 'runAnswer', 'an answer decodes as an answer');
        return { kind: 'results', results: received.results };
      },
      statusOf: (answer) => (answer.kind === 'results' ? 200 : answer.response.status),
    });
  }

  private exchange<T>(client: string, life: Life, call: Call<T>): Promise<T> {
    const node = new URL(call.url).hostname;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const serverGone = new AbortController();
      const finish = (outcome: { answer: T } | Error) => {
        if (settled) return;
        settled = true;
        deadline.cancel();
        call.signal.removeEventListener('abort', onAbort);
        if (outcome instanceof Error) {
          serverGone.abort();
          reject(outcome);
        } else resolve(outcome.answer);
      };
      const onAbort = () => finish(new Error('the request was aborted'));
      const deadline = this.scheduler.schedule(call.timeoutMs, life, () =>
        finish(new Error(`no answer from ${node} within ${call.timeoutMs} ms`)),
      );
      if (call.signal.aborted) {
        onAbort();
        return;
      }
      call.signal.addEventListener('abort', onAbort);
      this.carryRequest(client, life, node, call, serverGone.signal, finish);
    });
  }

  private carryRequest<T>(
    client: string,
    life: Life,
    node: NodeId,
    call: Call<T>,
    clientGone: AbortSignal,
    finish: (outcome: { answer: T } | Error) => void,
  ): void {
    const { what } = call;
    const reachable = this.reaches(client, node);
    if (!reachable || this.prng.chance(this.faults.requestLossProbability)) {
      this.observe({ kind: 'request', client, node, what, fate: 'lost' });
      return; // the deadline answers
    }
    const target = this.servers.get(node);
    if (target === undefined) {
      this.observe({ kind: 'request', client, node, what, fate: 'refused' });
      this.scheduler.schedule(this.latencyMs(), life, () =>
        finish(new Error(`connect ECONNREFUSED ${node}`)),
      );
      return;
    }
    this.observe({ kind: 'request', client, node, what, fate: 'sent' });
    this.scheduler.schedule(this.latencyMs(), target.life, () => {
      if (clientGone.aborted) return;
      call.serve(target.server, clientGone).then(
        (answer) => {
          const status = call.statusOf(answer);
          this.carryAnswer(client, life, node, status, target.life, () => finish({ answer }));
        },
        () => {
          // The server failed without an answer (it is stopping): the connection resets.
          this.scheduler.schedule(this.latencyMs(), life, () =>
            finish(new Error(`socket hang up from ${node}`)),
          );
        },
      );
    });
  }

  private carryAnswer(
    client: string,
    life: Life,
    node: NodeId,
    status: number,
    serverLife: Life,
    deliver: () => void,
  ): void {
    const lost =
      !serverLife.isAlive ||
      this.cuts.has(`${client}|${node}`) ||
      !this.linked(node, client) ||
      this.prng.chance(this.faults.answerLossProbability);
    this.observe({ kind: 'answer', client, node, status, fate: lost ? 'lost' : 'delivered' });
    if (lost) return;
    this.scheduler.schedule(this.latencyMs(), life, deliver);
  }
}

type ProbeEnd = 'goAway' | 'refused' | 'lost';

/**
 * One client's older nodes, as the SDK's binary exchange learns them: its first runs to
 * such a node go on a probe connection and all wait for that connection's end, the goAway
 * (then null: the SDK sends batch requests), each until its own deadline; once a goAway
 * was read, every later run to that node comes back null at once.
 */
class OlderNodeProbes {
  private readonly known = new Set<NodeId>();
  /** By node: the runs waiting on its probe connection, each settled once. */
  private readonly waiting = new Map<NodeId, Set<(end: ProbeEnd) => void>>();

  constructor(
    private readonly scheduler: SimScheduler,
    private readonly life: Life,
    private readonly probe: (node: NodeId, delayMs: number) => Promise<ProbeEnd>,
  ) {}

  refusal(node: NodeId, request: RunExchangeRequest, delayMs: () => number): Promise<null> {
    if (this.known.has(node)) return Promise.resolve(null);
    const { signal, timeoutMs } = request;
    if (signal.aborted) return Promise.reject(new Error('the request was aborted'));
    let waiters = this.waiting.get(node);
    if (waiters === undefined) {
      const made = new Set<(end: ProbeEnd) => void>();
      waiters = made;
      this.waiting.set(node, made);
      void this.probe(node, delayMs()).then((end) => {
        if (this.waiting.get(node) === made) this.waiting.delete(node);
        // Learnt only by a run that read the goAway, as the SDK learns it.
        if (end === 'goAway' && made.size > 0) this.known.add(node);
        if (end !== 'lost') for (const settle of made) settle(end);
      });
    }
    const probeWaiters = waiters;
    return new Promise((resolve, reject) => {
      const settle = (end: ProbeEnd | Error) => {
        if (!probeWaiters.delete(settle)) return;
        deadline.cancel();
        signal.removeEventListener('abort', onAbort);
        if (end === 'goAway') resolve(null);
        else reject(end === 'refused' ? new Error(`connect ECONNREFUSED ${node}`) : end);
      };
      const onAbort = () => settle(new Error('the request was aborted'));
      const deadline = this.scheduler.schedule(timeoutMs, this.life, () =>
        settle(new Error(`no answer from ${node} within ${timeoutMs} ms`)),
      );
      signal.addEventListener('abort', onAbort);
      probeWaiters.add(settle);
    });
  }
}

/** An encoded frame's body, as the splitter hands it to the decoder. */
function withoutLengthPrefix(encoded: Uint8Array): Uint8Array {
  return encoded.subarray(lengthPrefixBytes);
}

function pathOf(url: string): string {
  const parsed = new URL(url);
  assert(parsed.pathname.startsWith('/'), 'request paths are absolute');
  return `${parsed.pathname}${parsed.search}`;
}

/** A whole answer's text as a body that ends after it. */
function wholeBody(text: string): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start: (controller) => {
      controller.enqueue(new TextEncoder().encode(text));
      controller.close();
    },
  });
}

/**
 * One stream's way from a node to its client: the bytes arrive in the order sent, each
 * after a latency (a FIFO: whichever delivery event fires takes the oldest bytes), and a
 * reset errors the body once what was sent before it arrived. The client letting go (its
 * signal, or cancelling the body) and a reset both tell the node the consumer is gone.
 */
class SimStream {
  readonly body: ReadableStream<Uint8Array>;
  private controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  /** Bytes on the way, oldest first; null is the clean end, an Error the reset. */
  private readonly inFlight: (Uint8Array | null | Error)[] = [];
  private over = false;
  private readonly serverGone = new AbortController();
  private readonly clientGone = new AbortController();
  private readonly detachCaller: () => void;

  constructor(
    private readonly scheduler: SimScheduler,
    private readonly life: Life,
    callerSignal: AbortSignal,
    private readonly onOver: () => void,
  ) {
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller;
      },
      cancel: () => this.reset('the reader let go', 0),
    });
    const onCallerAbort = () => {
      this.clientGone.abort(callerSignal.reason);
      this.reset('the caller gave up', 0);
    };
    // Taken off when the stream is over: the caller's signal outlives its streams.
    this.detachCaller = () => callerSignal.removeEventListener('abort', onCallerAbort);
    if (callerSignal.aborted) this.clientGone.abort(callerSignal.reason);
    else callerSignal.addEventListener('abort', onCallerAbort, { once: true });
  }

  /** Aborts when the client is gone: the call's own signal. */
  get signal(): AbortSignal {
    return this.clientGone.signal;
  }

  /** Aborts when the node should stop writing: the consumer is gone. */
  get serverSignal(): AbortSignal {
    return this.serverGone.signal;
  }

  /** Sends `bytes` (null: the clean end), to arrive after `delayMs`. */
  carry(bytes: Uint8Array | null, delayMs: number): void {
    if (this.over) return;
    if (bytes === null) this.finish();
    this.inFlight.push(bytes);
    this.scheduler.schedule(delayMs, this.life, () => this.arrive());
  }

  /** The connection resets: what was sent arrives, then the body errors. */
  reset(reason: string, delayMs: number): void {
    if (this.over) return;
    this.finish();
    this.inFlight.push(new Error(`socket hang up: ${reason}`));
    this.scheduler.schedule(delayMs, this.life, () => this.arrive());
  }

  private finish(): void {
    this.over = true;
    this.detachCaller();
    this.serverGone.abort(new Error('the stream is over'));
    this.onOver();
  }

  private arrive(): void {
    const next = this.inFlight.shift();
    if (next === undefined || this.controller === null) return;
    try {
      if (next === null) this.controller.close();
      else if (next instanceof Error) this.controller.error(next);
      else this.controller.enqueue(next);
    } catch {
      // The reader already let go: nothing to hand it.
    }
  }
}
