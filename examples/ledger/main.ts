/**
 * `node --import tsx examples/ledger/main.ts [--endpoints http://…,http://…] [--accounts n]
 * [--clients n] [--transfers n] [--balance n] [--seed n] [--no-kill] [--quiet]`: runs the
 * ledger (./run.ts), prints the report, exits 0 only when every check passed.
 */
import { isEntry, parseFlags, runMain, sayer } from '../support/report.ts';
import { type LedgerOptions, ledgerDefaults, run } from './run.ts';

export { type LedgerOptions, ledgerDefaults, run } from './run.ts';

export function parseLedgerFlags(argv: readonly string[]): LedgerOptions {
  const noKill = argv.includes('--no-kill');
  const flags = parseFlags(
    argv.filter((arg) => arg !== '--no-kill'),
    {
      accounts: ledgerDefaults.accountCount,
      clients: ledgerDefaults.clientCount,
      transfers: ledgerDefaults.transferCount,
      balance: ledgerDefaults.initialBalance,
      seed: ledgerDefaults.seed,
    },
  );
  return {
    endpoints: flags.endpoints,
    accountCount: flags.integers.accounts as number,
    clientCount: flags.integers.clients as number,
    transferCount: flags.integers.transfers as number,
    initialBalance: flags.integers.balance as number,
    seed: flags.integers.seed as number,
    killNode: !noKill,
    say: sayer(flags.quiet),
  };
}

if (isEntry(import.meta.url)) await runMain(parseLedgerFlags, run);
