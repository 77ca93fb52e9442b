// The SDK's binary exchange when a node closes a connection for idleness, over a scripted
// node (a connector whose connections answer as the test says): a call that crossed the
// goAway `idle_timeout` (written before it arrived, never read by the node) is sent again
// on a new connection and answered there, a request or a run alike, and the caller sees no
// error; a run sent again still ends when its client's signal aborts; a goAway of any other
// code still fails the calls it catches, as before, since the node may have read them.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import {
  type BinaryConnectionError,
  type BinaryConnectTarget,
  binaryExchange,
} from '../../src/client/binary-exchange.ts';
import {
  type ClientFrame,
  ClientFrameDecoder,
  clientFrameLimits,
  encodeClientFrame,
} from '../../src/transport/client-frames.ts';
import type { DuplexConnection } from '../../src/transport/duplex-connection.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';

/** What a scripted node does with each frame after the hello it welcomes. */
type Script = (frame: ClientFrame, node: ScriptedNode) => void;

/** The node's end of one connection: frames the SDK writes go to `script`. */
class ScriptedNode extends EventEmitter implements DuplexConnection {
  destroyed = false;
  writableNeedDrain = false;
  writableLength = 0;
  private readonly decoder = new ClientFrameDecoder(clientFrameLimits.frameBytesMax);

  constructor(
    private readonly target: BinaryConnectTarget,
    private readonly script: Script,
  ) {
    super();
  }

  write(bytes: Uint8Array): boolean {
    if (this.destroyed) return false;
    const { frames, error } = this.decoder.push(Buffer.from(bytes));
    assert.equal(error, null, 'the SDK sends well-formed frames');
    for (const frame of frames) {
      if (frame.type === 'hello') {
        this.send({
          type: 'welcome',
          requestId: 0,
          windowRequests: 16,
          frameBytesMax: 1 << 20,
          nodeId: 'n1',
        });
      } else this.script(frame, this);
    }
    return true;
  }

  /** A frame from the node, read by the SDK on a later turn, as from a socket. */
  send(frame: Parameters<typeof encodeClientFrame>[0]): void {
    const bytes = encodeClientFrame(frame);
    setImmediate(() => {
      if (!this.destroyed) this.target.onData(bytes);
    });
  }

  /** The node's goAway, then its close. */
  goAway(code: string): void {
    this.send({ type: 'goAway', requestId: 0, code, message: `closed: ${code}` });
    setImmediate(() => this.destroy());
  }

  cork(): void {}
  uncork(): void {}
  end(): void {
    this.destroy();
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    setImmediate(() => this.emit('close'));
  }
  pause(): void {}
  resume(): void {}
  setNoDelay(): void {}
  ref(): void {}
  unref(): void {}
}

/** Answers every request 200 and every run with its messages delivered from position 7. */
const answerAll: Script = (frame, node) => {
  if (frame.type === 'request') {
    node.send({
      type: 'answer',
      requestId: frame.requestId,
      status: 200,
      headers: {},
      body: Buffer.from('{"ok":true}'),
    });
  } else if (frame.type === 'broadcastRun') {
    node.send({
      type: 'runAnswer',
      requestId: frame.requestId,
      results: frame.messages.map((_, at) => ({
        kind: 'ok' as const,
        position: 7 + at,
        term: 1,
        duplicate: false,
      })),
    });
  }
};

/**
 * An exchange whose first connection's node closes with `code` at the first frame after
 * hello; the nodes of later connections follow `then`.
 */
function closingFirst(code: string, then: Script = answerAll) {
  const made: ScriptedNode[] = [];
  const exchange = binaryExchange(systemEnvironment, {
    ca: null,
    connector: (target) => {
      const closes = made.length === 0;
      const node = new ScriptedNode(target, closes ? (_, self) => self.goAway(code) : then);
      made.push(node);
      return node;
    },
  });
  return { exchange, made };
}

function status(signal: AbortSignal) {
  return {
    method: 'GET',
    url: 'abcast://n1:9001/v1/status',
    headers: {},
    body: null,
    timeoutMs: 5000,
    signal,
  } as const;
}

test('a request that crossed an idle_timeout goAway is answered on a new connection', async () => {
  const { exchange, made } = closingFirst('idle_timeout');
  const abort = new AbortController();
  const answer = await exchange(status(abort.signal));
  assert.equal(answer.status, 200);
  assert.equal(made.length, 2);
  assert.ok(made[0]?.destroyed);
});

test('a run that crossed an idle_timeout goAway is answered on a new connection', async () => {
  const { exchange, made } = closingFirst('idle_timeout');
  const abort = new AbortController();
  const positions: (number | null)[] = [];
  const answer = await exchange.broadcastRun({
    url: 'abcast://n1:9001/v1/broadcast/batch',
    headers: {},
    timeoutMs: 5000,
    signal: abort.signal,
    clientId: 'c1',
    firstSeq: 1,
    nonce: '',
    messages: [{ payload: '1', topic: '', key: '' }],
    onResults: (results) => positions.push(results.position(0)),
  });
  assert.deepEqual(answer, { kind: 'taken' });
  assert.deepEqual(positions, [7]);
  assert.equal(made.length, 2);
});

test('a run sent again after an idle close still ends when its client aborts', async () => {
  const { exchange, made } = closingFirst('idle_timeout', () => undefined);
  const abort = new AbortController();
  const stopped = new Error('the client closed');
  const answer = exchange.broadcastRun({
    url: 'abcast://n1:9001/v1/broadcast/batch',
    headers: {},
    timeoutMs: 60_000,
    signal: abort.signal,
    clientId: 'c1',
    firstSeq: 1,
    nonce: '',
    messages: [{ payload: '1', topic: '', key: '' }],
    onResults: () => assert.fail('no node answers'),
  });
  // Aborted once the run is on the second connection, whose node never answers.
  while (made.length < 2) await new Promise((resolve) => setImmediate(resolve));
  abort.abort(stopped);
  await assert.rejects(answer, (error) => error === stopped);
});

test('a goAway of another code still fails the call it caught', async () => {
  const { exchange, made } = closingFirst('node_stopped');
  const abort = new AbortController();
  await assert.rejects(exchange(status(abort.signal)), (error: BinaryConnectionError) => {
    assert.equal(error.code, 'node_stopped');
    return true;
  });
  assert.equal(made.length, 1);
});
