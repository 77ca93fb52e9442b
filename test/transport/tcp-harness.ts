/** Starts `TcpTransport` clusters on 127.0.0.1 ephemeral ports for the conformance suite. */
import assert from 'node:assert/strict';
import type { NodeId } from '../../src/raft/types.ts';
import { TcpTransport } from '../../src/transport/tcp.ts';
import type { TcpTransportOptions } from '../../src/transport/tcp-options.ts';
import type { Harness, Limits, NodeSpec } from './conformance.ts';
import { RecordingLogger } from './helpers.ts';

/** Fast reconnects and short timeouts, so tests never wait long. */
export const testTiming = {
  reconnectDelayMsMin: 5,
  reconnectDelayMsMax: 50,
  handshakeTimeoutMs: 2_000,
} as const;

export class TcpHarness implements Harness {
  private readonly transports = new Map<NodeId, TcpTransport>();
  private readonly specs = new Map<NodeId, Required<NodeSpec>>();
  private readonly addresses = new Map<NodeId, string>();
  private readonly loggers = new Map<NodeId, RecordingLogger>();
  private limits: Partial<Limits> = {};

  /** `extra`: options for every node, or per node (each node's own TLS certificate). */
  constructor(
    private readonly extra:
      | Partial<TcpTransportOptions>
      | ((nodeId: NodeId) => Partial<TcpTransportOptions>) = {},
  ) {}

  async start(nodes: readonly NodeSpec[], limits: Partial<Limits> = {}): Promise<TcpTransport[]> {
    this.limits = limits;
    const started: TcpTransport[] = [];
    for (const node of nodes) {
      this.specs.set(node.nodeId, { nodeId: node.nodeId, clusterId: node.clusterId ?? 'test' });
      const transport = this.create(node.nodeId, '127.0.0.1:0');
      await transport.start();
      this.addresses.set(node.nodeId, transport.address());
      started.push(transport);
    }
    for (const transport of started) transport.setPeers(this.peerMap());
    return started;
  }

  addressOf(nodeId: NodeId): string {
    const address = this.addresses.get(nodeId);
    assert.ok(address !== undefined, `${nodeId} has an address`);
    return address;
  }

  async stop(nodeId: NodeId): Promise<void> {
    await this.transports.get(nodeId)?.close();
  }

  async restart(nodeId: NodeId): Promise<TcpTransport> {
    const transport = this.create(nodeId, this.addressOf(nodeId));
    transport.setPeers(this.peerMap());
    await transport.start();
    return transport;
  }

  logger(nodeId: NodeId): RecordingLogger {
    let logger = this.loggers.get(nodeId);
    if (logger === undefined) {
      logger = new RecordingLogger();
      this.loggers.set(nodeId, logger);
    }
    return logger;
  }

  async close(): Promise<void> {
    await Promise.all([...this.transports.values()].map((transport) => transport.close()));
  }

  private peerMap(): Map<NodeId, string> {
    return new Map(this.addresses);
  }

  private create(nodeId: NodeId, listenAddress: string): TcpTransport {
    const spec = this.specs.get(nodeId);
    assert.ok(spec !== undefined);
    const transport = new TcpTransport({
      ...testTiming,
      ...this.limits,
      ...(typeof this.extra === 'function' ? this.extra(nodeId) : this.extra),
      nodeId,
      clusterId: spec.clusterId,
      listenAddress,
      logger: this.logger(nodeId),
    });
    this.transports.set(nodeId, transport);
    return transport;
  }
}
