/**
 * `Transport` over TCP. Each node listens once and dials one outbound connection per peer
 * (`PeerLink`); a link carries frames one way, so two nodes talk over two connections and
 * neither side ever waits for the other to read. Inbound connections (`InboundConnection`)
 * deliver frames only after a valid handshake.
 *
 * `send` validates and encodes each frame at once (a bad frame is dropped and logged at the
 * sender, where the bug is), then queues the bytes on the peer's link. Raft's frames are
 * written on a microtask, those queued meanwhile to one peer together; forwarded batches
 * and their answers, which come many to a turn, are written at the end of the turn.
 *
 * With `tls`, the listener is a TLS server that asks for a client certificate and drops
 * any connection whose certificate the cluster CA did not sign (OpenSSL checks the chain);
 * then the node id the certificate names must be a known peer before a byte of the
 * connection is read, and must be the `from` of its Hello (inbound.ts).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { NodeId, SnapshotMessage } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { formatAddress, type HostPort, parseAddress } from './address.ts';
import { admitFrame } from './admission.ts';
import { type GatheredSize, gatherFrame, measureGatheredFrame } from './codec.ts';
import { TransportError } from './errors.ts';
import { lengthPrefixBytes, writeLengthPrefix } from './framing.ts';
import { InboundConnection } from './inbound.ts';
import { ThrottledLogger } from './log-throttle.ts';
import { PeerLink } from './peer-link.ts';
import { TransportCounters } from './stats.ts';
import {
  type ResolvedTcpOptions,
  resolveTcpOptions,
  type TcpTransportOptions,
} from './tcp-options.ts';
import { certifiedPeerOf, type TlsMaterial } from './tls.ts';
import type { Frame, FrameHandler, PeerLinkStats, Transport, TransportStats } from './types.ts';

/** One line per kind of trouble per second at most; the rest are counted in the next line. */
const noisyLogIntervalMs = 1_000;

export class TcpTransport implements Transport {
  readonly nodeId: NodeId;
  private readonly options: ResolvedTcpOptions;
  private readonly counters = new TransportCounters();
  private state: 'new' | 'starting' | 'running' | 'closed' = 'new';
  private server: Server | null = null;
  private boundAddress: HostPort | null = null;
  private peers = new Map<NodeId, HostPort>();
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly pending = new Set<InboundConnection>();
  /** TLS handshakes in progress, by remote "address:port"; they hold pending slots too. */
  private readonly tlsHandshakes = new Map<string, Socket>();
  private stopRotation: (() => void) | null = null;
  private readonly inbound = new Map<NodeId, InboundConnection>();
  private handler: FrameHandler | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  /** For lines that other machines, or a resent frame, could repeat without end. */
  private readonly noisyLogger: ThrottledLogger;

  /** Throws `TransportError` ('INVALID_OPTIONS' or 'INVALID_ADDRESS') for bad options. */
  constructor(options: TcpTransportOptions) {
    this.options = resolveTcpOptions(options);
    this.nodeId = this.options.nodeId;
    this.noisyLogger = new ThrottledLogger(this.options.logger, noisyLogIntervalMs);
  }

  /** The address actually listened on, port included; only after `start()` resolved. */
  address(): string {
    if (this.boundAddress === null) {
      throw new TransportError('INVALID_STATE', 'the transport is not listening');
    }
    return formatAddress(this.boundAddress);
  }

  async start(): Promise<void> {
    if (this.state !== 'new')
      throw new TransportError('INVALID_STATE', `start() on a ${this.state} transport`);
    this.state = 'starting';
    const server = this.options.tls === null ? this.plainServer() : this.tlsServer();
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => {
        reject(
          new TransportError(
            'LISTEN_FAILED',
            `cannot listen on ${formatAddress(this.options.listen)}: ${error.message}`,
          ),
        );
      };
      server.once('error', onError);
      server.listen({ host: this.options.listen.host, port: this.options.listen.port }, () => {
        server.off('error', onError);
        resolve();
      });
    }).catch((error: unknown) => {
      this.state = 'closed';
      throw error;
    });
    server.on('error', (error) =>
      this.options.logger.error({ error: error.message }, 'transport listener error'),
    );
    const bound = server.address();
    assert(bound !== null && typeof bound === 'object', 'a TCP listener has an address');
    this.boundAddress = { host: bound.address, port: bound.port };
    this.state = 'running';
    this.stallTimer = setInterval(() => this.checkStalls(), this.options.writeStallTimeoutMs);
    this.stallTimer.unref();
    this.options.logger.info({ node: this.nodeId, address: this.address() }, 'transport listening');
  }

  /**
   * A Ready's frames are on the path of a round: written at the end of the turn, a
   * leader's Appends waited for whatever else the turn held before a follower could start
   * its write. They go on a microtask: after the work already queued (for a large Ready the
   * loop starts its own WAL write first, so that its disk is busy before a peer competes
   * for a core; src/broadcast/node.ts), not after the turn.
   */
  send(frames: readonly Frame[]): void {
    for (const frame of frames) {
      const link = this.sendOne(frame);
      if (link === null || isForwarding(frame) || this.urgentLinks.includes(link)) continue;
      this.urgentLinks.push(link);
      if (this.urgentLinks.length === 1) queueMicrotask(this.flushUrgent);
    }
  }

  private readonly urgentLinks: PeerLink[] = [];
  private readonly flushUrgent = (): void => {
    for (const link of this.urgentLinks) link.flushNow();
    this.urgentLinks.length = 0;
  };

  onFrame(handler: FrameHandler): () => void {
    this.handler = handler;
    return () => {
      if (this.handler === handler) this.handler = null;
    };
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    const next = new Map<NodeId, HostPort>();
    for (const [nodeId, address] of peers) {
      if (nodeId === this.nodeId) continue;
      next.set(nodeId, parseAddress(address, false));
    }
    this.peers = next;
    for (const [nodeId, link] of this.links) {
      const address = next.get(nodeId);
      if (address === undefined) {
        link.close();
        this.links.delete(nodeId);
      } else {
        link.setAddress(address);
      }
    }
    for (const [nodeId, connection] of this.inbound) {
      if (!next.has(nodeId)) connection.close('the peer left the membership', {}, false);
    }
  }

  stats(): TransportStats {
    const peers: Record<NodeId, PeerLinkStats> = {};
    for (const nodeId of this.peers.keys()) {
      const link = this.links.get(nodeId);
      peers[nodeId] = link?.stats() ?? {
        state: 'idle',
        bufferedBytes: 0,
        sentFrameCount: 0,
        droppedFrameCount: 0,
      };
    }
    return this.counters.snapshot(peers);
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.stallTimer !== null) clearInterval(this.stallTimer);
    this.stallTimer = null;
    this.stopRotation?.();
    this.stopRotation = null;
    for (const socket of this.tlsHandshakes.values()) socket.destroy();
    this.tlsHandshakes.clear();
    for (const link of this.links.values()) link.close();
    this.links.clear();
    for (const connection of [...this.pending, ...this.inbound.values()]) {
      connection.close('the transport is closing', {});
    }
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Queues `frame` on its link; returns the link, or null when the frame was dropped. */
  private sendOne(frame: Frame): PeerLink | null {
    const admitted = admitFrame(frame, {
      running: this.state === 'running',
      nodeId: this.nodeId,
      counters: this.counters,
      logger: this.noisyLogger,
      encode: measureGatheredFrame,
      linkTo: (nodeId) => this.linkTo(nodeId),
    });
    if (admitted === null) return null;
    const { link, encoded: size } = admitted;
    const byteCount = size.byteCount;
    if (byteCount <= this.options.frameBytesMax) {
      link.enqueueFrame(encodeWithPrefix(frame, size), lengthPrefixBytes + byteCount);
      return link;
    }
    if (frame.type === 'Snapshot') {
      this.sendLargeSnapshot(link, frame);
      return link;
    }
    this.noisyLogger.error(
      {
        type: frame.type,
        to: frame.to,
        frameBytes: byteCount,
        frameBytesMax: this.options.frameBytesMax,
      },
      'transport dropped a frame larger than frameBytesMax',
    );
    this.counters.drop('oversize', 1, link.counters);
    return null;
  }

  private sendLargeSnapshot(link: PeerLink, frame: SnapshotMessage): void {
    const totalBytes = frame.snapshot.data.byteLength;
    if (totalBytes > this.options.snapshotBytesMax) {
      this.noisyLogger.error(
        {
          to: frame.to,
          snapshotBytes: totalBytes,
          snapshotBytesMax: this.options.snapshotBytesMax,
        },
        'transport dropped a snapshot larger than snapshotBytesMax',
      );
      this.counters.drop('oversize', 1, link.counters);
      return;
    }
    link.enqueueSnapshot(frame);
  }

  private linkTo(nodeId: NodeId): PeerLink | null {
    const existing = this.links.get(nodeId);
    if (existing !== undefined) return existing;
    const address = this.peers.get(nodeId);
    if (address === undefined) return null;
    const link = new PeerLink(nodeId, address, { options: this.options, counters: this.counters });
    this.links.set(nodeId, link);
    return link;
  }

  private plainServer(): Server {
    return createServer({ noDelay: true }, (socket) => this.accept(socket, undefined));
  }

  private tlsServer(): Server {
    const tls = this.options.tls;
    assert(tls !== null, 'a TLS server has credentials');
    const server = createTlsServer({
      ...tlsServerOptions(tls.material),
      requestCert: true,
      rejectUnauthorized: true,
      handshakeTimeout: this.options.handshakeTimeoutMs,
      noDelay: true,
    });
    this.stopRotation = tls.onUpdate((material) =>
      server.setSecureContext(tlsServerOptions(material)),
    );
    // Before the TLS handshake: a raw connection takes a pending slot, or is turned away.
    server.on('connection', (socket: Socket) => {
      if (!this.makePendingRoom(socket)) {
        this.turnAway(socket);
        return;
      }
      const key = remoteKey(socket);
      this.tlsHandshakes.set(key, socket);
      socket.once('close', () => {
        if (this.tlsHandshakes.get(key) === socket) this.tlsHandshakes.delete(key);
      });
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      this.tlsHandshakes.delete(remoteKey(socket));
      this.acceptCertified(socket);
    });
    server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
      this.counters.refusedConnectionCount++;
      this.noisyLogger.warn(
        { remote: remoteKey(socket), error: error.message },
        'transport refused a TLS connection',
      );
    });
    return server;
  }

  /** A TLS peer is admitted only as the known peer its certificate names. */
  private acceptCertified(socket: TLSSocket): void {
    const certified = certifiedPeerOf(socket);
    if (certified === null || certified === this.nodeId || !this.peers.has(certified)) {
      this.counters.refusedConnectionCount++;
      this.noisyLogger.warn(
        { remote: remoteKey(socket), code: 'UNKNOWN_NODE', certifiedAs: certified },
        'transport refused a TLS connection: its certificate names no peer of this node',
      );
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    this.accept(socket, certified);
  }

  /**
   * Whether a new connection may start its handshake. One address may hold only a few of
   * the slots, so silent connections from it cannot keep a restarted peer out; when every
   * slot is taken, the oldest handshake in progress gives way, since a real peer says hello
   * within a round trip and only a silent one is still pending after others arrived.
   */
  private makePendingRoom(socket: Socket): boolean {
    if (this.state !== 'running') return false;
    const host = socket.remoteAddress ?? '?';
    let fromHost = 0;
    for (const other of this.tlsHandshakes.values()) if (other.remoteAddress === host) fromHost++;
    for (const other of this.pending) if (other.remoteHost === host) fromHost++;
    if (fromHost >= this.options.pendingConnectionsPerAddressMax) return false;
    if (this.pending.size + this.tlsHandshakes.size < this.options.pendingConnectionCountMax) {
      return true;
    }
    this.counters.refusedConnectionCount++;
    const oldestPlain = this.pending.values().next();
    if (!oldestPlain.done) {
      oldestPlain.value.close('made way for a newer connection: every handshake slot taken', {});
      return true;
    }
    const oldestTls = this.tlsHandshakes.entries().next();
    if (!oldestTls.done) {
      const [key, tlsSocket] = oldestTls.value;
      this.tlsHandshakes.delete(key);
      tlsSocket.destroy();
    }
    return true;
  }

  private turnAway(socket: Socket): void {
    this.counters.refusedConnectionCount++;
    this.noisyLogger.warn(
      { remote: remoteKey(socket), pending: this.pending.size + this.tlsHandshakes.size },
      'transport turned away a connection: too many handshakes in progress from its address',
    );
    socket.on('error', () => {});
    socket.destroy();
  }

  /** `certifiedPeerId`: the node the peer's certificate names; undefined without TLS. */
  private accept(socket: Socket, certifiedPeerId: NodeId | undefined): void {
    if (!this.makePendingRoom(socket)) {
      this.turnAway(socket);
      return;
    }
    const connection = new InboundConnection(socket, certifiedPeerId, {
      options: this.options,
      counters: this.counters,
      logger: this.noisyLogger,
      isKnownPeer: (nodeId) => this.peers.has(nodeId),
      opened: (opened) => this.onInboundOpened(opened),
      closed: (closed) => this.onInboundClosed(closed),
      deliver: (frame) => this.deliver(frame),
    });
    this.pending.add(connection);
  }

  private onInboundOpened(connection: InboundConnection): void {
    const peerId = connection.peerId;
    assert(peerId !== null, 'an open connection knows its peer');
    this.pending.delete(connection);
    // A peer keeps one connection to us; a new one means the old one is dead on its side.
    const previous = this.inbound.get(peerId);
    this.inbound.set(peerId, connection);
    previous?.close('replaced by a newer connection from the same peer', {});
  }

  private onInboundClosed(connection: InboundConnection): void {
    this.pending.delete(connection);
    const peerId = connection.peerId;
    if (peerId !== null && this.inbound.get(peerId) === connection) this.inbound.delete(peerId);
  }

  private deliver(frame: Frame): void {
    const handler = this.handler;
    if (handler === null) {
      this.counters.drop('noHandler', 1, null);
      return;
    }
    handler(frame);
  }

  private checkStalls(): void {
    for (const link of this.links.values()) link.checkWriteStall();
  }
}

/**
 * The packet of `frame`, length prefix first, as pieces for one gathered write: its entries'
 * data is referenced where it lies, not copied into a buffer per peer.
 */
function encodeWithPrefix(frame: Frame, size: GatheredSize): Uint8Array[] {
  const pieces = gatherFrame(frame, size, lengthPrefixBytes);
  writeLengthPrefix(pieces[0], 0, size.byteCount);
  return pieces;
}

function remoteKey(socket: Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}

function tlsServerOptions(material: TlsMaterial): { cert: string; key: string; ca: string } {
  return { cert: material.certificatePem, key: material.keyPem, ca: material.caPem };
}

/** A forwarded batch or its answer: many to a turn, so they share the turn's one write. */
function isForwarding(frame: Frame): boolean {
  return frame.type === 'Forward' || frame.type === 'ForwardResult';
}
