/**
 * One outbound connection to one peer: it dials, says Hello, waits for Welcome, then streams
 * frames in send order. Frames wait in a bounded queue; each event-loop turn's frames leave
 * in one corked socket write, small ones copied into a single buffer, large ones as they are.
 *
 * Bounds: queue bytes plus the socket's own buffer stay within `peerBufferBytesMax` (a new
 * frame that does not fit is dropped), the socket buffer within `socketBufferBytesMax`
 * (beyond it we wait for 'drain'), and one snapshot streams at a time. When a link fails,
 * its queue is dropped: after a backoff, the queue holds only frames sent since, so a peer
 * that returns gets recent messages rather than ones that were stale long ago.
 */
import { connect, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { NodeId, SnapshotMessage } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { formatAddress, type HostPort } from './address.ts';
import { Backoff } from './backoff.ts';
import { CodecError } from './errors.ts';
import { PacketSplitter } from './framing.ts';
import { SnapshotSender } from './snapshot-stream.ts';
import { PeerCounters, type TransportCounters } from './stats.ts';
import { handshakeBytesMax, type ResolvedTcpOptions } from './tcp-options.ts';
import { nodeIdOfCertificate } from './tls.ts';
import type { DropReason, LinkState, PeerLinkStats } from './types.ts';
import { decodePacket, encodeHello, protocolVersion } from './wire.ts';

type QueueItem =
  | { readonly kind: 'frame'; readonly pieces: readonly Uint8Array[]; readonly byteCount: number }
  | { readonly kind: 'snapshot'; readonly sender: SnapshotSender };

/** Frames at least this large are written as they are instead of copied into a batch. */
const coalesceBytesMax = 16 * 1024;
/** A batch of small frames stops growing here, so one write never gets huge. */
const batchBytesMax = 256 * 1024;
/** The consumed head of the queue array is trimmed once it is this long (and half of it). */
const queueTrimCount = 1024;

/**
 * How a failed link is logged. A peer that is down, slow or restarting is `down` (a warning,
 * and during start-up not even that: src/cli/logging.ts). A peer that refuses this node, or
 * speaks a protocol version it cannot read, is `refused`: an error, since waiting will not
 * mend a wrong cluster id, an unknown node or a release the other cannot talk to.
 */
const linkDown = 'transport link down';
const linkRefused = 'transport link refused';

export interface LinkContext {
  readonly options: ResolvedTcpOptions;
  readonly counters: TransportCounters;
}

export class PeerLink {
  private state: LinkState = 'idle';
  private socket: Socket | null = null;
  private replySplitter: PacketSplitter | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly queue: QueueItem[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private snapshotQueued = false;
  private nextStreamId = 0;
  private flushScheduled = false;
  private hasOpened = false;
  private writeCompletionCount = 0;
  private writeCompletionMark = 0;
  private readonly backoff: Backoff;
  readonly counters = new PeerCounters();

  constructor(
    readonly peerId: NodeId,
    private address: HostPort,
    private readonly context: LinkContext,
  ) {
    const { options } = context;
    this.backoff = new Backoff({
      initialMs: options.reconnectDelayMsMin,
      maxMs: options.reconnectDelayMsMax,
      random: options.random,
    });
  }

  get bufferedBytes(): number {
    return this.queuedBytes + (this.socket?.writableLength ?? 0);
  }

  stats(): PeerLinkStats {
    return {
      state: this.state,
      bufferedBytes: this.bufferedBytes,
      sentFrameCount: this.counters.sentFrameCount,
      droppedFrameCount: this.counters.droppedFrameCount,
    };
  }

  /**
   * `pieces` are one packet with its length prefix, `byteCount` bytes in all, written in
   * order and unchanged until then. Never throws; a frame that cannot go is counted.
   */
  enqueueFrame(pieces: readonly Uint8Array[], byteCount: number): void {
    if (this.state === 'closed') {
      this.drop('closed', 1);
      return;
    }
    if (this.bufferedBytes + byteCount > this.context.options.peerBufferBytesMax) {
      this.drop('bufferFull', 1);
      return;
    }
    this.queue.push({ kind: 'frame', pieces, byteCount });
    this.queuedBytes += byteCount;
    this.wake();
  }

  /** Writes what is queued now rather than at the end of this event-loop turn. */
  flushNow(): void {
    if (this.queueHead < this.queue.length) this.flush();
  }

  /** A snapshot too large for one frame; its data is referenced, not copied. */
  enqueueSnapshot(message: SnapshotMessage): void {
    if (this.state === 'closed') {
      this.drop('closed', 1);
      return;
    }
    if (this.snapshotQueued) {
      this.drop('snapshotBusy', 1);
      return;
    }
    const streamId = this.nextStreamId++;
    const sender = new SnapshotSender(
      message,
      streamId,
      this.context.options.snapshotChunkBytesMax,
    );
    this.queue.push({ kind: 'snapshot', sender });
    this.snapshotQueued = true;
    this.wake();
  }

  /** Membership moved the peer: drop the old connection and dial the new address. */
  setAddress(address: HostPort): void {
    if (address.host === this.address.host && address.port === this.address.port) return;
    this.address = address;
    if (this.state !== 'idle' && this.state !== 'closed') this.fail('the peer address changed', {});
  }

  close(): void {
    if (this.state === 'closed') return;
    this.dropQueue('closed');
    this.releaseSocket();
    this.state = 'closed';
  }

  /**
   * Called every `writeStallTimeoutMs`: a socket that held data through a whole interval
   * without completing a write is stuck (peer frozen or network black hole); TCP alone
   * would wait many minutes, so the link is redialled.
   */
  checkWriteStall(): void {
    const stalled =
      this.state === 'open' &&
      (this.socket?.writableLength ?? 0) > 0 &&
      this.writeCompletionCount === this.writeCompletionMark;
    this.writeCompletionMark = this.writeCompletionCount;
    if (stalled) this.fail('writes stalled', { bufferedBytes: this.bufferedBytes });
  }

  private drop(reason: DropReason, frameCount: number): void {
    this.context.counters.drop(reason, frameCount, this.counters);
  }

  private wake(): void {
    if (this.state === 'idle') this.dial();
    else if (this.state === 'open') this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private dial(): void {
    assert(this.socket === null, 'one connection per link');
    const { options } = this.context;
    this.state = 'connecting';
    const socket = this.connect();
    this.socket = socket;
    this.replySplitter = new PacketSplitter(handshakeBytesMax);
    socket.setNoDelay(true);
    this.timer = setTimeout(() => this.fail('handshake timed out', {}), options.handshakeTimeoutMs);
    this.timer.unref();
    // Over TLS the Hello waits for the handshake, so it never leaves before the peer proved
    // it is the node we meant to reach.
    socket.on(options.tls === null ? 'connect' : 'secureConnect', () => {
      if (this.socket !== socket) return;
      const hello = encodeHello({
        version: protocolVersion,
        clusterId: options.clusterId,
        from: options.nodeId,
        to: this.peerId,
      });
      this.writePacket(socket, hello);
    });
    socket.on('data', (chunk: Buffer) => this.onReply(socket, chunk));
    socket.on('drain', () => this.socket === socket && this.flush());
    socket.on(
      'error',
      (error) => this.socket === socket && this.fail('socket error', { error: error.message }),
    );
    socket.on('close', () => this.socket === socket && this.fail('connection closed', {}));
  }

  /**
   * A plain TCP connection, or a TLS one whose peer must hold a certificate of the cluster
   * CA (OpenSSL checks the chain) that names the node this link is for. The host name is
   * not checked: in a private CA's cluster the node id is the identity (tls.ts).
   */
  private connect(): Socket {
    const { host, port } = this.address;
    const tls = this.context.options.tls;
    if (tls === null) return connect({ host, port });
    const peerId = this.peerId;
    return connectTls({
      host,
      port,
      secureContext: tls.secureContext,
      rejectUnauthorized: true,
      checkServerIdentity: (_host, certificate) => {
        const certified = nodeIdOfCertificate(certificate);
        if (certified === peerId) return undefined;
        return new Error(
          `the peer's certificate names ${JSON.stringify(certified)}, not ${JSON.stringify(peerId)}`,
        );
      },
    });
  }

  private writePacket(socket: Socket, packet: Buffer): void {
    const framed = Buffer.allocUnsafe(4 + packet.byteLength);
    framed.writeUInt32BE(packet.byteLength, 0);
    framed.set(packet, 4);
    this.context.counters.sentBytes += framed.byteLength;
    socket.write(framed);
  }

  private onReply(socket: Socket, chunk: Buffer): void {
    if (this.socket !== socket || this.replySplitter === null) return;
    this.replySplitter.push(chunk);
    try {
      for (
        let packet = this.replySplitter.next();
        packet !== null;
        packet = this.replySplitter.next()
      ) {
        if (this.socket !== socket) return;
        this.onReplyPacket(decodePacket(packet));
      }
    } catch (error) {
      this.context.counters.protocolErrorCount++;
      if (error instanceof CodecError && error.code === 'UNSUPPORTED_VERSION') {
        const peerVersion = error.details.version ?? null;
        this.fail(
          `${this.peerId} answers in peer protocol version ${peerVersion}; this node speaks version ${protocolVersion}`,
          { code: error.code, peerVersion, version: protocolVersion },
          linkRefused,
        );
        return;
      }
      this.fail('malformed reply', { error: (error as Error).message });
    }
  }

  private onReplyPacket(packet: ReturnType<typeof decodePacket>): void {
    if (packet.kind === 'Refuse') {
      // A peer shutting down refuses on its way out: routine. Any other refusal names a
      // mistake in the deployment.
      this.fail(
        'refused by peer',
        { code: packet.code, detail: packet.detail },
        packet.code === 'SHUTTING_DOWN' ? linkDown : linkRefused,
      );
      return;
    }
    if (packet.kind !== 'Welcome' || this.state !== 'connecting') {
      this.context.counters.protocolErrorCount++;
      this.fail('unexpected reply', { packet: packet.kind });
      return;
    }
    if (packet.nodeId !== this.peerId) {
      this.fail('a different node answered', { answeredBy: packet.nodeId });
      return;
    }
    this.open();
  }

  private open(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.state = 'open';
    if (this.hasOpened) this.context.counters.reconnectCount++;
    this.hasOpened = true;
    this.backoff.reset();
    this.context.options.logger.info(
      { peer: this.peerId, address: formatAddress(this.address) },
      'transport link open',
    );
    this.flush();
  }

  private fail(
    reason: string,
    details: Readonly<Record<string, unknown>>,
    message: typeof linkDown | typeof linkRefused = linkDown,
  ): void {
    if (this.state === 'closed' || this.state === 'backoff') return;
    const delayMs = this.backoff.nextDelayMs();
    const fields = {
      peer: this.peerId,
      address: formatAddress(this.address),
      reason,
      retryInMs: Math.round(delayMs),
      ...details,
    };
    if (message === linkRefused) this.context.options.logger.error(fields, message);
    else this.context.options.logger.warn(fields, message);
    this.releaseSocket();
    this.dropQueue('linkDown');
    this.state = 'backoff';
    this.timer = setTimeout(() => this.afterBackoff(), delayMs);
    this.timer.unref();
  }

  private afterBackoff(): void {
    this.timer = null;
    if (this.state !== 'backoff') return;
    this.state = 'idle';
    if (this.queueHead < this.queue.length) this.dial();
  }

  private releaseSocket(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.socket?.destroy();
    this.socket = null;
    this.replySplitter = null;
  }

  private dropQueue(reason: DropReason): void {
    const frameCount = this.queue.length - this.queueHead;
    if (frameCount > 0) this.drop(reason, frameCount);
    this.queue.length = 0;
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.snapshotQueued = false;
  }

  private dequeue(): void {
    const item = this.queue[this.queueHead];
    assert(item !== undefined, 'dequeue from a non-empty queue');
    this.queue[this.queueHead] = undefined as unknown as QueueItem;
    this.queueHead++;
    if (item.kind === 'frame') this.queuedBytes -= item.byteCount;
    else this.snapshotQueued = false;
    this.counters.sentFrameCount++;
    this.context.counters.sentFrameCount++;
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    } else if (this.queueHead >= queueTrimCount && this.queueHead * 2 >= this.queue.length) {
      // Trimming only once the consumed head is half the array keeps dequeue O(1) amortized.
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    assert(this.queuedBytes >= 0, 'queued bytes never go negative');
  }

  private flush(): void {
    this.flushScheduled = false;
    const socket = this.socket;
    if (this.state !== 'open' || socket === null) return;
    const batch = new WriteBatch(socket, this.context.counters, () => this.writeCompletionCount++);
    const socketBufferBytesMax = this.context.options.socketBufferBytesMax;
    socket.cork();
    while (
      this.queueHead < this.queue.length &&
      socket.writableLength + batch.pendingBytes < socketBufferBytesMax
    ) {
      const item = this.queue[this.queueHead]!;
      if (item.kind === 'frame') {
        for (const piece of item.pieces) batch.add(piece);
        this.dequeue();
        continue;
      }
      batch.flush();
      for (const piece of item.sender.nextPieces()) batch.writeNow(piece);
      if (item.sender.done) this.dequeue();
    }
    batch.flush();
    socket.uncork();
  }
}

/** Collects small packets into one buffer; large ones go straight to the socket. */
class WriteBatch {
  private readonly pieces: Uint8Array[] = [];
  pendingBytes = 0;

  constructor(
    private readonly socket: Socket,
    private readonly counters: TransportCounters,
    private readonly onWritten: () => void,
  ) {}

  add(bytes: Uint8Array): void {
    if (bytes.byteLength >= coalesceBytesMax) {
      this.flush();
      this.writeNow(bytes);
      return;
    }
    this.pieces.push(bytes);
    this.pendingBytes += bytes.byteLength;
    if (this.pendingBytes >= batchBytesMax) this.flush();
  }

  flush(): void {
    if (this.pieces.length === 0) return;
    const joined =
      this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.pendingBytes);
    this.pieces.length = 0;
    this.pendingBytes = 0;
    this.writeNow(joined);
  }

  writeNow(bytes: Uint8Array): void {
    this.counters.sentBytes += bytes.byteLength;
    this.socket.write(bytes, this.onWritten);
  }
}
