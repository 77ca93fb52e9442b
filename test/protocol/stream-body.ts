/**
 * The two bodies of a streamed answer, read as docs/protocol.md describes them: stream
 * records (`application/x-abcast-records`) and the Server-Sent Events text of api.md.
 * Only node:buffer; nothing from src/.
 */
import { Buffer } from 'node:buffer';
import { FieldReader } from './frames.ts';

export type StreamItem =
  | {
      readonly kind: 'message';
      readonly position: number;
      readonly term: number;
      readonly seq: number;
      readonly timeMs: number;
      readonly client: string;
      readonly topic: string;
      readonly key: string | null;
      readonly payload: Buffer;
    }
  | { readonly kind: 'progress'; readonly position: number }
  | { readonly kind: 'error'; readonly error: Record<string, unknown> }
  | { readonly kind: 'keepAlive' };

const itemBytesMax = 17 * 1024 * 1024;

function readMessage(reader: FieldReader): StreamItem {
  const position = reader.f64();
  const term = reader.f64();
  const seq = reader.f64();
  const timeMs = reader.f64();
  const flags = reader.u8();
  const client = reader.string();
  const topic = reader.string();
  const key = (flags & 1) === 1 ? reader.string() : null;
  return {
    kind: 'message',
    position,
    term,
    seq,
    timeMs,
    client,
    topic,
    key,
    payload: reader.rest(),
  };
}

function readItem(body: Buffer): StreamItem {
  const reader = new FieldReader(body);
  const kind = reader.u8();
  switch (kind) {
    case 1:
      return readMessage(reader);
    case 2: {
      const position = reader.f64();
      reader.end();
      return { kind: 'progress', position };
    }
    case 3:
      return { kind: 'error', error: JSON.parse(reader.rest().toString('utf8')) };
    case 4:
      reader.end();
      return { kind: 'keepAlive' };
    default:
      throw new Error(`unknown stream item kind ${kind}`);
  }
}

/**
 * Stream records: each streamData frame holds whole items, but the reader keeps a tail
 * anyway, because over HTTP the same body arrives cut anywhere.
 */
export class RecordReader {
  private pending: Buffer = Buffer.alloc(0);

  get pendingBytes(): number {
    return this.pending.length;
  }

  push(data: Buffer): StreamItem[] {
    this.pending = Buffer.concat([this.pending, data]);
    const items: StreamItem[] = [];
    while (this.pending.length >= 4) {
      const itemBytes = this.pending.readUInt32BE(0);
      if (itemBytes < 1 || itemBytes > itemBytesMax) throw new Error(`item of ${itemBytes} bytes`);
      if (this.pending.length < 4 + itemBytes) break;
      items.push(readItem(this.pending.subarray(4, 4 + itemBytes)));
      this.pending = this.pending.subarray(4 + itemBytes);
    }
    return items;
  }
}

export interface ServerSentEvent {
  readonly event: string;
  readonly id: string | null;
  readonly data: string;
}

/** Server-Sent Events text, cut anywhere: events end at a blank line; comments are skipped. */
export class EventReader {
  private pending = '';
  private readonly decoder = new TextDecoder('utf-8');

  push(data: Buffer): ServerSentEvent[] {
    this.pending += this.decoder.decode(data, { stream: true });
    const events: ServerSentEvent[] = [];
    for (let end = this.pending.indexOf('\n\n'); end !== -1; end = this.pending.indexOf('\n\n')) {
      const block = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 2);
      const event = parseBlock(block);
      if (event !== null) events.push(event);
    }
    return events;
  }
}

function parseBlock(block: string): ServerSentEvent | null {
  let event = 'message';
  let id: string | null = null;
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const name = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (name === 'event') event = value;
    else if (name === 'id') id = value;
    else if (name === 'data') data.push(value);
  }
  if (data.length === 0) return null;
  return { event, id, data: data.join('\n') };
}
