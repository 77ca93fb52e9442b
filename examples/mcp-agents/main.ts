/**
 * `npm run example:mcp` = `node --import tsx examples/mcp-agents/main.ts [--endpoints
 * http://…,http://…] [--tasks n] [--lease-ms n] [--flush-every n] [--quiet]`: runs the MCP
 * agents example (./run.ts), prints the report, exits 0 only when every check passed.
 */
import { isEntry, parseFlags, runMain, sayer } from '../support/report.ts';
import { type McpAgentsOptions, mcpAgentsDefaults, run } from './run.ts';

export { type McpAgentsOptions, mcpAgentsDefaults, run } from './run.ts';

export function parseMcpFlags(argv: readonly string[]): McpAgentsOptions {
  const flags = parseFlags(argv, {
    tasks: mcpAgentsDefaults.taskCount,
    'lease-ms': mcpAgentsDefaults.leaseMs,
    'flush-every': mcpAgentsDefaults.flushEvery,
  });
  return {
    endpoints: flags.endpoints,
    taskCount: flags.integers.tasks as number,
    leaseMs: flags.integers['lease-ms'] as number,
    flushEvery: flags.integers['flush-every'] as number,
    say: sayer(flags.quiet),
  };
}

if (isEntry(import.meta.url)) await runMain(parseMcpFlags, run);
