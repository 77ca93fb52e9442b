/**
 * The fault proxy: one per node, listening on the address every other node has for it, and
 * forwarding to the node's real peer port. It needs no root, unlike netem, and it works per
 * direction: a node's link to a peer is its own outbound TCP connection (src/transport/tcp.ts
 * dials one per peer and carries frames one way), and the proxy learns which node dialled
 * from the connection's first packet, the Hello (`from`). So the faults of the link
 * `from → to` live in the proxy of `to`, keyed by `from`:
 *
 * - cut: the connection is held open and everything on it is swallowed, both ways (a
 *   black hole, as a real partition looks; no reset tells the sender). Cutting drops the
 *   connections already open, so nothing queued before the cut slips through; healing drops
 *   the swallowed ones, so the dialler reconnects at once.
 * - loss, duplication, delay and jitter (which reorders) act on whole Raft frames. Packets of
 *   the link itself (Hello, Welcome, Refuse, snapshot streaming) keep their order and are
 *   never lost or doubled: the link would drop the connection on a broken stream, which is a
 *   cut, not loss.
 *
 * Framing is read here, independently of the transport's code, from the documented wire:
 * a 32-bit big-endian length, then a packet starting with its version and type byte.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { decodePacket } from '../transport/wire.ts';
import { assert } from '../util/assert.ts';
import type { Prng } from '../util/prng.ts';

export interface LinkFaults {
  readonly cut: boolean;
  readonly lossRate: number;
  readonly duplicateRate: number;
  readonly delayMs: number;
  /** Each frame waits delayMs plus up to this much more: frames overtake each other. */
  readonly jitterMs: number;
}

export const healthyLink: LinkFaults = {
  cut: false,
  lossRate: 0,
  duplicateRate: 0,
  delayMs: 0,
  jitterMs: 0,
};

/** Type bytes of the link's own packets (src/transport/wire.ts): never dropped or doubled. */
const linkPacketTypeMin = 0x40;
const lengthPrefixBytes = 4;
/** A packet longer than this is not the wire we know: drop the connection. */
const packetBytesMax = 256 * 1024 * 1024;
/** Bytes waiting in delay timers per connection; past it, frames are dropped (as loss). */
const delayedBytesMax = 32 * 1024 * 1024;

export interface ProxyCounters {
  forwardedFrames: number;
  droppedFrames: number;
  duplicatedFrames: number;
  swallowedBytes: number;
}

/** Splits a byte stream into length-prefixed packets (prefix included in each). */
class PacketReader {
  private buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const packets: Buffer[] = [];
    while (this.buffered.length >= lengthPrefixBytes) {
      const bodyBytes = this.buffered.readUInt32BE(0);
      if (bodyBytes === 0 || bodyBytes > packetBytesMax) throw new Error('bad packet length');
      const total = lengthPrefixBytes + bodyBytes;
      if (this.buffered.length < total) break;
      packets.push(this.buffered.subarray(0, total));
      this.buffered = this.buffered.subarray(total);
    }
    return packets;
  }
}

class ProxiedConnection {
  private upstream: Socket | null = null;
  private readonly reader = new PacketReader();
  from: string | null = null;
  swallowing = false;
  private delayedBytes = 0;
  /** Link packets are sent no earlier than the one before them, so they keep their order. */
  private lastLinkPacketDueMs = 0;

  constructor(
    private readonly proxy: FaultProxy,
    readonly downstream: Socket,
  ) {
    downstream.on('data', (chunk: Buffer) => this.onData(chunk));
    downstream.on('error', () => this.destroy());
    downstream.on('close', () => this.destroy());
  }

  private onData(chunk: Buffer): void {
    if (this.swallowing) {
      this.proxy.counters.swallowedBytes += chunk.length;
      return;
    }
    let packets: Buffer[];
    try {
      packets = this.reader.push(chunk);
    } catch {
      this.destroy();
      return;
    }
    for (const packet of packets) this.onPacket(packet);
  }

  private onPacket(packet: Buffer): void {
    if (this.swallowing) {
      this.proxy.counters.swallowedBytes += packet.length;
      return;
    }
    if (this.from === null) {
      this.from = helloSender(packet);
      if (this.from === null) {
        this.destroy();
        return;
      }
      if (this.proxy.faultsFrom(this.from).cut) {
        this.swallowing = true;
        return;
      }
      this.connectUpstream();
      this.upstream?.write(packet);
      return;
    }
    const faults = this.proxy.faultsFrom(this.from);
    const isLinkPacket = (packet[lengthPrefixBytes + 1] ?? 0) >= linkPacketTypeMin;
    if (isLinkPacket) {
      this.sendLater(packet, faults.delayMs, true);
      return;
    }
    const random = this.proxy.random;
    if (faults.lossRate > 0 && random.chance(faults.lossRate)) {
      this.proxy.counters.droppedFrames++;
      return;
    }
    const delay = () =>
      faults.delayMs + (faults.jitterMs > 0 ? random.next() * faults.jitterMs : 0);
    this.sendLater(packet, delay(), false);
    if (faults.duplicateRate > 0 && random.chance(faults.duplicateRate)) {
      this.proxy.counters.duplicatedFrames++;
      this.sendLater(packet, delay(), false);
    }
  }

  private connectUpstream(): void {
    const upstream = createConnection(this.proxy.targetPort, this.proxy.targetHost);
    upstream.setNoDelay(true);
    upstream.on('data', (chunk: Buffer) => {
      // Answers (Welcome, Refuse) go back unless the link was cut meanwhile.
      if (!this.swallowing) this.downstream.write(chunk);
    });
    upstream.on('error', () => this.destroy());
    upstream.on('close', () => this.destroy());
    this.upstream = upstream;
  }

  private sendLater(packet: Buffer, delayMs: number, isLinkPacket: boolean): void {
    const upstream = this.upstream;
    if (upstream === null) return;
    if (delayMs <= 0 && (!isLinkPacket || this.lastLinkPacketDueMs <= performance.now())) {
      this.proxy.counters.forwardedFrames++;
      upstream.write(packet);
      return;
    }
    let dueMs = performance.now() + delayMs;
    if (isLinkPacket) {
      dueMs = Math.max(dueMs, this.lastLinkPacketDueMs);
      this.lastLinkPacketDueMs = dueMs;
    } else if (this.delayedBytes + packet.length > delayedBytesMax) {
      this.proxy.counters.droppedFrames++;
      return;
    }
    this.delayedBytes += packet.length;
    const copy = Buffer.from(packet);
    setTimeout(
      () => {
        this.delayedBytes -= copy.length;
        if (this.swallowing || upstream.destroyed) return;
        this.proxy.counters.forwardedFrames++;
        upstream.write(copy);
      },
      Math.max(0, dueMs - performance.now()),
    );
  }

  destroy(): void {
    this.downstream.destroy();
    this.upstream?.destroy();
    this.proxy.forget(this);
  }
}

/** The `from` of a Hello packet, or null if the packet is not a Hello. */
function helloSender(packet: Buffer): string | null {
  try {
    const decoded = decodePacket(packet.subarray(lengthPrefixBytes));
    return decoded.kind === 'Hello' ? decoded.from : null;
  } catch {
    return null;
  }
}

export interface FaultProxyOptions {
  /** The node behind the proxy, for messages. */
  readonly nodeId: string;
  readonly targetHost: string;
  readonly targetPort: number;
  readonly listenPort: number;
  readonly random: Prng;
}

export class FaultProxy {
  readonly counters: ProxyCounters = {
    forwardedFrames: 0,
    droppedFrames: 0,
    duplicatedFrames: 0,
    swallowedBytes: 0,
  };
  readonly targetHost: string;
  readonly targetPort: number;
  readonly random: Prng;
  private readonly faults = new Map<string, LinkFaults>();
  private readonly connections = new Set<ProxiedConnection>();
  private server: Server | null = null;

  constructor(private readonly options: FaultProxyOptions) {
    this.targetHost = options.targetHost;
    this.targetPort = options.targetPort;
    this.random = options.random;
  }

  async start(): Promise<void> {
    const server = createServer((socket) => {
      socket.setNoDelay(true);
      this.connections.add(new ProxiedConnection(this, socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.listenPort, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  faultsFrom(from: string): LinkFaults {
    return this.faults.get(from) ?? healthyLink;
  }

  /** Sets the faults of the link `from → this node`; a change of `cut` resets its connections. */
  setFaults(from: string, faults: LinkFaults): void {
    assert(faults.lossRate >= 0 && faults.lossRate <= 1, 'lossRate is a probability');
    assert(faults.duplicateRate >= 0 && faults.duplicateRate <= 1, 'duplicateRate is one too');
    const wasCut = this.faultsFrom(from).cut;
    this.faults.set(from, faults);
    if (wasCut === faults.cut) return;
    for (const connection of [...this.connections]) {
      if (connection.from === from) connection.destroy();
    }
  }

  healAll(): void {
    for (const from of [...this.faults.keys()]) this.setFaults(from, healthyLink);
    this.faults.clear();
  }

  forget(connection: ProxiedConnection): void {
    this.connections.delete(connection);
  }

  async close(): Promise<void> {
    for (const connection of [...this.connections]) connection.destroy();
    const server = this.server;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
