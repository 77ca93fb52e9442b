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
  // Nodes end lines with \n alone; \r\n and \r endings, which the format allows too, take
  // the general path. A catching-up reader parses hundreds of thousands of events a second,
  // so the common case scans with indexOf instead of a regular expression per event.
  const rest = buffer.includes('\r')
    ? parseAnyLineEndings(buffer, onEvent)
    : parseLf(buffer, onEvent);
  if (rest.length > eventBytesMax) throw new SseFormatError('the stream sent an oversized event');
  return rest;
}

function parseLf(buffer: string, onEvent: (event: SseEvent) => void): string {
  let start = 0;
  for (let end = buffer.indexOf('\n\n', start); end >= 0; end = buffer.indexOf('\n\n', start)) {
    const event: SseEvent = { data: [] };
    for (let lineStart = start; lineStart < end; ) {
      let lineEnd = buffer.indexOf('\n', lineStart);
      if (lineEnd < 0 || lineEnd > end) lineEnd = end;
      addField(event, buffer.slice(lineStart, lineEnd));
      lineStart = lineEnd + 1;
    }
    if (event.data.length > 0 || event.event !== undefined) onEvent(event);
    start = end + 2;
  }
  return start === 0 ? buffer : buffer.slice(start);
}

function parseAnyLineEndings(buffer: string, onEvent: (event: SseEvent) => void): string {
  let rest = buffer;
  for (let match = /\r?\n\r?\n/.exec(rest); match !== null; match = /\r?\n\r?\n/.exec(rest)) {
    const block = rest.slice(0, match.index);
    rest = rest.slice(match.index + match[0].length);
    const event: SseEvent = { data: [] };
    for (const line of block.split(/\r?\n/)) addField(event, line);
    if (event.data.length > 0 || event.event !== undefined) onEvent(event);
  }
  return rest;
}

/** One line of an event: a field, or a comment (`:`) or an empty line, which add nothing. */
function addField(event: SseEvent, line: string): void {
  if (line === '' || line.charCodeAt(0) === 0x3a) return;
  const colon = line.indexOf(':');
  const field = colon < 0 ? line : line.slice(0, colon);
  let value = '';
  if (colon >= 0)
    value = line.charCodeAt(colon + 1) === 0x20 ? line.slice(colon + 2) : line.slice(colon + 1);
  if (field === 'data') event.data.push(value);
  else if (field === 'id') event.id = value;
  else if (field === 'event') event.event = value;
}
