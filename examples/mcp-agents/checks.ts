/**
 * What the MCP agents example must show: every task completed exactly once (the board, the
 * completions the agents were given, the keyed announcements in the log, the results
 * store), every result right, and no stale token accepted (the store refused the lapsed
 * lock holder's write, the lock refused its release, the board refused the stale claim's
 * completion), with the faults actually injected.
 */
import { type Check, check, type Report } from '../support/report.ts';
import { doneTopic, type ScriptedAgent, workOut } from './agent.ts';
import type { McpLink } from './link.ts';
import type { McpAgentsOptions } from './run.ts';
import type { ResultsStore } from './store.ts';

export interface CheckInput {
  readonly options: McpAgentsOptions;
  readonly board: string;
  readonly inputs: Map<string, unknown>;
  readonly agents: readonly ScriptedAgent[];
  readonly store: ResultsStore;
  readonly coordinator: McpLink;
  readonly events: readonly string[];
  readonly elapsedMs: number;
}

export async function mcpChecks(input: CheckInput): Promise<Report> {
  const { options, board, inputs, agents, store, coordinator } = input;
  const total = options.taskCount;
  const listed = await coordinator.must('list_tasks', { board, limit: 10_000 });
  const counts = listed.counts as { open: number; claimed: number; done: number };
  const tasks = listed.tasks as { id: string; state: string; result: unknown; token: number }[];
  const announced = await announcements(coordinator, board);

  const completions = agents.flatMap((agent) => agent.record.completed);
  const distinct = new Set(completions);
  const wrongResults = tasks.filter((task) => task.result !== workOut(inputs.get(task.id)));
  const storeWrong = [...inputs.keys()].filter(
    (id) => store.results.get(id) !== workOut(inputs.get(id)) || store.writesPerTask.get(id) !== 1,
  );
  const announcedTwice = [...announced.entries()].filter(([, count]) => count !== 1);
  const admittedStale = store.attempts.filter(
    (attempt) => attempt.admitted && attempt.token < attempt.highestBefore,
  );
  const staleLock = agents.find((agent) => agent.settings.staleLock)?.record.staleLockWrite;
  const staleClaim = agents.find((agent) => agent.settings.staleClaim)?.record.staleClaim;
  const staleTask = tasks.find((task) => task.id === staleClaim?.id);
  const restarted = agents.find((agent) => agent.link.serversStarted > 1);

  const checks: Check[] = [
    check(
      'every task done',
      counts.done === total && counts.open === 0 && counts.claimed === 0,
      `board counts ${JSON.stringify(counts)} of ${total}`,
    ),
    check(
      'each task completed exactly once',
      completions.length === total && distinct.size === total,
      `${completions.length} completions accepted for ${distinct.size} distinct tasks; ${sum(agents, (agent) => agent.record.duplicates)} retried completions answered duplicate`,
    ),
    check(
      'every result right on the board',
      wrongResults.length === 0 && tasks.length === total,
      wrongResults.length === 0 ? `${tasks.length} results match` : `wrong: ${ids(wrongResults)}`,
    ),
    check(
      'each keyed announcement delivered once',
      announced.size === total && announcedTwice.length === 0,
      `${announced.size} tasks announced on ${doneTopic(board)}${announcedTwice.length === 0 ? ', none twice' : `; not once: ${announcedTwice.map(([id, count]) => `${id}×${count}`).join(', ')}`}`,
    ),
    check(
      'the results store holds each task once, right',
      storeWrong.length === 0 && store.results.size === total,
      `${store.results.size} results from ${store.attempts.filter((attempt) => attempt.admitted).length} admitted writes${storeWrong.length === 0 ? '' : `; wrong or repeated: ${storeWrong.slice(0, 5).join(', ')}`}`,
    ),
    check(
      'no stale lock token accepted',
      admittedStale.length === 0 &&
        staleLock !== null &&
        staleLock !== undefined &&
        !staleLock.admitted &&
        ['fenced', 'lease_expired'].includes(staleLock.release),
      `lapsed holder's write with token ${staleLock?.token ?? '?'}: ${staleLock?.admitted === false ? 'refused by the store' : 'ADMITTED'}, its release_lock answered ${staleLock?.release ?? '?'}; ${store.attempts.filter((attempt) => !attempt.admitted).length} writes refused in all`,
    ),
    check(
      'no stale claim token accepted',
      staleClaim !== null &&
        staleClaim !== undefined &&
        staleClaim.answer === 'fenced' &&
        staleTask !== undefined &&
        staleTask.token > staleClaim.token,
      `stale completion of ${staleClaim?.id ?? '?'} with token ${staleClaim?.token ?? '?'} answered ${staleClaim?.answer ?? '?'}; completed under token ${staleTask?.token ?? '?'}`,
    ),
    check(
      'an MCP server restarted mid-run',
      restarted !== undefined,
      restarted === undefined
        ? 'no agent needed a second server'
        : `${restarted.settings.name} ran ${restarted.link.serversStarted} MCP servers`,
    ),
  ];
  if (input.events.some((event) => event.startsWith('SIGKILL leader'))) {
    checks.push(check('the leader was SIGKILLed mid-run', true, input.events.join('; ')));
  }
  return {
    example: `MCP agents: ${agents.length} scripted agents over MCP split ${total} tasks`,
    checks,
    figures: {
      tasks: total,
      elapsedMs: input.elapsedMs,
      tasksPerSecond: (total / input.elapsedMs) * 1000,
      toolCallRetries: sum(agents, (agent) => agent.link.retries),
      refusedCompletions: sum(agents, (agent) =>
        Object.values(agent.record.refused).reduce((a, b) => a + b, 0),
      ),
    },
    events: input.events,
  };
}

/** How many times each task was announced on the board's `done` topic. */
async function announcements(link: McpLink, board: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let from = 1; ; ) {
    const page = await link.must('read_messages', { from, topic: doneTopic(board), limit: 1_000 });
    for (const message of page.messages as { payload: { task: string } }[]) {
      counts.set(message.payload.task, (counts.get(message.payload.task) ?? 0) + 1);
    }
    const next = page.next as number;
    if (next <= from) return counts;
    from = next;
  }
}

function sum(agents: readonly ScriptedAgent[], of: (agent: ScriptedAgent) => number): number {
  return agents.reduce((total, agent) => total + of(agent), 0);
}

function ids(tasks: readonly { id: string }[]): string {
  return tasks
    .slice(0, 5)
    .map((task) => task.id)
    .join(', ');
}
