/**
 * GET /v1/snapshot (admin): a backup of the cluster's state as this node holds it, taken at a
 * committed index after a barrier (every message acknowledged anywhere before the request is
 * in it): the application state (session table and membership, as the node's own snapshots
 * encode it), its log index, term and configuration, the last position it covers, and the
 * delivered messages the node still keeps up to that position. `abcast snapshot save` writes
 * it to a file with a checksum; `abcast snapshot restore` makes a new cluster's data
 * directories from it (docs/ops.md).
 *
 * The answer is streamed as JSON lines (version 2), so that the node's memory does not grow
 * with the length of its log: a header line (the state and the numbers above), one line per
 * message in position order (with its `key`, and `compacted: true` when a newer message of
 * its key replaced it, when it has them), then an end line `{"end":true,"messageCount":N}`.
 * The messages are read a page at a time, and the next piece is written only once the client
 * took the previous ones. A failure once the 200 is out (the node lost part of the range meanwhile,
 * or stopped) ends the answer with an error line `{"error","message",…}` instead of the end
 * line: a reader that finds no end line knows the backup is incomplete.
 */
import type { DeliveredMessage } from '../../broadcast/deliveries.ts';
import { BroadcastError } from '../../broadcast/errors.ts';
import { assert } from '../../util/assert.ts';
import type { Environment } from '../../util/environment.ts';
import type { ServedNode } from '../context.ts';
import { failureReason, HttpError, toHttpError } from '../errors.ts';
import type { StreamWriter } from '../exchange.ts';
import type { RouteHandler } from '../router.ts';
import { pieceBytes } from '../stream-format.ts';
import { integerParameter, queryParameters } from '../validate.ts';

/** The version of this answer's shape, checked by `abcast snapshot save` and `restore`. */
export const backupFormatVersion = 2;
export const backupContentType = 'application/x-ndjson; charset=utf-8';
const readPageCountMax = 1000;
/** Payload bytes a page aims at: large messages make pages of fewer of them. */
const readPageBytesMax = 4 << 20;

/**
 * The messages from `from` through `through`, a page at a time. A page that comes back empty
 * before `through` means the node no longer holds the rest: that is an error, never a
 * shorter backup.
 */
export class MessagePages {
  private next: number;
  private countMax = readPageCountMax;

  constructor(
    private readonly node: Pick<ServedNode, 'read'>,
    from: number,
    private readonly through: number,
  ) {
    assert(Number.isSafeInteger(from) && from >= 1, 'positions start at 1');
    assert(from <= through + 1, 'a range of messages ends at or after its start');
    this.next = from;
  }

  /** The next page, in position order; empty once past `through`. */
  read(): DeliveredMessage[] {
    if (this.next > this.through) return [];
    const page = this.node.read(this.next, Math.min(this.countMax, this.through - this.next + 1));
    if (page.length === 0) {
      throw new BroadcastError('not_held', `position ${this.next} is not on this node`, {
        position: this.next,
      });
    }
    assert(page[0]?.position === this.next, 'a page starts where it was asked');
    const payloadBytes = page.reduce((sum, message) => sum + message.payload.length, 0);
    this.countMax = Math.max(
      1,
      Math.min(
        readPageCountMax,
        Math.floor((readPageBytesMax * page.length) / Math.max(payloadBytes, 1)),
      ),
    );
    this.next = (page.at(-1) as DeliveredMessage).position + 1;
    assert(this.next <= this.through + 1, 'a page ends within the range asked');
    return page;
  }
}

/** Lines gathered into pieces of about `pieceBytes`, each written once the client kept up. */
class LineWriter {
  private lines: string[] = [];
  private gatheredBytes = 0;

  constructor(
    private readonly stream: StreamWriter,
    private readonly signal: AbortSignal,
    private readonly stall: {
      readonly environment: Environment;
      readonly timeoutMs: number;
      readonly onStall: () => void;
    },
  ) {}

  /** Adds a line; true once a piece is gathered (`flush` it). */
  line(text: string): boolean {
    this.lines.push(text, '\n');
    // UTF-16 units, near enough to bytes for a bound.
    this.gatheredBytes += text.length + 1;
    return this.gatheredBytes >= pieceBytes;
  }

  /**
   * Writes what was gathered; resolves once the client is not behind, with false when it
   * went away (or the request was aborted) instead.
   */
  async flush(): Promise<boolean> {
    if (this.lines.length > 0) {
      const piece = this.lines.join('');
      this.lines = [];
      this.gatheredBytes = 0;
      if (!this.stream.write(piece)) await this.readerTook();
    }
    return !this.signal.aborted && !this.stream.gone;
  }

  /**
   * Waits for the client to take what was written. One that takes nothing for the stall
   * timeout is cut: it would hold this route, and the page read for it, until the node
   * restarted. A timer per wait: a backup waits a few hundred times a gigabyte.
   */
  private async readerTook(): Promise<void> {
    const { environment, timeoutMs, onStall } = this.stall;
    const timer = environment.setTimer(
      timeoutMs,
      () => {
        onStall();
        this.stream.destroy();
      },
      { background: true },
    );
    try {
      await this.stream.drained(this.signal);
    } finally {
      timer.cancel();
    }
  }
}

function messageLine(message: DeliveredMessage): string {
  return JSON.stringify({
    position: message.position,
    index: message.index,
    term: message.term,
    client: message.clientId,
    seq: message.seq,
    topic: message.topic,
    time: message.logTimeMs,
    payloadBase64: Buffer.from(message.payload).toString('base64'),
    // A backup leaves nothing out: without these a keyed message would come back keyless,
    // and one replaced by a newer message of its key as a real message with an empty payload.
    ...(message.key === undefined ? {} : { key: message.key }),
    ...(message.compacted === true ? { compacted: true } : {}),
  });
}

/** Lets timers, heartbeats and other requests run between two pages. */
function nextTurn(environment: Environment): Promise<void> {
  return new Promise((resolve) => environment.setTimer(0, resolve));
}

export const snapshotRoute: RouteHandler = async (context) => {
  const query = queryParameters(context.url, ['messages']);
  // messages=0 leaves the kept messages out: a smaller file with the state alone.
  const withMessages = integerParameter(query.get('messages'), 'messages', {
    min: 0,
    max: 1,
    fallback: 1,
  });
  const { node, environment } = context.server;
  if (node.backup === undefined) {
    throw new HttpError(404, 'not_found', 'this node does not offer backups');
  }
  const backup = await context.within(node.backup());
  const status = node.status();
  const firstPosition =
    withMessages === 1
      ? Math.min(status.firstRetainedPosition, backup.position + 1)
      : backup.position + 1;
  const pages = new MessagePages(node, firstPosition, backup.position);
  // The first page is read before the head: a range already lost is an ordinary error answer.
  let page = pages.read();
  const { meta, data } = backup.snapshot;
  const header = JSON.stringify({
    format: 'abcast-snapshot',
    version: backupFormatVersion,
    node: status.id,
    takenAtMs: environment.nowMs(),
    index: meta.index,
    term: meta.term,
    config: meta.config,
    position: backup.position,
    state: Buffer.from(data).toString('base64'),
    firstPosition,
  });
  const stream = context.startStream(200, {
    'content-type': backupContentType,
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
  });
  const { signal } = context;
  const writer = new LineWriter(stream, signal, {
    environment,
    timeoutMs: context.server.settings.streamStallTimeoutMs,
    onStall: () => {
      context.server.logger.warn(
        { url: context.request.url, identity: context.identity?.name ?? null },
        'backup stream cut: its reader took nothing for the stall timeout',
      );
      context.server.metrics.streamStalled();
    },
  });
  let failure: HttpError | null = null;
  try {
    writer.line(header);
    let messageCount = 0;
    while (page.length > 0) {
      for (const message of page) {
        if (writer.line(messageLine(message)) && !(await writer.flush())) return;
        messageCount++;
      }
      if (!(await writer.flush())) return;
      await nextTurn(environment);
      page = pages.read();
    }
    assert(messageCount === backup.position - firstPosition + 1, 'every position of the range');
    writer.line(JSON.stringify({ end: true, messageCount }));
    await writer.flush();
  } catch (error) {
    failure = toHttpError(error);
    if (failure.code === 'internal') {
      const reason = failureReason(error);
      context.server.logger.error({ url: context.request.url, reason }, 'backup stream failed');
    }
  } finally {
    endBackup(stream, signal.aborted ? signal.reason : failure);
  }
};

/**
 * Ends the answer: after its end line, or with an error line in its place when there is
 * someone to tell. A client that stopped reading is cut off rather than waited for; either
 * way it gets no end line, so a partial backup is never taken for a whole one.
 */
function endBackup(stream: StreamWriter, reason: unknown): void {
  if (stream.gone) return;
  if (stream.behind) {
    stream.destroy();
    return;
  }
  if (reason instanceof HttpError) {
    stream.write(
      `${JSON.stringify({ ...reason.details, error: reason.code, message: reason.message })}\n`,
    );
  } else if (reason !== null) {
    stream.destroy();
    return;
  }
  stream.end();
}
