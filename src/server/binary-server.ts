/**
 * The binary client port (docs/protocol.md): the same API calls as HTTP, carried in frames
 * (transport/client-frames.ts), many at once on one connection. Each request frame becomes
 * an exchange of the one Dispatcher the HTTP server runs, so a call over this port goes
 * through the same routes, validation, authentication, session rules, error shapes and
 * deadlines as over HTTP; only the envelope differs. Answers leave as they finish, tagged
 * with their request's id. A broadcastRun frame goes through the same dispatcher as the
 * batch request it stands for, with a handler that reads it without JSON
 * (routes/broadcast-run.ts) and answers with a runAnswer frame.
 *
 * Memory per connection is bounded: the decoder holds at most one frame of
 * `frameBytesMax`, and the node grants a window of `windowRequests` unanswered requests; a
 * client that goes past it, or sends a frame that does not decode, gets a goAway frame with
 * the code and its connection closed. Other connections are not touched.
 *
 * Nor does a connection hold its slot of `connectionsMax` for nothing: a frame begun must be
 * finished within the frame deadline (`frame_timeout`), and a connection with no request in
 * flight that sends nothing for `binaryIdleTimeoutMs` is closed (`idle_timeout`), and so is
 * one that takes none of its answers for as long (its socket's buffer full: reading paused,
 * or a stream held back), without a goAway, which could not reach it. One sweep a second
 * looks at every connection, which only records the time of each chunk it reads and of the
 * start of each wait for 'drain': no timer per frame, nor one more per connection, on a port
 * that carries 300,000 messages a second.
 */

import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import {
  type ClientFrame,
  ClientFrameDecoder,
  clientFrameLimits,
  encodeClientFrame,
  encodeRunAnswerOf,
  type NodeFrameHandler,
  type ReceivedRun,
  type RequestFrame,
  type RunResults,
  streamDataHead,
} from '../transport/client-frames.ts';
import type { DuplexConnection } from '../transport/duplex-connection.ts';
import type { TlsCredentials } from '../transport/tls.ts';
import { assert } from '../util/assert.ts';
import type { Timer } from '../util/environment.ts';
import { tooLarge } from './body.ts';
import type { ServerContext } from './context.ts';
import type { Dispatcher } from './dispatcher.ts';
import type { Answer, ExchangeRequest, ExchangeResponse, Front, StreamWriter } from './exchange.ts';
import { listenOn, tlsServerOptions } from './listen.ts';
import { certificateNameOfSocket } from './node-exchange.ts';
import { sendJson } from './respond.ts';
import { broadcastRunRoute } from './routes/broadcast-run.ts';

/** Unanswered requests one connection may hold by default. */
export const defaultWindowRequests = 1024;

/**
 * How long a frame may take to arrive once its first byte has: the request deadline, as
 * node:http gives a request's headers (http.ts: headersTimeout), and a frame is a request's
 * headers and body in one. A client that cannot send one frame in that time could not have
 * it answered in time either; one that sends a length and then nothing holds a slot and up
 * to `frameBytesMax` of buffers until it is told.
 */
function frameTimeoutMsOf(context: ServerContext): number {
  return context.settings.requestTimeoutMs;
}

/**
 * Between two sweeps: a deadline is enforced within this much after it passes. As node:http's
 * connectionsCheckingInterval (http.ts), a second, or the deadline itself when it is shorter.
 */
function sweepIntervalMsOf(deadlines: ConnectionDeadlines): number {
  return Math.min(1000, deadlines.frameTimeoutMs, deadlines.idleTimeoutMs);
}

/** When the sweep ends a connection (`BinaryConnection.checkDeadlines`). */
interface ConnectionDeadlines {
  readonly frameTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly drainTimeoutMs: number;
}

/**
 * How long the node waits for a client to take what waits for it (until the socket's
 * 'drain'): the idle timeout. A client that takes nothing for that long is as gone as one
 * that sends nothing for it, and a live one that pauses between bursts pauses its reading
 * no longer than its sending.
 * Until then, what waits is bounded (the window's answers, or a stream's piece), as an HTTP
 * stream whose reader stopped (routes/stream.ts) holds at most a piece; HTTP has no such
 * deadline, but an HTTP connection holds one stream or answer, where this one holds a
 * window of them. Past it the connection is cut as HTTP cuts a stream whose reader stopped
 * (routes/stream.ts, endStream): a goAway would wait behind the answers never taken.
 */
function drainTimeoutMsOf(context: ServerContext): number {
  return context.settings.binaryIdleTimeoutMs;
}

/** The largest batch body (broadcast-batch.ts) plus room for the frame's own fields. */
function frameBytesMaxFor(context: ServerContext): number {
  return Math.min(
    clientFrameLimits.frameBytesMax,
    Math.max(4 << 20, context.settings.bodyBytesMax) + (64 << 10),
  );
}

/** Answer headers worth carrying: the rest (content-length, cache-control) mean nothing here. */
const answerHeaderNames = ['content-type', 'retry-after', 'www-authenticate', 'allow'];

const encoder = new TextEncoder();
const noBody = new Uint8Array(0);

export interface BinaryServerOptions {
  readonly context: ServerContext;
  readonly dispatcher: Dispatcher;
  readonly tls: TlsCredentials | null;
  readonly windowRequests: number;
}

export class BinaryServer {
  private readonly server: Server;
  private readonly connections = new Set<BinaryConnection>();
  private stopRotation: (() => void) | null = null;
  private readonly scheme: 'abcast' | 'abcasts';
  private readonly deadlines: ConnectionDeadlines;
  /** Armed while a connection is open (`sweep`). */
  private sweepTimer: Timer | null = null;

  constructor(private readonly options: BinaryServerOptions) {
    assert(Number.isSafeInteger(options.windowRequests), 'the window is an integer');
    assert(options.windowRequests >= 1, 'the window holds a request');
    const { tls, context } = options;
    this.deadlines = {
      frameTimeoutMs: frameTimeoutMsOf(context),
      idleTimeoutMs: context.settings.binaryIdleTimeoutMs,
      drainTimeoutMs: drainTimeoutMsOf(context),
    };
    assert(this.deadlines.frameTimeoutMs > 0, 'a frame has time to arrive');
    assert(Number.isSafeInteger(this.deadlines.idleTimeoutMs), 'the idle timeout is an integer');
    assert(this.deadlines.idleTimeoutMs > 0, 'a connection may be idle a while');
    assert(this.deadlines.drainTimeoutMs > 0, 'a client has time to take its answers');
    const accept = (socket: Socket) => this.accept(socket);
    this.scheme = tls === null ? 'abcast' : 'abcasts';
    if (tls === null) {
      this.server = createNetServer({ noDelay: true }, accept);
    } else {
      const askForCertificates = context.auth !== null && context.auth !== undefined;
      const server = createTlsServer(
        {
          ...tlsServerOptions(tls.material),
          requestCert: askForCertificates,
          rejectUnauthorized: false,
          handshakeTimeout: context.settings.requestTimeoutMs,
        },
        accept,
      );
      this.stopRotation = tls.onUpdate((material) =>
        server.setSecureContext(tlsServerOptions(material)),
      );
      this.server = server;
    }
    this.server.maxConnections = context.settings.connectionsMax;
  }

  /** Listens on "host:port" (port 0 picks one); resolves with `abcast(s)://host:port`. */
  listen(address: string): Promise<string> {
    return listenOn(this.server, address, this.scheme);
  }

  /** Stops accepting; open connections stay until `closeConnections`. */
  stopListening(): Promise<void> {
    this.stopRotation?.();
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
  }

  /** Connections open now, hello said or not. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Says goodbye to every connection (their answers in progress are over by now). */
  closeConnections(): void {
    for (const connection of this.connections) {
      connection.goAway(0, 'node_stopped', 'the node is stopping');
    }
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    this.acceptConnection(socket);
  }

  /**
   * Serves a connection already open: a socket the listener accepted, or the simulator's
   * connection (src/sim/runtime/sim-connection.ts). It is closed with the others.
   */
  acceptConnection(socket: DuplexConnection): void {
    const connection = new BinaryConnection(socket, this.options);
    const { metrics } = this.options.context;
    this.connections.add(connection);
    metrics.binaryConnection(1);
    socket.once('close', () => {
      this.connections.delete(connection);
      metrics.binaryConnection(-1);
    });
    this.armSweep();
  }

  /**
   * One timer for every connection, armed only while there is one (it never keeps a process
   * up by itself): with thousands of connections a pass costs less than a timer per
   * connection re-armed as its frames come.
   */
  private armSweep(): void {
    if (this.sweepTimer !== null || this.connections.size === 0) return;
    const { environment } = this.options.context;
    this.sweepTimer = environment.setTimer(sweepIntervalMsOf(this.deadlines), () => this.sweep(), {
      background: true,
    });
  }

  private sweep(): void {
    this.sweepTimer = null;
    const nowMs = this.options.context.environment.monotonicMs();
    for (const connection of this.connections) connection.checkDeadlines(nowMs, this.deadlines);
    this.armSweep();
  }
}

/** A request not over yet: its answer, or its stream's streamEnd, has not gone out. */
interface InFlight {
  /** The exchange's close listener (Front.onClose): what runs for the request stops. */
  close: () => void;
  /** The client's cancel frame. */
  readonly cancel: () => void;
}

const noListener = () => undefined;

/** One client connection: hello, then requests in flight by id. */
class BinaryConnection implements NodeFrameHandler {
  private readonly decoder: ClientFrameDecoder;
  private readonly frameBytesMax: number;
  /** The exchanges in flight, by request id. */
  private readonly inFlight = new Map<number, InFlight>();
  private token: string | null = null;
  private closing = false;
  private helloTimer: Timer | null;
  /** Whether frames written this turn are being gathered for one write (`write`). */
  private corked = false;
  /** Reading stopped until the client takes its answers (`readFrames`). */
  private awaitingDrain = false;
  /**
   * When the node began to wait for the client to take its answers (reading paused, or a
   * stream held back); null once the socket drained (`noteDrainWait`, `checkDeadlines`).
   */
  private drainWaitStartedMs: number | null = null;
  /** When a chunk last came, or the last request in flight ended (`checkDeadlines`). */
  private lastActivityMs: number;
  /** When the first byte of the frame now partly read came; null between frames. */
  private frameStartedMs: number | null = null;
  /** Frames read so far: a count that moved during a chunk means a new frame began. */
  private framesReadCount = 0;

  constructor(
    private readonly socket: DuplexConnection,
    private readonly options: BinaryServerOptions,
  ) {
    const { context } = options;
    this.frameBytesMax = frameBytesMaxFor(context);
    this.decoder = new ClientFrameDecoder(this.frameBytesMax);
    this.lastActivityMs = context.environment.monotonicMs();
    // A connection that never says hello holds a socket for nothing.
    this.helloTimer = context.environment.setTimer(
      context.settings.requestTimeoutMs,
      () => this.goAway(0, 'hello_timeout', 'no hello frame within the request deadline'),
      { background: true },
    );
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined); // a reset: 'close' follows and cleans up
    socket.once('close', () => this.onClose());
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    // A 'data' chunk is fresh memory Node never reuses: a run's payloads may stay views of it.
    this.readFrames(chunk);
  }

  /**
   * A client that does not read its answers gets no more requests read: answers waiting in
   * this process stay within what the window allows. Checked before each frame, not each
   * chunk: a request answered at once (a page of messages) frees its slot of the window at
   * once, so one chunk of them would otherwise hold every answer, a thousand 4 MiB pages
   * for 38 KB sent. The rest of the chunk waits in the decoder until 'drain'.
   */
  private readFrames(chunk: Uint8Array): void {
    const framesReadBefore = this.framesReadCount;
    const error = this.decoder.pushAtNode(chunk, this, this.readingFrames);
    if (this.closing) return;
    if (error !== null) {
      this.goAway(0, error.code, error.message);
      return;
    }
    this.noteProgress(framesReadBefore);
    if (this.socket.writableNeedDrain && !this.awaitingDrain) {
      this.awaitingDrain = true;
      this.noteDrainWait();
      this.socket.pause();
      this.socket.once('drain', () => {
        this.awaitingDrain = false;
        this.readFrames(noBody);
        if (!this.awaitingDrain) this.socket.resume();
      });
    }
  }

  /**
   * The node waits for 'drain' from now, unless it already did: the time is read once per
   * wait, not per write. The listener goes before the waiter's own, so that a waiter that
   * waits again at once (a stream writing its next piece) starts a new wait.
   */
  private noteDrainWait(): void {
    assert(this.socket.writableNeedDrain, "only a full socket's buffer is waited on");
    if (this.drainWaitStartedMs !== null) return;
    this.drainWaitStartedMs = this.options.context.environment.monotonicMs();
    this.socket.once('drain', this.drainWaitOver);
  }

  private readonly drainWaitOver = () => {
    this.drainWaitStartedMs = null;
  };

  /**
   * What the sweep measures from, once per chunk (never per frame): the time of the last
   * bytes, and of the first byte of a frame still partly read. A frame that began before
   * this chunk and is still unfinished keeps its start; one begun in it starts now.
   */
  private noteProgress(framesReadBefore: number): void {
    const nowMs = this.options.context.environment.monotonicMs();
    this.lastActivityMs = nowMs;
    if (!this.decoder.hasPartialFrame) this.frameStartedMs = null;
    else if (this.frameStartedMs === null || this.framesReadCount !== framesReadBefore) {
      this.frameStartedMs = nowMs;
    }
  }

  /**
   * The sweep's look (BinaryServer.sweep): a frame begun longer than the frame deadline ago
   * ends the connection with `frame_timeout`; a connection past its hello with no request in
   * flight (an open stream is one), no frame begun and no bytes for the idle timeout ends with
   * `idle_timeout`. Neither while reading waits for the client to take its answers: the
   * frames waiting then are the node's to read, and answers are still on their way. A
   * client that takes none of them for the drain timeout is cut off (`drainTimeoutMsOf`).
   */
  checkDeadlines(nowMs: number, deadlines: ConnectionDeadlines): void {
    if (this.closing) return;
    const { frameTimeoutMs, idleTimeoutMs, drainTimeoutMs } = deadlines;
    if (this.drainWaitStartedMs !== null && nowMs - this.drainWaitStartedMs >= drainTimeoutMs) {
      this.cutOff();
      return;
    }
    if (this.awaitingDrain) return;
    if (this.frameStartedMs !== null) {
      if (nowMs - this.frameStartedMs < frameTimeoutMs) return;
      this.goAway(0, 'frame_timeout', `a frame begun was not finished within ${frameTimeoutMs} ms`);
      return;
    }
    if (this.token === null || this.inFlight.size > 0) return;
    if (nowMs - this.lastActivityMs < idleTimeoutMs) return;
    // Nothing is in flight and nothing after this is read: a request that crosses it was
    // never seen, and the client may send it again on a new connection, whatever it is.
    this.goAway(0, 'idle_timeout', `no request for ${idleTimeoutMs} ms; connect again to send one`);
  }

  /** Whether the next frame is read now (`readFrames`). */
  private readonly readingFrames = () => !this.closing && !this.socket.writableNeedDrain;

  /** A frame read (NodeFrameHandler); those after a goAway are dropped. */
  frame(frame: ClientFrame): void {
    this.framesReadCount++;
    if (this.closing) return;
    if (frame.type === 'hello') {
      this.onHello(frame.token);
      return;
    }
    if (frame.type === 'cancel' && this.token !== null) {
      // An id no longer in flight just ended: its answer or streamEnd is on its way.
      this.inFlight.get(frame.requestId)?.cancel();
      return;
    }
    const refusal = this.refusalOf(frame.type, frame.requestId);
    if (refusal !== null) this.goAway(frame.requestId, refusal.code, refusal.message);
    else {
      this.options.context.metrics.binaryRequest();
      this.options.dispatcher.dispatch(this.front(frame as RequestFrame).front);
    }
  }

  /**
   * A run read (NodeFrameHandler). It goes through the dispatcher as the batch request it
   * stands for (deadline, authorization, error answers), with a handler of its own that
   * reads no body and answers with a runAnswer frame.
   */
  run(run: ReceivedRun): void {
    this.framesReadCount++;
    if (this.closing) return;
    const { requestId } = run;
    const refusal = this.refusalOf('broadcastRun', requestId);
    if (refusal !== null) {
      this.goAway(requestId, refusal.code, refusal.message);
      return;
    }
    const { metrics } = this.options.context;
    metrics.binaryRequest();
    metrics.binaryRun();
    const { front, sendFrame } = this.front({
      type: 'request',
      requestId,
      method: 'POST',
      path: '/v1/broadcast/batch',
      headers: run.headers,
      body: noBody,
    });
    const answer = (results: RunResults) => sendFrame(200, encodeRunAnswerOf(requestId, results));
    this.options.dispatcher.dispatch(front, broadcastRunRoute(run, answer));
  }

  private onHello(token: string): void {
    if (this.token !== null) {
      this.goAway(0, 'hello_repeated', 'hello comes once');
      return;
    }
    this.helloTimer?.cancel();
    this.helloTimer = null;
    this.token = token;
    this.write(
      encodeClientFrame({
        type: 'welcome',
        requestId: 0,
        windowRequests: this.options.windowRequests,
        frameBytesMax: this.frameBytesMax,
        nodeId: this.options.context.node.id,
      }),
    );
  }

  /** Why a frame other than hello ends the connection, or null for a request to run. */
  private refusalOf(
    type: ClientFrame['type'],
    requestId: number,
  ): { code: string; message: string } | null {
    if (this.token === null) {
      return { code: 'hello_expected', message: 'the first frame is a hello' };
    }
    if (type !== 'request' && type !== 'broadcastRun') {
      return { code: 'frame_unexpected', message: `a client sends no ${type} frame` };
    }
    if (this.inFlight.has(requestId)) {
      return {
        code: 'request_id_in_use',
        message: `request ${requestId} is still unanswered`,
      };
    }
    if (this.inFlight.size >= this.options.windowRequests) {
      return {
        code: 'window_exceeded',
        message: `more than the ${this.options.windowRequests} unanswered requests the node granted`,
      };
    }
    return null;
  }

  /** The exchange of one request; `sendFrame` answers it with an encoded frame. */
  private front(frame: RequestFrame): {
    front: Front;
    sendFrame: (status: number, encoded: Uint8Array) => void;
  } {
    const { requestId } = frame;
    const isOpen = () => !this.closing;
    let answered = false;
    /** Answered whole, or a streamed answer ended: the exchange is over. */
    let over = false;
    let status = 200;
    const headers: Record<string, string> = { ...frame.headers };
    if (this.token !== '' && headers.authorization === undefined) {
      headers.authorization = `Bearer ${this.token}`;
    }
    // The frame may be a view of the socket's chunk: the body outlives this turn.
    const body = frame.body.slice();
    const request: ExchangeRequest = {
      method: frame.method,
      url: frame.path,
      headers,
      readBody: async ({ bodyBytesMax, signal }) => {
        if (signal.aborted) throw signal.reason;
        if (body.length > bodyBytesMax) throw tooLarge(bodyBytesMax);
        return body;
      },
      certificateName: certificateNameOfSocket(this.socket as unknown as Partial<TLSSocket>),
    };
    const sendFrame = (answerStatus: number, encoded: Uint8Array) => {
      assert(!answered, 'a request is answered once');
      answered = true;
      over = true;
      status = answerStatus;
      if (isOpen()) this.write(encoded);
      this.endInFlight(requestId);
    };
    const response: ExchangeResponse = {
      get answerable() {
        return !answered && isOpen();
      },
      get status() {
        return status;
      },
      send: (answer: Answer) => sendFrame(answer.status, answerFrame(requestId, answer)),
      startStream: (streamStatus, streamHeaders) => {
        assert(!answered, 'a request is answered once');
        answered = true;
        status = streamStatus;
        this.write(
          encodeClientFrame({
            type: 'streamHead',
            requestId,
            status: streamStatus,
            headers: carriedHeaders(streamHeaders),
          }),
        );
        return new BinaryStreamWriter({
          socket: this.socket,
          requestId,
          context: this.options.context,
          isOpen,
          onDrainWait: () => this.noteDrainWait(),
          onEnd: () => {
            // The stream is over: its id is free, and the route's close listener runs.
            over = true;
            this.endInFlight(requestId);
          },
        });
      },
    };
    // The client stops reading a stream or waiting for a call: what runs for it stops, as
    // when an HTTP client closes its connection. The id stays taken until the answer or the
    // streamEnd goes out, so that the client never sees frames of the old call under a
    // reused id. A call not answered yet is answered now (what runs for it stops once it
    // is), or its id and its slot of the window would never be free again.
    const cancel = () => {
      if (!answered) {
        sendJson(response, 499, {
          error: 'cancelled',
          message: `request ${requestId} was cancelled by the client before it was answered; a broadcast may still be delivered: retry with the same client and seq to learn its outcome`,
        });
        return;
      }
      const entry = this.inFlight.get(requestId);
      if (entry === undefined) return;
      const listener = entry.close;
      entry.close = noListener; // it runs once, however often the client cancels
      listener();
    };
    const front: Front = {
      request,
      response,
      onClose: (listener) => {
        assert(!this.inFlight.has(requestId), 'one close listener per request');
        if (over) queueMicrotask(listener);
        else this.inFlight.set(requestId, { close: listener, cancel });
      },
      afterErrorAnswer: () => undefined, // the whole body is at hand: nothing to discard
    };
    return { front, sendFrame };
  }

  /** A request is over: its id is free, and its exchange's close listener runs. */
  private endInFlight(requestId: number): void {
    const entry = this.inFlight.get(requestId);
    if (entry === undefined) return;
    this.inFlight.delete(requestId);
    queueMicrotask(entry.close);
    // Idle is counted from the last answer too: a call that took long was no idleness.
    if (this.inFlight.size === 0) {
      this.lastActivityMs = this.options.context.environment.monotonicMs();
    }
  }

  /**
   * Frames written in one turn leave in one socket write: a round settles several runs at
   * once (one per 1,000 messages with a window of 10,000), and a write each was a syscall
   * each. The socket is uncorked once the turn's callbacks and promise jobs are done, so no
   * answer waits on anything but the code already running.
   */
  private write(frame: Uint8Array): void {
    if (this.socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(uncorkConnection, this);
    }
    this.socket.write(frame);
  }

  /** Ends the turn's cork (`write`). */
  uncork(): void {
    this.corked = false;
    this.socket.uncork();
  }

  /** Says why in a last frame, then closes this connection (and only this one). */
  goAway(requestId: number, code: string, message: string): void {
    if (this.closing) return;
    this.closing = true;
    this.helloTimer?.cancel();
    this.write(encodeClientFrame({ type: 'goAway', requestId, code, message }));
    this.socket.end();
    // A client that never reads must not keep the socket: it has been told.
    this.options.context.environment.setTimer(1000, () => this.socket.destroy(), {
      background: true,
    });
  }

  /**
   * Closes a connection whose client takes nothing: no goAway, which would wait behind the
   * answers never taken, and no lingering, which would hold them a second more. The close
   * runs what runs for its requests down (`onClose`).
   */
  private cutOff(): void {
    this.closing = true;
    this.helloTimer?.cancel();
    this.socket.destroy();
  }

  private onClose(): void {
    this.closing = true;
    this.helloTimer?.cancel();
    const entries = [...this.inFlight.values()];
    this.inFlight.clear();
    // The client went away: whatever runs for its requests is told to stop.
    for (const entry of entries) entry.close();
  }
}

function uncorkConnection(connection: { uncork(): void }): void {
  connection.uncork();
}

function carriedHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  const carried: Record<string, string> = {};
  for (const name of answerHeaderNames) {
    const value = headers[name];
    if (value !== undefined) carried[name] = value.slice(0, clientFrameLimits.headerValueBytesMax);
  }
  return carried;
}

function answerFrame(requestId: number, answer: Answer): Uint8Array {
  return encodeClientFrame({
    type: 'answer',
    requestId,
    status: answer.status,
    headers: carriedHeaders(answer.headers),
    body: encoder.encode(answer.body),
  });
}

/** Bytes gathered before they leave as one streamData frame, unless the turn ends first. */
const streamChunkBytes = 256 << 10;

interface StreamWriterOptions {
  readonly socket: DuplexConnection;
  readonly requestId: number;
  readonly context: ServerContext;
  /** Whether the connection is still open (no goAway, no cut). */
  readonly isOpen: () => boolean;
  /** The stream waits for the client to take what was written (the connection's deadline). */
  readonly onDrainWait: () => void;
  /** The stream is over. */
  readonly onEnd: () => void;
}

/**
 * A streamed answer's body over the connection: what the route writes in one turn leaves
 * as one streamData frame (a catching-up subscriber gets thousands of events a turn, and a
 * frame each would cost a socket write each), then a streamEnd frees the request id. The
 * connection's socket is shared by every call on it, so being behind is the socket's.
 */
class BinaryStreamWriter implements StreamWriter {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private flushTimer: Timer | null = null;
  private over = false;

  private readonly socket: DuplexConnection;

  constructor(private readonly options: StreamWriterOptions) {
    this.socket = options.socket;
  }

  get gone(): boolean {
    return this.over || !this.options.isOpen() || this.socket.destroyed;
  }

  get behind(): boolean {
    return this.pendingBytes >= streamChunkBytes || this.socket.writableNeedDrain;
  }

  get bufferedBytes(): number {
    return this.pendingBytes + this.socket.writableLength;
  }

  write(data: string | Uint8Array): boolean {
    if (this.gone) return false;
    const bytes = typeof data === 'string' ? encoder.encode(data) : data;
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    if (this.pendingBytes >= streamChunkBytes) this.flush();
    else this.flushTimer ??= this.options.context.environment.setTimer(0, () => this.flush());
    return !this.behind;
  }

  drained(signal: AbortSignal): Promise<void> {
    this.flush();
    if (!this.socket.writableNeedDrain || this.gone || signal.aborted) return Promise.resolve();
    this.options.onDrainWait();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  end(): void {
    if (this.over) return;
    this.flush();
    this.finish();
  }

  destroy(): void {
    if (this.over) return;
    this.pending = [];
    this.pendingBytes = 0;
    this.finish();
  }

  private finish(): void {
    this.flushTimer?.cancel();
    this.flushTimer = null;
    this.over = true;
    if (this.options.isOpen() && !this.socket.destroyed) {
      this.socket.write(
        encodeClientFrame({ type: 'streamEnd', requestId: this.options.requestId }),
      );
    }
    this.options.onEnd();
  }

  /**
   * What was written leaves as one streamData frame: its header, then the bytes as they
   * are (corked into one write), so a large chunk is not copied into a frame first.
   */
  private flush(): void {
    this.flushTimer?.cancel();
    this.flushTimer = null;
    if (this.pending.length === 0) return;
    const parts = this.pending;
    const byteCount = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    if (this.gone) return;
    this.socket.cork();
    this.socket.write(streamDataHead(this.options.requestId, byteCount));
    for (const part of parts) this.socket.write(part);
    this.socket.uncork();
  }
}
