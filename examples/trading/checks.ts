/**
 * The trading example's checks: every agent reached the end marker, saw one order, and
 * computed the same fills; those fills equal the ones computed from the log read back from
 * every node, and every acknowledged order was filled exactly once.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Cluster } from '../support/cluster.ts';
import { type CrashRecord, crashCheck } from '../support/faults.ts';
import { readLogs } from '../support/log.ts';
import { type Check, check, hashOf, type Report } from '../support/report.ts';
import { type Fill, MarketView, ordersTopic, pricesTopic } from './market.ts';
import type { AgentOutcome, Published, TradingOptions } from './run.ts';

export interface TradingOutcome {
  readonly cluster: Cluster;
  readonly options: TradingOptions;
  readonly fromIndex: number;
  readonly runId: string;
  readonly outcomes: readonly AgentOutcome[];
  readonly published: Published;
  readonly events: readonly string[];
  readonly crash: CrashRecord;
  readonly publishMs: number;
  readonly elapsedMs: number;
}

export async function tradingChecks(outcome: TradingOutcome): Promise<Report> {
  const logs = await readLogs(outcome.cluster, [ordersTopic, pricesTopic], outcome.fromIndex);
  const references = logs.map((log) => {
    const view = new MarketView(outcome.runId);
    // The wire's `index` is the message's position.
    for (const message of log) if (!view.apply({ ...message, position: message.index })) break;
    return view;
  });
  const fills = outcome.outcomes[0]?.view.fills ?? [];
  const hash = hashOf(fills);
  const checks: Check[] = [
    agentsFinished(outcome.outcomes),
    oneOrder(outcome.outcomes),
    agentsAgree(outcome.outcomes),
    matchesTheLog(outcome.cluster.ids, fills, references),
    ...ordersFilledOnce(fills, outcome.published),
    crashCheck(outcome.cluster, outcome.options.killNode, outcome.crash),
  ];
  const messageCount = outcome.options.priceCount + outcome.options.orderCount;
  return {
    example:
      'trading: agents fill orders at the latest price, in one order, a node SIGKILLed mid-run',
    checks,
    events: outcome.events,
    figures: {
      agents: outcome.outcomes.length,
      messagesPublished: messageCount,
      publishFailures: outcome.published.failedCount,
      publishPhaseMs: outcome.publishMs,
      messagesPerSecond: (messageCount * 1000) / Math.max(1, outcome.publishMs),
      runMs: outcome.elapsedMs,
      fills: fills.length,
      fillsHash: hash,
    },
  };
}

function agentsFinished(outcomes: readonly AgentOutcome[]): Check {
  const failed = outcomes.filter((agent) => agent.error !== null);
  return check(
    'every agent followed to the end marker',
    failed.length === 0 && outcomes.length > 0,
    failed.length === 0
      ? `${outcomes.length} agents`
      : failed.map((agent) => `${agent.name}: ${agent.error}`).join('; '),
  );
}

function oneOrder(outcomes: readonly AgentOutcome[]): Check {
  const disorder = outcomes.reduce((sum, agent) => sum + agent.view.outOfOrderCount, 0);
  return check(
    'orders and prices arrived in one increasing order',
    disorder === 0,
    `${disorder} messages at or below an earlier position`,
  );
}

function agentsAgree(outcomes: readonly AgentOutcome[]): Check {
  const hashes = outcomes.map((agent) => hashOf(agent.view.fills));
  const first = outcomes[0]?.view.fills;
  const ok = outcomes.every((agent) => isDeepStrictEqual(agent.view.fills, first));
  const detail = outcomes
    .map((agent, at) => `${agent.name} ${agent.view.fills.length} fills ${hashes[at]}`)
    .join('; ');
  return check('all agents computed the identical fills', ok, detail);
}

function matchesTheLog(
  ids: readonly string[],
  fills: readonly Fill[],
  references: readonly MarketView[],
): Check {
  const ok = references.every((view) => view.ended && isDeepStrictEqual(view.fills, fills));
  const detail = references
    .map((view, at) => `${ids[at]} ${view.fills.length} fills ${hashOf(view.fills)}`)
    .join('; ');
  return check('the fills equal those computed from every node’s log', ok, detail);
}

/** Each acknowledged order is filled once, each unknown one at most once, nothing else. */
function ordersFilledOnce(fills: readonly Fill[], published: Published): Check[] {
  const counts = new Map<string, number>();
  for (const fill of fills) counts.set(fill.orderId, (counts.get(fill.orderId) ?? 0) + 1);
  const missing = [...published.ackedOrders].filter((id) => counts.get(id) !== 1);
  const extra = [...counts].filter(
    ([id, count]) =>
      count > 1 || !(published.ackedOrders.has(id) || published.unknownOrders.has(id)),
  );
  const unpriced = fills.filter((fill) => fill.priceCents === null).length;
  return [
    check(
      'every acknowledged order filled exactly once',
      missing.length === 0 && extra.length === 0,
      missing.length === 0 && extra.length === 0
        ? `${published.ackedOrders.size} acknowledged orders, ${published.unknownOrders.size} unknown`
        : `missing or repeated: ${missing.slice(0, 5)}; extra: ${extra.slice(0, 5)}`,
    ),
    check('every fill has a price', unpriced === 0, `${unpriced} fills without a price`),
  ];
}
