/**
 * The SDK's exchange over the binary client protocol (docs/protocol.md), for endpoints
 * given as `abcast://host:port` (`abcasts://` with TLS): one connection per endpoint, every
 * call of the client pipelined on it, each answer matched to its call by
 * request id whatever order they come back in. The calls and answers are those of HTTP
 * (method, path, status, JSON body), so everything above the exchange — batching, retries,
 * sessions — is the same code for both protocols. Runs of broadcasts may also go in the
 * protocol's own broadcastRun frame (`broadcastRun`), where the node knows it.
 *
 * The node grants a window of unanswered requests in its welcome; calls beyond it wait
 * here in issue order (the SDK's own `inFlightMax` bounds how many). A call whose deadline
 * passes or whose caller aborts is rejected at once, but keeps its slot until the node
 * answers it, because the node still counts it.
 */
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import {
  type AnswerFrame,
  type ClientFrame,
  ClientFrameDecoder,
  type ClientFrameHandler,
  clientFrameLimits,
  encodeClientFrame,
  type RequestMethod,
  type RunResults,
  setRequestId,
} from '../transport/client-frames.ts';
import type { DuplexConnection } from '../transport/duplex-connection.ts';
import { streamRecordsType } from '../transport/stream-records.ts';
import { assert } from '../util/assert.ts';
import type { Environment, Timer } from '../util/environment.ts';
import type {
  HttpExchange,
  HttpExchangeRequest,
  HttpExchangeResponse,
  RunExchangeAnswer,
  RunExchangeRequest,
} from './exchange.ts';
import {
  ExchangeTimeoutError,
  type NodeExchangeOptions,
  type StreamAnswer,
} from './node-exchange.ts';

/** Whether `url` names an endpoint of the binary protocol. */
export function isBinaryUrl(url: string): boolean {
  return url.startsWith('abcast://') || url.startsWith('abcasts://');
}

/** Why a binary call got no answer: the connection failed or the node closed it. */
export class BinaryConnectionError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'BinaryConnectionError';
  }
}

const utf8 = new TextDecoder('utf-8');
const encoder = new TextEncoder();

/** Where a streamed answer's parts go (GET /v1/stream over the binary port). */
interface StreamSink {
  head(status: number, headers: Readonly<Record<string, string>>): void;
  data(bytes: Uint8Array): void;
  /** The stream ended (streamEnd), or `error` broke it. */
  end(error: Error | null): void;
}

interface Call {
  readonly request: HttpExchangeRequest;
  readonly path: string;
  readonly resolve: (response: HttpExchangeResponse) => void;
  readonly reject: (error: unknown) => void;
  /** Set for a stream: its head, data and end go here instead of an answer. */
  readonly stream?: StreamSink;
  /** Set for a run: its frame, laid out already (its id is set when it goes). */
  readonly encoded?: Buffer;
  /**
   * Set for a run: where its runAnswer's results go, read straight from the frame (valid
   * during the call only); a refusal of the whole run is an answer.
   */
  readonly resolveRun?: (results: RunResults) => void;
  /** The caller stopped waiting; the slot stays taken until the node answers. */
  settled: boolean;
  timer: Timer | null;
  detach: () => void;
}

/** Where a binary connection goes, and where the bytes read from it go. */
export interface BinaryConnectTarget {
  readonly host: string;
  readonly port: number;
  /** `abcasts://`: TLS, trusting `ca` (PEM), or the system's CAs when null. */
  readonly secure: boolean;
  readonly ca: string | null;
  /** A stream's connection, whose reader pauses it (`pause`) when it falls behind. */
  readonly carriesStreams: boolean;
  /**
   * Every chunk read, in order; the connector calls it instead of emitting 'data'. A chunk
   * is valid during the call only: the reader copies or decodes it before returning.
   */
  readonly onData: (chunk: Uint8Array) => void;
}

/**
 * Opens a connection (sockets in production, the simulator's own connection there); it
 * reports a failure to connect as 'error' and 'close', as a socket does.
 */
export type BinaryConnector = (target: BinaryConnectTarget) => DuplexConnection;

/** What a connection reads into at most at once (Node's own reads are this size). */
const readBufferBytes = 64 << 10;

/** Production's connector, node:net and node:tls sockets; the simulator passes its own. */
export const socketConnector: BinaryConnector = (target) => {
  const { host, port, onData } = target;
  let socket: DuplexConnection;
  if (target.secure) {
    socket = tlsConnect({ host, port, ...(target.ca === null ? {} : { ca: target.ca }) });
    socket.on('data', onData);
  } else if (target.carriesStreams) {
    socket = netConnect({ host, port });
    socket.on('data', onData);
  } else {
    // Node would otherwise allocate a buffer (memory outside V8's heap, which prompts its
    // full collections) for every read. Everything read is copied out (or decoded) before
    // the next read, so one buffer serves them all.
    socket = netConnect({
      host,
      port,
      onread: {
        buffer: Buffer.allocUnsafe(readBufferBytes),
        callback: (byteCount, buffer) => {
          onData(buffer.subarray(0, byteCount));
          return true;
        },
      },
    });
  }
  socket.setNoDelay(true);
  return socket;
};

/** How the SDK reaches binary endpoints: the CA, and the connector (sockets by default). */
export interface BinaryExchangeOptions extends NodeExchangeOptions {
  readonly connector?: BinaryConnector;
}

/** One connection to one node and the calls it carries. */
class BinaryConnection implements ClientFrameHandler {
  private readonly socket: DuplexConnection;
  private readonly decoder = new ClientFrameDecoder(clientFrameLimits.frameBytesMax);
  private readonly inFlight = new Map<number, Call>();
  private readonly waiting: Call[] = [];
  private windowRequests = 0;
  private nextRequestId = 1;
  private failure: BinaryConnectionError | null = null;
  /** End the connection once nothing is in flight (a probe that has served its purpose). */
  private endingWhenIdle = false;
  /** Signals this connection listens on for all the calls that carry them (see `watch`). */
  private readonly watched = new WeakSet<AbortSignal>();

  /**
   * `carriesStreams`: a stream's connection, whose reader pauses it. `resend`: where the
   * calls go that a node closing this connection for idleness never read (null: they fail).
   */
  constructor(
    origin: URL,
    options: BinaryExchangeOptions,
    private readonly onGone: () => void,
    carriesStreams = false,
    private readonly resend: ((calls: readonly Call[]) => void) | null = null,
  ) {
    const host = origin.hostname.replace(/^\[|\]$/g, '');
    const port = Number(origin.port);
    assert(Number.isSafeInteger(port) && port > 0, 'a binary endpoint names its port');
    const connector = options.connector ?? socketConnector;
    this.socket = connector({
      host,
      port,
      secure: origin.protocol === 'abcasts:',
      ca: options.ca,
      carriesStreams,
      onData: (chunk) => this.onData(chunk),
    });
    this.socket.on('error', (error) =>
      this.fail(new BinaryConnectionError(error.code ?? 'connection_failed', error.message)),
    );
    this.socket.on('close', () =>
      this.fail(new BinaryConnectionError('ECONNRESET', 'the node closed the connection')),
    );
    this.socket.write(encodeClientFrame({ type: 'hello', requestId: 0, token: '' }));
  }

  call(call: Call): void {
    if (this.failure !== null) {
      this.settle(call, this.failure);
      return;
    }
    this.waiting.push(call);
    if (call.encoded !== undefined) this.watch(call.request.signal);
    this.pump();
    this.holdProcess();
  }

  /**
   * Ends every call that carries `signal` when it aborts, with one listener for all of
   * them: a run's signal is its client's, the same for every run, and a listener added and
   * removed per run cost as much as the rest of its call.
   */
  watch(signal: AbortSignal): void {
    if (this.watched.has(signal)) return;
    this.watched.add(signal);
    signal.addEventListener(
      'abort',
      () => {
        for (const call of [...this.inFlight.values(), ...this.waiting]) {
          if (call.request.signal === signal) this.settle(call, signal.reason as Error);
        }
      },
      { once: true },
    );
  }

  /** An idle connection does not keep the process alive, as an idle kept-alive socket. */
  private holdProcess(): void {
    const idle = this.inFlight.size + this.waiting.length === 0;
    if (idle) this.socket.unref();
    else this.socket.ref();
    if (idle && this.endingWhenIdle) this.socket.end();
  }

  /** Ends the connection once its calls are answered. */
  endWhenIdle(): void {
    this.endingWhenIdle = true;
    this.holdProcess();
  }

  /** Sends waiting calls while the window has room (none before the welcome). */
  private pump(): void {
    while (this.waiting.length > 0 && this.inFlight.size < this.windowRequests) {
      const call = this.waiting.shift() as Call;
      if (call.settled) continue;
      const requestId = this.takeRequestId();
      this.inFlight.set(requestId, call);
      if (call.encoded !== undefined) {
        setRequestId(call.encoded, requestId);
        this.socket.write(call.encoded);
        continue;
      }
      this.socket.write(
        encodeClientFrame({
          type: 'request',
          requestId,
          method: call.request.method as RequestMethod,
          path: call.path,
          headers: forwardedHeaders(call.request.headers),
          body: call.request.body === null ? new Uint8Array(0) : encoder.encode(call.request.body),
        }),
      );
    }
  }

  private takeRequestId(): number {
    // Ids wrap after 2^32 - 1; one still in flight is skipped (the window is far smaller).
    for (;;) {
      const id = this.nextRequestId;
      this.nextRequestId = id >= 0xffff_ffff ? 1 : id + 1;
      if (!this.inFlight.has(id)) return id;
    }
  }

  private onData(chunk: Uint8Array): void {
    const error = this.decoder.pushTo(chunk, this);
    if (error !== null) {
      this.fail(new BinaryConnectionError(error.code, `the node sent ${error.message}`));
      this.socket.destroy();
    }
  }

  /** A frame the node sent (ClientFrameHandler). */
  frame(frame: ClientFrame): void {
    switch (frame.type) {
      case 'welcome':
        this.windowRequests = frame.windowRequests;
        this.pump();
        return;
      case 'answer':
        this.onAnswer(frame);
        return;
      case 'streamHead':
      case 'streamData':
      case 'streamEnd':
        this.onStreamFrame(frame);
        return;
      case 'goAway':
        // A node closes an idle connection only with nothing in flight and reads nothing
        // after it (docs/protocol.md): a call that crossed it was never read, so it goes
        // again on a new connection, as if this one had been closed before it was made.
        this.fail(
          new BinaryConnectionError(frame.code, frame.message),
          frame.code === 'idle_timeout' ? this.resend : null,
        );
        this.socket.destroy();
        return;
      default:
        this.fail(new BinaryConnectionError('frame_unexpected', `a node sends no ${frame.type}`));
        this.socket.destroy();
    }
  }

  private onAnswer(frame: AnswerFrame): void {
    const call = this.inFlight.get(frame.requestId);
    if (call === undefined) {
      this.fail(new BinaryConnectionError('frame_unexpected', 'an answer to no request'));
      this.socket.destroy();
      return;
    }
    this.inFlight.delete(frame.requestId);
    this.settle(call, {
      status: frame.status,
      headers: frame.headers,
      body: utf8.decode(frame.body),
    });
    this.pump();
    this.holdProcess();
  }

  /** A runAnswer the node sent (ClientFrameHandler): its results go to the run at once. */
  runAnswer(requestId: number, results: RunResults): void {
    const call = this.inFlight.get(requestId);
    if (call?.resolveRun === undefined) {
      this.fail(new BinaryConnectionError('frame_unexpected', 'a runAnswer to no run'));
      this.socket.destroy();
      return;
    }
    this.inFlight.delete(requestId);
    if (this.finishCall(call)) call.resolveRun(results);
    this.pump();
    this.holdProcess();
  }

  private onStreamFrame(
    frame: Extract<ClientFrame, { type: 'streamHead' | 'streamData' | 'streamEnd' }>,
  ): void {
    const call = this.inFlight.get(frame.requestId);
    const sink = call?.stream;
    if (call === undefined || sink === undefined) {
      this.fail(new BinaryConnectionError('frame_unexpected', 'a stream frame for no stream'));
      this.socket.destroy();
      return;
    }
    if (frame.type === 'streamHead') {
      call.timer?.cancel();
      sink.head(frame.status, frame.headers);
    } else if (frame.type === 'streamData') sink.data(frame.data);
    else {
      this.inFlight.delete(frame.requestId);
      sink.end(null);
      this.pump();
      this.holdProcess();
    }
  }

  /** A stream's reader is behind: read no more until it catches up (its own connection). */
  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** Ends the connection after what was written (a stream's own, once it is over). */
  close(): void {
    this.socket.end();
  }

  /** Stops a stream: the node ends it, and its id is free once the streamEnd comes. */
  cancel(call: Call): void {
    for (const [requestId, inFlight] of this.inFlight) {
      if (inFlight !== call) continue;
      if (!this.socket.destroyed) {
        this.socket.write(encodeClientFrame({ type: 'cancel', requestId }));
      }
      return;
    }
  }

  /** Settles a call once; later answers for it only free its slot. */
  settle(call: Call, outcome: HttpExchangeResponse | Error): void {
    if (!this.finishCall(call)) return;
    if (outcome instanceof Error) call.reject(outcome);
    else call.resolve(outcome);
  }

  /** Marks a call settled; false if it was already (its caller stopped waiting). */
  private finishCall(call: Call): boolean {
    if (call.settled) return false;
    call.settled = true;
    call.timer?.cancel();
    call.detach();
    return true;
  }

  /** Ends the connection: its calls fail with `error`, or go to `resend` when given. */
  private fail(
    error: BinaryConnectionError,
    resend: ((calls: readonly Call[]) => void) | null = null,
  ): void {
    if (this.failure !== null) return;
    this.failure = error;
    this.onGone();
    const calls = [...this.inFlight.values(), ...this.waiting];
    this.inFlight.clear();
    this.waiting.length = 0;
    if (resend !== null) resend(calls.filter((call) => !call.settled));
    else {
      for (const call of calls) {
        this.settle(call, error);
        call.stream?.end(error);
      }
    }
    this.socket.destroy();
  }
}

/**
 * Only what the node reads: the JSON framing headers are implied by the protocol, but a
 * stream's accept says which body it takes (stream records or events).
 */
function forwardedHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  const forwarded: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    const implied =
      lower === 'content-type' || (lower === 'accept' && !value.includes(streamRecordsType));
    if (!implied) forwarded[lower] = value;
  }
  return forwarded;
}

/**
 * An HttpExchange for `abcast(s)://` URLs; deadlines run on `environment`'s timers
 * (background: they never keep a process alive by themselves).
 */
/** Stream text the SDK holds for a reader before it stops reading the connection. */
const streamBufferBytes = 4 << 20;

export interface BinaryExchange extends HttpExchange {
  /**
   * GET /v1/stream and such over the binary port: resolves at the answer's head, with its
   * body as it arrives (the text HTTP would send); aborting `signal` cancels the stream.
   */
  openStream(
    url: string,
    headers: Readonly<Record<string, string>>,
    signal: AbortSignal,
    timeoutMs: number,
  ): Promise<StreamAnswer>;
  readonly broadcastRun: NonNullable<HttpExchange['broadcastRun']>;
}

/** The key connections are kept by: one per node. */
function originKey(origin: URL): string {
  return origin.origin === 'null' ? `${origin.protocol}//${origin.host}` : origin.origin;
}

/** Puts a call on `connection` with its deadline and its caller's signal. */
/** The pool's connection under `key`, made when there is none; a closed one leaves the pool. */
function pooledConnection(
  pool: Map<string, BinaryConnection>,
  key: string,
  origin: URL,
  options: BinaryExchangeOptions,
): BinaryConnection {
  let connection = pool.get(key);
  if (connection === undefined) {
    const made = new BinaryConnection(
      origin,
      options,
      () => {
        if (pool.get(key) === made) pool.delete(key);
      },
      false,
      // Each call keeps its deadline and its caller's signal: the old connection settles it
      // (a settled call is only skipped), whichever one it is on.
      (calls) => {
        for (const call of calls) pooledConnection(pool, key, origin, options).call(call);
      },
    );
    connection = made;
    pool.set(key, connection);
  }
  return connection;
}

function startCall(
  environment: Environment,
  connection: BinaryConnection,
  call: Call,
  signal: AbortSignal,
): void {
  const { timeoutMs } = call.request;
  assert(Number.isFinite(timeoutMs) && timeoutMs > 0, 'a deadline is > 0');
  if (signal.aborted) {
    call.reject(signal.reason);
    return;
  }
  call.timer = environment.setTimer(
    timeoutMs,
    () => connection.settle(call, new ExchangeTimeoutError(timeoutMs)),
    { background: true },
  );
  if (call.encoded !== undefined) {
    // A run: its signal is the client's, watched once per connection (`call`).
    assert(call.request.signal === signal, "a run's call carries its signal");
  } else {
    const onAbort = () => connection.settle(call, signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    call.detach = () => signal.removeEventListener('abort', onAbort);
  }
  connection.call(call);
}

/**
 * broadcastRun frames over the binary port. Whether a node knows the frame is learnt from
 * its first runs, sent on a connection of their own: an older node answers the unknown
 * frame type with a goAway and closes that connection, which must not break the calls on
 * the shared one. Its runs then come back null (the caller sends the batch request), and so
 * does every later run to that node; a node that answered gets its runs on the shared
 * connection, and the probe ends once idle.
 */
function runsOverBinary(
  environment: Environment,
  options: BinaryExchangeOptions,
  connectionTo: (origin: URL, key: string) => BinaryConnection,
): BinaryExchange['broadcastRun'] {
  /** By node: whether it knows the frame; absent until one of its answers says. */
  const known = new Map<string, boolean>();
  const probes = new Map<string, BinaryConnection>();
  const probeTo = (origin: URL, key: string): BinaryConnection =>
    pooledConnection(probes, key, origin, options);
  /** By run URL: its endpoint parsed once, not once per run. */
  const targets = new Map<string, RunTarget>();
  const targetOf = (runUrl: string): RunTarget => {
    let target = targets.get(runUrl);
    if (target === undefined) {
      const url = new URL(runUrl);
      target = { url, key: originKey(url), path: url.pathname };
      targets.set(runUrl, target);
    }
    return target;
  };
  /** The run after its frame is laid out: the request (and its messages) is not held. */
  const send = async (
    runUrl: string,
    { url, key, path }: RunTarget,
    encoded: Buffer,
    timeoutMs: number,
    signal: AbortSignal,
    onResults: RunExchangeRequest['onResults'],
  ): Promise<RunExchangeAnswer | null> => {
    // Made only now: a connection that never carries a call would hold the process open.
    const connection = known.get(key) === true ? connectionTo(url, key) : probeTo(url, key);
    try {
      const answer = await new Promise<RunExchangeAnswer>((resolve, reject) => {
        startCall(
          environment,
          connection,
          {
            request: { method: 'POST', url: runUrl, headers: {}, body: null, timeoutMs, signal },
            path,
            resolve: (response) => resolve({ kind: 'refused', response }),
            reject,
            encoded,
            resolveRun: (results) => {
              onResults(results);
              resolve(taken);
            },
            settled: false,
            timer: null,
            detach: () => undefined,
          },
          signal,
        );
      });
      known.set(key, true);
      return answer;
    } catch (error) {
      if (!(error instanceof BinaryConnectionError && error.code === 'frame_type_unknown')) {
        throw error;
      }
      known.set(key, false);
      return null;
    } finally {
      // The probe the run went on, or the one it was sent again on after an idle close.
      const probe = probes.get(key);
      if (probe !== undefined && known.has(key)) {
        probes.delete(key);
        probe.endWhenIdle();
      }
    }
  };
  return async (request: RunExchangeRequest): Promise<RunExchangeAnswer | null> => {
    const target = targetOf(request.url);
    if (known.get(target.key) === false) return null;
    if (request.signal.aborted) throw request.signal.reason;
    const encoded = encodeClientFrame({
      type: 'broadcastRun',
      requestId: 0,
      headers: forwardedHeaders(request.headers),
      clientId: request.clientId,
      firstSeq: request.firstSeq,
      nonce: request.nonce,
      messages: request.messages,
    });
    return send(request.url, target, encoded, request.timeoutMs, request.signal, request.onResults);
  };
}

const taken: RunExchangeAnswer = Object.freeze({ kind: 'taken' });

/** A run URL parsed once: its node (as the pools key it) and its path. */
interface RunTarget {
  readonly url: URL;
  readonly key: string;
  readonly path: string;
}

export function binaryExchange(
  environment: Environment,
  options: BinaryExchangeOptions = { ca: null },
): BinaryExchange {
  const connections = new Map<string, BinaryConnection>();
  const connectionTo = (origin: URL, key = originKey(origin)): BinaryConnection =>
    pooledConnection(connections, key, origin, options);
  const exchange = (request: HttpExchangeRequest) =>
    new Promise<HttpExchangeResponse>((resolve, reject) => {
      if (request.signal.aborted) return reject(request.signal.reason);
      const url = new URL(request.url);
      const connection = connectionTo(url);
      const call: Call = {
        request,
        path: `${url.pathname}${url.search}`,
        resolve,
        reject,
        settled: false,
        timer: null,
        detach: () => undefined,
      };
      startCall(environment, connection, call, request.signal);
    });
  const openStream = (
    url: string,
    headers: Readonly<Record<string, string>>,
    signal: AbortSignal,
    timeoutMs: number,
  ): Promise<StreamAnswer> =>
    new Promise<StreamAnswer>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const target = new URL(url);
      // A connection of its own, as over HTTP: a reader that falls behind pauses it, which
      // must never hold back the answers its own broadcasts wait for.
      const connection = new BinaryConnection(target, options, () => undefined, true);
      let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
      let ended = false;
      const body = new ReadableStream<Uint8Array>(
        {
          start: (streamController) => {
            controller = streamController;
          },
          pull: () => connection.resumeReading(),
          cancel: () => {
            // The reader let go: nothing more is to be put in its stream.
            ended = true;
            signal.removeEventListener('abort', onAbort);
            connection.cancel(call);
            connection.close();
          },
        },
        new ByteLengthQueuingStrategy({ highWaterMark: streamBufferBytes }),
      );
      const finish = (error: Error | null) => {
        if (ended) return;
        ended = true;
        signal.removeEventListener('abort', onAbort);
        connection.close();
        if (error === null) controller?.close();
        else controller?.error(error);
      };
      const onAbort = () => {
        connection.cancel(call);
        connection.settle(call, signal.reason as Error);
        finish(signal.reason as Error);
      };
      const call: Call = {
        request: { method: 'GET', url, headers, body: null, timeoutMs, signal },
        path: `${target.pathname}${target.search}`,
        // A whole answer instead of a stream (an error, say): its body is the stream's.
        resolve: (response) => {
          resolve({
            status: response.status,
            headers: response.headers,
            body: new ReadableStream({
              start: (whole) => {
                whole.enqueue(encoder.encode(response.body));
                whole.close();
              },
            }),
          });
          finish(null);
        },
        reject: (error) => {
          reject(error);
          finish(error as Error);
        },
        settled: false,
        timer: null,
        detach: () => undefined,
        stream: {
          head: (status, streamHeaders) => {
            if (call.settled) return;
            call.settled = true;
            resolve({ status, headers: streamHeaders, body });
          },
          data: (bytes) => {
            if (ended || controller === null) return;
            controller.enqueue(bytes.slice());
            if ((controller.desiredSize ?? 1) <= 0) connection.pauseReading();
          },
          end: (error) => {
            if (!call.settled) connection.settle(call, error ?? new Error('the stream ended'));
            finish(error);
          },
        },
      };
      call.timer = environment.setTimer(
        timeoutMs,
        () => {
          connection.cancel(call);
          connection.settle(call, new ExchangeTimeoutError(timeoutMs));
        },
        { background: true },
      );
      signal.addEventListener('abort', onAbort, { once: true });
      connection.call(call);
    });
  const broadcastRun = runsOverBinary(environment, options, connectionTo);
  return Object.assign(exchange, { openStream, broadcastRun });
}
