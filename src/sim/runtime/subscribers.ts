/**
 * Readers of the order: real SDK clients that only subscribe (`client.subscribe()`), each on
 * the simulated clock with a PRNG of its own, reading GET /v1/stream from the nodes' real
 * stream route, over their binary ports on simulated TCP or over HTTP in process (Server-Sent
 * Events), through the faults every client meets (crashes, partitions, cuts, resets). The SDK
 * fails over on its own; what it yields goes to the SubscriberChecker as it comes. A subscription the SDK gives up on
 * (`unavailable`: no node served it for unavailableAfterMs) is opened again right after
 * what it yielded, as an application would; one whose next position is no longer kept
 * (`compacted`: retention moved past it) from the first position kept.
 */

import { binaryExchange } from '../../client/binary-exchange.ts';
import type { Client } from '../../client/client.ts';
import { ClientError } from '../../client/errors.ts';
import type { HttpExchange, HttpExchangeRequest } from '../../client/exchange.ts';
import { connect } from '../../client/index.ts';
import type { NodeId } from '../../raft/types.ts';
import { assert } from '../../util/assert.ts';
import type { Prng } from '../../util/prng.ts';
import { type BinaryNetwork, simBinaryPort } from './binary-network.ts';
import { type ClientBounds, sdkTiming } from './clients.ts';
import { simEnvironment } from './environment.ts';
import type { ClientNetwork } from './exchange.ts';
import { Life, type SimScheduler } from './scheduler.ts';
import type { SubscriberChecker } from './subscriber-checker.ts';

/** Where one subscriber starts reading, and what. */
export interface SubscriberPlan {
  readonly name: string;
  /** From position 1, or from about where the order is when it starts. */
  readonly start: 'first' | 'later';
  readonly topic: string | null;
  /** When it subscribes, in virtual ms from the workload's start. */
  readonly startMs: number;
  /** Over the nodes' binary ports on simulated TCP, or over HTTP in process (SSE). */
  readonly path: 'binary' | 'http';
}

export interface SubscribersOptions {
  readonly scheduler: SimScheduler;
  readonly checker: SubscriberChecker;
  readonly plans: readonly SubscriberPlan[];
  readonly prng: Prng;
  readonly nodeIds: readonly NodeId[];
  /** The token subscribers read with (an identity of the cluster); null without auth. */
  readonly token: string | null;
  readonly bounds: ClientBounds;
  readonly binaryNetwork: BinaryNetwork;
  readonly clientNetwork: ClientNetwork;
  /** How many positions some node has delivered: where a `later` subscriber starts. */
  readonly deliveredCount: () => number;
  readonly note: (text: string) => void;
}

interface Subscriber {
  readonly plan: SubscriberPlan;
  readonly client: Client;
  readonly life: Life;
  readonly prng: Prng;
}

/** A subscription the SDK gave up on is opened again after this long. */
const resubscribeAfterMs = 50;
/** How far before the order's end a `later` subscriber may start (it may start past it). */
const laterStartBackMax = 20;
const laterStartAheadMax = 3;

export class Subscribers {
  private readonly subscribers: Subscriber[];

  constructor(private readonly options: SubscribersOptions) {
    this.subscribers = options.plans.map((plan) => this.connectSubscriber(plan));
  }

  private connectSubscriber(plan: SubscriberPlan): Subscriber {
    const { bounds, scheduler } = this.options;
    const life = new Life(plan.name);
    const prng = this.options.prng.fork();
    const environment = simEnvironment({ scheduler, life, prng: prng.fork() });
    const binary = plan.path === 'binary';
    const exchange = binary
      ? binaryExchange(environment, {
          ca: null,
          connector: this.options.binaryNetwork.connectorFor(plan.name, life),
        })
      : this.options.clientNetwork.exchangeFor(plan.name, life, null);
    const client = connect({
      endpoints: this.options.nodeIds.map((id) =>
        binary ? `abcast://${id}:${simBinaryPort}` : `http://${id}`,
      ),
      ...(this.options.token === null ? {} : { token: this.options.token }),
      ...sdkTiming(bounds),
      environment,
      exchange: this.tracedStreams(plan.name, exchange),
    });
    return { plan, client, life, prng };
  }

  /** `exchange`, noting in the trace where each of its streams opens, and after what. */
  private tracedStreams(name: string, exchange: HttpExchange): HttpExchange {
    const opened = exchange.openStream;
    assert(opened !== undefined, "the simulator's exchanges open streams");
    const openStream: NonNullable<HttpExchange['openStream']> = (
      url,
      headers,
      signal,
      timeoutMs,
    ) => {
      const after = headers['last-event-id'] ?? 'nothing';
      this.options.note(`${name} opens a stream at ${new URL(url).hostname} after ${after}`);
      return opened(url, headers, signal, timeoutMs);
    };
    return Object.assign((request: HttpExchangeRequest) => exchange(request), {
      broadcastRun: exchange.broadcastRun,
      openStream,
    });
  }

  /** Schedules each subscriber's first subscription. */
  begin(workloadLife: Life): void {
    for (const subscriber of this.subscribers) {
      const { plan } = subscriber;
      this.options.scheduler.schedule(plan.startMs, workloadLife, () => {
        const delivered = this.options.deliveredCount();
        const from =
          plan.start === 'first'
            ? 1
            : Math.max(
                1,
                delivered + 1 + subscriber.prng.between(-laterStartBackMax, laterStartAheadMax),
              );
        this.options.checker.onSubscribed({ name: plan.name, from, topic: plan.topic });
        this.options.note(
          `${plan.name} subscribes from ${from}${plan.topic === null ? '' : ` to topic ${plan.topic}`} ${plan.path === 'binary' ? 'over the binary ports' : 'over HTTP'}`,
        );
        void this.follow(subscriber, from);
      });
    }
  }

  /** Reads one subscription to its end, handing each item to the checker. */
  private async follow(subscriber: Subscriber, from: number): Promise<void> {
    const { checker } = this.options;
    const { name, topic } = subscriber.plan;
    try {
      const subscription = subscriber.client.subscribe({
        from,
        ...(topic === null ? {} : { topic }),
        onProgress: (position) => checker.onProgress(name, position),
      });
      for await (const message of subscription) checker.onMessage(name, message);
    } catch (error) {
      if (!subscriber.life.isAlive) return;
      const code = error instanceof ClientError ? error.code : null;
      if (code === 'unavailable') {
        this.options.note(`${name} gives up (${(error as Error).message}), resubscribes`);
        this.resubscribe(subscriber);
        return;
      }
      if (code === 'compacted') {
        const { firstPosition } = (error as ClientError).details as { firstPosition?: unknown };
        this.options.note(`${name}: ${(error as Error).message}; resubscribes from the floor`);
        checker.onCompacted(name, typeof firstPosition === 'number' ? firstPosition : Number.NaN);
        this.resubscribe(subscriber);
        return;
      }
      checker.onFailed(name, error instanceof Error ? (error.stack ?? error.message) : `${error}`);
    }
  }

  /** Opens the subscription again right after what the checker saw it yield or pass. */
  private resubscribe(subscriber: Subscriber): void {
    this.options.scheduler.schedule(resubscribeAfterMs, subscriber.life, () => {
      void this.follow(subscriber, this.options.checker.resumeFrom(subscriber.plan.name));
    });
  }

  close(): void {
    for (const subscriber of this.subscribers) {
      subscriber.client.close();
      subscriber.life.end();
    }
  }
}
