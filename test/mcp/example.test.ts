// The MCP agents example (examples/mcp-agents) at a reduced size: three scripted agents, each
// through its own `abcast mcp` over stdio with the SDK's MCP Client, split 60 tasks on three
// real nodes while the leader is SIGKILLed and one MCP server process is SIGKILLed and
// started again; every task must be completed exactly once, every keyed announcement
// delivered once, and no stale lock or claim token accepted. Full size: npm run example:mcp.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mcpAgentsDefaults, run } from '../../examples/mcp-agents/main.ts';
import { allPassed, failures } from '../../examples/support/report.ts';

test('60 tasks done exactly once by 3 MCP agents through a leader crash and a server restart', async () => {
  const report = await run({
    ...mcpAgentsDefaults,
    taskCount: 60,
    flushEvery: 5,
    endpoints: null,
    say: () => undefined,
  });
  assert.ok(allPassed(report), failures(report));
  assert.equal(report.figures.tasks, 60);
  const names = report.checks.map((item) => item.name);
  for (const name of [
    'each task completed exactly once',
    'no stale lock token accepted',
    'no stale claim token accepted',
    'an MCP server restarted mid-run',
    'the leader was SIGKILLed mid-run',
  ]) {
    assert.ok(names.includes(name), name);
  }
});
