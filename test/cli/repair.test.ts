// Repair of damaged data directories on real `abcast start` processes. The first test runs a
// few rounds of test/cli/repair-rounds.ts (kill a random node, flip a committed byte in its
// WAL, hard state, snapshot or meta.json, restart it under load: it rejoins, and nothing
// acknowledged is lost); ABCAST_REPAIR_ROUNDS sets how many, `npm run repair-rounds` runs 100.
// The second corrupts the record holding one committed index on two of the three nodes while
// the third, the only one holding it intact, is down: no leader is elected and nothing is
// delivered wrongly; each damaged node says so (repair stalled); the third's return does not
// change that (its log ends in the damaged nodes' term), and the documented recovery (delete
// damage.json on one damaged node while the third is up) brings all three back.
import assert from 'node:assert/strict';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { scanSegment } from '../../src/storage/segments.ts';
import { startAttackCluster } from '../security/cluster.ts';
import { waitFor } from '../support/ports.ts';
import { runCli } from './helpers.ts';
import {
  type Acknowledged,
  checkAcknowledgedEverywhere,
  roundClusterArgs,
  runRepairRounds,
  startLoad,
  statusOf,
} from './repair-rounds.ts';

const roundCount = Number(process.env.ABCAST_REPAIR_ROUNDS ?? '4');

test('a node with damaged data rejoins under load, round after round', {
  timeout: 90_000 + roundCount * 60_000,
}, async () => {
  const summary = await runRepairRounds({ rounds: roundCount, seed: 7, log: () => undefined });
  assert.equal(summary.roundsPassed, roundCount);
  assert.ok(summary.acknowledged > roundCount * 20, 'the load went on');
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

test('the same index corrupted on a majority stops the cluster with the documented error', {
  timeout: 120_000,
}, async () => {
  const cluster = await startAttackCluster([...roundClusterArgs]);
  const acknowledged: Acknowledged[] = [];
  const load = startLoad(cluster, acknowledged);
  try {
    const { at: holderAt } = await cluster.agreedLeader();
    await waitFor(() => acknowledged.length >= 40, 'load is acknowledged', 20_000);
    await load.stop();
    const status = await statusOf(cluster, holderAt);
    const lostIndex = Math.max(2, (status?.commitIndex ?? 0) - 10);
    const damagedAt = [0, 1, 2].filter((at) => at !== holderAt);
    // A follower slowed by a loaded machine may not hold the entry yet: both must, past it.
    await waitFor(
      async () => {
        for (const at of damagedAt) {
          if (((await statusOf(cluster, at))?.commitIndex ?? 0) < lostIndex + 10) return false;
        }
        return true;
      },
      'both followers hold the entry to damage',
      20_000,
    );
    await Promise.all(cluster.ids.map((_, at) => cluster.stop(at)));
    for (const at of damagedAt) await corruptRecordHolding(cluster.dataDir(at), lostIndex);
    for (const at of damagedAt) cluster.restart(at);
    // After 10 s without a leader each damaged node says what it lost and where to look.
    await waitFor(
      () =>
        damagedAt.every((at) =>
          /repair stalled.*When the entries cannot be had/.test(cluster.log(at)),
        ),
      'both damaged nodes report the stall',
      30_000,
    );
    for (const at of damagedAt) {
      const seen = await statusOf(cluster, at);
      assert.equal(seen?.leader, null, `no leader is elected without entry ${lostIndex}`);
      assert.ok(seen.repairing !== null && seen.repairing.firstLostIndex <= lostIndex);
    }
    const damagedUrls = damagedAt.map((at) => cluster.httpUrl(at));
    const agreed = await runCli(['verify', '--nodes', damagedUrls.join(',')]);
    assert.equal(agreed.code, 0, agreed.stdout + agreed.stderr);
    // The holder's log ends in the damaged nodes' term: they cannot tell it holds all they
    // acknowledged, so its return elects nobody either.
    cluster.restart(holderAt);
    // It campaigns (no leader answers it) and is refused.
    await waitFor(
      async () => {
        const role = ((await statusOf(cluster, holderAt)) as { role?: string } | null)?.role;
        return role === 'preCandidate' || role === 'candidate';
      },
      'the holder campaigns',
      20_000,
    );
    const seen = await Promise.all([0, 1, 2].map((at) => statusOf(cluster, at)));
    assert.ok(
      seen.every((one) => one?.leader === null),
      'nobody leads',
    );
    // The documented recovery, step 2: corruption at rest, and the holder's log reaches past
    // what the damaged nodes saw; one damaged node forgets its damage.json while it is up.
    const [forgetAt] = damagedAt as [number];
    await cluster.stop(forgetAt);
    await rm(join(cluster.dataDir(forgetAt), 'damage.json'));
    cluster.restart(forgetAt);
    await cluster.agreedLeader();
    const last = acknowledged[acknowledged.length - 1]?.index ?? 0;
    await waitFor(
      async () => {
        const seen = await Promise.all([0, 1, 2].map((at) => statusOf(cluster, at)));
        return seen.every((one) => one?.repairing === null && one.deliveredIndex >= last);
      },
      'all three repair and deliver',
      30_000,
    );
    await checkAcknowledgedEverywhere(cluster, acknowledged, 1);
  } finally {
    await load.stop();
    await cluster.close();
  }
});
