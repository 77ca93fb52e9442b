/** Test helpers for the transport: polling with a deadline, a recording logger, sockets. */
import type { Socket } from 'node:net';
import { PacketSplitter } from '../../src/transport/framing.ts';
import type { TransportLogger } from '../../src/transport/types.ts';
import { decodePacket, type Packet } from '../../src/transport/wire.ts';

/** Polls `condition` every few milliseconds until it holds; fails with `what` at the deadline. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

export interface LogLine {
  readonly level: 'info' | 'warn' | 'error';
  readonly fields: Readonly<Record<string, unknown>>;
  readonly message: string;
}

export class RecordingLogger implements TransportLogger {
  readonly lines: LogLine[] = [];

  info(fields: Readonly<Record<string, unknown>>, message: string): void {
    this.lines.push({ level: 'info', fields, message });
  }
  warn(fields: Readonly<Record<string, unknown>>, message: string): void {
    this.lines.push({ level: 'warn', fields, message });
  }
  error(fields: Readonly<Record<string, unknown>>, message: string): void {
    this.lines.push({ level: 'error', fields, message });
  }

  has(predicate: (line: LogLine) => boolean): boolean {
    return this.lines.some(predicate);
  }
}

/** Resolves once the socket has closed (either side). */
export function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed && socket.closed) resolve();
    else socket.once('close', () => resolve());
  });
}

/** A packet as it travels: its length (u32, big-endian), then its bytes. */
export function framed(packet: Uint8Array): Buffer {
  const bytes = Buffer.alloc(4 + packet.byteLength);
  bytes.writeUInt32BE(packet.byteLength, 0);
  bytes.set(packet, 4);
  return bytes;
}

/** The packets `socket` receives from now on, decoded as they arrive. */
export function packetsOf(socket: Socket): Packet[] {
  const packets: Packet[] = [];
  const splitter = new PacketSplitter(1 << 20);
  socket.on('data', (chunk: Buffer) => {
    splitter.push(chunk);
    for (let bytes = splitter.next(); bytes !== null; bytes = splitter.next()) {
      packets.push(decodePacket(bytes));
    }
  });
  return packets;
}
