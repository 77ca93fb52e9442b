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
} from '../../src/transport/client-frames.ts';
import { waitFor } from '../support/ports.ts';

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
    this.send({
      type: 'request',
      requestId,
      method: 'GET',
      path,
      headers: {},
      body: new Uint8Array(0),
    });
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

  close(): void {
    this.socket.destroy();
  }
}
