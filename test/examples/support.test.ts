// Proves the examples' shared support on its own, without a cluster: flags parse or fail
// with a typed error, a bad flag makes an example exit 2 with one line, a report passes only
// when every check does, the crash check insists on a kill before the work ended, and an
// endpoint that is not an http(s) base URL is refused before anything is contacted.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { parseLedgerFlags } from '../../examples/ledger/main.ts';
import { openCluster } from '../../examples/support/cluster.ts';
import { crashCheck } from '../../examples/support/faults.ts';
import {
  allPassed,
  check,
  formatReport,
  parseFlags,
  type Report,
} from '../../examples/support/report.ts';

test('flags take positive integers and endpoints; anything else is invalid_argument', () => {
  const flags = parseFlags(['--transfers', '50', '--endpoints', 'http://a:1, http://b:2'], {
    transfers: 2000,
    clients: 20,
  });
  assert.deepEqual(flags.integers, { transfers: 50, clients: 20 });
  assert.deepEqual(flags.endpoints, ['http://a:1', 'http://b:2']);
  for (const argv of [['--transfers', '0'], ['--transfers', '1.5'], ['--bogus'], ['extra']]) {
    assert.throws(() => parseFlags(argv, { transfers: 1 }), { code: 'invalid_argument' });
  }
  const ledger = parseLedgerFlags(['--no-kill', '--accounts', '3', '--quiet']);
  assert.equal(ledger.killNode, false);
  assert.equal(ledger.accountCount, 3);
  assert.equal(ledger.endpoints, null);
});

test('an example given a bad flag exits 2 with one line on stderr', () => {
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'examples/ledger/main.ts', '--transfers', 'many'],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(result.status, 2);
  assert.match(result.stderr, /--transfers takes a positive integer/);
});

test('a report passes only when every check passed, and says which failed', () => {
  const report: Report = {
    example: 'x',
    checks: [check('a', true, 'fine'), check('b', false, 'broken')],
    figures: { elapsedMs: 12 },
    events: ['something happened'],
  };
  assert.equal(allPassed(report), false);
  assert.match(formatReport(report), /FAIL {2}b — broken/);
  assert.equal(allPassed({ ...report, checks: [check('a', true, 'fine')] }), true);
  assert.equal(allPassed({ ...report, checks: [] }), false);
});

test('the crash check wants the kill before the work ended, and a restart', () => {
  const owned = { ownsNodes: true } as Parameters<typeof crashCheck>[0];
  const record = (killed: number | null, restarted: number | null) => ({
    totalCount: 100,
    killedAfterCount: killed,
    restartedAfterCount: restarted,
  });
  assert.equal(crashCheck(owned, true, record(30, 70)).ok, true);
  assert.equal(crashCheck(owned, true, record(100, 100)).ok, false);
  assert.equal(crashCheck(owned, true, record(30, null)).ok, false);
  assert.equal(crashCheck(owned, false, record(null, null)).ok, true);
  const external = { ownsNodes: false } as Parameters<typeof crashCheck>[0];
  assert.equal(crashCheck(external, true, record(null, null)).ok, true);
});

test('an endpoint that is not an http(s) base URL is refused at once', async () => {
  await assert.rejects(openCluster(['ftp://127.0.0.1:1']), { code: 'invalid_argument' });
  await assert.rejects(openCluster(['http://127.0.0.1:1/v1/status']), {
    code: 'invalid_argument',
  });
});
