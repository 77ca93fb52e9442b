/**
 * The workload: real SDK clients (`connect()`), each on the simulated clock with a PRNG of
 * its own, reaching the nodes through the simulated client network and authenticating with
 * its identity's token. Each issues numbered broadcasts at random moments — now and then one
 * too large, which must be refused — and now and then a barrier, and reports every outcome
 * to the checker. Some clients share client c0's client id on purpose (mix.ts
 * SessionSharing): the nodes must refuse them in c0's session, or c0 in theirs. In the
 * liveness phase each client sends one more broadcast, which must succeed.
 */

import { binaryExchange } from '../../client/binary-exchange.ts';
import type { Client } from '../../client/client.ts';
import { ClientError } from '../../client/errors.ts';
import type { HttpExchange } from '../../client/exchange.ts';
import { connect } from '../../client/index.ts';
import { upgradedTransport } from '../../client/protocol-upgrade.ts';
import type { NodeId } from '../../raft/types.ts';
import type { Environment } from '../../util/environment.ts';
import type { Prng } from '../../util/prng.ts';
import { type BinaryNetwork, simBinaryPort } from './binary-network.ts';
import type { CallOutcome, DeliveryChecker } from './delivery-checker.ts';
import { simEnvironment } from './environment.ts';
import type { ClientNetwork, RunFrames } from './exchange.ts';
import { type RuntimeMix, simIdentities } from './mix.ts';
import { Life, type SimScheduler } from './scheduler.ts';

export interface ClientBounds {
  readonly requestTimeoutMs: number;
  readonly unavailableAfterMs: number;
  readonly abandonAfterMs: number;
}

/** The SDK's deadlines and retry pace for every simulated client, writers and readers. */
export function sdkTiming(bounds: ClientBounds) {
  return {
    requestTimeoutMs: bounds.requestTimeoutMs,
    unavailableAfterMs: bounds.unavailableAfterMs,
    abandonAfterMs: bounds.abandonAfterMs,
    backoffBaseMs: 20,
    backoffMaxMs: 500,
  };
}

/** The client id c0 names itself, and its twin and impostor with it, when they exist. */
export const sharedClientId = 'shared';

export interface WorkloadOptions {
  readonly scheduler: SimScheduler;
  readonly checker: DeliveryChecker;
  readonly mix: RuntimeMix;
  readonly payloadBytesMax: number;
  readonly bounds: ClientBounds;
  readonly prng: Prng;
  readonly network: ClientNetwork;
  readonly nodeIds: readonly NodeId[];
  /** The token of each identity of the cluster's auth file, by index; null without auth. */
  readonly tokens: readonly string[] | null;
  readonly note: (text: string) => void;
  readonly unsafe: 'moveSentMessage' | null;
  /** How each client reaches the nodes, asked once per client in the order they connect. */
  readonly pathOf: () => ClientPath;
  readonly binaryNetwork: BinaryNetwork;
  /** The topic of each broadcast, drawn as it is issued; null: none carries one. */
  readonly topicOf: (() => string | undefined) | null;
}

/**
 * How a client reaches the nodes: over the nodes' real binary ports on simulated TCP
 * (binary-network.ts), or in process (exchange.ts), its runs as broadcastRun frames through
 * the codec (`runFrames`) or, when null, as POST /v1/broadcast/batch, as over HTTP.
 */
export type ClientPath =
  | {
      readonly kind: 'binary';
      /**
       * Given HTTP endpoints, as most applications are, and moved to each node's binary port
       * once its status offers one that answers, back to HTTP when the port fails
       * (protocol-upgrade.ts); otherwise given the binary endpoints themselves.
       */
      readonly upgrade: boolean;
    }
  | { readonly kind: 'inProcess'; readonly runFrames: RunFrames | null };

interface SimClient {
  readonly name: string;
  readonly path: ClientPath;
  readonly client: Client;
  readonly life: Life;
  readonly prng: Prng;
  /** Starts issuing only once c0's nonce is known (the impostor, which sends it). */
  readonly waitsForNonce: boolean;
  issued: number;
  /** The liveness phase's last broadcast has resolved. */
  finalResolved: boolean;
  finalIssued: boolean;
}

/** Who one simulated client is: its name, identity, and client id if it names one. */
interface ClientRole {
  readonly name: string;
  readonly identity: number;
  readonly clientId: string | undefined;
  /** How its requests are changed on the way out (the impostor's copied nonce). */
  readonly wrap: (exchange: HttpExchange) => HttpExchange;
  readonly waitsForNonce: boolean;
}

export class Workload {
  private readonly clients: SimClient[] = [];
  private outstandingCount = 0;
  /** Broadcasts refused session_forbidden or session_conflict, and barriers answered. */
  readonly counts = { foreignRefusals: 0, barriers: 0 };
  private readonly scheduler: SimScheduler;
  private readonly checker: DeliveryChecker;
  private readonly mix: RuntimeMix;
  readonly bounds: ClientBounds;
  /** c0's session nonce, as seen on the wire in its first broadcast. */
  private copiedNonce: string | null = null;
  /** The workload's life, once begun: clients waiting for the nonce begin under it. */
  private workloadLife: Life | null = null;

  constructor(private readonly options: WorkloadOptions) {
    this.scheduler = options.scheduler;
    this.checker = options.checker;
    this.mix = options.mix;
    this.bounds = options.bounds;
    for (const role of this.roles()) this.clients.push(this.connectClient(role));
  }

  /**
   * The ordinary clients c0, c1, …, then c0's twin and impostor if the mix has them. c0
   * names its client id only when someone shares it; the others keep the SDK's random one.
   */
  private roles(): ClientRole[] {
    const { sharing } = this.mix;
    const shared = sharing.twin || sharing.impostor;
    const same = (exchange: HttpExchange) => exchange;
    const roles: ClientRole[] = sharing.identityOfClient.map((identity, index) => ({
      name: `c${index}`,
      identity,
      clientId: index === 0 && shared ? sharedClientId : undefined,
      wrap: index === 0 && shared ? (exchange) => this.watchNonce(exchange) : same,
      waitsForNonce: false,
    }));
    const victimIdentity = sharing.identityOfClient[0] as number;
    if (sharing.twin) {
      roles.push({
        name: 'twin',
        identity: victimIdentity,
        clientId: sharedClientId,
        wrap: same,
        waitsForNonce: false,
      });
    }
    if (sharing.impostor) {
      roles.push({
        name: 'impostor',
        identity: (victimIdentity + 1) % simIdentities.length,
        clientId: sharedClientId,
        wrap: (exchange) => this.sendCopiedNonce(exchange),
        waitsForNonce: true,
      });
    }
    return roles;
  }

  private connectClient(role: ClientRole): SimClient {
    const { bounds, mix, unsafe } = this.options;
    const life = new Life(role.name);
    const clientPrng = this.options.prng.fork();
    const environment = simEnvironment({
      scheduler: this.scheduler,
      life,
      prng: clientPrng.fork(),
    });
    const path = this.options.pathOf();
    const client = connect({
      endpoints: this.options.nodeIds.map((id) =>
        path.kind === 'binary' && !path.upgrade
          ? `abcast://${id}:${simBinaryPort}`
          : `http://${id}`,
      ),
      ...(role.clientId === undefined ? {} : { clientId: role.clientId }),
      ...(this.options.tokens === null
        ? {}
        : { token: this.options.tokens[role.identity] as string }),
      ...sdkTiming(bounds),
      inFlightMax: mix.inFlightMax,
      batching: mix.batching,
      environment,
      exchange: role.wrap(this.exchangeOf(role.name, life, environment, path)),
      ...(unsafe === null ? {} : { unsafe }),
    });
    this.checker.onClient(role.name, client.baseClientId);
    return {
      name: role.name,
      path,
      client,
      life,
      prng: clientPrng,
      waitsForNonce: role.waitsForNonce,
      issued: 0,
      finalResolved: false,
      finalIssued: false,
    };
  }

  /**
   * The client's exchange: the SDK's own binary exchange with connections through the
   * simulated TCP, or the in-process one. One whose requests are changed on the way (the
   * nonce's watcher and the impostor: `ClientRole.wrap`) sends its runs as batch requests,
   * where they can be read and changed.
   */
  private exchangeOf(
    name: string,
    life: Life,
    environment: Environment,
    path: ClientPath,
  ): HttpExchange {
    if (path.kind === 'inProcess') {
      return this.options.network.exchangeFor(name, life, path.runFrames);
    }
    const connector = this.options.binaryNetwork.connectorFor(name, life);
    const overBinary = binaryExchange(environment, { ca: null, connector });
    if (!path.upgrade) return overBinary;
    const overHttp = this.options.network.exchangeFor(name, life, null);
    return upgradedTransport(environment, overHttp, overBinary).exchange;
  }

  /** c0's requests pass unchanged; the first nonce among them is noted for the impostor. */
  private watchNonce(exchange: HttpExchange): HttpExchange {
    return (request) => {
      if (this.copiedNonce === null && request.body !== null) {
        const nonce = (JSON.parse(request.body) as { nonce?: unknown }).nonce;
        if (typeof nonce === 'string') {
          this.copiedNonce = nonce;
          this.options.note(`c0's nonce ${nonce} is seen on the wire`);
          this.beginWaiting();
        }
      }
      return exchange(request);
    };
  }

  /** The impostor's broadcasts go out with c0's nonce instead of the one its SDK drew. */
  private sendCopiedNonce(exchange: HttpExchange): HttpExchange {
    return (request) => {
      if (request.body === null || this.copiedNonce === null) return exchange(request);
      const body = JSON.parse(request.body) as Record<string, unknown>;
      if (typeof body.nonce !== 'string') return exchange(request);
      body.nonce = this.copiedNonce;
      return exchange({ ...request, body: JSON.stringify(body) });
    };
  }

  get outstanding(): number {
    return this.outstandingCount;
  }

  /** Schedules every client's broadcasts of the fault phase. */
  begin(workloadLife: Life): void {
    this.workloadLife = workloadLife;
    for (const simClient of this.clients) {
      this.options.note(`${simClient.name} reaches the nodes ${describePath(simClient.path)}`);
    }
    for (const simClient of this.clients) {
      if (!simClient.waitsForNonce) this.scheduleNext(simClient, workloadLife);
    }
  }

  private beginWaiting(): void {
    const life = this.workloadLife;
    if (life === null) return;
    for (const simClient of this.clients) {
      if (simClient.waitsForNonce) this.scheduleNext(simClient, life);
    }
  }

  private scheduleNext(simClient: SimClient, life: Life): void {
    if (simClient.issued >= this.mix.broadcastsPerClient) return;
    const gapMs = simClient.prng.between(0, this.mix.issueGapMsMax);
    this.scheduler.schedule(gapMs, life, () => {
      const oversize = simClient.prng.chance(0.03);
      this.issue(simClient, oversize, false);
      const barrierProbability = this.mix.barrierProbability;
      if (barrierProbability > 0 && simClient.prng.chance(barrierProbability)) {
        this.barrier(simClient);
      }
      this.scheduleNext(simClient, life);
    });
  }

  private issue(simClient: SimClient, oversize: boolean, final: boolean): void {
    const issueNumber = ++simClient.issued;
    const padBytes = oversize
      ? this.options.payloadBytesMax + 1
      : simClient.prng.between(0, this.mix.payloadPadBytesMax);
    const payload = { c: simClient.name, n: issueNumber, pad: 'x'.repeat(padBytes) };
    const payloadText = JSON.stringify(payload);
    this.checker.onIssued(simClient.name, issueNumber, payloadText, this.scheduler.nowMs);
    this.outstandingCount++;
    const settled = (outcome: CallOutcome) => {
      this.outstandingCount--;
      if (outcome.kind === 'rejected' && foreignCodes.has(outcome.code)) {
        this.counts.foreignRefusals++;
      }
      this.checker.onSettled(payloadText, outcome, this.scheduler.nowMs);
      this.options.note(`${simClient.name} #${issueNumber} ${describeOutcome(outcome)}`);
      if (final && outcome.kind === 'resolved') simClient.finalResolved = true;
      if (final && outcome.kind === 'rejected') {
        // The last broadcast must succeed once faults stop: send another, the checker's
        // liveness budget bounds how long this may go on. It goes through the agenda, under
        // the client's life, so that a closed client (whose calls reject at once) does not
        // spin in microtasks after the run ends.
        this.scheduler.schedule(retryFinalAfterMs, simClient.life, () =>
          this.issue(simClient, false, true),
        );
      }
    };
    const topic = this.options.topicOf?.();
    const sent =
      topic === undefined
        ? simClient.client.broadcast(payload)
        : simClient.client.broadcast(payload, { topic });
    sent.then(
      (answer) =>
        settled({ kind: 'resolved', position: answer.position, duplicate: answer.duplicate }),
      (error: unknown) =>
        settled({
          kind: 'rejected',
          code: error instanceof ClientError ? error.code : `thrown: ${String(error)}`,
        }),
    );
  }

  /**
   * A linearizable read point: it must cover every broadcast some client was told is
   * delivered before the barrier began. A failure (unavailable, closed) proves nothing.
   */
  private barrier(simClient: SimClient): void {
    const floor = this.checker.onBarrierStarted();
    simClient.client.barrier().then(
      (position) => {
        this.counts.barriers++;
        this.options.note(`${simClient.name} barrier at ${position} (at least ${floor})`);
        this.checker.onBarrierDone(simClient.name, floor, position);
      },
      () => undefined,
    );
  }

  /** The liveness phase: one more broadcast each, which must succeed. */
  finish(): void {
    for (const simClient of this.clients) {
      simClient.finalIssued = true;
      this.issue(simClient, false, true);
    }
  }

  get allFinalResolved(): boolean {
    return this.clients.every((simClient) => simClient.finalResolved);
  }

  describeWaiting(): string {
    return this.clients
      .filter((simClient) => !simClient.finalResolved)
      .map((simClient) => `${simClient.name} (issued ${simClient.issued})`)
      .join(', ');
  }

  close(): void {
    for (const simClient of this.clients) {
      simClient.client.close();
      simClient.life.end();
    }
  }
}

const foreignCodes = new Set(['session_forbidden', 'session_conflict']);

/** A rejected last broadcast is sent again after this long, as an application would. */
const retryFinalAfterMs = 10;

function describePath(path: ClientPath): string {
  if (path.kind === 'binary') {
    return path.upgrade ? 'over HTTP, then their binary ports' : 'over their binary ports';
  }
  return path.runFrames === null ? 'in process' : 'in process, runs as broadcastRun frames';
}

function describeOutcome(outcome: CallOutcome): string {
  if (outcome.kind === 'rejected') return `failed ${outcome.code}`;
  return `at ${outcome.position ?? '?'}${outcome.duplicate ? ' (duplicate)' : ''}`;
}
