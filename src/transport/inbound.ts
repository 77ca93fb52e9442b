/**
 * One accepted connection. It must open with a Hello naming our cluster, our node and a
 * known peer, in a protocol version we speak; until then its packets are held to
 * `handshakeBytesMax`. After the Welcome it carries frames from that one peer, each checked
 * to come from it and to be addressed to us. Anything else closes the connection with a log
 * line: garbage from one socket never reaches the core and never stops the process.
 *
 * Over mutual TLS the transport admits a connection only once its certificate names a
 * known peer; the Hello must then claim that same node, or the connection is closed
 * without an answer (an authenticated member that lies about who it is gets nothing).
 */
import type { Socket } from 'node:net';
import type { NodeId } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { CodecError, ProtocolError } from './errors.ts';
import { FramingError, lengthPrefixBytes, PacketSplitter } from './framing.ts';
import { SnapshotAssembler } from './snapshot-stream.ts';
import type { TransportCounters } from './stats.ts';
import { handshakeBytesMax, type ResolvedTcpOptions } from './tcp-options.ts';
import type { Frame, TransportLogger } from './types.ts';
import {
  decodePacket,
  encodeRefuse,
  encodeWelcome,
  type HelloPacket,
  type Packet,
  protocolVersion,
  type RefuseCode,
} from './wire.ts';

/** A packet this large, sharing its read with others, is copied out whole to keep its entries. */
const wholeCopyBytesMin = 1024;

/** After a refusal, the socket gets this long to deliver the reason before it is destroyed. */
const refusalLingerMs = 1_000;

export interface InboundContext {
  readonly options: ResolvedTcpOptions;
  readonly counters: TransportCounters;
  /** Throttled: these lines are caused by other machines. */
  readonly logger: TransportLogger;
  isKnownPeer(nodeId: NodeId): boolean;
  /** The handshake succeeded: the transport may close an older connection from that peer. */
  opened(connection: InboundConnection): void;
  /** Called once per connection, whatever its state was. */
  closed(connection: InboundConnection): void;
  deliver(frame: Frame): void;
}

/**
 * Decodes a packet whose entries the node will keep, copying their bytes at most once.
 * `owned`: the splitter assembled it from several reads into a buffer of its own. Such a
 * packet, or one that fills most of the read it came in (a 'data' chunk is fresh and never
 * reused by Node, so keeping a view pins at most twice the packet), yields entries that are
 * views of it; a large packet sharing a larger read is copied out whole first; the rest
 * (small frames, with no entries to speak of) copy their runs as they decode.
 */
export function decodeKept(bytes: Uint8Array, owned: boolean): Packet {
  if (owned || bytes.byteLength * 2 >= bytes.buffer.byteLength) return decodePacket(bytes, true);
  // Not `bytes.slice()`: on a Buffer (every socket read is one) that is a view, not a copy.
  if (bytes.byteLength >= wholeCopyBytesMin) return decodePacket(new Uint8Array(bytes), true);
  return decodePacket(bytes);
}

export class InboundConnection {
  /** 'closing': refused, the reason is being delivered before the socket goes. */
  private state: 'handshake' | 'open' | 'closing' | 'closed' = 'handshake';
  private peer: NodeId | null = null;
  private readonly splitter = new PacketSplitter(handshakeBytesMax);
  private readonly assembler: SnapshotAssembler;
  private timer: NodeJS.Timeout | null;

  /** The remote IP address, which bounds how many handshakes one address may hold. */
  readonly remoteHost: string;
  private readonly remotePort: number;

  /**
   * `certifiedPeerId`: the node the peer's TLS certificate names, which its Hello must
   * claim; undefined on a plain TCP listener.
   */
  constructor(
    private readonly socket: Socket,
    private readonly certifiedPeerId: NodeId | undefined,
    private readonly context: InboundContext,
  ) {
    this.remoteHost = socket.remoteAddress ?? '?';
    this.remotePort = socket.remotePort ?? 0;
    this.assembler = new SnapshotAssembler(context.options.snapshotBytesMax);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.close('socket error', { error: error.message }));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => this.close('connection closed', {}));
    this.timer = setTimeout(
      () => this.refuse('BAD_HANDSHAKE', 'no hello in time'),
      context.options.handshakeTimeoutMs,
    );
    this.timer.unref();
  }

  get peerId(): NodeId | null {
    return this.peer;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** "host:port", captured at accept: a destroyed socket no longer says. */
  get remoteAddress(): string {
    return `${this.remoteHost}:${this.remotePort}`;
  }

  /** Closes the connection; `reason` is logged unless it is an ordinary end. */
  close(reason: string, details: Readonly<Record<string, unknown>>, quiet = true): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.socket.destroy();
    if (!quiet) {
      this.context.logger.warn(
        { peer: this.peer, remote: this.remoteAddress, reason, ...details },
        'transport connection closed',
      );
    }
    this.context.closed(this);
  }

  private onEnd(): void {
    if (!this.receiving) {
      this.close('the peer closed after a refusal', {});
      return;
    }
    if (this.splitter.hasPartialPacket || this.assembler.active) {
      this.context.counters.protocolErrorCount++;
      this.close(
        'the peer closed inside a packet',
        { bufferedBytes: this.splitter.bufferedBytes },
        false,
      );
      return;
    }
    this.close('the peer closed the connection', {});
  }

  private get receiving(): boolean {
    return this.state === 'handshake' || this.state === 'open';
  }

  private onData(chunk: Buffer): void {
    if (!this.receiving) return;
    this.context.counters.receivedBytes += chunk.byteLength;
    this.splitter.push(chunk);
    try {
      for (let bytes = this.splitter.next(); bytes !== null; bytes = this.splitter.next()) {
        this.onPacket(bytes);
        if (!this.receiving) return;
      }
    } catch (error) {
      // Whatever a frame does, it costs at most its connection: an error we did not expect
      // (a bug of ours, or a check the receiver makes that the codec did not) is logged
      // loudly and the connection closed, and the process goes on serving its other peers.
      const expected =
        error instanceof CodecError ||
        error instanceof FramingError ||
        error instanceof ProtocolError
          ? error
          : null;
      if (expected === null) {
        this.context.logger.error(
          { remote: this.remoteAddress, peer: this.peer, error: String(error) },
          'transport closed a connection whose frame failed unexpectedly',
        );
      }
      this.context.counters.protocolErrorCount++;
      const details =
        expected !== null
          ? { code: expected.code, error: expected.message }
          : { code: 'UNEXPECTED', error: String(error) };
      if (this.state === 'handshake') {
        this.refuse('BAD_HANDSHAKE', details.error);
        return;
      }
      this.close('protocol violation', details, false);
    }
  }

  private onPacket(bytes: Uint8Array): void {
    const packet = decodeKept(bytes, this.splitter.ownsLastPacket);
    if (this.state === 'handshake') {
      if (packet.kind !== 'Hello') {
        throw new ProtocolError('UNEXPECTED_PACKET', `${packet.kind} before Hello`);
      }
      this.onHello(packet);
      return;
    }
    this.onOpenPacket(packet);
  }

  private onHello(hello: HelloPacket): void {
    const { options } = this.context;
    if (this.certifiedPeerId !== undefined && hello.from !== this.certifiedPeerId) {
      this.context.counters.refusedConnectionCount++;
      this.close(
        'the Hello claims another node than the certificate',
        { claimed: hello.from, certified: this.certifiedPeerId },
        false,
      );
      return;
    }
    if (hello.version !== protocolVersion) {
      // Named both ways: the caller reads the detail in the Refuse, this node's operator the
      // fields, and neither has to guess which side runs the other release.
      this.refuse(
        'UNSUPPORTED_VERSION',
        `${hello.from} speaks peer protocol version ${hello.version}; ${options.nodeId} speaks version ${protocolVersion}`,
        { peer: hello.from, peerVersion: hello.version, version: protocolVersion },
      );
      return;
    }
    if (hello.clusterId !== options.clusterId) {
      this.refuse(
        'WRONG_CLUSTER',
        `this node belongs to another cluster, not ${JSON.stringify(hello.clusterId)}`,
      );
      return;
    }
    if (hello.to !== options.nodeId) {
      this.refuse('WRONG_NODE', `this is node ${options.nodeId}, not ${hello.to}`);
      return;
    }
    if (hello.from === options.nodeId || !this.context.isKnownPeer(hello.from)) {
      this.refuse('UNKNOWN_NODE', `node ${hello.from} is not a peer of ${options.nodeId}`);
      return;
    }
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.peer = hello.from;
    this.state = 'open';
    this.splitter.packetBytesMax = options.frameBytesMax;
    const welcome = encodeWelcome(options.nodeId);
    const framed = Buffer.allocUnsafe(lengthPrefixBytes + welcome.byteLength);
    framed.writeUInt32BE(welcome.byteLength, 0);
    framed.set(welcome, lengthPrefixBytes);
    this.context.counters.sentBytes += framed.byteLength;
    this.socket.write(framed);
    this.context.opened(this);
  }

  private onOpenPacket(packet: Packet): void {
    switch (packet.kind) {
      case 'Frame':
        if (this.assembler.active) {
          throw new ProtocolError('UNEXPECTED_PACKET', 'a frame inside a snapshot stream');
        }
        this.deliver(packet.frame);
        return;
      case 'SnapshotBegin':
        this.checkAddressing(packet.header);
        this.assembler.begin(packet.streamId, packet.totalBytes, packet.header);
        return;
      case 'SnapshotChunk': {
        const message = this.assembler.chunk(packet.streamId, packet.offset, packet.data);
        if (message !== null) this.deliver(message);
        return;
      }
      default:
        throw new ProtocolError('UNEXPECTED_PACKET', `${packet.kind} on an open connection`);
    }
  }

  private checkAddressing(frame: Frame): void {
    assert(this.peer !== null, 'an open connection knows its peer');
    if (frame.from !== this.peer) {
      throw new ProtocolError(
        'WRONG_SENDER',
        `a frame from ${frame.from} on the link of ${this.peer}`,
      );
    }
    if (frame.to !== this.context.options.nodeId) {
      throw new ProtocolError(
        'WRONG_RECIPIENT',
        `a frame for ${frame.to} reached ${this.context.options.nodeId}`,
      );
    }
  }

  private deliver(frame: Frame): void {
    this.checkAddressing(frame);
    this.context.counters.receivedFrameCount++;
    this.context.deliver(frame);
  }

  private refuse(
    code: RefuseCode,
    detail: string,
    fields: Readonly<Record<string, unknown>> = {},
  ): void {
    if (!this.receiving) return;
    this.context.counters.refusedConnectionCount++;
    this.context.logger.warn(
      { remote: this.remoteAddress, code, detail, ...fields },
      'transport refused a connection',
    );
    const refusal = encodeRefuse(code, detail);
    const framed = Buffer.allocUnsafe(lengthPrefixBytes + refusal.byteLength);
    framed.writeUInt32BE(refusal.byteLength, 0);
    framed.set(refusal, lengthPrefixBytes);
    this.state = 'closing';
    if (this.timer !== null) clearTimeout(this.timer);
    this.socket.end(framed);
    this.timer = setTimeout(() => this.close('refusal delivered', {}), refusalLingerMs);
    this.timer.unref();
  }
}
