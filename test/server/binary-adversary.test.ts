// The binary port of a real in-process leader against clients that break the protocol's
// assumptions. A client that pipelines hundreds of page reads in one write and never reads
// its answers gets no more than its window's worth (plus the answer past the socket's
// high-water mark) held in the node: the node stops reading between frames, not between
// chunks, since a request answered at once frees its slot of the window at once; once the
// client reads, every request is answered, once. (The client's end is a DuplexConnection
// that counts what the node wrote, so the bound is exact, with no kernel buffers between.)
// A call cancelled before its answer is answered 499 `cancelled` at once, over a real
// socket, so its id and its slot of the window are free again; a second cancel, or one of
// an id not in flight, does nothing. A path that is no URL (`//`) is a 400 naming the path,
// over this port and over HTTP, not a 500 logged as a bug. A run (or a JSON batch) whose
// last seq is past 2^53 - 1 is refused whole, as protocol.md and api.md say of a malformed
// one, not taken with an error per message. And whatever bytes a client writes (frames,
// forged headers and fields, lengths of anything, noise), with or without a hello, a stream
// the node cannot read ends in one goAway with a documented code (fast-check against the
// decoder's own verdict), and a bystander connection goes on.
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { BinaryServer } from '../../src/server/binary-server.ts';
import { InProcessServer } from '../../src/server/in-process.ts';
import { createServerContext } from '../../src/server/settings.ts';
import {
  type ClientFrame,
  ClientFrameDecoder,
  clientFrameLimits,
  encodeClientFrame,
} from '../../src/transport/client-frames.ts';
import type { DuplexConnection } from '../../src/transport/duplex-connection.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';
import { waitFor } from '../support/ports.ts';
import { RawConnection } from './binary-connection.ts';
import { type ClusterMember, call, type HttpCluster, logger, startHttpCluster } from './cluster.ts';

const windowRequests = 2;
let cluster: HttpCluster;
let leader: ClusterMember;
let inProcess: InProcessServer;
let binary: BinaryServer;
/** The binary server's port on 127.0.0.1. */
let port = 0;

before(async () => {
  cluster = await startHttpCluster();
  leader = await cluster.leader();
  const context = createServerContext({
    node: leader.node,
    logger,
    peers: cluster.peers,
    environment: systemEnvironment,
  });
  inProcess = new InProcessServer(context);
  binary = new BinaryServer({
    context,
    dispatcher: inProcess.dispatcher,
    tls: null,
    windowRequests,
  });
  port = Number(new URL(await binary.listen('127.0.0.1:0')).port);
});

after(async () => {
  binary.closeConnections();
  await binary.stopListening();
  await inProcess.close();
  await cluster.close();
});

/** Node's default for a socket: a write past this many buffered bytes asks for 'drain'. */
const highWaterMarkBytes = 16 << 10;

/**
 * The node's end of a connection whose client reads only when told to (`takeAll`): what
 * the node writes stays in `writableLength`, as in a socket whose peer stopped reading.
 */
class HeldEnd extends EventEmitter implements DuplexConnection {
  destroyed = false;
  writableNeedDrain = false;
  writableLength = 0;
  writableLengthMax = 0;
  private paused = false;
  private readonly unread: Buffer[] = [];
  private readonly written: Uint8Array[] = [];

  write(bytes: Uint8Array): boolean {
    if (this.destroyed) return false;
    this.written.push(Uint8Array.from(bytes));
    this.writableLength += bytes.length;
    this.writableLengthMax = Math.max(this.writableLengthMax, this.writableLength);
    if (this.writableLength >= highWaterMarkBytes) this.writableNeedDrain = true;
    return !this.writableNeedDrain;
  }

  /** The client sends `bytes`; a paused node gets them when it resumes. */
  send(bytes: Uint8Array): void {
    this.unread.push(Buffer.from(bytes));
    if (!this.paused) this.resume();
  }

  /** The client reads everything written so far: the frames, decoded. */
  takeAll(): ClientFrame[] {
    const decoder = new ClientFrameDecoder(clientFrameLimits.frameBytesMax);
    const { frames, error } = decoder.push(Buffer.concat(this.written));
    assert.equal(error, null, 'the node writes whole, well-formed frames');
    this.written.length = 0;
    this.writableLength = 0;
    if (this.writableNeedDrain) {
      this.writableNeedDrain = false;
      this.emit('drain');
    }
    return frames;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    while (!this.paused && this.unread.length > 0) this.emit('data', this.unread.shift());
  }

  end(): void {
    this.destroy();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }

  cork(): void {}
  uncork(): void {}
  setNoDelay(): void {}
  ref(): void {}
  unref(): void {}
}

test('a client that never reads holds at most its window of answers in the node; once it reads, each request is answered once', async () => {
  // Pages of about 20 KiB: each answer alone passes the socket's high-water mark.
  for (let at = 0; at < 10; at++) {
    const answer = await call(`${leader.url}/v1/broadcast`, {
      method: 'POST',
      body: { payload: 'x'.repeat(2000) },
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
  }
  const pageBytes = (await call(`${leader.url}/v1/messages?from=1`)).headers.get('content-length');
  assert.ok(Number(pageBytes) > highWaterMarkBytes);
  const end = new HeldEnd();
  binary.acceptConnection(end);
  const requestCount = 500;
  const frames = [encodeClientFrame({ type: 'hello', requestId: 0, token: '' })];
  for (let requestId = 1; requestId <= requestCount; requestId++) {
    frames.push(
      encodeClientFrame({
        type: 'request',
        requestId,
        method: 'GET',
        path: '/v1/messages?from=1',
        headers: {},
        body: new Uint8Array(0),
      }),
    );
  }
  // One write of about 19 KB: read whole and answered, it would be 10 MB held.
  end.send(Buffer.concat(frames));
  const answered: number[] = [];
  await waitFor(() => {
    // Each read lets the node read on, and a page is answered at once: read until it waits.
    for (let frames = end.takeAll(); frames.length > 0; frames = end.takeAll()) {
      for (const frame of frames) {
        if (frame.type === 'welcome') continue;
        assert.equal(frame.type === 'answer' && frame.status, 200, JSON.stringify(frame));
        answered.push(frame.requestId);
      }
    }
    return answered.length === requestCount;
  }, 'every request answered');
  const heldBytesMax = (windowRequests + 1) * Number(pageBytes) + highWaterMarkBytes;
  assert.ok(
    end.writableLengthMax <= heldBytesMax,
    `the node held ${end.writableLengthMax} bytes for a client that did not read (bound ${heldBytesMax})`,
  );
  assert.deepEqual(
    answered,
    Array.from({ length: requestCount }, (_, at) => at + 1),
    'each request once, in order',
  );
  assert.equal(end.destroyed, false);
  end.destroy();
});

test('a cancelled call that was not answered yet is answered 499 cancelled, and its id and slot are free again', async () => {
  const connection = new RawConnection(port);
  await connection.hello('');
  connection.post(1, '/v1/broadcast', { payload: 1, client: 'cancelled', seq: 1 });
  assert.equal((await connection.answer(1)).status, 200);
  // Seq 3 waits for seq 2: unanswered until the client cancels it, twice.
  connection.post(2, '/v1/broadcast', { payload: 3, client: 'cancelled', seq: 3 });
  connection.send({ type: 'cancel', requestId: 2 });
  connection.send({ type: 'cancel', requestId: 2 });
  connection.send({ type: 'cancel', requestId: 77 }); // no such call: nothing happens
  const cancelled = await connection.answer(2);
  assert.equal(cancelled.status, 499);
  assert.equal(cancelled.body.error, 'cancelled');
  const answeredBefore = connection.frames.length;
  // Both slots of the window are free, and id 2 with them. The cancelled seq is still held
  // by the node: once seq 2 is in, it is delivered, and its retry answers duplicate.
  connection.frames.length = 0; // so that an answer to id 2 is the new call's
  connection.post(2, '/v1/broadcast', { payload: 2, client: 'cancelled', seq: 2 });
  const second = await connection.answer(2);
  assert.equal(second.status, 200, JSON.stringify(second.body));
  connection.post(3, '/v1/broadcast', { payload: 3, client: 'cancelled', seq: 3 });
  const third = await connection.answer(3);
  assert.equal(third.status, 200, JSON.stringify(third.body));
  assert.equal(third.body.index, (second.body.index as number) + 1);
  assert.equal(answeredBefore, 3, 'the welcome and the two answers, once each');
  assert.equal(connection.frames.length, 2, 'one answer per call since');
  assert.equal(connection.closed, false);
  connection.close();
});

test('a path that is no URL is answered 400 invalid_argument, over the binary port and over HTTP', async () => {
  const connection = new RawConnection(port);
  await connection.hello('');
  const paths = ['//', '//[', '/\\\\'];
  for (const [at, path] of paths.entries()) connection.get(at + 1, path);
  for (let at = 0; at < paths.length; at++) {
    const answer = await connection.answer(at + 1);
    assert.equal(answer.status, 400, `${paths[at]}: ${JSON.stringify(answer.body)}`);
    assert.equal(answer.body.error, 'invalid_argument');
    assert.equal(answer.body.field, 'path');
  }
  assert.equal(connection.closed, false);
  connection.close();
  // fetch would normalise the path: the request line is written by hand.
  const { hostname, port: httpPort } = new URL(leader.url);
  const socket = netConnect({ host: hostname, port: Number(httpPort) });
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  socket.write('GET // HTTP/1.1\r\nhost: abcast\r\nconnection: close\r\n\r\n');
  await once(socket, 'close');
  assert.match(text, /^HTTP\/1\.1 400 /);
  assert.match(text, /"error":"invalid_argument"/);
});

test('a run or batch whose last seq is past 2^53 - 1 is refused whole, 400 naming seq', async () => {
  const connection = new RawConnection(port);
  await connection.hello('');
  const firstSeq = Number.MAX_SAFE_INTEGER;
  connection.run(1, {
    clientId: 'last-seq',
    firstSeq,
    messages: [{ payload: '1' }, { payload: '2' }],
  });
  const run = await connection.runAnswer(1);
  assert.equal(run.status, 400, JSON.stringify(run));
  assert.equal('body' in run && run.body.field, 'seq');
  connection.close();
  const batch = await call(`${leader.url}/v1/broadcast/batch`, {
    method: 'POST',
    body: { client: 'last-seq', seq: firstSeq, messages: [{ payload: 1 }, { payload: 2 }] },
  });
  assert.equal(batch.status, 400, JSON.stringify(batch.body));
  assert.equal(batch.body.field, 'seq');
});

/** The goAway codes of docs/protocol.md ("Errors that end a connection"). */
const goAwayCodes = new Set([
  'frame_too_large',
  'frame_empty',
  'frame_malformed',
  'version_unsupported',
  'frame_type_unknown',
  'frame_unexpected',
  'hello_expected',
  'hello_repeated',
  'hello_timeout',
  'frame_timeout',
  'idle_timeout',
  'request_id_in_use',
  'window_exceeded',
  'node_stopped',
]);

/** A frame's bytes with its length prefix: `body` is everything after the prefix. */
function prefixed(body: Uint8Array): Buffer {
  const bytes = Buffer.alloc(4 + body.length);
  bytes.writeUInt32BE(body.length, 0);
  bytes.set(body, 4);
  return bytes;
}

/** Pieces of what an attacker writes: frames the node reads, forged ones, and noise. */
const attackPiece: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constantFrom(
    encodeClientFrame({ type: 'hello', requestId: 0, token: '' }),
    encodeClientFrame({ type: 'cancel', requestId: 1 }),
    encodeClientFrame({ type: 'streamEnd', requestId: 1 }),
    encodeClientFrame({
      type: 'welcome',
      requestId: 0,
      windowRequests: 1,
      frameBytesMax: 9,
      nodeId: 'x',
    }),
  ),
  fc.integer({ min: 0, max: 3 }).map((requestId) =>
    encodeClientFrame({
      type: 'request',
      requestId,
      method: 'GET',
      path: '/v1/status',
      headers: {},
      body: new Uint8Array(0),
    }),
  ),
  // A header (version, type, request id) and fields that are anything, length right.
  fc
    .tuple(
      fc.oneof(fc.constant(1), fc.integer({ min: 0, max: 255 })),
      fc.integer({ min: 0, max: 12 }),
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      fc.uint8Array({ maxLength: 40 }),
    )
    .map(([version, type, requestId, fields]) =>
      prefixed(Uint8Array.from([version, type, ...requestId, ...fields])),
    ),
  // A length of anything (0, past the limit, or longer than what follows), then noise.
  fc
    .tuple(fc.oneof(fc.constant(0), fc.nat()), fc.uint8Array({ maxLength: 16 }))
    .map(([length, noise]) => {
      const bytes = Buffer.alloc(4 + noise.length);
      bytes.writeUInt32BE(length, 0);
      bytes.set(noise, 4);
      return bytes;
    }),
  fc.uint8Array({ minLength: 1, maxLength: 24 }),
);

/** Writes `bytes` on a new connection, then ends it; what the node sent until it closed. */
async function attack(bytes: Uint8Array): Promise<ClientFrame[]> {
  const socket = netConnect({ host: '127.0.0.1', port });
  const decoder = new ClientFrameDecoder(clientFrameLimits.frameBytesMax);
  const frames: ClientFrame[] = [];
  socket.on('data', (chunk: Buffer) => {
    const read = decoder.push(chunk);
    assert.equal(read.error, null, 'the node sends only well-formed frames');
    frames.push(...read.frames);
  });
  socket.on('error', () => undefined); // a reset after a goAway: 'close' follows
  const closed = once(socket, 'close');
  socket.end(bytes);
  await closed;
  return frames;
}

test('whatever bytes a client sends, the node ends a stream it cannot read with a documented goAway, and serves the others', async () => {
  const bystander = new RawConnection(port);
  await bystander.hello('');
  const welcome = bystander.frames.find((frame) => frame.type === 'welcome');
  assert.ok(welcome?.type === 'welcome');
  let bystanderRequestId = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(attackPiece, { minLength: 1, maxLength: 5 }), async (pieces) => {
      const wire = Buffer.concat(pieces);
      // What the node cannot read, read as the node reads it (same limit).
      const { error } = new ClientFrameDecoder(welcome.frameBytesMax).push(wire);
      const frames = await attack(wire);
      const goAways = frames.filter((frame) => frame.type === 'goAway');
      assert.ok(goAways.length <= 1, 'one goAway at most');
      if (error !== null) assert.equal(goAways.length, 1, `a goAway for ${error.code}`);
      for (const goAway of goAways) {
        assert.ok(goAwayCodes.has(goAway.code), `documented: ${goAway.code}`);
        assert.equal(frames.at(-1), goAway, 'the goAway is the last frame');
      }
      bystanderRequestId++;
      bystander.get(bystanderRequestId, '/v1/status');
      assert.equal((await bystander.answer(bystanderRequestId)).status, 200);
    }),
    { numRuns: 60 },
  );
  assert.equal(bystander.closed, false);
  bystander.close();
});
