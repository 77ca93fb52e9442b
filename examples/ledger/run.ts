/**
 * The ledger example: accounts opened with a known total, then many SDK clients transfer
 * money concurrently while one node is SIGKILLed mid-run and restarted later. Three observer
 * replicas follow along; at the end the report checks that no balance was ever negative,
 * the total is conserved, the replicas agree, and every transfer a client was told about
 * was applied exactly once (audited against the log itself, GET /v1/messages).
 */
import { AgentError, ClientLog, ReplicatedStateMachine } from '../../src/agents/index.ts';
import { type Client, connect } from '../../src/client/index.ts';
import { Prng } from '../../src/util/prng.ts';
import { type Cluster, endpointsPreferring, openCluster } from '../support/cluster.ts';
import { ExampleError } from '../support/errors.ts';
import { scheduleLeaderCrash } from '../support/faults.ts';
import type { Report, Say } from '../support/report.ts';
import { type Bank, type BankCommand, type BankResult, bank, transferId } from './bank.ts';
import { ledgerChecks } from './checks.ts';

export interface LedgerOptions {
  /** An existing cluster's HTTP endpoints; null starts a local 3-node cluster. */
  readonly endpoints: readonly string[] | null;
  readonly accountCount: number;
  readonly clientCount: number;
  readonly transferCount: number;
  readonly initialBalance: number;
  /** SIGKILL a node mid-run and restart it later (only on a cluster this process owns). */
  readonly killNode: boolean;
  readonly seed: number;
  readonly say: Say;
}

export const ledgerDefaults: Omit<LedgerOptions, 'say' | 'endpoints'> = {
  accountCount: 10,
  clientCount: 20,
  transferCount: 2_000,
  initialBalance: 1_000,
  killNode: true,
  seed: 1,
};

export type Replica = ReplicatedStateMachine<Bank, BankCommand, BankResult>;

/** What a client was told about one transfer. */
export type Ack =
  | { readonly kind: 'applied'; readonly result: BankResult }
  | { readonly kind: 'refused'; readonly reason: string }
  | { readonly kind: 'unknown'; readonly reason: string };

/** What an observer saw applied for one transfer id, in log order. */
export interface Applied {
  count: number;
  ok: boolean;
  result: BankResult | null;
}

export interface Observation {
  readonly applied: Map<string, Applied>;
  /** Balances seen negative right after a command, by any observer (should stay empty). */
  readonly negativeSightings: string[];
}

/** The shared progress of the run, read by the fault schedule. */
interface Progress {
  answeredCount: number;
  readonly acks: Map<string, Ack>;
  readonly events: string[];
}

const clientRequestTimeoutMs = 3_000;

export async function run(options: LedgerOptions): Promise<Report> {
  checkOptions(options);
  const cluster = await openCluster(options.endpoints);
  const clients: Client[] = [];
  const replicas: Replica[] = [];
  try {
    return await runOn(cluster, options, clients, replicas);
  } finally {
    await Promise.all(replicas.map((replica) => replica.close().catch(() => undefined)));
    for (const client of clients) client.close();
    await cluster.stop();
  }
}

function checkOptions(options: LedgerOptions): void {
  for (const name of ['accountCount', 'clientCount', 'transferCount', 'initialBalance'] as const) {
    if (!Number.isSafeInteger(options[name]) || options[name] < 1) {
      throw new ExampleError('invalid_argument', `${name} takes a positive integer`, {
        field: name,
      });
    }
  }
  if (options.accountCount < 2) {
    throw new ExampleError('invalid_argument', 'a transfer needs two accounts', {
      field: 'accountCount',
    });
  }
}

async function runOn(
  cluster: Cluster,
  options: LedgerOptions,
  clients: Client[],
  replicas: Replica[],
): Promise<Report> {
  const say = options.say;
  const progress: Progress = { answeredCount: 0, acks: new Map(), events: [] };
  const startReplica = replicaFactory(cluster, clients, replicas, progress.events);
  const observers = await Promise.all(cluster.endpoints.map((_, at) => startReplica(at, true)));
  const observation = observe(observers);
  const accounts = Array.from({ length: options.accountCount }, (_, n) => `acct-${n}`);
  await Promise.all(
    accounts.map((account) =>
      observers[0]?.submit({ kind: 'open', account, amount: options.initialBalance }),
    ),
  );
  say(`opened ${accounts.length} accounts of ${options.initialBalance}`);
  const submitters = await Promise.all(
    Array.from({ length: options.clientCount }, (_, at) => startReplica(at, false)),
  );
  const startedMs = Date.now();
  const faults = scheduleLeaderCrash({
    cluster,
    enabled: options.killNode,
    totalCount: options.transferCount,
    answeredCount: () => progress.answeredCount,
    killAtFraction: 0.3,
    restartAtFraction: 0.65,
    events: progress.events,
    say,
  });
  const prng = new Prng(options.seed);
  await Promise.all(
    submitters.map((replica, at) =>
      transferLoop({ replica, client: `c${at}`, prng: prng.fork(), accounts, options, progress }),
    ),
  );
  const elapsedMs = Date.now() - startedMs;
  await faults.finish();
  say(`${progress.answeredCount} transfers answered in ${elapsedMs} ms`);
  return ledgerChecks({
    cluster,
    topic: observers[0]?.topic as string,
    options,
    accounts,
    observers,
    observation,
    acks: progress.acks,
    events: progress.events,
    crash: faults.record,
    elapsedMs,
  });
}

/**
 * Starts replicas of one fresh topic (so an existing cluster can run the example again),
 * each on its own SDK client preferring the `preferred`th node; errors a replica reports
 * outside any call go to `events`.
 */
function replicaFactory(
  cluster: Cluster,
  clients: Client[],
  replicas: Replica[],
  events: string[],
): (preferred: number, checkDeterminism: boolean) => Promise<Replica> {
  const topic = `ledger-${Date.now().toString(36)}-${process.pid}`;
  return async (preferred, checkDeterminism) => {
    const endpoints = endpointsPreferring(cluster.endpoints, preferred);
    const client = connect({ endpoints, requestTimeoutMs: clientRequestTimeoutMs });
    clients.push(client);
    const replica = await ReplicatedStateMachine.start({
      // Read from the preferred node, so that replicas spread over the three.
      log: new ClientLog(client, { readFrom: endpoints[0] as string }),
      topic,
      machine: bank,
      checkDeterminism,
      onError: (error) => events.push(`replica error: ${error.message}`),
    });
    replicas.push(replica);
    return replica;
  };
}

/** Each observer checks every account a command touched right after it was applied. */
function observe(observers: readonly Replica[]): Observation {
  const observation: Observation = { applied: new Map(), negativeSightings: [] };
  observers.forEach((replica, at) => {
    replica.onApplied((event) => {
      const command = event.command;
      if (command?.kind !== 'transfer') return;
      const balances = replica.readLocal((state) => state.balances);
      for (const account of [command.from, command.to]) {
        const balance = balances[account] ?? 0;
        if (balance < 0) {
          observation.negativeSightings.push(`${account}=${balance} at ${event.position}`);
        }
      }
      if (at !== 0) return;
      const id = transferId(command);
      const seen = observation.applied.get(id) ?? { count: 0, ok: false, result: null };
      seen.count += 1;
      seen.ok = event.outcome.ok;
      seen.result = event.outcome.ok ? event.outcome.result : null;
      observation.applied.set(id, seen);
    });
  });
  return observation;
}

interface LoopOptions {
  readonly replica: Replica;
  readonly client: string;
  readonly prng: Prng;
  readonly accounts: readonly string[];
  readonly options: LedgerOptions;
  readonly progress: Progress;
}

/** One client: transfers one at a time until the run's total is issued. */
async function transferLoop(loop: LoopOptions): Promise<void> {
  const { replica, prng, accounts, options, progress } = loop;
  const amountMax = Math.max(1, Math.floor(options.initialBalance / 2));
  for (let seq = 1; ; seq++) {
    if (issuedCount(progress) >= options.transferCount) return;
    const from = prng.pick(accounts);
    let to = prng.pick(accounts);
    while (to === from) to = prng.pick(accounts);
    const command: BankCommand = {
      kind: 'transfer',
      from,
      to,
      amount: prng.between(1, amountMax),
      client: loop.client,
      seq,
    };
    const id = transferId(command);
    progress.acks.set(id, { kind: 'unknown', reason: 'in flight' });
    progress.acks.set(id, await outcomeOf(replica, command));
    progress.answeredCount += 1;
  }
}

function issuedCount(progress: Progress): number {
  return progress.acks.size;
}

async function outcomeOf(replica: Replica, command: BankCommand): Promise<Ack> {
  try {
    return { kind: 'applied', result: await replica.submit(command) };
  } catch (error) {
    if (error instanceof AgentError && error.code === 'rejected') {
      return { kind: 'refused', reason: error.message };
    }
    return { kind: 'unknown', reason: error instanceof Error ? error.message : String(error) };
  }
}
