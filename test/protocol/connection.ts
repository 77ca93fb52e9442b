/**
 * A minimal client connection of docs/protocol.md, written from that document alone: hello
 * and welcome, request ids that are never reused while unanswered, answers matched by id in
 * whatever order they come, at most the welcome's window unanswered (the rest wait here),
 * streamed answers and their cancel, and the goAway that ends a connection.
 * Only node:net and node:buffer; nothing from src/.
 */
import type { Buffer } from 'node:buffer';
import { connect, type Socket } from 'node:net';
import {
  broadcastRunFrame,
  cancelFrame,
  decodeServerFrame,
  FrameSplitter,
  type Headers,
  helloFrame,
  type RequestFields,
  type RunFields,
  type RunResult,
  requestFrame,
  type ServerFrame,
} from './frames.ts';

export interface Answer {
  readonly type: 'answer';
  readonly status: number;
  readonly headers: Headers;
  readonly body: Buffer;
  /** The body as JSON (every answer of api.md is JSON). */
  readonly json: Record<string, unknown>;
}

export interface RunAnswer {
  readonly type: 'runAnswer';
  readonly results: RunResult[];
}

export interface Welcome {
  readonly windowRequests: number;
  readonly frameBytesMax: number;
  readonly nodeId: string;
}

export interface GoAway {
  readonly requestId: number;
  readonly code: string;
  readonly message: string;
}

export class GoAwayError extends Error {
  constructor(readonly goAway: GoAway) {
    super(`goAway ${goAway.code}: ${goAway.message}`);
    this.name = 'GoAwayError';
  }
}

export interface StreamCall {
  /** The streamHead's status and headers, or the plain answer of a refused stream. */
  readonly started: Promise<{ status: number; headers: Headers } | Answer>;
  /** Resolves at the streamEnd (or at the answer of a refused stream). */
  readonly ended: Promise<void>;
  cancel(): void;
}

interface Unanswered {
  settle(frame: ServerFrame): boolean;
  fail(error: Error): void;
}

function toAnswer(frame: Extract<ServerFrame, { type: 'answer' }>): Answer {
  const text = frame.body.toString('utf8');
  const json = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  return { type: 'answer', status: frame.status, headers: frame.headers, body: frame.body, json };
}

export class CleanConnection {
  /** Every frame the node sent, in order, for tests that look at the raw exchange. */
  readonly received: ServerFrame[] = [];
  welcome: Welcome | null = null;
  goAway: GoAway | null = null;
  /** The most requests this side ever had unanswered at once. */
  unansweredCountMax = 0;
  readonly closed: Promise<void>;

  private readonly splitter = new FrameSplitter();
  private readonly unanswered = new Map<number, Unanswered>();
  private readonly waiting: Array<{ id: number; frame: Buffer; entry: Unanswered }> = [];
  private readonly frameWaiters: Array<() => void> = [];
  private nextRequestId = 1;
  /** After raw bytes, frames for ids this side did not ask are the test's to look at. */
  private rawWritten = false;

  private constructor(private readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.splitter.push(chunk)) this.onFrame(decodeServerFrame(frame));
    });
    socket.on('close', () => this.failAll(new Error('connection closed')));
    socket.on('error', () => {});
  }

  static open(port: number, host = '127.0.0.1'): Promise<CleanConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new CleanConnection(socket));
      });
    });
  }

  /** Sends hello and waits for the welcome, whose window bounds this side from then on. */
  async hello(token: string): Promise<Welcome> {
    this.socket.write(helloFrame(token));
    await this.waitForFrame((frame) => frame.type === 'welcome' || frame.type === 'goAway');
    if (this.welcome === null) throw new GoAwayError(this.goAway as GoAway);
    return this.welcome;
  }

  request(fields: RequestFields): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const entry: Unanswered = {
        settle: (frame) => {
          if (frame.type !== 'answer') return false;
          resolve(toAnswer(frame));
          return true;
        },
        fail: reject,
      };
      this.enqueue((id) => requestFrame(id, fields), entry);
    });
  }

  /** A run is taken whole (a runAnswer) or refused whole (an ordinary answer). */
  broadcastRun(fields: RunFields): Promise<RunAnswer | Answer> {
    return new Promise((resolve, reject) => {
      const entry: Unanswered = {
        settle: (frame) => {
          if (frame.type === 'answer') resolve(toAnswer(frame));
          else if (frame.type === 'runAnswer')
            resolve({ type: 'runAnswer', results: frame.results });
          else return false;
          return true;
        },
        fail: reject,
      };
      this.enqueue((id) => broadcastRunFrame(id, fields), entry);
    });
  }

  stream(fields: RequestFields, onData: (data: Buffer) => void): StreamCall {
    let requestId: number | null = null;
    let cancelAsked = false;
    let started!: (value: { status: number; headers: Headers } | Answer) => void;
    let ended!: () => void;
    let failed!: (error: Error) => void;
    const startedPromise = new Promise<{ status: number; headers: Headers } | Answer>(
      (resolve, reject) => {
        started = resolve;
        failed = reject;
      },
    );
    const endedPromise = new Promise<void>((resolve, reject) => {
      ended = resolve;
      startedPromise.catch(reject);
    });
    const entry: Unanswered = {
      settle: (frame) => {
        if (frame.type === 'streamHead') started({ status: frame.status, headers: frame.headers });
        else if (frame.type === 'streamData') onData(frame.data);
        else if (frame.type === 'answer') {
          started(toAnswer(frame));
          ended();
          return true;
        } else if (frame.type === 'streamEnd') {
          ended();
          return true;
        }
        return false;
      },
      fail: (error) => failed(error),
    };
    this.enqueue((id) => {
      requestId = id;
      if (cancelAsked) queueMicrotask(() => this.socket.write(cancelFrame(id)));
      return requestFrame(id, fields);
    }, entry);
    return {
      started: startedPromise,
      ended: endedPromise,
      cancel: () => {
        cancelAsked = true;
        if (requestId !== null) this.socket.write(cancelFrame(requestId));
      },
    };
  }

  /** Writes bytes as they are, for tests of what the node does with a broken frame. */
  writeRaw(bytes: Buffer): void {
    this.rawWritten = true;
    this.socket.write(bytes);
  }

  /** Resolves once a frame matching `predicate` has come, or rejects when the socket closes. */
  async waitForFrame(predicate: (frame: ServerFrame) => boolean): Promise<ServerFrame> {
    for (;;) {
      const found = this.received.find(predicate);
      if (found !== undefined) return found;
      if (this.socket.destroyed) throw new Error('connection closed before the frame came');
      await new Promise<void>((resolve) => {
        this.frameWaiters.push(resolve);
        this.socket.once('close', resolve);
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private enqueue(encode: (id: number) => Buffer, entry: Unanswered): void {
    const id = this.takeRequestId();
    this.waiting.push({ id, frame: encode(id), entry });
    this.pump();
  }

  /** Ids count up and wrap, skip 0 and any id still unanswered or waiting. */
  private takeRequestId(): number {
    for (;;) {
      const id = this.nextRequestId;
      this.nextRequestId = id === 0xffff_ffff ? 1 : id + 1;
      const waiting = this.waiting.some((call) => call.id === id);
      if (!this.unanswered.has(id) && !waiting) return id;
    }
  }

  private pump(): void {
    const windowRequests = this.welcome?.windowRequests ?? 0;
    while (this.waiting.length > 0 && this.unanswered.size < windowRequests) {
      const call = this.waiting.shift() as (typeof this.waiting)[number];
      this.unanswered.set(call.id, call.entry);
      this.unansweredCountMax = Math.max(this.unansweredCountMax, this.unanswered.size);
      this.socket.write(call.frame);
    }
  }

  private onFrame(frame: ServerFrame): void {
    this.received.push(frame);
    if (frame.type === 'welcome') {
      this.welcome = frame;
      this.pump();
    } else if (frame.type === 'goAway') {
      this.goAway = frame;
      this.failAll(new GoAwayError(frame));
    } else {
      const entry = this.unanswered.get(frame.requestId);
      if (entry === undefined) {
        if (!this.rawWritten) throw new Error(`frame for request ${frame.requestId}, not asked`);
      } else if (entry.settle(frame)) {
        this.unanswered.delete(frame.requestId);
        this.pump();
      }
    }
    for (const wake of this.frameWaiters.splice(0)) wake();
  }

  private failAll(error: Error): void {
    for (const entry of this.unanswered.values()) entry.fail(error);
    for (const call of this.waiting) call.entry.fail(error);
    this.unanswered.clear();
    this.waiting.length = 0;
  }
}
