// Repair of a corrupted WAL on real `abcast start` processes: three nodes under a light load;
// in each round one follower is SIGKILLed, a byte of a committed record in its WAL is
// flipped, and it is started again while the load goes on. It must say in its log what it
// lost, repair from the leader (its status stops saying `repairing`), and deliver the same
// sequence as the others (`abcast verify`), with every acknowledged message at its
// acknowledged position. ABCAST_REPAIR_ROUNDS sets the number of rounds (default 5); the
// soak: `ABCAST_REPAIR_ROUNDS=100 npx tsx --test --test-timeout=3600000 test/cli/repair.test.ts`.
// A second test corrupts the record holding the same committed index on two of the three
// nodes while the third, the only one holding it intact, is down: no leader is elected and
// nothing is delivered wrongly until the third returns, and then all three repair.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { scanSegment } from '../../src/storage/segments.ts';
import { type AttackCluster, startAttackCluster } from '../security/cluster.ts';
import { waitFor } from '../support/ports.ts';
import { runCli } from './helpers.ts';

const roundCount = Number(process.env.ABCAST_REPAIR_ROUNDS ?? '5');

interface Acknowledged {
  readonly payload: string;
  readonly index: number;
}

interface RepairStatus {
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly deliveredIndex: number;
  readonly repairing: { readonly firstLostIndex: number } | null;
}

async function statusOf(cluster: AttackCluster, at: number): Promise<RepairStatus | null> {
  try {
    return (await cluster.status(at)) as unknown as RepairStatus;
  } catch {
    return null;
  }
}

/** Broadcasts one message at a time to whichever node leads, until stopped. */
function startLoad(cluster: AttackCluster, acknowledged: Acknowledged[]) {
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

/**
 * Flips one byte in the body of a record that holds entries and is followed by another
 * record: damage a crash cannot explain. Returns the file and offset.
 */
async function corruptCommittedRecord(dataDir: string, round: number): Promise<string> {
  const names = (await readdir(dataDir)).filter((name) => name.endsWith('.wal')).sort();
  for (const name of names.reverse()) {
    const path = join(dataDir, name);
    const bytes = await readFile(path);
    const records = scanSegment(bytes, path, true).records;
    const candidates = records
      .slice(1, -2)
      .filter((record) => record.items.some((item) => item.type === 'entries'));
    if (candidates.length === 0) continue;
    const record = candidates[(round * 7) % candidates.length]!;
    const offset = record.offsetBytes + 20;
    bytes[offset] = (bytes[offset] ?? 0) ^ 0x40;
    await writeFile(path, bytes);
    return `${path}@${offset}`;
  }
  throw new Error(`no committed record with entries in ${dataDir}`);
}

async function checkAcknowledged(
  cluster: AttackCluster,
  at: number,
  acknowledged: readonly Acknowledged[],
): Promise<void> {
  const byIndex = new Map<number, unknown>();
  for (let from = 1; ; ) {
    const page = (await (
      await fetch(`${cluster.httpUrl(at)}/v1/messages?from=${from}&limit=1000`)
    ).json()) as { messages: { index: number; payload: unknown }[]; next: number };
    for (const message of page.messages) byIndex.set(message.index, message.payload);
    if (page.messages.length === 0) break;
    from = page.next;
  }
  for (const { payload, index } of acknowledged) {
    assert.equal(byIndex.get(index), payload, `acknowledged ${payload} at ${index} on ${at}`);
  }
}

test('a follower with a corrupted WAL record repairs from the leader and rejoins', {
  timeout: 60_000 + roundCount * 30_000,
}, async () => {
  const cluster = await startAttackCluster();
  const acknowledged: Acknowledged[] = [];
  const load = startLoad(cluster, acknowledged);
  try {
    for (let round = 0; round < roundCount; round++) {
      const { at: leaderAt } = await cluster.agreedLeader();
      const before = acknowledged.length;
      await waitFor(() => acknowledged.length >= before + 30, 'load is acknowledged', 20_000);
      const victimAt = (leaderAt + 1 + (round % 2)) % 3;
      await cluster.stop(victimAt);
      const where = await corruptCommittedRecord(cluster.dataDir(victimAt), round);
      cluster.restart(victimAt);
      // The log is written asynchronously: wait for the line, not only for the status.
      await waitFor(
        async () =>
          (await statusOf(cluster, victimAt))?.repairing === null &&
          /repair done/.test(cluster.log(victimAt)),
        `node ${victimAt} repairs (${where})`,
        20_000,
      );
      assert.match(cluster.log(victimAt), /corrupted WAL record/, 'the damage is in the log');
    }
    await load.stop();
    const urls = cluster.ids.map((_, at) => cluster.httpUrl(at));
    const last = acknowledged[acknowledged.length - 1]?.index ?? 0;
    await waitFor(
      async () => {
        const seen = await Promise.all(urls.map((_, at) => statusOf(cluster, at)));
        return seen.every((status) => (status?.deliveredIndex ?? 0) >= last);
      },
      'every node delivers everything acknowledged',
      20_000,
    );
    const verified = await runCli(['verify', '--nodes', urls.join(',')]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    for (let at = 0; at < 3; at++) await checkAcknowledged(cluster, at, acknowledged);
  } finally {
    await load.stop();
    await cluster.close();
  }
});

/** Flips a byte in the record holding entry `index` (not a segment's last record). */
async function corruptRecordHolding(dataDir: string, index: number): Promise<void> {
  const names = (await readdir(dataDir)).filter((name) => name.endsWith('.wal')).sort();
  for (const name of names) {
    const path = join(dataDir, name);
    const bytes = await readFile(path);
    const records = scanSegment(bytes, path, true).records;
    const record = records
      .slice(0, -1)
      .find((candidate) =>
        candidate.items.some(
          (item) =>
            item.type === 'entries' &&
            item.entries[0]!.index <= index &&
            item.entries[item.entries.length - 1]!.index >= index,
        ),
      );
    if (record === undefined) continue;
    const offset = record.offsetBytes + 20;
    bytes[offset] = (bytes[offset] ?? 0) ^ 0x40;
    await writeFile(path, bytes);
    return;
  }
  throw new Error(`no record holds entry ${index} in ${dataDir}`);
}

test('the same index corrupted on a majority stops the cluster until a holder returns', {
  timeout: 90_000,
}, async () => {
  const cluster = await startAttackCluster();
  const acknowledged: Acknowledged[] = [];
  const load = startLoad(cluster, acknowledged);
  try {
    const { at: holderAt } = await cluster.agreedLeader();
    await waitFor(() => acknowledged.length >= 40, 'load is acknowledged', 20_000);
    await load.stop();
    const status = await statusOf(cluster, holderAt);
    const lostIndex = Math.max(2, (status?.commitIndex ?? 0) - 10);
    await Promise.all(cluster.ids.map((_, at) => cluster.stop(at)));
    const damagedAt = [0, 1, 2].filter((at) => at !== holderAt);
    for (const at of damagedAt) await corruptRecordHolding(cluster.dataDir(at), lostIndex);
    for (const at of damagedAt) cluster.restart(at);
    await waitFor(
      async () => {
        const seen = await Promise.all(damagedAt.map((at) => statusOf(cluster, at)));
        return seen.every((one) => one !== null && one.repairing !== null);
      },
      'both damaged nodes report what they lost',
      20_000,
    );
    // Several election timeouts: neither may campaign nor vote for the other.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    for (const at of damagedAt) {
      const seen = await statusOf(cluster, at);
      assert.equal(seen?.leader, null, `no leader is elected without entry ${lostIndex}`);
      assert.ok(seen.repairing !== null);
      assert.match(cluster.log(at), /Repair of a corrupted log/);
    }
    const urls = damagedAt.map((at) => cluster.httpUrl(at));
    const agreed = await runCli(['verify', '--nodes', urls.join(',')]);
    assert.equal(agreed.code, 0, agreed.stdout + agreed.stderr);
    cluster.restart(holderAt);
    await cluster.agreedLeader();
    const last = acknowledged[acknowledged.length - 1]?.index ?? 0;
    await waitFor(
      async () => {
        const seen = await Promise.all([0, 1, 2].map((at) => statusOf(cluster, at)));
        return seen.every((one) => one?.repairing === null && one.deliveredIndex >= last);
      },
      'all three repair and deliver',
      20_000,
    );
    for (let at = 0; at < 3; at++) await checkAcknowledged(cluster, at, acknowledged);
  } finally {
    await load.stop();
    await cluster.close();
  }
});
