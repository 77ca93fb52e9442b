/**
 * `node --import tsx examples/trading/main.ts [--endpoints http://…,http://…] [--prices n]
 * [--orders n] [--publishers n] [--agents n] [--symbols n] [--seed n] [--no-kill] [--quiet]`:
 * runs the trading agents (./run.ts), prints the report, exits 0 only when every check passed.
 */
import { isEntry, parseFlags, runMain, sayer } from '../support/report.ts';
import { run, type TradingOptions, tradingDefaults } from './run.ts';

export { run, type TradingOptions, tradingDefaults } from './run.ts';

export function parseTradingFlags(argv: readonly string[]): TradingOptions {
  const flags = parseFlags(
    argv.filter((arg) => arg !== '--no-kill'),
    {
      prices: tradingDefaults.priceCount,
      orders: tradingDefaults.orderCount,
      publishers: tradingDefaults.publisherCount,
      agents: tradingDefaults.agentCount,
      symbols: tradingDefaults.symbolCount,
      seed: tradingDefaults.seed,
    },
  );
  return {
    endpoints: flags.endpoints,
    priceCount: flags.integers.prices as number,
    orderCount: flags.integers.orders as number,
    publisherCount: flags.integers.publishers as number,
    agentCount: flags.integers.agents as number,
    symbolCount: flags.integers.symbols as number,
    seed: flags.integers.seed as number,
    killNode: !argv.includes('--no-kill'),
    say: sayer(flags.quiet),
  };
}

if (isEntry(import.meta.url)) await runMain(parseTradingFlags, run);
