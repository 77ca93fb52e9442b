/**
 * The nodes' binary client ports on the simulated client network: a client's SDK opens its
 * connections through `connectorFor` (a `BinaryConnector`), and each one is carried by a
 * SimConnection (sim-connection.ts) to the node's real BinaryServer. The faults are the
 * client network's: its latencies, its cuts (bytes stall, a connect is not answered), its
 * losses (as resets: TCP loses no byte without losing the connection), nodes that are down
 * (a connect is refused) and nodes that crash (their connections reset, at once or after a
 * stall).
 */
import type { BinaryConnector } from '../../client/binary-exchange.ts';
import type { NodeId } from '../../raft/types.ts';
import type { DuplexConnection } from '../../transport/duplex-connection.ts';
import { assert } from '../../util/assert.ts';
import type { Prng } from '../../util/prng.ts';
import type { ClientNetwork } from './exchange.ts';
import type { Life, SimScheduler } from './scheduler.ts';
import { SimConnection } from './sim-connection.ts';

/** The port every node's binary server listens on, in the clients' endpoints. */
export const simBinaryPort = 9000;

/** How often an unanswered connect is sent again, and the chance each time that it gives up. */
const synRetryMs = 100;
const synGiveUpProbability = 0.2;
/** A crashed machine's connections may stall this long at most before their reset. */
const crashResetMsMax = 2_000;
/** The chance that each look at a stalled connection gives up with a reset. */
const stallResetProbability = 0.05;

interface Port {
  readonly life: Life;
  readonly serve: (end: DuplexConnection) => void;
  readonly connections: Set<SimConnection>;
}

export interface BinaryNetworkCounts {
  connections: number;
  resets: number;
  refused: number;
}

export class BinaryNetwork {
  private readonly ports = new Map<NodeId, Port>();
  readonly counts: BinaryNetworkCounts = { connections: 0, resets: 0, refused: 0 };

  constructor(
    private readonly scheduler: SimScheduler,
    private readonly prng: Prng,
    private readonly clientNetwork: ClientNetwork,
    private readonly note: (text: string) => void,
  ) {}

  /** `node`'s incarnation `life` serves its binary port by `serve`. */
  attach(node: NodeId, life: Life, serve: (end: DuplexConnection) => void): void {
    assert(!this.ports.has(node), 'one incarnation serves a port');
    this.ports.set(node, { life, serve, connections: new Set() });
  }

  /** `node` went down: its connections are reset, now or after a stall. */
  detach(node: NodeId): void {
    const port = this.ports.get(node);
    if (port === undefined) return;
    this.ports.delete(node);
    for (const connection of port.connections) {
      const delayMs = this.prng.chance(1 / 2)
        ? this.latencyMs()
        : this.prng.between(Math.ceil(this.latencyMs()), crashResetMsMax);
      connection.nodeGone(delayMs);
    }
  }

  private latencyMs(): number {
    const { latencyMsMin, latencyMsMax } = this.clientNetwork.faults;
    return this.prng.between(latencyMsMin, latencyMsMax);
  }

  /** How the SDK client `client`, of life `life`, opens its connections. */
  connectorFor(client: string, life: Life): BinaryConnector {
    return (target) => {
      const node = target.host;
      assert(target.port === simBinaryPort, 'clients connect to the binary port');
      assert(!target.secure, 'the simulated cluster speaks plain TCP');
      const prng = this.prng.fork();
      const faults = () => this.clientNetwork.faults;
      const connection = new SimConnection(
        {
          scheduler: this.scheduler,
          prng,
          latencyMs: () => prng.between(faults().latencyMsMin, faults().latencyMsMax),
          linkUp: () => this.clientNetwork.reaches(client, node),
          // TCP loses no byte without losing the connection: a loss is a reset.
          resetProbability: () =>
            (faults().requestLossProbability + faults().answerLossProbability) / 8,
          stallResetProbability,
          onReset: (reason) => {
            this.counts.resets++;
            this.note(`${client}'s connection to ${node} resets: ${reason}`);
          },
          // A closed connection is nothing the node's crash could reset.
          onClosed: () => this.ports.get(node)?.connections.delete(connection),
        },
        client,
        life,
      );
      connection.clientEnd.on('data', target.onData);
      this.scheduler.schedule(this.latencyMs(), life, () =>
        this.handshake(connection, client, node),
      );
      return connection.clientEnd;
    };
  }

  /** The connect reaches the node (or does not): accepted, refused, or sent again. */
  private handshake(connection: SimConnection, client: string, node: NodeId): void {
    if (connection.state !== 'open' || connection.clientEnd.destroyed) return;
    if (!this.clientNetwork.reaches(client, node)) {
      if (this.prng.chance(synGiveUpProbability)) connection.refuse('ETIMEDOUT');
      else {
        this.scheduler.schedule(synRetryMs, connection.clientEnd.life, () =>
          this.handshake(connection, client, node),
        );
      }
      return;
    }
    const port = this.ports.get(node);
    if (port === undefined) {
      this.counts.refused++;
      connection.refuse('ECONNREFUSED');
      return;
    }
    this.counts.connections++;
    port.connections.add(connection);
    connection.accept(port.life, port.serve);
  }
}
