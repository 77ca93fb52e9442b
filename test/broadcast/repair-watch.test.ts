// The repair watch reports a repairing node that hears from no leader: first after 10 s, then
// once a minute, never while a leader is known or once the repair has ended. Time is passed in.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  describeRepairStall,
  RepairWatch,
  repairStallFirstReportMs,
  repairStallLogIntervalMs,
} from '../../src/broadcast/repair-watch.ts';

const damage = { firstLostIndex: 7, lastIndexSeen: 9, termBound: 3 };

test('a leaderless repair is reported after 10 s, then once a minute', () => {
  const watch = new RepairWatch(1_000);
  const at = (nowMs: number, hasLeader = false) => watch.observe({ nowMs, hasLeader, damage });
  assert.equal(at(1_000 + repairStallFirstReportMs - 1), null);
  const first = at(1_000 + repairStallFirstReportMs);
  assert.deepEqual(first, { damage, leaderlessMs: repairStallFirstReportMs });
  assert.equal(at(1_000 + repairStallFirstReportMs + 1), null);
  const second = at(1_000 + repairStallFirstReportMs + repairStallLogIntervalMs);
  assert.equal(second?.leaderlessMs, repairStallFirstReportMs + repairStallLogIntervalMs);
  assert.match(describeRepairStall(second!), /from 7 on \(term 3 or earlier\).*above 3/);
  assert.match(describeRepairStall(second!), /When the entries cannot be had/);
});

test('a leader, or the end of the repair, silences it and restarts the count', () => {
  const watch = new RepairWatch(0);
  assert.equal(watch.observe({ nowMs: 9_000, hasLeader: true, damage }), null);
  assert.equal(watch.observe({ nowMs: 12_000, hasLeader: false, damage }), null);
  assert.equal(watch.observe({ nowMs: 21_999, hasLeader: false, damage }), null);
  assert.notEqual(watch.observe({ nowMs: 22_000, hasLeader: false, damage }), null);
  assert.equal(watch.observe({ nowMs: 200_000, hasLeader: false, damage: null }), null);
});
