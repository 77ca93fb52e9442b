/**
 * The workload: real SDK clients (`connect()`), each on the simulated clock with a PRNG of
 * its own, reaching the nodes through the simulated client network. Each issues numbered
 * broadcasts at random moments — now and then one too large, which must be refused — and
 * reports every outcome to the checker. In the liveness phase each sends one more, which
 * must succeed.
 */
import type { Client } from '../../client/client.ts';
import { ClientError } from '../../client/errors.ts';
import { connect } from '../../client/index.ts';
import type { NodeId } from '../../raft/types.ts';
import type { Prng } from '../../util/prng.ts';
import type { CallOutcome, DeliveryChecker } from './delivery-checker.ts';
import { simEnvironment } from './environment.ts';
import type { ClientNetwork } from './exchange.ts';
import type { RuntimeMix } from './mix.ts';
import { Life, type SimScheduler } from './scheduler.ts';

export interface ClientBounds {
  readonly requestTimeoutMs: number;
  readonly unavailableAfterMs: number;
  readonly abandonAfterMs: number;
}

interface SimClient {
  readonly name: string;
  readonly client: Client;
  readonly life: Life;
  readonly prng: Prng;
  issued: number;
  /** The liveness phase's last broadcast has resolved. */
  finalResolved: boolean;
  finalIssued: boolean;
}

export class Workload {
  private readonly clients: SimClient[] = [];
  private outstandingCount = 0;

  constructor(
    private readonly scheduler: SimScheduler,
    private readonly checker: DeliveryChecker,
    private readonly mix: RuntimeMix,
    private readonly payloadBytesMax: number,
    readonly bounds: ClientBounds,
    prng: Prng,
    network: ClientNetwork,
    nodeIds: readonly NodeId[],
    private readonly note: (text: string) => void,
    unsafe: 'moveSentMessage' | null,
  ) {
    for (let index = 0; index < mix.clientCount; index++) {
      const name = `c${index}`;
      const life = new Life(name);
      const clientPrng = prng.fork();
      const client = connect({
        endpoints: nodeIds.map((id) => `http://${id}`),
        requestTimeoutMs: bounds.requestTimeoutMs,
        unavailableAfterMs: bounds.unavailableAfterMs,
        abandonAfterMs: bounds.abandonAfterMs,
        backoffBaseMs: 20,
        backoffMaxMs: 500,
        inFlightMax: mix.inFlightMax,
        batching: mix.batching,
        environment: simEnvironment({ scheduler, life, prng: clientPrng.fork() }),
        exchange: network.exchangeFor(name, life),
        ...(unsafe === null ? {} : { unsafe }),
      });
      this.clients.push({
        name,
        client,
        life,
        prng: clientPrng,
        issued: 0,
        finalResolved: false,
        finalIssued: false,
      });
    }
  }

  get outstanding(): number {
    return this.outstandingCount;
  }

  /** Schedules every client's broadcasts of the fault phase. */
  begin(workloadLife: Life): void {
    for (const simClient of this.clients) this.scheduleNext(simClient, workloadLife);
  }

  private scheduleNext(simClient: SimClient, life: Life): void {
    if (simClient.issued >= this.mix.broadcastsPerClient) return;
    const gapMs = simClient.prng.between(0, this.mix.issueGapMsMax);
    this.scheduler.schedule(gapMs, life, () => {
      const oversize = simClient.prng.chance(0.03);
      this.issue(simClient, oversize, false);
      this.scheduleNext(simClient, life);
    });
  }

  private issue(simClient: SimClient, oversize: boolean, final: boolean): void {
    const issueNumber = ++simClient.issued;
    const padBytes = oversize
      ? this.payloadBytesMax + 1
      : simClient.prng.between(0, this.mix.payloadPadBytesMax);
    const payload = { c: simClient.name, n: issueNumber, pad: 'x'.repeat(padBytes) };
    const payloadText = JSON.stringify(payload);
    this.checker.onIssued(simClient.name, issueNumber, payloadText, this.scheduler.nowMs);
    this.outstandingCount++;
    const settled = (outcome: CallOutcome) => {
      this.outstandingCount--;
      this.checker.onSettled(payloadText, outcome, this.scheduler.nowMs);
      this.note(`${simClient.name} #${issueNumber} ${describeOutcome(outcome)}`);
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
    simClient.client.broadcast(payload).then(
      (answer) =>
        settled({ kind: 'resolved', position: answer.position, duplicate: answer.duplicate }),
      (error: unknown) =>
        settled({
          kind: 'rejected',
          code: error instanceof ClientError ? error.code : `thrown: ${String(error)}`,
        }),
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

/** A rejected last broadcast is sent again after this long, as an application would. */
const retryFinalAfterMs = 10;

function describeOutcome(outcome: CallOutcome): string {
  if (outcome.kind === 'rejected') return `failed ${outcome.code}`;
  return `at ${outcome.position ?? '?'}${outcome.duplicate ? ' (duplicate)' : ''}`;
}
