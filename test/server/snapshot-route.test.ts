// GET /v1/snapshot streams a backup with bounded memory. The route runs against a node double
// (thousands of generated messages) and a consumer the test drives by hand, standing for the
// socket: it takes bytes only when told, and says it is behind past 64 KiB. The route writes
// pieces of about 16 KiB, never the whole answer at once, yields a turn between pages, reads
// no page while the consumer is behind, stops when the client goes away, and ends a backup
// that fails midway with an error line and no end line, which the CLI's checker refuses, and
// cuts a client that takes nothing for the stall timeout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BroadcastError } from '../../src/broadcast/errors.ts';
import { BodyChecker } from '../../src/cli/commands/snapshot-file.ts';
import type { RouteContext, ServedNode } from '../../src/server/context.ts';
import type { Answer, StreamWriter } from '../../src/server/exchange.ts';
import { snapshotRoute } from '../../src/server/routes/snapshot.ts';
import { createServerContext, defaultHttpSettings } from '../../src/server/settings.ts';
import { pieceBytes } from '../../src/server/stream-format.ts';
import type { Environment } from '../../src/util/environment.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';
import { logger } from './cluster.ts';

const highWaterBytes = 64 << 10;

/** A node holding positions 1..messageCount; a read from `failFrom` on throws compacted. */
function backupNode(options: {
  readonly messageCount: number;
  readonly payloadBytes: number;
  readonly failFrom?: number;
  readonly onRead?: (from: number) => void;
}) {
  const pageStarts: number[] = [];
  const node = {
    id: 'n1',
    backup: async () => ({
      snapshot: {
        meta: {
          index: options.messageCount + 10,
          term: 3,
          config: { voters: ['n1'], learners: [] },
        },
        data: new Uint8Array([0, 0, 0, 0]),
      },
      position: options.messageCount,
    }),
    status: () => ({ id: 'n1', firstRetainedPosition: 1 }),
    read: (from: number, limit: number) => {
      pageStarts.push(from);
      options.onRead?.(from);
      if (options.failFrom !== undefined && from >= options.failFrom) {
        throw new BroadcastError('compacted', `position ${from} is no longer kept`, {
          firstPosition: from + 1,
        });
      }
      const count = Math.min(limit, options.messageCount - from + 1);
      return Array.from({ length: count }, (_, at) => ({
        position: from + at,
        index: from + at + 10,
        term: 3,
        clientId: 'c',
        seq: from + at,
        topic: 't',
        payload: new Uint8Array(options.payloadBytes).fill(from + at),
        logTimeMs: 1_000,
      }));
    },
  } as unknown as ServedNode;
  return { node, pageStarts };
}

/** The socket as the route sees it: bytes wait here until the test takes them. */
class Consumer implements StreamWriter {
  readonly chunks: string[] = [];
  writeBytesMax = 0;
  bufferedBytes = 0;
  bufferedBytesMost = 0;
  gone = false;
  ending: 'clean' | 'cut' | null = null;
  private drainWaiter: (() => void) | null = null;
  private waitWatchers: (() => void)[] = [];

  get behind(): boolean {
    return this.bufferedBytes >= highWaterBytes;
  }

  write(data: string | Uint8Array): boolean {
    assert.equal(this.ending, null, 'nothing is written after the end');
    const text = typeof data === 'string' ? data : Buffer.from(data).toString('utf8');
    this.chunks.push(text);
    this.writeBytesMax = Math.max(this.writeBytesMax, Buffer.byteLength(text));
    this.bufferedBytes += Buffer.byteLength(text);
    this.bufferedBytesMost = Math.max(this.bufferedBytesMost, this.bufferedBytes);
    return !this.behind;
  }

  drained(signal: AbortSignal): Promise<void> {
    const waiting = new Promise<void>((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.drainWaiter = done;
      signal.addEventListener('abort', done, { once: true });
    });
    for (const watcher of this.waitWatchers.splice(0)) watcher();
    return waiting;
  }

  /** Resolves once the route waits for this consumer. */
  nextWait(): Promise<void> {
    return new Promise((resolve) => this.waitWatchers.push(resolve));
  }

  /** Takes every byte written so far. */
  take(): void {
    this.bufferedBytes = 0;
    const waiter = this.drainWaiter;
    this.drainWaiter = null;
    waiter?.();
  }

  end(): void {
    this.ending = 'clean';
  }

  destroy(): void {
    this.ending = 'cut';
    this.gone = true;
    // A destroyed socket closes, which ends a wait for its drain.
    this.take();
  }

  text(): string {
    return this.chunks.join('');
  }
}

interface Served {
  readonly done: Promise<void>;
  /** The head of a streamed answer; null until one starts. */
  readonly head: () => { status: number } | null;
  readonly abort: AbortController;
}

/** Runs the route on `node`, its answer going to `consumer`. */
function serve(
  node: ServedNode,
  consumer: Consumer,
  environment: Environment,
  path = '/v1/snapshot',
): Served {
  const server = createServerContext({ node, logger, environment });
  let head: { status: number } | null = null;
  const abort = new AbortController();
  const response = {
    answerable: true,
    status: 200,
    // An answer sent whole counts as a single write of its body.
    send: (answer: Answer) => {
      head = { status: answer.status };
      consumer.write(answer.body);
      consumer.end();
    },
    startStream: () => {
      throw new Error('routes start streams through their context');
    },
  };
  const context: RouteContext = {
    server,
    request: {
      method: 'GET',
      url: path,
      headers: {},
      readBody: async () => new Uint8Array(),
    },
    response,
    url: new URL(`http://localhost${path}`),
    params: {},
    identity: null,
    signal: abort.signal,
    readJson: async () => ({}),
    within: (promise) => promise,
    startStream: (status) => {
      head = { status };
      return consumer;
    },
  };
  return { done: snapshotRoute(context), head: () => head, abort };
}

/** Takes what the route writes each time it waits, until it is done; returns the takes. */
async function takeAll(consumer: Consumer, served: Served): Promise<number> {
  let takes = 0;
  for (let ended = false; !ended; takes++) {
    const waited = consumer.nextWait().then(() => false);
    consumer.take();
    ended = await Promise.race([waited, served.done.then(() => true)]);
  }
  await served.done;
  return takes;
}

/** The answer's lines through the CLI's checker: the messages, or the problem it found. */
function check(text: string): { messageCount: number } | { problem: string } {
  const checker = new BodyChecker((what) => new Error(what) as never);
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'every line ends with a newline');
  try {
    for (const line of lines) checker.line(Buffer.from(line));
    return { messageCount: checker.finish().messageCount };
  } catch (error) {
    return { problem: (error as Error).message };
  }
}

test('no page is read while the client is behind, and nothing piles up past one piece', async () => {
  const consumer = new Consumer();
  const behindAtRead: boolean[] = [];
  const { node, pageStarts } = backupNode({
    messageCount: 5_000,
    payloadBytes: 200,
    onRead: () => behindAtRead.push(consumer.behind),
  });
  const served = serve(node, consumer, systemEnvironment);
  await Promise.race([consumer.nextWait(), served.done]);
  assert.equal(served.head()?.status, 200, 'the answer is a stream');
  assert.deepEqual(pageStarts, [1], 'one page read while the client has taken nothing');
  assert.ok(consumer.bufferedBytes < 4 * highWaterBytes, `${consumer.bufferedBytes} bytes wait`);
  // The client reads a little at a time: the route goes on only as it takes.
  const takes = await takeAll(consumer, served);
  assert.equal(consumer.ending, 'clean');
  assert.deepEqual(pageStarts, [1, 1001, 2001, 3001, 4001]);
  assert.ok(
    behindAtRead.every((behind) => !behind),
    'every page was read with the client caught up',
  );
  assert.ok(takes > 10, `the answer (${consumer.text().length} bytes) went out in ${takes} takes`);
  assert.ok(consumer.bufferedBytesMost <= highWaterBytes + 2 * pieceBytes + 1024);
  assert.deepEqual(check(consumer.text()), { messageCount: 5_000 });
});

test('the answer is written in pieces, never whole, with a turn between pages', async () => {
  const consumer = new Consumer();
  let turnsYielded = 0;
  const environment: Environment = {
    ...systemEnvironment,
    setTimer: (delayMs, fire, options) => {
      if (delayMs === 0) turnsYielded++;
      return systemEnvironment.setTimer(delayMs, fire, options);
    },
  };
  const { node } = backupNode({ messageCount: 20_000, payloadBytes: 100 });
  const served = serve(node, consumer, environment);
  // A client that takes everything at once: only the route's own pieces bound a write.
  await takeAll(consumer, served);
  const totalBytes = Buffer.byteLength(consumer.text());
  assert.ok(totalBytes > 4 << 20, `the backup is large (${totalBytes} bytes)`);
  assert.ok(
    consumer.writeBytesMax <= pieceBytes + 1024,
    `the largest write is ${consumer.writeBytesMax} bytes`,
  );
  assert.ok(turnsYielded >= 19, `${turnsYielded} turns yielded over 20 pages`);
  assert.deepEqual(check(consumer.text()), { messageCount: 20_000 });
});

test('a client that takes nothing for the stall timeout is cut; one that reads is not', async () => {
  // The stall timers (5 minutes by default) fire when the test says; others run as usual.
  const stallTimers: { fire: () => void; cancelled: boolean }[] = [];
  const environment: Environment = {
    ...systemEnvironment,
    setTimer: (delayMs, fire, options) => {
      if (delayMs !== defaultHttpSettings.streamStallTimeoutMs) {
        return systemEnvironment.setTimer(delayMs, fire, options);
      }
      const timer = { fire, cancelled: false };
      stallTimers.push(timer);
      return {
        cancel: () => {
          timer.cancelled = true;
        },
      };
    },
  };
  const reader = new Consumer();
  const read = serve(
    backupNode({ messageCount: 3_000, payloadBytes: 100 }).node,
    reader,
    environment,
  );
  await takeAll(reader, read);
  assert.equal(reader.ending, 'clean');
  assert.ok(stallTimers.length > 0, 'each wait for the reader armed a stall timer');
  assert.ok(
    stallTimers.every((timer) => timer.cancelled),
    'a reader that took cancelled each',
  );

  stallTimers.length = 0;
  const stalled = new Consumer();
  const { node, pageStarts } = backupNode({ messageCount: 3_000, payloadBytes: 100 });
  const served = serve(node, stalled, environment);
  await stalled.nextWait();
  assert.equal(stallTimers.length, 1, 'the wait armed one stall timer');
  assert.equal(stalled.ending, null, 'not cut before the stall timeout');
  (stallTimers[0] as { fire: () => void }).fire();
  await served.done;
  assert.equal(stalled.ending, 'cut');
  assert.deepEqual(pageStarts, [1], 'no page read for a client that was cut');
  assert.ok(!Object.hasOwn(check(stalled.text()), 'messageCount'), 'the cut backup has no end');
});

test('a range lost midway ends the answer with an error line the checker refuses', async () => {
  const consumer = new Consumer();
  const { node } = backupNode({ messageCount: 5_000, payloadBytes: 10, failFrom: 2_001 });
  const served = serve(node, consumer, systemEnvironment);
  await takeAll(consumer, served);
  assert.equal(served.head()?.status, 200);
  assert.equal(consumer.ending, 'clean', 'ended after saying why');
  const lastLine = consumer.text().trimEnd().split('\n').at(-1) as string;
  assert.equal(JSON.parse(lastLine).error, 'compacted');
  assert.doesNotMatch(consumer.text(), /"end":true/);
  const checked = check(consumer.text());
  assert.ok('problem' in checked);
  assert.match(checked.problem, /could not finish it: compacted/);

  // Lost before the first page: an ordinary error answer, no stream.
  const early = new Consumer();
  const lost = backupNode({ messageCount: 5_000, payloadBytes: 10, failFrom: 1 });
  const refused = serve(lost.node, early, systemEnvironment);
  await assert.rejects(refused.done, { code: 'compacted' });
  assert.equal(refused.head(), null);
});

test('a client that goes away stops the backup: no page is read after it left', async () => {
  const consumer = new Consumer();
  const { node, pageStarts } = backupNode({ messageCount: 5_000, payloadBytes: 200 });
  const served = serve(node, consumer, systemEnvironment);
  await Promise.race([consumer.nextWait(), served.done]);
  assert.equal(served.head()?.status, 200);
  consumer.gone = true;
  served.abort.abort(new Error('the client went away'));
  await served.done;
  assert.deepEqual(pageStarts, [1]);
  assert.notEqual(consumer.ending, 'clean');
});

test('a message line carries everything the node holds: key, compacted, any bytes, any text', async () => {
  const everyByte = Uint8Array.from({ length: 256 }, (_, at) => at);
  const held = [
    { clientId: 'клиент-😀', topic: 'τ"\\\n\u2028', key: 'ключ "k"', payload: everyByte },
    { clientId: '', topic: '', key: 'k', compacted: true, payload: new Uint8Array() },
    { clientId: 'c', topic: 't', payload: Buffer.from([0xff, 0xfe, 0xc3]) },
  ].map((message, at) => ({
    ...message,
    ...{ position: at + 1, index: at + 11, term: 3, seq: at, logTimeMs: 1_000 + at },
  }));
  const { node } = backupNode({ messageCount: held.length, payloadBytes: 0 });
  const read = (from: number, limit: number) => held.slice(from - 1, from - 1 + limit);
  const consumer = new Consumer();
  const served = serve({ ...node, read } as unknown as ServedNode, consumer, systemEnvironment);
  await takeAll(consumer, served);
  assert.deepEqual(check(consumer.text()), { messageCount: held.length });
  const lines = consumer.text().trimEnd().split('\n').slice(1, -1);
  assert.deepEqual(
    lines.map((line) => JSON.parse(line)),
    held.map((message) => ({
      ...{ position: message.position, index: message.index, term: 3 },
      ...{ client: message.clientId, seq: message.seq, topic: message.topic },
      ...{
        time: message.logTimeMs,
        payloadBase64: Buffer.from(message.payload).toString('base64'),
      },
      ...(message.key === undefined ? {} : { key: message.key }),
      ...(message.compacted === true ? { compacted: true } : {}),
    })),
  );
});

test('an empty log, messages=0, and a read that throws midway', async () => {
  for (const [messageCount, path] of [
    [0, '/v1/snapshot'],
    [3_000, '/v1/snapshot?messages=0'],
  ] as const) {
    const consumer = new Consumer();
    const { node, pageStarts } = backupNode({ messageCount, payloadBytes: 10 });
    const served = serve(node, consumer, systemEnvironment, path);
    await takeAll(consumer, served);
    assert.deepEqual(check(consumer.text()), { messageCount: 0 });
    assert.deepEqual(pageStarts, [], 'no page is read');
    assert.equal(consumer.ending, 'clean');
    const header = JSON.parse(consumer.text().split('\n')[0] as string);
    assert.deepEqual([header.position, header.firstPosition], [messageCount, messageCount + 1]);
  }
  // Not an error the node names: the answer still ends with an error line, never an end line.
  const consumer = new Consumer();
  const { node } = backupNode({
    messageCount: 5_000,
    payloadBytes: 10,
    onRead: (from) => {
      if (from > 1) throw new TypeError('the store broke');
    },
  });
  const served = serve(node, consumer, systemEnvironment);
  await takeAll(consumer, served);
  const checked = check(consumer.text());
  assert.ok('problem' in checked);
  assert.match(checked.problem, /could not finish it: internal/);
  assert.equal(consumer.ending, 'clean');
});
