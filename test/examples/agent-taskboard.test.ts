// Proves the task board example end to end on three real node processes: ten agents, each
// its own child process, do 1,000 tasks while one is SIGKILLed holding a claim; every task
// must be done exactly once (board state, accepted completions in the log, what agents were
// told), every result must be right, and another agent must finish the crashed one's task.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { run, taskboardDefaults } from '../../examples/agent-taskboard/main.ts';
import { allPassed, failures } from '../../examples/support/report.ts';

test('1,000 tasks done exactly once by 10 agent processes, one SIGKILLed holding a claim', async () => {
  const report = await run({ ...taskboardDefaults, endpoints: null, say: () => undefined });
  assert.ok(allPassed(report), failures(report));
  assert.equal(report.figures.tasks, 1_000);
  assert.ok(report.events.some((event) => event.startsWith('SIGKILL agent-')));
  const names = report.checks.map((item) => item.name);
  assert.ok(names.includes("the crashed agent's task finished by another agent"));
  assert.ok(names.includes('every result correct'));
});
