// `abcast verify` on three real nodes: silent (one line, exit 0) while they agree; after a
// difference is planted in one node's log — a committed entry rewritten in place, same index
// and term, one payload changed, through the storage's own append while the node is down —
// it names the first differing position and exits 1. How to plant one by hand: stop the
// node, open its data directory with FileStorage, re-append the entry with the changed batch.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBatch, encodeBatch } from '../../src/broadcast/batch.ts';
import { FileStorage } from '../../src/storage/index.ts';
import { startAttackCluster } from '../security/cluster.ts';
import { waitFor } from '../support/ports.ts';
import { runCli } from './helpers.ts';

const encoder = new TextEncoder();

/** Rewrites the entry holding `victim`'s payload so that it says `forged` instead. */
async function plantDifference(
  dataDir: string,
  nodeId: string,
  victim: string,
  forged: string,
): Promise<void> {
  const opened = await FileStorage.open({
    dataDir,
    clusterId: 'abcast',
    nodeId,
    log: () => undefined,
  });
  try {
    const entries = opened.persisted.entries;
    const target = JSON.stringify(victim);
    const at = entries.findIndex(
      (entry) =>
        entry.kind === 'normal' &&
        decodeBatch(entry.data).messages.some(
          (message) => new TextDecoder().decode(message.payload) === target,
        ),
    );
    assert.ok(at >= 0, `an entry holds ${victim}`);
    const entry = entries[at] as (typeof entries)[number];
    const batch = decodeBatch(entry.data);
    const messages = batch.messages.map((message) =>
      new TextDecoder().decode(message.payload) === target
        ? { ...message, payload: encoder.encode(JSON.stringify(forged)) }
        : message,
    );
    const rewritten = { ...entry, data: encodeBatch(messages, batch.logTimeMs) };
    await opened.storage.append({
      hardState: null,
      snapshot: null,
      entries: [rewritten, ...entries.slice(at + 1)],
    });
  } finally {
    await opened.storage.close();
  }
}

test('abcast verify is silent on agreement and finds a planted difference', {
  timeout: 90_000,
}, async () => {
  const cluster = await startAttackCluster();
  try {
    const { at: leaderAt } = await cluster.agreedLeader();
    for (let count = 1; count <= 30; count++) {
      const answer = await cluster.post(leaderAt, '/v1/broadcast', { payload: `m${count}` });
      assert.equal(answer.status, 200);
    }
    const urls = cluster.ids.map((_, at) => cluster.httpUrl(at));
    await waitFor(
      async () =>
        (await Promise.all(urls.map((_, at) => cluster.status(at)))).every(
          (status) => status.commitIndex >= 30,
        ),
      'every node commits',
    );
    const healthy = await runCli(['verify', '--nodes', urls.join(','), '--chunk', '8']);
    assert.equal(healthy.code, 0, healthy.stderr);
    assert.match(healthy.stdout, /3 nodes agree on positions 1\.\.30/);

    const victimAt = (leaderAt + 1) % cluster.ids.length;
    await cluster.stop(victimAt);
    await plantDifference(cluster.dataDir(victimAt), cluster.ids[victimAt] as string, 'm17', 'mX7');
    cluster.restart(victimAt);
    await waitFor(
      async () => {
        try {
          return (
            ((await cluster.status(victimAt)) as { deliveredIndex?: number }).deliveredIndex === 30
          );
        } catch {
          return false;
        }
      },
      'the node delivers again',
      30_000,
    );
    const found = await runCli(['verify', '--nodes', urls.join(','), '--chunk', '8']);
    assert.equal(found.code, 1, found.stdout);
    assert.match(found.stdout, /differ at position 17/);
    assert.match(found.stdout, /mX7/);
    assert.match(found.stderr, /position 17/);
  } finally {
    await cluster.close();
  }
});
