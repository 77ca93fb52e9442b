/**
 * The ledger's final checks. The replicas' states say whether money was conserved and never
 * overdrawn; the log itself (read back from every node over GET /v1/messages) says how many
 * times each transfer was delivered, which is compared with what its client was told.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Cluster } from '../support/cluster.ts';
import { type CrashRecord, crashCheck } from '../support/faults.ts';
import { type LoggedMessage, readLogs } from '../support/log.ts';
import { type Check, check, hashOf, type Report } from '../support/report.ts';
import { type Bank, parseBankCommand, transferId } from './bank.ts';
import type { Ack, LedgerOptions, Observation, Replica } from './run.ts';

export interface LedgerOutcome {
  readonly cluster: Cluster;
  readonly topic: string;
  readonly options: LedgerOptions;
  readonly accounts: readonly string[];
  readonly observers: readonly Replica[];
  readonly observation: Observation;
  readonly acks: ReadonlyMap<string, Ack>;
  readonly events: readonly string[];
  readonly crash: CrashRecord;
  readonly elapsedMs: number;
}

export async function ledgerChecks(outcome: LedgerOutcome): Promise<Report> {
  const states = await Promise.all(outcome.observers.map((replica) => replica.read()));
  const logs = await readLogs(outcome.cluster, [outcome.topic], 1);
  const deliveries = countDeliveries(logs[0] ?? []);
  const counts = countAcks(outcome.acks);
  const checks: Check[] = [
    neverNegative(states, outcome.observation),
    conserved(states, outcome.accounts.length * outcome.options.initialBalance),
    replicasAgree(states),
    logsAgree(outcome.cluster.ids, logs),
    ...exactlyOnce(outcome, deliveries),
    crashCheck(outcome.cluster, outcome.options.killNode, outcome.crash),
    noReplicaFailed(outcome),
  ];
  return {
    example: 'ledger: a bank on a replicated state machine, a node SIGKILLed mid-run',
    checks,
    events: outcome.events,
    figures: {
      accounts: outcome.accounts.length,
      clients: outcome.options.clientCount,
      transfersIssued: outcome.acks.size,
      transfersApplied: counts.applied,
      transfersRefusedOverdraft: counts.refused,
      transfersOutcomeUnknown: counts.unknown,
      transferPhaseMs: outcome.elapsedMs,
      transfersPerSecond: (outcome.acks.size * 1000) / Math.max(1, outcome.elapsedMs),
      ledgerMessagesInLog: logs[0]?.length ?? 0,
      stateHash: hashOf(states[0]),
    },
  };
}

/** How many times each transfer id occurs in the log; also ids that no client issued. */
function countDeliveries(log: readonly LoggedMessage[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const message of log) {
    let command: ReturnType<typeof parseBankCommand>;
    try {
      command = parseBankCommand(message.payload);
    } catch {
      continue; // foreign input: the reducer refused it too
    }
    if (command.kind !== 'transfer') continue;
    const id = transferId(command);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

function countAcks(acks: ReadonlyMap<string, Ack>) {
  const counts = { applied: 0, refused: 0, unknown: 0 };
  for (const ack of acks.values()) counts[ack.kind] += 1;
  return counts;
}

function neverNegative(states: readonly Bank[], observation: Observation): Check {
  const lowest = Math.min(...states.map((state) => state.lowestBalance));
  const negativeNow = states.flatMap((state) =>
    Object.entries(state.balances).filter(([, balance]) => balance < 0),
  );
  const ok = lowest >= 0 && negativeNow.length === 0 && observation.negativeSightings.length === 0;
  const detail = ok
    ? `lowest balance ever ${lowest}, seen after every command by 3 observers`
    : `lowest ${lowest}; negative now: ${negativeNow.length}; seen: ${observation.negativeSightings.slice(0, 5)}`;
  return check('no balance ever negative', ok, detail);
}

function conserved(states: readonly Bank[], expectedTotal: number): Check {
  const totals = states.map((state) =>
    Object.values(state.balances).reduce((sum, balance) => sum + balance, 0),
  );
  const ok = totals.every((total) => total === expectedTotal);
  return check(
    'total conserved',
    ok,
    `expected ${expectedTotal}, replicas hold ${totals.join(', ')}`,
  );
}

function replicasAgree(states: readonly Bank[]): Check {
  const hashes = states.map(hashOf);
  const ok = states.every((state) => isDeepStrictEqual(state, states[0]));
  return check(
    'replicas identical',
    ok,
    `read() on ${states.length} replicas: ${hashes.join(' ')}`,
  );
}

function logsAgree(ids: readonly string[], logs: readonly LoggedMessage[][]): Check {
  const hashes = logs.map((log) => hashOf(log.map((message) => [message.index, message.payload])));
  const ok = hashes.every((hash) => hash === hashes[0]) && (logs[0]?.length ?? 0) > 0;
  const detail = ids.map((id, at) => `${id} ${logs[at]?.length} messages ${hashes[at]}`).join('; ');
  return check('every node delivered the same ledger log', ok, detail);
}

/** Acknowledged transfers: once in the log, applied once, as the client was told. */
function exactlyOnce(outcome: LedgerOutcome, deliveries: ReadonlyMap<string, number>): Check[] {
  const wrongAcked: string[] = [];
  const wrongUnknown: string[] = [];
  let unknownApplied = 0;
  for (const [id, ack] of outcome.acks) {
    const delivered = deliveries.get(id) ?? 0;
    const applied = outcome.observation.applied.get(id);
    if (ack.kind === 'unknown') {
      if (delivered > 1 || (applied?.count ?? 0) > 1) wrongUnknown.push(`${id}×${delivered}`);
      if (delivered === 1) unknownApplied += 1;
      continue;
    }
    const asTold =
      applied?.count === 1 &&
      applied.ok === (ack.kind === 'applied') &&
      (ack.kind !== 'applied' || isDeepStrictEqual(applied.result, ack.result));
    if (delivered !== 1 || !asTold) wrongAcked.push(`${id} in log ×${delivered}, ${ack.kind}`);
  }
  const invented = [...deliveries.keys()].filter((id) => !outcome.acks.has(id));
  const ackedCount = [...outcome.acks.values()].filter((ack) => ack.kind !== 'unknown').length;
  return [
    check(
      'no double spend: every acknowledged transfer applied exactly once, as told',
      wrongAcked.length === 0,
      wrongAcked.length === 0
        ? `${ackedCount} acknowledged transfers each once in the log and once applied`
        : `${wrongAcked.length} wrong: ${wrongAcked.slice(0, 5).join('; ')}`,
    ),
    check(
      'transfers with unknown outcome applied at most once',
      wrongUnknown.length === 0,
      `${outcome.acks.size - ackedCount} unknown, ${unknownApplied} of them applied once, ${wrongUnknown.length} more than once`,
    ),
    check(
      'nothing in the log that no client issued',
      invented.length === 0,
      invented.length === 0
        ? 'every transfer in the log was issued'
        : invented.slice(0, 5).join(' '),
    ),
  ];
}

function noReplicaFailed(outcome: LedgerOutcome): Check {
  const errors = outcome.events.filter((event) => event.startsWith('replica error'));
  const stopped = outcome.observers.filter((replica) => replica.failure !== null).length;
  return check(
    'every replica ran to the end',
    errors.length === 0 && stopped === 0,
    errors.length === 0 && stopped === 0
      ? `${outcome.options.clientCount + outcome.observers.length} replicas, none reported an error`
      : `${stopped} observers stopped; ${errors.slice(0, 3).join('; ')}`,
  );
}
