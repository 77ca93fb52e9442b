/**
 * A TCP connection between a simulated client and a node's binary port, carried by the
 * world's scheduler: each end is a `DuplexConnection` (src/transport/duplex-connection.ts),
 * so the real BinaryConnection of the node (src/server/binary-server.ts) and the real SDK
 * exchange (src/client/binary-exchange.ts) run over it unchanged.
 *
 * What TCP does, it does: bytes arrive in order, after a seeded latency, never lost or
 * repeated while the connection lives, in 'data' chunks cut anywhere (a frame across
 * several chunks, several frames in one); an empty write sends nothing. What TCP suffers,
 * it suffers: a reset at any moment drops whatever is in flight both ways and fails both
 * ends; bytes that reach an end already closed reset the connection, so their writer hears
 * of it (as a kernel answers them with RST); while the link is down (a client cut off)
 * bytes stall, and the stall may end in a reset; a reader that pauses backs the writer up
 * past its high-water mark until 'drain'. Not modelled: half-open connections (an end's
 * FIN closes both), and TLS.
 *
 * Every event for an end runs under that end's Life, so a paused node reads late and a
 * crashed one never reads again; order within a direction never rests on the agenda's
 * order of same-millisecond events, since each delivery takes the bytes due from the
 * direction's queue.
 */
import { EventEmitter } from 'node:events';
import type { DuplexConnection } from '../../transport/duplex-connection.ts';
import { assert } from '../../util/assert.ts';
import type { Prng } from '../../util/prng.ts';
import type { Life, SimScheduler } from './scheduler.ts';

/** Node's default for a socket: a write past this many buffered bytes asks for 'drain'. */
const highWaterMarkBytes = 16 << 10;
/** How often a stalled direction looks again whether the link is back. */
const stallCheckMs = 50;

export interface SimConnectionOptions {
  readonly scheduler: SimScheduler;
  /** The connection's own generator: latencies, chunk sizes, resets. */
  readonly prng: Prng;
  /** One way's delay for a write, in virtual ms. */
  readonly latencyMs: () => number;
  /** Whether bytes cross now; while not, they wait (a partition, a cut client). */
  readonly linkUp: () => boolean;
  /** The chance that a delivery resets the connection instead (the network's faults). */
  readonly resetProbability: () => number;
  /** The chance that each look at a stalled link gives up with a reset. */
  readonly stallResetProbability: number;
  /** Told once, when the connection is reset (for the world's counts and trace). */
  readonly onReset: (reason: string) => void;
  /** Told once, when both ends have closed without a reset: it is gone, not broken. */
  readonly onClosed?: () => void;
}

/** Bytes on their way one direction (null: the end of the stream, a FIN). */
interface Segment {
  bytes: Uint8Array | null;
  readonly arriveAtMs: number;
}

type ConnectionState = 'open' | 'reset' | 'closed';

/** One end of a simulated connection, as its owner sees it: a socket. */
export class SimConnectionEnd extends EventEmitter implements DuplexConnection {
  destroyed = false;
  writableNeedDrain = false;
  writableLength = 0;
  /** Whether this end has sent its FIN (end or destroy). */
  private ended = false;
  private paused = false;
  /** Whether the owner reads yet: the server's end from its accept on. */
  readable = false;
  private corkDepth = 0;
  private corked: Uint8Array[] = [];
  /** The direction this end writes into; set by the pair. */
  outgoing: Direction | null = null;
  incoming: Direction | null = null;
  /** The pair, told when this end closes; set by the pair. */
  connection: SimConnection | null = null;

  constructor(
    readonly name: string,
    /** Whose events deliver to this end; the server's end takes its node's at accept. */
    public life: Life,
  ) {
    super();
  }

  write(bytes: Uint8Array): boolean {
    if (this.destroyed) return false;
    if (this.ended) {
      // Node's stream refuses a write after end, and the socket is destroyed with the error.
      this.fail('ERR_STREAM_WRITE_AFTER_END', 'write after end');
      return false;
    }
    // Nothing to send: a queued empty segment would be a chunk of no bytes.
    if (bytes.length === 0) return !this.writableNeedDrain;
    // Copied: a writer may reuse its buffer once the write returns (Node's may not, but
    // the copy costs the simulator nothing that matters).
    const copy = Uint8Array.from(bytes);
    this.writableLength += copy.length;
    if (this.corkDepth > 0) this.corked.push(copy);
    else this.outgoing?.send(copy);
    if (this.writableLength >= highWaterMarkBytes) this.writableNeedDrain = true;
    return !this.writableNeedDrain;
  }

  cork(): void {
    this.corkDepth++;
  }

  uncork(): void {
    if (this.corkDepth === 0) return;
    this.corkDepth--;
    if (this.corkDepth === 0) this.flushCorked();
  }

  private flushCorked(): void {
    const parts = this.corked;
    this.corked = [];
    if (parts.length === 0 || this.destroyed) return;
    this.outgoing?.send(Buffer.concat(parts));
  }

  end(): this {
    if (this.ended || this.destroyed) return this;
    this.corkDepth = 0;
    this.flushCorked();
    this.ended = true;
    this.outgoing?.send(null);
    return this;
  }

  destroy(): this {
    if (this.destroyed) return this;
    // What was not yet handed to the network is dropped; what was still arrives, then the
    // FIN, as when a socket is closed.
    this.corked = [];
    if (!this.ended) {
      this.ended = true;
      this.outgoing?.send(null);
    }
    this.close(null);
    return this;
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    if (!this.paused) return this;
    this.paused = false;
    this.incoming?.wake();
    return this;
  }

  /** Whether 'data' may be emitted now. */
  get reading(): boolean {
    return this.readable && !this.paused && !this.destroyed;
  }

  setNoDelay(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  /** The peer's FIN arrived: this end ends too (no half-open sockets) and closes. */
  receiveEnd(): void {
    if (this.destroyed) return;
    this.end();
    this.close(null);
  }

  /** A reset or refused connect: 'error' with the code, then 'close'. */
  fail(code: string, message: string): void {
    if (this.destroyed) return;
    const error = Object.assign(new Error(`${message} (${this.name})`), { code });
    this.close(error);
  }

  /** The owner is gone without a word (a crashed process): nothing more reaches it. */
  silence(): void {
    this.destroyed = true;
    this.removeAllListeners();
  }

  /** The peer took `byteCount` of this end's bytes; true when that drained this end. */
  sent(byteCount: number): boolean {
    this.writableLength = Math.max(0, this.writableLength - byteCount);
    if (!this.writableNeedDrain || this.writableLength > 0 || this.destroyed) return false;
    this.writableNeedDrain = false;
    return true;
  }

  private close(error: Error | null): void {
    this.destroyed = true;
    this.writableLength = 0;
    this.writableNeedDrain = false;
    this.connection?.endClosed();
    // Bytes still coming to this end meet a closed socket: see Direction.deliver.
    this.incoming?.wake();
    // As Node: 'error' and 'close' come on a later tick, never inside the call that caused them.
    process.nextTick(() => {
      if (error !== null && this.listenerCount('error') > 0) this.emit('error', error);
      this.emit('close');
    });
  }
}

/** One direction of the connection: a queue of bytes, delivered in order. */
class Direction {
  private readonly segments: Segment[] = [];
  private lastArrivalMs = 0;
  /** A look at the stalled link is scheduled already. */
  private stallCheck = false;

  constructor(
    private readonly connection: SimConnection,
    private readonly from: SimConnectionEnd,
    private readonly to: SimConnectionEnd,
  ) {}

  /** Bytes (or the FIN, null) leave now and arrive after a latency, behind earlier ones. */
  send(bytes: Uint8Array | null): void {
    if (this.connection.state !== 'open') return;
    const { scheduler } = this.connection.options;
    const nowMs = scheduler.nowMs;
    const arriveAtMs = Math.max(
      nowMs + Math.ceil(this.connection.options.latencyMs()),
      this.lastArrivalMs,
    );
    this.lastArrivalMs = arriveAtMs;
    this.segments.push({ bytes, arriveAtMs });
    // A node's end not accepted yet has no life of its own: its accept wakes the queue.
    if (!this.to.readable) return;
    scheduler.schedule(arriveAtMs - nowMs, this.to.life, () => this.deliver());
  }

  /** The reader can take bytes again (resumed, accepted, or the last chunk taken). */
  wake(): void {
    const first = this.segments[0];
    if (first === undefined) return;
    const { scheduler } = this.connection.options;
    const delayMs = Math.max(0, first.arriveAtMs - scheduler.nowMs);
    scheduler.schedule(delayMs, this.to.life, () => this.deliver());
  }

  drop(): void {
    this.segments.length = 0;
  }

  /** Delivers one chunk of what has arrived; schedules itself again while more has. */
  private deliver(): void {
    const { options } = this.connection;
    if (this.connection.state !== 'open') return;
    const first = this.segments[0];
    if (first === undefined || first.arriveAtMs > options.scheduler.nowMs) return;
    if (this.to.destroyed) {
      // A closed socket answers data with RST (a FIN it only drops): the writer, which may
      // be waiting for 'drain' with its reads paused, learns the connection is gone.
      if (first.bytes !== null) this.connection.reset('data reached a closed socket');
      else this.segments.shift();
      return;
    }
    if (!this.to.reading) return;
    if (!options.linkUp()) {
      this.stall();
      return;
    }
    if (options.prng.chance(options.resetProbability())) {
      this.connection.reset('the network reset it');
      return;
    }
    if (first.bytes === null) {
      this.segments.shift();
      this.to.receiveEnd();
      return;
    }
    const chunk = this.takeChunk();
    if (this.from.sent(chunk.length)) {
      // Under the writer's life, as its own socket would tell it.
      options.scheduler.schedule(0, this.from.life, () => {
        if (!this.from.destroyed) this.from.emit('drain');
      });
    }
    this.to.emit('data', chunk);
    if (this.segments.length > 0) this.wake();
  }

  /**
   * The next chunk: all that has arrived up to the FIN, or (half the time) only some of
   * it, cut at any byte.
   */
  private takeChunk(): Buffer {
    const { options } = this.connection;
    const nowMs = options.scheduler.nowMs;
    let arrivedBytes = 0;
    for (const segment of this.segments) {
      if (segment.arriveAtMs > nowMs || segment.bytes === null) break;
      arrivedBytes += segment.bytes.length;
    }
    assert(arrivedBytes > 0, 'a chunk is taken only when bytes have arrived');
    const chunkBytes = options.prng.chance(1 / 2)
      ? arrivedBytes
      : options.prng.between(1, arrivedBytes);
    const chunk = Buffer.alloc(chunkBytes);
    let filled = 0;
    while (filled < chunkBytes) {
      const segment = this.segments[0] as Segment;
      const bytes = segment.bytes as Uint8Array;
      const taken = Math.min(bytes.length, chunkBytes - filled);
      chunk.set(bytes.subarray(0, taken), filled);
      filled += taken;
      if (taken === bytes.length) this.segments.shift();
      else segment.bytes = bytes.subarray(taken);
    }
    return chunk;
  }

  /** The link is down: the bytes wait, and each look may give up with a reset. */
  private stall(): void {
    if (this.stallCheck) return;
    this.stallCheck = true;
    const { options } = this.connection;
    options.scheduler.schedule(stallCheckMs, this.to.life, () => {
      this.stallCheck = false;
      if (this.connection.state !== 'open') return;
      if (!options.linkUp() && options.prng.chance(options.stallResetProbability)) {
        this.connection.reset('it stalled while the link was down');
        return;
      }
      this.deliver();
    });
  }
}

/**
 * A client's connection to one node: the client's end at once, the node's end once the
 * connection is accepted (`accept`), then bytes both ways until a close or a reset.
 */
export class SimConnection {
  readonly clientEnd: SimConnectionEnd;
  readonly serverEnd: SimConnectionEnd;
  state: ConnectionState = 'open';
  private readonly fromClient: Direction;
  private readonly toClient: Direction;

  constructor(
    readonly options: SimConnectionOptions,
    clientName: string,
    clientLife: Life,
  ) {
    this.clientEnd = new SimConnectionEnd(clientName, clientLife);
    this.clientEnd.readable = true;
    // The server's end exists from the start, so that the client's writes have a queue to
    // wait in; its owner reads it from `accept` on.
    const serverEnd = new SimConnectionEnd(`server of ${clientName}`, clientLife);
    this.serverEnd = serverEnd;
    this.clientEnd.connection = this;
    serverEnd.connection = this;
    this.fromClient = new Direction(this, this.clientEnd, serverEnd);
    this.clientEnd.outgoing = this.fromClient;
    serverEnd.incoming = this.fromClient;
    this.toClient = new Direction(this, serverEnd, this.clientEnd);
    serverEnd.outgoing = this.toClient;
    this.clientEnd.incoming = this.toClient;
  }

  /**
   * The handshake is done: the node's end, now under the life of the node incarnation that
   * accepted it, is handed to `serve`, and bytes flow.
   */
  accept(serverLife: Life, serve: (end: DuplexConnection) => void): void {
    assert(this.state === 'open', 'only an open connection is accepted');
    assert(serverLife.isAlive, 'a live node accepts');
    const { serverEnd } = this;
    serverEnd.life = serverLife;
    serve(serverEnd);
    serverEnd.readable = true;
    this.fromClient.wake();
  }

  /** An end closed: once both have, without a reset, the connection is gone. */
  endClosed(): void {
    if (this.state !== 'open' || !this.clientEnd.destroyed || !this.serverEnd.destroyed) return;
    this.state = 'closed';
    this.options.onClosed?.();
  }

  /** The node is down: the connect fails, as a port nobody listens on answers. */
  refuse(code: 'ECONNREFUSED' | 'ETIMEDOUT'): void {
    this.state = 'reset';
    this.fromClient.drop();
    this.serverEnd.silence();
    const delayMs = this.options.latencyMs();
    this.options.scheduler.schedule(delayMs, this.clientEnd.life, () =>
      this.clientEnd.fail(code, `connect ${code}`),
    );
  }

  /**
   * Everything in flight is dropped both ways, and each end hears of it after its own
   * delay (a reset crosses the network too).
   */
  reset(reason: string): void {
    if (this.state !== 'open') return;
    this.state = 'reset';
    this.options.onReset(reason);
    this.fromClient.drop();
    this.toClient.drop();
    const { serverEnd } = this;
    // A server's end not yet accepted has no owner to tell.
    if (!serverEnd.readable) serverEnd.silence();
    for (const end of [this.clientEnd, serverEnd]) {
      if (end.destroyed) continue;
      const delayMs = this.options.prng.between(0, Math.ceil(this.options.latencyMs()));
      this.options.scheduler.schedule(delayMs, end.life, () =>
        end.fail('ECONNRESET', `read ECONNRESET: ${reason}`),
      );
    }
  }

  /**
   * The node's process is gone: its end hears nothing more, and the client's end is reset
   * after `delayMs` (at once when the kernel answered for the dead process, later when the
   * machine itself was gone and the reset waits for a retransmission).
   */
  nodeGone(delayMs: number): void {
    const clientClosed = this.clientEnd.destroyed;
    this.serverEnd.silence();
    this.fromClient.drop();
    this.toClient.drop();
    if (this.state !== 'open') return;
    if (clientClosed) {
      // The client had closed its end: nothing is left to reset.
      this.state = 'closed';
      this.options.onClosed?.();
      return;
    }
    this.state = 'reset';
    this.options.onReset('the node went down');
    this.options.scheduler.schedule(delayMs, this.clientEnd.life, () =>
      this.clientEnd.fail('ECONNRESET', 'read ECONNRESET: the node went down'),
    );
  }
}
