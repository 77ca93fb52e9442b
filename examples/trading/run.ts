/**
 * The trading example: publishers put `Price_Updated` on `prices` and `Order_Placed` on
 * `orders` concurrently through `Topics`, while K agents — each its own SDK client — follow
 * both topics in the one total order and fill each order at the latest price before it. The
 * leader is SIGKILLed mid-run and restarted. Every agent must compute the identical fills,
 * equal to the fills computed from the log read back from every node.
 */
import { ClientLog, Topics } from '../../src/agents/index.ts';
import { type Client, connect } from '../../src/client/index.ts';
import { Prng } from '../../src/util/prng.ts';
import { type Cluster, endpointsPreferring, openCluster } from '../support/cluster.ts';
import { ExampleError } from '../support/errors.ts';
import { scheduleLeaderCrash } from '../support/faults.ts';
import type { Report, Say } from '../support/report.ts';
import { tradingChecks } from './checks.ts';
import { type MarketEvent, MarketView, ordersTopic, pricesTopic } from './market.ts';

export interface TradingOptions {
  /** An existing cluster's HTTP endpoints; null starts a local 3-node cluster. */
  readonly endpoints: readonly string[] | null;
  readonly priceCount: number;
  readonly orderCount: number;
  /** Publishers of each kind (so twice this many publish). */
  readonly publisherCount: number;
  readonly agentCount: number;
  readonly symbolCount: number;
  readonly killNode: boolean;
  readonly seed: number;
  readonly say: Say;
}

export const tradingDefaults: Omit<TradingOptions, 'say' | 'endpoints'> = {
  priceCount: 1_000,
  orderCount: 1_000,
  publisherCount: 2,
  agentCount: 4,
  symbolCount: 3,
  killNode: true,
  seed: 7,
};

/** What one agent ended with. */
export interface AgentOutcome {
  readonly name: string;
  readonly view: MarketView;
  readonly error: string | null;
}

/** What the publishers were told about each order. */
export interface Published {
  readonly ackedOrders: Set<string>;
  readonly unknownOrders: Set<string>;
  answeredCount: number;
  failedCount: number;
}

const clientRequestTimeoutMs = 3_000;
/** An agent that has not seen the end marker by then has failed. */
const agentTimeoutMs = 120_000;

export async function run(options: TradingOptions): Promise<Report> {
  checkOptions(options);
  const cluster = await openCluster(options.endpoints);
  const clients: Client[] = [];
  const newClient = (preferred: number) => {
    const endpoints = endpointsPreferring(cluster.endpoints, preferred);
    const client = connect({ endpoints, requestTimeoutMs: clientRequestTimeoutMs });
    clients.push(client);
    return client;
  };
  try {
    return await runOn(cluster, options, newClient);
  } finally {
    for (const client of clients) client.close();
    await cluster.stop();
  }
}

/** The agent's log, read from the client's first endpoint: agents spread over the nodes. */
function readingFrom(client: Client): ClientLog {
  return new ClientLog(client, { readFrom: client.settings.endpoints[0] as string });
}

function checkOptions(options: TradingOptions): void {
  const names = [
    'priceCount',
    'orderCount',
    'publisherCount',
    'agentCount',
    'symbolCount',
  ] as const;
  for (const name of names) {
    if (!Number.isSafeInteger(options[name]) || options[name] < 1) {
      throw new ExampleError('invalid_argument', `${name} takes a positive integer`, {
        field: name,
      });
    }
  }
}

async function runOn(
  cluster: Cluster,
  options: TradingOptions,
  newClient: (preferred: number) => Client,
): Promise<Report> {
  const say = options.say;
  const runId = `trade-${Date.now().toString(36)}-${process.pid}`;
  const coordinator = new Topics({ log: newClient(0) });
  const symbols = Array.from({ length: options.symbolCount }, (_, n) => `SYM${n}`);
  // Agents start from a position before anything of this run: they see all of it.
  const fromIndex = (await newClient(0).barrier()) + 1;
  const deadline = AbortSignal.timeout(agentTimeoutMs);
  const agents = Array.from({ length: options.agentCount }, (_, at) =>
    runAgent(`agent-${at}`, new Topics({ log: readingFrom(newClient(at)) }), {
      runId,
      fromIndex,
      deadline,
    }),
  );
  // An opening price per symbol, so every order has a price to fill at.
  for (const [at, symbol] of symbols.entries()) {
    const event: MarketEvent = {
      type: 'Price_Updated',
      run: runId,
      symbol,
      priceCents: 10_000 + at * 1_000,
      publisher: 'open',
      seq: at + 1,
    };
    await coordinator.publish(pricesTopic, event);
  }
  const published: Published = {
    ackedOrders: new Set(),
    unknownOrders: new Set(),
    answeredCount: 0,
    failedCount: 0,
  };
  const events: string[] = [];
  const faults = scheduleLeaderCrash({
    cluster,
    enabled: options.killNode,
    totalCount: options.priceCount + options.orderCount,
    answeredCount: () => published.answeredCount,
    killAtFraction: 0.4,
    restartAtFraction: 0.75,
    events,
    say,
  });
  const startedMs = Date.now();
  await publishAll({ options, runId, symbols, published, newClient });
  const publishMs = Date.now() - startedMs;
  await faults.finish();
  await coordinator.publish(ordersTopic, { type: 'Run_Ended', run: runId } satisfies MarketEvent);
  say(`${published.answeredCount} messages published in ${publishMs} ms; waiting for the agents`);
  const outcomes = await Promise.all(agents);
  return tradingChecks({
    cluster,
    options,
    fromIndex,
    runId,
    outcomes,
    published,
    events,
    crash: faults.record,
    publishMs,
    elapsedMs: Date.now() - startedMs,
  });
}

interface AgentStart {
  readonly runId: string;
  readonly fromIndex: number;
  readonly deadline: AbortSignal;
}

/** One agent: follows orders and prices in one order until the run's end marker. */
async function runAgent(name: string, topics: Topics, start: AgentStart): Promise<AgentOutcome> {
  const view = new MarketView(start.runId);
  try {
    const messages = topics.subscribe([ordersTopic, pricesTopic], {
      from: start.fromIndex,
      signal: start.deadline,
    });
    for await (const message of messages) {
      if (!view.apply(message)) break;
    }
    const error = view.ended
      ? null
      : `stopped before the end marker (after ${view.fills.length} fills)`;
    return { name, view, error };
  } catch (error) {
    return { name, view, error: error instanceof Error ? error.message : String(error) };
  }
}

interface PublishPlan {
  readonly options: TradingOptions;
  readonly runId: string;
  readonly symbols: readonly string[];
  readonly published: Published;
  readonly newClient: (preferred: number) => Client;
}

/** Price and order publishers, concurrently, each on its own client, each in sequence. */
async function publishAll(plan: PublishPlan): Promise<void> {
  const { options } = plan;
  const prng = new Prng(options.seed);
  const share = (total: number, at: number) =>
    Math.floor(total / options.publisherCount) + (at < total % options.publisherCount ? 1 : 0);
  const publishers: Promise<void>[] = [];
  for (let at = 0; at < options.publisherCount; at++) {
    const topics = new Topics({ log: plan.newClient(at) });
    const priceRandom = prng.fork();
    const orderRandom = prng.fork();
    publishers.push(
      publishPrices(plan, topics, `p${at}`, share(options.priceCount, at), priceRandom),
    );
    publishers.push(
      publishOrders(
        plan,
        new Topics({ log: plan.newClient(at + 1) }),
        `o${at}`,
        share(options.orderCount, at),
        orderRandom,
      ),
    );
  }
  await Promise.all(publishers);
}

async function publishPrices(
  plan: PublishPlan,
  topics: Topics,
  publisher: string,
  count: number,
  prng: Prng,
): Promise<void> {
  const prices = new Map(plan.symbols.map((symbol, at) => [symbol, 10_000 + at * 1_000]));
  for (let seq = 1; seq <= count; seq++) {
    const symbol = prng.pick(plan.symbols);
    // A random walk in whole cents that never reaches zero.
    const priceCents = Math.max(1, (prices.get(symbol) as number) + prng.between(-50, 50));
    prices.set(symbol, priceCents);
    const event: MarketEvent = {
      type: 'Price_Updated',
      run: plan.runId,
      symbol,
      priceCents,
      publisher,
      seq,
    };
    try {
      await topics.publish(pricesTopic, event);
    } catch {
      plan.published.failedCount += 1;
    }
    plan.published.answeredCount += 1;
  }
}

async function publishOrders(
  plan: PublishPlan,
  topics: Topics,
  publisher: string,
  count: number,
  prng: Prng,
): Promise<void> {
  for (let seq = 1; seq <= count; seq++) {
    const orderId = `${publisher}-${seq}`;
    const event: MarketEvent = {
      type: 'Order_Placed',
      run: plan.runId,
      orderId,
      symbol: prng.pick(plan.symbols),
      side: prng.chance(0.5) ? 'buy' : 'sell',
      quantity: prng.between(1, 100),
    };
    try {
      await topics.publish(ordersTopic, event);
      plan.published.ackedOrders.add(orderId);
    } catch {
      plan.published.unknownOrders.add(orderId);
      plan.published.failedCount += 1;
    }
    plan.published.answeredCount += 1;
  }
}
