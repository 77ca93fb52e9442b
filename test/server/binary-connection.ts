/**
 * A raw connection to a node's binary client port, for tests that send what the SDK never
 * would: frames as given, answers collected by request id, goAway and close observed.
 */
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import {
  type AnswerFrame,
  type ClientFrame,
  ClientFrameDecoder,
  clientFrameLimits,
  encodeClientFrame,
  type RunResult,
} from '../../src/transport/client-frames.ts';
import { waitFor } from '../support/ports.ts';

/** A message of `RawConnection.run`: absent topic and key go as empty (none). */
export interface RawRunMessage {
  readonly payload: string | Uint8Array;
  readonly topic?: string;
  readonly key?: string;
}

/** What a run was answered with: a result per message, or a refusal of the whole run. */
export type RawRunAnswer =
  | { readonly status: 200; readonly results: readonly RunResult[] }
  | { readonly status: number; readonly body: Record<string, unknown> };

/** A GET request frame without headers, encoded, for a test to send whole or cut. */
export function getFrame(requestId: number, path: string): Buffer {
  return encodeClientFrame({
    type: 'request',
    requestId,
    method: 'GET',
    path,
    headers: {},
    body: new Uint8Array(0),
  });
}

/** A raw connection that speaks frames, for what the SDK never sends. */
export class RawConnection {
  readonly frames: ClientFrame[] = [];
  closed = false;
  private readonly socket: Socket;
  private readonly decoder = new ClientFrameDecoder(clientFrameLimits.frameBytesMax);

  constructor(port: number) {
    this.socket = netConnect({ host: '127.0.0.1', port });
    this.socket.on('data', (chunk: Buffer) => {
      const { frames, error } = this.decoder.push(chunk);
      assert.equal(error, null, 'the node sends only well-formed frames');
      this.frames.push(...frames.map((frame) => structuredClone(frame)));
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.closed = true;
    });
  }

  send(frame: ClientFrame | Uint8Array): void {
    this.socket.write(frame instanceof Uint8Array ? frame : encodeClientFrame(frame));
  }

  async hello(token: string): Promise<void> {
    this.send({ type: 'hello', requestId: 0, token });
    await this.frame((frame) => frame.type === 'welcome');
  }

  async frame(match: (frame: ClientFrame) => boolean): Promise<ClientFrame> {
    await waitFor(() => this.frames.some(match), 'a frame');
    return this.frames.find(match) as ClientFrame;
  }

  async answer(requestId: number): Promise<{ status: number; body: Record<string, unknown> }> {
    const frame = (await this.frame(
      (candidate) => candidate.type === 'answer' && candidate.requestId === requestId,
    )) as AnswerFrame;
    return {
      status: frame.status,
      body: JSON.parse(Buffer.from(frame.body).toString('utf8')) as Record<string, unknown>,
    };
  }

  get(requestId: number, path: string): void {
    this.send(getFrame(requestId, path));
  }

  post(requestId: number, path: string, body: unknown): void {
    this.send({
      type: 'request',
      requestId,
      method: 'POST',
      path,
      headers: {},
      body: Buffer.from(JSON.stringify(body)),
    });
  }

  /** Sends a broadcastRun frame. */
  run(
    requestId: number,
    run: {
      readonly clientId: string;
      readonly firstSeq: number;
      readonly nonce?: string;
      readonly headers?: Record<string, string>;
      readonly messages: readonly RawRunMessage[];
    },
  ): void {
    this.send({
      type: 'broadcastRun',
      requestId,
      headers: run.headers ?? {},
      clientId: run.clientId,
      firstSeq: run.firstSeq,
      nonce: run.nonce ?? '',
      messages: run.messages.map((message) => ({
        payload: message.payload,
        topic: message.topic ?? '',
        key: message.key ?? '',
      })),
    });
  }

  /** The answer to run `requestId`: its runAnswer, or the answer frame that refused it. */
  async runAnswer(requestId: number): Promise<RawRunAnswer> {
    const frame = await this.frame(
      (candidate) =>
        (candidate.type === 'runAnswer' || candidate.type === 'answer') &&
        candidate.requestId === requestId,
    );
    if (frame.type === 'runAnswer') return { status: 200, results: frame.results };
    assert.equal(frame.type, 'answer');
    const answer = frame as AnswerFrame;
    assert.notEqual(answer.status, 200, 'a run taken is answered with a runAnswer');
    return {
      status: answer.status,
      body: JSON.parse(Buffer.from(answer.body).toString('utf8')) as Record<string, unknown>,
    };
  }

  /** Stops reading: what the node writes stays in the kernel's buffers, then in the node's. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  close(): void {
    this.socket.destroy();
  }
}
