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

  constructor(private readonly options: BinaryServerOptions) {
    assert(Number.isSafeInteger(options.windowRequests), 'the window is an integer');
    assert(options.windowRequests >= 1, 'the window holds a request');
    const { tls, context } = options;
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

  constructor(
    private readonly socket: DuplexConnection,
    private readonly options: BinaryServerOptions,
  ) {
    const { context } = options;
    this.frameBytesMax = frameBytesMaxFor(context);
    this.decoder = new ClientFrameDecoder(this.frameBytesMax);
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
    const error = this.decoder.pushAtNode(chunk, this, this.readingFrames);
    if (this.closing) return;
    if (error !== null) {
      this.goAway(0, error.code, error.message);
      return;
    }
    if (this.socket.writableNeedDrain && !this.awaitingDrain) {
      this.awaitingDrain = true;
      this.socket.pause();
      this.socket.once('drain', () => {
        this.awaitingDrain = false;
        this.readFrames(noBody);
        if (!this.awaitingDrain) this.socket.resume();
      });
    }
  }

  /** Whether the next frame is read now (`readFrames`). */
  private readonly readingFrames = () => !this.closing && !this.socket.writableNeedDrain;

  /** A frame read (NodeFrameHandler); those after a goAway are dropped. */
  frame(frame: ClientFrame): void {
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
        return new BinaryStreamWriter(this.socket, requestId, this.options.context, isOpen, () => {
          // The stream is over: its id is free, and the route's close listener runs.
          over = true;
          this.endInFlight(requestId);
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
    this.inFlight.delete(requestId);
    if (entry !== undefined) queueMicrotask(entry.close);
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

  constructor(
    private readonly socket: DuplexConnection,
    private readonly requestId: number,
    private readonly context: ServerContext,
    private readonly isOpen: () => boolean,
    private readonly onEnd: () => void,
  ) {}

  get gone(): boolean {
    return this.over || !this.isOpen() || this.socket.destroyed;
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
    else this.flushTimer ??= this.context.environment.setTimer(0, () => this.flush());
    return !this.behind;
  }

  drained(signal: AbortSignal): Promise<void> {
    this.flush();
    if (!this.socket.writableNeedDrain || this.gone || signal.aborted) return Promise.resolve();
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
    if (this.isOpen() && !this.socket.destroyed) {
      this.socket.write(encodeClientFrame({ type: 'streamEnd', requestId: this.requestId }));
    }
    this.onEnd();
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
    this.socket.write(streamDataHead(this.requestId, byteCount));
    for (const part of parts) this.socket.write(part);
    this.socket.uncork();
  }
}
