/**
 * How simulated SDK clients reach the nodes: an `HttpExchange` that carries each request
 * over a simulated client network to the real route handlers of the node it names (its
 * `InProcessServer`), and the answer back. Requests and answers can be lost, late, or cut by
 * a partition of the client from some nodes; a node that is down refuses the connection;
 * a request whose answer never comes fails at its deadline, as a socket timeout does.
 */
import type {
  HttpExchange,
  HttpExchangeRequest,
  HttpExchangeResponse,
} from '../../client/exchange.ts';
import type { NodeId } from '../../raft/types.ts';
import type { InProcessServer } from '../../server/in-process.ts';
import { assert } from '../../util/assert.ts';
import type { Prng } from '../../util/prng.ts';
import type { Life, SimScheduler } from './scheduler.ts';

export interface ClientNetworkFaults {
  readonly requestLossProbability: number;
  readonly answerLossProbability: number;
  readonly latencyMsMin: number;
  readonly latencyMsMax: number;
}

export const calmClientNetwork: ClientNetworkFaults = {
  requestLossProbability: 0,
  answerLossProbability: 0,
  latencyMsMin: 1,
  latencyMsMax: 3,
};

export type ExchangeEvent =
  | {
      readonly kind: 'request';
      readonly client: string;
      readonly node: NodeId;
      readonly request: HttpExchangeRequest;
      readonly fate: 'sent' | 'lost' | 'refused';
    }
  | {
      readonly kind: 'answer';
      readonly client: string;
      readonly node: NodeId;
      readonly response: HttpExchangeResponse;
      readonly fate: 'delivered' | 'lost';
    };

/** The servers clients can reach, and the faults between clients and nodes. */
export class ClientNetwork {
  faults: ClientNetworkFaults = calmClientNetwork;
  private readonly servers = new Map<NodeId, { server: InProcessServer; life: Life }>();
  /** "client|node" pairs that cannot reach each other. */
  private readonly cuts = new Set<string>();

  constructor(
    private readonly scheduler: SimScheduler,
    private readonly prng: Prng,
    private readonly observe: (event: ExchangeEvent) => void,
    /**
     * Whether `client` reaches `node` at all, beyond the cuts: between nodes, the partitions
     * of the nodes' own network hold for their HTTP too.
     */
    private readonly linked: (client: string, node: NodeId) => boolean = () => true,
  ) {}

  attach(node: NodeId, server: InProcessServer, life: Life): void {
    this.servers.set(node, { server, life });
  }

  detach(node: NodeId): void {
    this.servers.delete(node);
  }

  cut(client: string, node: NodeId): void {
    this.cuts.add(`${client}|${node}`);
  }

  heal(): void {
    this.cuts.clear();
  }

  private latencyMs(): number {
    return this.prng.between(this.faults.latencyMsMin, this.faults.latencyMsMax);
  }

  /** The exchange one client uses; its timers belong to the client's life. */
  exchangeFor(client: string, life: Life): HttpExchange {
    return (request) => this.exchange(client, life, request);
  }

  private exchange(
    client: string,
    life: Life,
    request: HttpExchangeRequest,
  ): Promise<HttpExchangeResponse> {
    const node = new URL(request.url).hostname;
    return new Promise<HttpExchangeResponse>((resolve, reject) => {
      let settled = false;
      const serverGone = new AbortController();
      const finish = (outcome: HttpExchangeResponse | Error) => {
        if (settled) return;
        settled = true;
        deadline.cancel();
        request.signal.removeEventListener('abort', onAbort);
        if (outcome instanceof Error) {
          serverGone.abort();
          reject(outcome);
        } else resolve(outcome);
      };
      const onAbort = () => finish(new Error('the request was aborted'));
      const deadline = this.scheduler.schedule(request.timeoutMs, life, () =>
        finish(new Error(`no answer from ${node} within ${request.timeoutMs} ms`)),
      );
      if (request.signal.aborted) {
        onAbort();
        return;
      }
      request.signal.addEventListener('abort', onAbort);
      this.carryRequest(client, life, node, request, serverGone.signal, finish);
    });
  }

  private carryRequest(
    client: string,
    life: Life,
    node: NodeId,
    request: HttpExchangeRequest,
    clientGone: AbortSignal,
    finish: (outcome: HttpExchangeResponse | Error) => void,
  ): void {
    const reachable = !this.cuts.has(`${client}|${node}`) && this.linked(client, node);
    if (!reachable || this.prng.chance(this.faults.requestLossProbability)) {
      this.observe({ kind: 'request', client, node, request, fate: 'lost' });
      return; // the deadline answers
    }
    const target = this.servers.get(node);
    if (target === undefined) {
      this.observe({ kind: 'request', client, node, request, fate: 'refused' });
      this.scheduler.schedule(this.latencyMs(), life, () =>
        finish(new Error(`connect ECONNREFUSED ${node}`)),
      );
      return;
    }
    this.observe({ kind: 'request', client, node, request, fate: 'sent' });
    this.scheduler.schedule(this.latencyMs(), target.life, () => {
      if (clientGone.aborted) return;
      const served = target.server.handle(
        {
          method: request.method,
          url: pathOf(request.url),
          headers: request.headers,
          body: request.body,
        },
        clientGone,
      );
      served.then(
        (response) => this.carryAnswer(client, life, node, response, target.life, finish),
        () => {
          // The server failed without an answer (it is stopping): the connection resets.
          this.scheduler.schedule(this.latencyMs(), life, () =>
            finish(new Error(`socket hang up from ${node}`)),
          );
        },
      );
    });
  }

  private carryAnswer(
    client: string,
    life: Life,
    node: NodeId,
    response: HttpExchangeResponse,
    serverLife: Life,
    finish: (outcome: HttpExchangeResponse | Error) => void,
  ): void {
    const lost =
      !serverLife.isAlive ||
      this.cuts.has(`${client}|${node}`) ||
      !this.linked(node, client) ||
      this.prng.chance(this.faults.answerLossProbability);
    this.observe({ kind: 'answer', client, node, response, fate: lost ? 'lost' : 'delivered' });
    if (lost) return;
    this.scheduler.schedule(this.latencyMs(), life, () => finish(response));
  }
}

function pathOf(url: string): string {
  const parsed = new URL(url);
  assert(parsed.pathname.startsWith('/'), 'request paths are absolute');
  return `${parsed.pathname}${parsed.search}`;
}
