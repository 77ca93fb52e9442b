// Proves the trading example end to end on three real node processes: four publishers put
// 2,000 prices and orders on two topics while the leader is SIGKILLed mid-run and restarted;
// four agents, each on its own SDK client, must compute identical fills, equal to the fills
// computed from every node's log, with every acknowledged order filled exactly once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allPassed, failures } from '../../examples/support/report.ts';
import { run, tradingDefaults } from '../../examples/trading/main.ts';

test('agents agree on every fill while the leader is SIGKILLed mid-run', async () => {
  const report = await run({ ...tradingDefaults, endpoints: null, say: () => undefined });
  assert.ok(allPassed(report), failures(report));
  assert.ok(report.events.some((event) => event.startsWith('SIGKILL leader')));
  assert.equal(report.figures.fills, tradingDefaults.orderCount);
  const names = report.checks.map((item) => item.name);
  assert.ok(names.includes('all agents computed the identical fills'));
  assert.ok(names.includes('the fills equal those computed from every node’s log'));
});
