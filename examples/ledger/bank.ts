/**
 * The bank as a deterministic reducer: accounts with integer balances; a transfer that would
 * overdraw is refused (the reducer throws, so every replica refuses it the same way). Each
 * transfer carries the id its client gave it, `(client, seq)`, so the log can be audited for
 * transfers applied twice.
 */
import type { StateMachine } from '../../src/agents/index.ts';

export interface Bank {
  balances: Record<string, number>;
  /** The lowest balance any account ever had after a command: negative means an overdraft. */
  lowestBalance: number;
  appliedTransferCount: number;
}

export type BankCommand =
  | { readonly kind: 'open'; readonly account: string; readonly amount: number }
  | {
      readonly kind: 'transfer';
      readonly from: string;
      readonly to: string;
      readonly amount: number;
      /** The submitting client's name and its own numbering: the transfer's identity. */
      readonly client: string;
      readonly seq: number;
    };

/** What the submitter learns: the balances of the accounts its command touched. */
export interface BankResult {
  readonly balances: Readonly<Record<string, number>>;
}

const accountBytesMax = 64;
/** Amounts stay far from 2^53 even summed over many accounts. */
const amountMax = 1_000_000_000;

export const bank: StateMachine<Bank, BankCommand, BankResult> = {
  initialState: () => ({
    balances: {},
    lowestBalance: 0,
    appliedTransferCount: 0,
  }),
  parseCommand: parseBankCommand,
  apply(state, command) {
    if (command.kind === 'open') return open(state, command.account, command.amount);
    return transfer(state, command);
  },
};

function open(state: Bank, account: string, amount: number): BankResult {
  if (Object.hasOwn(state.balances, account)) throw new Error(`account ${account} exists`);
  state.balances[account] = amount;
  state.lowestBalance = Math.min(state.lowestBalance, amount);
  return { balances: { [account]: amount } };
}

function transfer(state: Bank, command: Extract<BankCommand, { kind: 'transfer' }>): BankResult {
  const fromBalance = state.balances[command.from];
  const toBalance = state.balances[command.to];
  // Validate everything before changing anything: a throw does not undo a change.
  if (fromBalance === undefined) throw new Error(`no account ${command.from}`);
  if (toBalance === undefined) throw new Error(`no account ${command.to}`);
  if (fromBalance < command.amount) {
    throw new Error(`insufficient funds: ${command.from} has ${fromBalance}`);
  }
  state.balances[command.from] = fromBalance - command.amount;
  state.balances[command.to] = toBalance + command.amount;
  state.lowestBalance = Math.min(state.lowestBalance, fromBalance - command.amount);
  state.appliedTransferCount += 1;
  return {
    balances: {
      [command.from]: fromBalance - command.amount,
      [command.to]: toBalance + command.amount,
    },
  };
}

/** Anyone can append to the topic: everything is checked before it reaches the reducer. */
export function parseBankCommand(payload: unknown): BankCommand {
  const value = payload as Record<string, unknown>;
  if (typeof value !== 'object' || value === null) throw new Error('a command is an object');
  if (value.kind === 'open') {
    return { kind: 'open', account: accountOf(value.account), amount: amountOf(value.amount, 0) };
  }
  if (value.kind !== 'transfer') throw new Error('kind is open or transfer');
  const from = accountOf(value.from);
  const to = accountOf(value.to);
  if (from === to) throw new Error('a transfer goes between two accounts');
  if (typeof value.client !== 'string' || value.client.length === 0 || value.client.length > 64) {
    throw new Error('client is a name of 1–64 characters');
  }
  if (!Number.isSafeInteger(value.seq) || (value.seq as number) < 1) {
    throw new Error('seq is a positive integer');
  }
  return {
    kind: 'transfer',
    from,
    to,
    amount: amountOf(value.amount, 1),
    client: value.client,
    seq: value.seq as number,
  };
}

function accountOf(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > accountBytesMax) {
    throw new Error(`an account is a name of 1–${accountBytesMax} characters`);
  }
  return value;
}

function amountOf(value: unknown, least: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < least || (value as number) > amountMax) {
    throw new Error(`an amount is an integer from ${least} to ${amountMax}`);
  }
  return value as number;
}

/** The transfer's identity in the audit: `client#seq`. */
export function transferId(command: { readonly client: string; readonly seq: number }): string {
  return `${command.client}#${command.seq}`;
}
