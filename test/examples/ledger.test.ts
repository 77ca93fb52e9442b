// Proves the ledger example end to end on three real node processes: 20 SDK clients make
// 2,000 concurrent transfers while the leader is SIGKILLed mid-run and restarted; the
// report's checks (never negative, total conserved, replicas identical, every acknowledged
// transfer applied exactly once by the log's own count) must all pass.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ledgerDefaults, run } from '../../examples/ledger/main.ts';
import { allPassed, failures } from '../../examples/support/report.ts';

test('the ledger keeps its invariants while the leader is SIGKILLed mid-run', async () => {
  const report = await run({ ...ledgerDefaults, endpoints: null, say: () => undefined });
  assert.ok(allPassed(report), failures(report));
  assert.ok(report.events.some((event) => event.startsWith('SIGKILL leader')));
  assert.ok(report.events.some((event) => event.startsWith('restarted')));
  assert.equal(report.figures.transfersIssued, ledgerDefaults.transferCount);
  const names = report.checks.map((item) => item.name);
  for (const expected of ['no balance ever negative', 'total conserved', 'replicas identical']) {
    assert.ok(names.includes(expected), `the report checks "${expected}"`);
  }
});
