// Rounds of disk damage on real `abcast start` processes (issue 12, "Repair instead of
// refusal"): three nodes under a steady load of broadcasts; in each round a random node (a
// minority: one of three, the leader included) is SIGKILLed, one byte of committed data in
// its directory is flipped (a WAL record holding entries, a WAL record's hard state, the
// snapshot, or meta.json), and it is started again while the load goes on. It must rejoin:
// report the damage, repair from the others, and deliver everything acknowledged. The nodes
// know each other's HTTP APIs (`--http-peers`, as `abcast dev` gives them): a snapshot from
// the leader leaves a hole in a node's message store, which it backfills from the others. At
// the end every node must hold every acknowledged message at its acknowledged position in
// its own store, and `abcast verify` must find them identical.
//
// Run by test/cli/repair.test.ts (a few rounds) and by `npm run repair-rounds` (100 rounds;
// `--rounds N`, `--seed S`), which prints a JSON summary: rounds passed, damage kinds,
// repair times (restart to "repair done" and caught up) as median and max, and elapsed time.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scanSegment } from '../../src/storage/segments.ts';
import { Prng } from '../../src/util/prng.ts';
import { type AttackCluster, startAttackCluster } from '../security/cluster.ts';
import { waitFor } from '../support/ports.ts';
import { runCli } from './helpers.ts';

export interface Acknowledged {
  readonly payload: string;
  readonly index: number;
}

export interface RepairStatus {
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly deliveredIndex: number;
  readonly repairing: { readonly firstLostIndex: number } | null;
  /** Positions this node's message store lacks (backfill fetches them). */
  readonly store?: { readonly missing: number };
}

export const damageKinds = ['walEntries', 'walHardState', 'snapshot', 'meta'] as const;
export type DamageKind = (typeof damageKinds)[number];

export interface RoundsSummary {
  readonly rounds: number;
  readonly roundsPassed: number;
  readonly acknowledged: number;
  readonly damage: Readonly<Record<DamageKind, number>>;
  readonly repairMsMedian: number;
  readonly repairMsMax: number;
  readonly elapsedMs: number;
}

/** Snapshots every 32 KiB of log, so that rounds find one to damage. */
export const roundClusterArgs = ['--snapshot-interval-bytes', String(32 << 10)] as const;

export async function statusOf(cluster: AttackCluster, at: number): Promise<RepairStatus | null> {
  try {
    return (await cluster.status(at)) as unknown as RepairStatus;
  } catch {
    return null;
  }
}

/** Broadcasts one message at a time to whichever node leads, until stopped. */
export function startLoad(cluster: AttackCluster, acknowledged: Acknowledged[]) {
  let running = true;
  let sent = 0;
  const done = (async () => {
    let leaderAt = 0;
    while (running) {
      const payload = `m${sent++}`;
      try {
        const answer = await cluster.post(leaderAt, '/v1/broadcast', { payload });
        const body = answer.body as { index?: number };
        if (answer.status === 200 && typeof body.index === 'number') {
          acknowledged.push({ payload, index: body.index });
          continue;
        }
      } catch {
        // The node is down or restarting: ask another one.
      }
      const status = await statusOf(cluster, leaderAt);
      const leader = status?.leader ?? null;
      leaderAt = leader === null ? (leaderAt + 1) % 3 : cluster.ids.indexOf(leader);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return {
    async stop(): Promise<void> {
      running = false;
      await done;
    },
  };
}

async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  assert.ok(offset < bytes.length, `byte ${offset} lies in ${path}`);
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x40;
  await writeFile(path, bytes);
}

async function segmentsOf(dataDir: string): Promise<string[]> {
  const names = (await readdir(dataDir)).filter((name) => name.endsWith('.wal')).sort();
  return names.map((name) => join(dataDir, name));
}

/**
 * Flips a byte of a WAL record that is neither a segment's last nor next to last (the newest
 * may not be committed yet, and a damaged last record of the last segment reads as a torn
 * write: docs/design.md, "Limits"). `withEntries` picks records holding entries; otherwise
 * records holding only the hard state (a commit index moving on), or a segment's header
 * record, which repeats it. Returns where, or null when no such record exists.
 */
async function damageWalRecord(
  dataDir: string,
  prng: Prng,
  withEntries: boolean,
): Promise<string | null> {
  const candidates: { path: string; offset: number }[] = [];
  for (const path of await segmentsOf(dataDir)) {
    const records = scanSegment(await readFile(path), path, true).records.slice(0, -2);
    for (const record of records) {
      const holdsEntries = record.items.some((item) => item.type === 'entries');
      if (holdsEntries === withEntries) candidates.push({ path, offset: record.offsetBytes });
    }
  }
  if (candidates.length === 0) return null;
  const { path, offset } = prng.pick(candidates);
  // Past the 12-byte record header: the body, where the entries or the hard state are.
  const at = offset + 12 + prng.below(8);
  await flipByte(path, at);
  return `${path}@${at}`;
}

/** Flips a byte of the snapshot file, but not its format version (bytes 4..7; see Limits). */
async function damageSnapshot(dataDir: string, prng: Prng): Promise<string | null> {
  const path = join(dataDir, 'snapshot.bin');
  let size: number;
  try {
    size = (await readFile(path)).length;
  } catch {
    return null;
  }
  let at = prng.below(size);
  if (at >= 4 && at < 8) at = 8 + prng.below(4);
  await flipByte(path, at);
  return `${path}@${at}`;
}

async function damageMeta(dataDir: string, prng: Prng): Promise<string> {
  const path = join(dataDir, 'meta.json');
  const at = prng.below((await readFile(path)).length);
  await flipByte(path, at);
  return `${path}@${at}`;
}

/** Damages `kind`, or the WAL's entries when there is nothing of that kind yet. */
async function damage(
  dataDir: string,
  kind: DamageKind,
  prng: Prng,
): Promise<{ kind: DamageKind; where: string }> {
  const where =
    kind === 'walEntries'
      ? await damageWalRecord(dataDir, prng, true)
      : kind === 'walHardState'
        ? await damageWalRecord(dataDir, prng, false)
        : kind === 'snapshot'
          ? await damageSnapshot(dataDir, prng)
          : await damageMeta(dataDir, prng);
  if (where !== null) return { kind, where };
  const fallback = await damageWalRecord(dataDir, prng, true);
  assert.ok(fallback !== null, `no committed WAL record with entries in ${dataDir}`);
  return { kind: 'walEntries', where: fallback };
}

/**
 * Reads every page from `from` into `byIndex`; the first answer that is not 200, or null.
 * A page a peer served in the node's place (a hole still being backfilled) is skipped: the
 * check is of what each node holds itself.
 */
async function readPages(
  cluster: AttackCluster,
  at: number,
  start: number,
  byIndex: Map<number, unknown>,
): Promise<{ status: number; from: number; body: string } | null> {
  for (let from = start; ; ) {
    const answer = await fetch(`${cluster.httpUrl(at)}/v1/messages?from=${from}&limit=1000`);
    if (answer.status !== 200) return { status: answer.status, from, body: await answer.text() };
    const page = (await answer.json()) as {
      messages: { index: number; payload: unknown }[];
      next: number;
    };
    const own = answer.headers.get('x-abcast-served-by') === null;
    if (own) for (const message of page.messages) byIndex.set(message.index, message.payload);
    if (page.messages.length === 0) return null;
    from = page.next;
  }
}

/** Every node's status and its backfill's log lines: what a failed read leaves to look at. */
async function diagnosis(cluster: AttackCluster): Promise<string> {
  const lines: string[] = [];
  for (let at = 0; at < cluster.ids.length; at++) {
    const status = await statusOf(cluster, at);
    lines.push(`${cluster.ids[at]} status: ${JSON.stringify(status)}`);
    const backfill = cluster
      .log(at)
      .split('\n')
      .filter((line) => /backfill|repair|damage|lost/i.test(line));
    lines.push(...backfill.slice(-20).map((line) => `${cluster.ids[at]} log: ${line}`));
  }
  return lines.join('\n');
}

/**
 * Which acknowledged messages from `fromIndex` on node `at` holds at their positions; fails
 * on any other message there. A node serves positions from its `firstIndex` on (a restarted
 * node starts after its snapshot): older ones are checked on the nodes that still serve them.
 */
export async function checkAcknowledged(
  cluster: AttackCluster,
  at: number,
  acknowledged: readonly Acknowledged[],
  fromIndex = 1,
): Promise<Set<number>> {
  const byIndex = new Map<number, unknown>();
  // A 503 is retryable (not_held while a node's start moves between the status and a page
  // and no peer answers in its place; node_stopped while it restarts): read again from its
  // start, for up to 5 s. Any other answer fails at once, with the node's error and every
  // node's status.
  for (let attempt = 1; ; attempt++) {
    byIndex.clear();
    const status = (await cluster.status(at)) as unknown as { firstIndex?: number };
    const answer = await readPages(
      cluster,
      at,
      Math.max(fromIndex, status.firstIndex ?? 1),
      byIndex,
    );
    if (answer === null) break;
    if (answer.status !== 503 || attempt === 25) {
      assert.equal(
        answer.status,
        200,
        `messages from ${answer.from} on ${at}: ${answer.body}\n${await diagnosis(cluster)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const held = new Set<number>();

  for (const { payload, index } of acknowledged) {
    if (index < fromIndex || !byIndex.has(index)) continue;
    assert.equal(byIndex.get(index), payload, `acknowledged ${payload} at ${index} on ${at}`);
    held.add(index);
  }
  return held;
}

/**
 * Every acknowledged message from `fromIndex` on is where it was acknowledged on every node
 * that serves its position, and on at least two of the three.
 */
export async function checkAcknowledgedEverywhere(
  cluster: AttackCluster,
  acknowledged: readonly Acknowledged[],
  fromIndex: number,
): Promise<void> {
  // Acknowledged at commit; delivery may trail on any node: wait for two to have delivered.
  const checked = acknowledged.slice();
  const last = Math.max(0, ...checked.map((one) => one.index));
  await waitFor(
    async () => {
      const seen = await Promise.all(cluster.ids.map((_, at) => statusOf(cluster, at)));
      return seen.filter((status) => (status?.deliveredIndex ?? 0) >= last).length >= 2;
    },
    `two nodes deliver up to ${last}`,
    30_000,
  );
  const held = await Promise.all(
    cluster.ids.map((_, at) => checkAcknowledged(cluster, at, checked, fromIndex)),
  );
  for (const { payload, index } of checked) {
    if (index < fromIndex) continue;
    const holders = held.filter((one) => one.has(index)).length;
    assert.ok(holders >= 2, `acknowledged ${payload} at ${index} is on ${holders} nodes`);
  }
}

/**
 * Every node delivered every acknowledged message and `abcast verify` finds their sequences
 * identical; the messages acknowledged since `checkedFromIndex` are at their positions.
 */
export async function checkAllDelivered(
  cluster: AttackCluster,
  acknowledged: readonly Acknowledged[],
  checkedFromIndex: number,
): Promise<void> {
  const urls = cluster.ids.map((_, at) => cluster.httpUrl(at));
  const last = Math.max(0, ...acknowledged.map((one) => one.index));
  await waitFor(
    async () => {
      const seen = await Promise.all(urls.map((_, at) => statusOf(cluster, at)));
      return seen.every((status) => (status?.deliveredIndex ?? 0) >= last);
    },
    'every node delivers everything acknowledged',
    30_000,
  );
  // Holes a snapshot from the leader left are filled from the peers: then verify reads each
  // node's own store, not pages forwarded to another.
  await waitFor(
    async () => {
      const seen = await Promise.all(urls.map((_, at) => statusOf(cluster, at)));
      return seen.every((status) => status?.store?.missing === 0);
    },
    'every node backfills its message store',
    30_000,
  );
  const verified = await runCli(['verify', '--nodes', urls.join(',')]);
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  await checkAcknowledgedEverywhere(cluster, acknowledged, checkedFromIndex);
}

/**
 * One round: kill, damage, restart; resolves with the time from the restart until the node
 * has ended its repair (when the damage needed one) and delivered everything acknowledged
 * before it was killed.
 */
async function runRound(options: {
  readonly cluster: AttackCluster;
  readonly acknowledged: Acknowledged[];
  readonly prng: Prng;
  readonly round: number;
  /** Acknowledged positions before it were checked in an earlier round. */
  readonly checkedFromIndex: number;
  readonly log: (line: string) => void;
}): Promise<{ kind: DamageKind; repairMs: number }> {
  const { cluster, acknowledged, prng, round } = options;
  await cluster.agreedLeader();
  const before = acknowledged.length;
  await waitFor(() => acknowledged.length >= before + 20, 'load is acknowledged', 30_000);
  const victimAt = prng.below(3);
  await cluster.stop(victimAt);
  const lastAcknowledged = Math.max(0, ...acknowledged.map((one) => one.index));
  const done = await damage(cluster.dataDir(victimAt), prng.pick(damageKinds), prng);
  const startedMs = Date.now();
  cluster.restart(victimAt);
  const repairs = done.kind !== 'meta';
  // The log is written asynchronously: wait for the line, not only for the status.
  await waitFor(
    async () => {
      const status = await statusOf(cluster, victimAt);
      if (status === null || status.deliveredIndex < lastAcknowledged) return false;
      return !repairs || (status.repairing === null && /repair done/.test(cluster.log(victimAt)));
    },
    `round ${round}: ${cluster.ids[victimAt]} rejoins after ${done.kind} damage at ${done.where}`,
    60_000,
  );
  const repairMs = Date.now() - startedMs;
  // Checked every round, while most nodes still serve the positions acknowledged since.
  await checkAcknowledgedEverywhere(cluster, acknowledged, options.checkedFromIndex);
  // A flipped byte of meta.json is rebuilt, or harmless (a key no release reads).
  if (repairs) assert.match(cluster.log(victimAt), /may be lost/, `round ${round}: reported`);
  options.log(
    `round ${round}: ${cluster.ids[victimAt]} ${done.kind} ${done.where}: rejoined in ${repairMs} ms`,
  );
  return { kind: done.kind, repairMs };
}

export async function runRepairRounds(options: {
  readonly rounds: number;
  readonly seed: number;
  readonly log: (line: string) => void;
}): Promise<RoundsSummary> {
  const startedMs = Date.now();
  const prng = new Prng(options.seed);
  const cluster = await startAttackCluster([...roundClusterArgs], { httpPeers: true });
  const acknowledged: Acknowledged[] = [];
  const load = startLoad(cluster, acknowledged);
  const counts: Record<DamageKind, number> = {
    walEntries: 0,
    walHardState: 0,
    snapshot: 0,
    meta: 0,
  };
  const repairTimes: number[] = [];
  try {
    let checkedFromIndex = 1;
    for (let round = 1; round <= options.rounds; round++) {
      const nextCheckFrom = Math.max(0, ...acknowledged.map((one) => one.index)) + 1;
      const { kind, repairMs } = await runRound({
        cluster,
        acknowledged,
        prng,
        round,
        checkedFromIndex,
        log: options.log,
      });
      checkedFromIndex = nextCheckFrom;
      counts[kind] += 1;
      repairTimes.push(repairMs);
    }
    await load.stop();
    await checkAllDelivered(cluster, acknowledged, checkedFromIndex);
  } finally {
    await load.stop();
    await cluster.close();
  }
  const sorted = [...repairTimes].sort((left, right) => left - right);
  return {
    rounds: options.rounds,
    roundsPassed: repairTimes.length,
    acknowledged: acknowledged.length,
    damage: counts,
    repairMsMedian: sorted[Math.floor((sorted.length - 1) / 2)] ?? 0,
    repairMsMax: sorted[sorted.length - 1] ?? 0,
    elapsedMs: Date.now() - startedMs,
  };
}

function flagValue(name: string, fallback: number): number {
  const position = process.argv.indexOf(name);
  if (position < 0) return fallback;
  const value = Number(process.argv[position + 1]);
  assert.ok(Number.isSafeInteger(value) && value >= 0, `${name} takes a whole number`);
  return value;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rounds = flagValue('--rounds', 100);
  const seed = flagValue('--seed', 12);
  runRepairRounds({ rounds, seed, log: (line) => console.error(line) }).then(
    (summary) => {
      console.log(JSON.stringify(summary));
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
