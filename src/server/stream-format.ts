/**
 * How GET /v1/stream writes its events: as Server-Sent Events (text/event-stream, what
 * EventSource and curl read), or as stream records (transport/stream-records.ts), which a
 * client asks for with `accept: application/x-abcast-records`: the same events, with each
 * message's stored payload spliced in as bytes rather than parsed and serialised again.
 *
 * A route gathers a batch of events, then `take`s them in pieces of about `pieceBytes` to
 * write one at a time: a catching-up subscriber gets thousands of events per turn, and a
 * write each would cost more than the events, while a piece at a time lets the route wait
 * for a slow consumer between pieces.
 */

export const pieceBytes = 16 << 10;

import type { DeliveredMessage } from '../broadcast/deliveries.ts';
import { decodeBody, type RecordLayout, recordLayoutOffsets } from '../store/index.ts';
import {
  messageKeyFlag,
  StreamRecordWriter,
  streamRecordKinds,
  streamRecordsType,
} from '../transport/stream-records.ts';
import type { HttpError } from './errors.ts';
import { toWireMessage } from './messages.ts';

export interface StreamFormat {
  readonly contentType: string;
  /** What the stream opens with, given the client's reconnection delay. */
  opening(retryMs: number): void;
  message(message: DeliveredMessage): void;
  /** A message as the store holds it: its record's body, and where its fields lie. */
  stored(body: Buffer, layout: RecordLayout): void;
  /** Every position up to `position` was passed. */
  progress(position: number): void;
  keepAlive(): void;
  /** The stream ends because of `error`: the last event. */
  error(error: HttpError): void;
  /** What was gathered since the last take, in pieces of about `pieceBytes`, in order. */
  take(): (string | Uint8Array)[];
}

/** True when the client takes stream records (its accept header names them). */
export function acceptsRecords(accept: string | undefined): boolean {
  return accept?.includes(streamRecordsType) === true;
}

function errorBody(error: HttpError): string {
  return JSON.stringify({ ...error.details, error: error.code, message: error.message });
}

/** Server-Sent Events: `id:` a message's position, `data:` its JSON (server/messages.ts). */
export class SseFormat implements StreamFormat {
  readonly contentType = 'text/event-stream; charset=utf-8';
  private pieces: string[] = [];
  private events: string[] = [];
  private eventBytes = 0;

  opening(retryMs: number): void {
    // `retry:` sets how long EventSource waits before it reconnects.
    this.push(`retry: ${retryMs}\n\n`);
  }

  message(message: DeliveredMessage): void {
    this.push(`id: ${message.position}\ndata: ${JSON.stringify(toWireMessage(message))}\n\n`);
  }

  stored(body: Buffer): void {
    this.message(decodeBody(body));
  }

  /**
   * A named event, so EventSource's default `message` listeners never see it, with an `id:`
   * so that `Last-Event-ID` resumes after the skipped positions.
   */
  progress(position: number): void {
    this.push(`event: progress\nid: ${position}\ndata: {"index":${position}}\n\n`);
  }

  keepAlive(): void {
    this.push(': keep-alive\n\n');
  }

  error(error: HttpError): void {
    this.push(`event: error\ndata: ${errorBody(error)}\n\n`);
  }

  take(): string[] {
    this.seal();
    const pieces = this.pieces;
    this.pieces = [];
    return pieces;
  }

  /** Pieces are cut by UTF-16 units, near enough to bytes for a bound. */
  private push(event: string): void {
    this.events.push(event);
    this.eventBytes += event.length;
    if (this.eventBytes >= pieceBytes) this.seal();
  }

  private seal(): void {
    if (this.events.length === 0) return;
    this.pieces.push(this.events.length === 1 ? (this.events[0] as string) : this.events.join(''));
    this.events = [];
    this.eventBytes = 0;
  }
}

/** Stream records: length-prefixed binary items, payloads as stored. */
export class RecordsFormat implements StreamFormat {
  readonly contentType = streamRecordsType;
  private readonly writer = new StreamRecordWriter(pieceBytes);

  opening(): void {
    // Reconnection is the SDK's own business: nothing to say.
  }

  message(message: DeliveredMessage): void {
    this.writer.message(message);
  }

  /**
   * A stored record as a message item, nearly as it is: from the client id's length on, the
   * item's fields are the body's bytes (one copy), with the lengths made big-endian and the
   * store's flag bits taken off the topic's; the numbers are the body's, bytes reversed.
   */
  stored(body: Buffer, layout: RecordLayout): void {
    const { lengths } = recordLayoutOffsets;
    const tailBytes = body.length - lengths;
    let at = this.writer.beginItem(streamRecordKinds.message, 4 * 8 + 1 + tailBytes);
    const out = this.writer.buffer;
    reversed8(body, 0, out, at);
    reversed8(body, recordLayoutOffsets.term, out, at + 8);
    reversed8(body, recordLayoutOffsets.seq, out, at + 16);
    reversed8(body, recordLayoutOffsets.logTimeMs, out, at + 24);
    at += 32;
    const keyed = layout.keyStart >= 0;
    out[at++] = keyed ? messageKeyFlag : 0;
    body.copy(out, at, lengths);
    out.writeUInt16BE(layout.clientEnd - lengths - 2, at);
    out.writeUInt16BE(layout.topicEnd - layout.topicStart, at + layout.clientEnd - lengths);
    if (keyed) out.writeUInt16BE(layout.keyEnd - layout.keyStart, at + layout.topicEnd - lengths);
    this.writer.endItem(at + tailBytes);
  }

  progress(position: number): void {
    this.writer.progress(position);
  }

  keepAlive(): void {
    this.writer.keepAlive();
  }

  error(error: HttpError): void {
    this.writer.error(errorBody(error));
  }

  take(): Uint8Array[] {
    return this.writer.take();
  }
}

/** A little-endian f64's 8 bytes at `from`, written big-endian at `to`. */
function reversed8(source: Buffer, from: number, target: Buffer, to: number): void {
  for (let byte = 0; byte < 8; byte++) target[to + byte] = source[from + 7 - byte] as number;
}
