/**
 * Server-Sent Events parsing for the HTTP stream (/v1/stream): the SDK and the CLI's tail
 * both read it. Incremental: feed text as it arrives, keep what it returns.
 */

/** An SSE event larger than this is a broken stream, not something to buffer. */
const eventBytesMax = 8 << 20;

export interface SseEvent {
  id?: string;
  event?: string;
  data: string[];
}

export class SseFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SseFormatError';
  }
}

/** Splits SSE text into events; returns what is left of an incomplete one. */
export function parseSse(buffer: string, onEvent: (event: SseEvent) => void): string {
  let rest = buffer;
  for (let match = /\r?\n\r?\n/.exec(rest); match !== null; match = /\r?\n\r?\n/.exec(rest)) {
    const block = rest.slice(0, match.index);
    rest = rest.slice(match.index + match[0].length);
    const event: SseEvent = { data: [] };
    for (const line of block.split(/\r?\n/)) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') event.data.push(value);
      else if (field === 'id') event.id = value;
      else if (field === 'event') event.event = value;
    }
    if (event.data.length > 0 || event.event !== undefined) onEvent(event);
  }
  if (rest.length > eventBytesMax) throw new SseFormatError('the stream sent an oversized event');
  return rest;
}
