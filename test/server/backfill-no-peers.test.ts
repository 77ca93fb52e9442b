// A node given no peers to backfill from (no --http-peers) fetches nothing, but says in its
// log when a hole appears in its message store, once per hole: otherwise reads there answer
// 503 not_held with nothing to tell an operator why.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HttpExchange } from '../../src/client/exchange.ts';
import { Backfill } from '../../src/server/backfill.ts';
import { PeerReads } from '../../src/server/peers.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';
import { waitFor } from '../support/ports.ts';

test('without peers a hole is reported once, and nothing is fetched', async (t) => {
  let holes = [{ first: 5, last: 9 }];
  let exchanges = 0;
  const exchange: HttpExchange = async () => {
    exchanges++;
    throw new Error('no peer was given');
  };
  const warnings: { fields: Record<string, unknown>; message: string }[] = [];
  const backfill = new Backfill({
    node: { id: 'n1', missingRanges: () => holes, fill: () => 0 },
    peers: new PeerReads([], exchange, 1_000),
    environment: systemEnvironment,
    logger: {
      info() {},
      error() {},
      warn(fields: Record<string, unknown>, message: string) {
        warnings.push({ fields, message });
      },
    },
    pageCount: 16,
    idleIntervalMs: 5,
  });
  backfill.start();
  t.after(() => backfill.stop());
  await waitFor(() => warnings.length === 1, 'the hole is reported');
  assert.deepEqual(warnings[0]?.fields, { node: 'n1', firstMissing: 5, missingCount: 5 });
  assert.match(warnings[0]?.message ?? '', /--http-peers/);
  assert.equal(backfill.lastError, 'no peers to backfill from (--http-peers)');
  // Many rounds later the same hole has not been said again.
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(warnings.length, 1);

  holes = [
    { first: 2, last: 3 },
    { first: 5, last: 9 },
  ];
  await waitFor(() => warnings.length === 2, 'a new hole is reported');
  assert.deepEqual(warnings[1]?.fields, { node: 'n1', firstMissing: 2, missingCount: 7 });
  assert.equal(exchanges, 0, 'no peer is asked');
  assert.equal(backfill.filledCount, 0);
});
