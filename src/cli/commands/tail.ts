/**
 * `abcast tail`: follows GET /v1/stream (Server-Sent Events) and prints each delivered
 * message as one JSON line, in order. When the connection drops it reconnects with
 * `Last-Event-ID` (the last index printed), so nothing is missed or printed twice; a node
 * that cannot be reached at the start, or a refusal (400, 410), ends it with an error.
 * With `--consumer NAME` it starts after the consumer's last ack and acks what it printed;
 * with `--member M` too it is a member of that consumer group, and acks per slot.
 */
import type { Command } from 'commander';
import { parseSse, type SseEvent, SseFormatError } from '../../client/sse.ts';
import { CliError, positiveIntegerFlag } from './errors.ts';
import { answerError, defaultNodeUrl, nodeUrl, postJson, streamFrom } from './http-client.ts';

interface TailFlags {
  node: string;
  from?: string;
  topic?: string;
  consumer?: string;
  member?: string;
}

/** Waits between reconnections: doubling from the server's `retry:`, capped. */
const reconnectDelayMsMax = 5_000;
/** The stream parser, with a broken stream as this command's one-line error. */
function parseSseOrFail(buffer: string, onEvent: (event: SseEvent) => void): string {
  try {
    return parseSse(buffer, onEvent);
  } catch (error) {
    if (error instanceof SseFormatError) throw new CliError(error.message);
    throw error;
  }
}

/** Where the stream is: the last id printed, and whether any connection was ever answered. */
interface Position {
  lastId: string | null;
  connected: boolean;
}

/**
 * A durable consumer's acks: after each chunk of printed messages, the last one is acked
 * (one request at a time; the cursor covers everything before it).
 */
class Acker {
  private acked = 0;

  constructor(
    private readonly base: string,
    private readonly name: string,
  ) {}

  async ack(lastId: string | null): Promise<void> {
    const position = lastId === null ? 0 : Number(lastId);
    if (position <= this.acked) return;
    await postJson(this.base, `/v1/consumers/${encodeURIComponent(this.name)}/ack`, {
      index: position,
    });
    this.acked = position;
  }
}

/**
 * A group member's acks: after each chunk, per slot the highest position printed (a slot's
 * cursor covers its earlier messages).
 */
class GroupAcker {
  private readonly printed = new Map<number, number>();
  private readonly acked = new Map<number, number>();

  constructor(
    private readonly base: string,
    private readonly name: string,
    private readonly member: string,
  ) {}

  printedEvent(data: string): void {
    const { index, slot } = JSON.parse(data) as { index?: unknown; slot?: unknown };
    if (typeof index !== 'number' || typeof slot !== 'number') return;
    this.printed.set(slot, Math.max(this.printed.get(slot) ?? 0, index));
  }

  async ack(): Promise<void> {
    const slots: Record<string, number> = {};
    for (const [slot, position] of this.printed) {
      if (position > (this.acked.get(slot) ?? 0)) slots[String(slot)] = position;
    }
    if (Object.keys(slots).length === 0) return;
    await postJson(this.base, `/v1/consumers/${encodeURIComponent(this.name)}/ack`, {
      member: this.member,
      slots,
    });
    for (const [slot, position] of Object.entries(slots)) this.acked.set(Number(slot), position);
  }
}

/** One connection: prints events until the stream ends or drops (then it throws). */
async function follow(
  url: string,
  position: Position,
  acker: Acker | GroupAcker | null,
): Promise<void> {
  const base = new URL(url).origin;
  const response = await streamFrom(
    base,
    url,
    position.lastId === null ? {} : { 'last-event-id': position.lastId },
  );
  if (response.status < 200 || response.status >= 300) {
    const body = await new Response(response.body).text().catch(() => '');
    throw await answerError(base, { status: response.status, body });
  }
  position.connected = true;
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    buffer = parseSseOrFail(buffer + decoder.decode(chunk, { stream: true }), (event) => {
      if (event.event === 'error') {
        const data = event.data.join('\n');
        if (data.includes('"compacted"')) throw new CliError(`the stream ended: ${data}`);
        return;
      }
      if (event.id !== undefined) position.lastId = event.id;
      // A progress event only moves the resume point past other topics' positions.
      if (event.event === 'progress') return;
      const data = event.data.join('\n');
      console.log(data);
      if (acker instanceof GroupAcker) acker.printedEvent(data);
    });
    if (acker instanceof GroupAcker) await acker.ack();
    else await acker?.ack(position.lastId);
  }
}

/** After a failed connection: reconnect (true) or give up with this error (false). */
function worthRetrying(error: unknown, position: Position): boolean {
  if (!(error instanceof CliError)) return true; // the body broke off mid-stream
  if (/cannot reach/.test(error.message)) return position.connected;
  return /answered 503/.test(error.message) && position.connected;
}

async function tail(flags: TailFlags): Promise<void> {
  const base = nodeUrl(flags.node);
  const query = new URLSearchParams();
  if (flags.consumer !== undefined && flags.from !== undefined) {
    throw new CliError('give either --from or --consumer, not both');
  }
  if (flags.member !== undefined && flags.consumer === undefined) {
    throw new CliError('--member needs --consumer (the group)');
  }
  if (flags.consumer !== undefined) query.set('consumer', flags.consumer);
  if (flags.member !== undefined) query.set('member', flags.member);
  else {
    query.set(
      'from',
      String(flags.from === undefined ? 1 : positiveIntegerFlag('from', flags.from)),
    );
  }
  if (flags.topic !== undefined) query.set('topic', flags.topic);
  const url = `${base}/v1/stream?${query}`;
  const position: Position = { lastId: null, connected: false };
  const acker =
    flags.consumer === undefined
      ? null
      : flags.member === undefined
        ? new Acker(base, flags.consumer)
        : new GroupAcker(base, flags.consumer, flags.member);
  let delayMs = 250;
  for (;;) {
    try {
      await follow(url, position, acker);
      delayMs = 250;
    } catch (error) {
      if (!worthRetrying(error, position)) throw error;
      delayMs = Math.min(delayMs * 2, reconnectDelayMsMax);
    }
    // The connection ended (the node stopped or the network failed): resume after lastId.
    console.error(`abcast: stream from ${base} ended; reconnecting`);
    await new Promise((resume) => setTimeout(resume, delayMs));
  }
}

export function tailCommand(program: Command): void {
  program
    .command('tail')
    .description('print delivered messages, one JSON line each, and follow new ones')
    .option('--node <url>', "a node's HTTP API", defaultNodeUrl)
    .option('--from <n>', 'first index to print (default 1)')
    .option('--topic <topic>', 'only messages of this topic')
    .option(
      '--consumer <name>',
      'a durable consumer: start after its last ack (on any node) and ack what is printed',
    )
    .option(
      '--member <name>',
      'with --consumer: a member of that consumer group (one key, one member, in order)',
    )
    .action((flags: TailFlags) => tail(flags));
}
