/**
 * `node --import tsx examples/agent-taskboard/main.ts [--endpoints http://…,http://…]
 * [--tasks n] [--agents n] [--lease-ms n] [--work-ms n] [--no-crash] [--quiet]`: runs the
 * task board (./run.ts), prints the report, exits 0 only when every check passed.
 */
import { isEntry, parseFlags, runMain, sayer } from '../support/report.ts';
import { run, type TaskboardOptions, taskboardDefaults } from './run.ts';

export { run, type TaskboardOptions, taskboardDefaults } from './run.ts';

export function parseTaskboardFlags(argv: readonly string[]): TaskboardOptions {
  const flags = parseFlags(
    argv.filter((arg) => arg !== '--no-crash'),
    {
      tasks: taskboardDefaults.taskCount,
      agents: taskboardDefaults.agentCount,
      'lease-ms': taskboardDefaults.leaseMs,
      'work-ms': taskboardDefaults.workMs,
    },
  );
  return {
    endpoints: flags.endpoints,
    taskCount: flags.integers.tasks as number,
    agentCount: flags.integers.agents as number,
    leaseMs: flags.integers['lease-ms'] as number,
    workMs: flags.integers['work-ms'] as number,
    crashAgent: !argv.includes('--no-crash'),
    say: sayer(flags.quiet),
  };
}

if (isEntry(import.meta.url)) await runMain(parseTaskboardFlags, run);
