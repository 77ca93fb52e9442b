/**
 * The task board example's checks, from three witnesses: the board's state (a linearizable
 * read), the completions the board accepted as its replica applied them from the log, and
 * what each agent process was told. They must agree that every task was done exactly once,
 * with the right result, and that the crashed agent's task was finished by another agent.
 */
import type { TaskBoard, TaskView } from '../../src/agents/index.ts';
import { type Check, check, type Report } from '../support/report.ts';
import type { AgentProcess } from './processes.ts';
import { resultOf, type Task } from './protocol.ts';
import type { Crash, TaskboardOptions } from './run.ts';

/** Accepted completions per task id, counted as the coordinator's replica applied them. */
export type AcceptedCompletions = Map<string, number[]>;

export function auditCompletions(board: TaskBoard): AcceptedCompletions {
  const accepted: AcceptedCompletions = new Map();
  board.replica.onApplied((event) => {
    const command = event.command;
    if (command?.op !== 'complete' || !event.outcome.ok) return;
    const outcome = event.outcome.result as { ok?: boolean } | null;
    if (outcome?.ok !== true) return;
    const tokens = accepted.get(command.taskId) ?? [];
    tokens.push(command.token);
    accepted.set(command.taskId, tokens);
  });
  return accepted;
}

export interface TaskboardOutcome {
  readonly options: TaskboardOptions;
  readonly board: TaskBoard;
  readonly tasks: ReadonlyMap<string, Task>;
  readonly agents: readonly AgentProcess[];
  readonly accepted: AcceptedCompletions;
  readonly crash: Crash | null;
  readonly postMs: number;
  readonly processMs: number;
}

export async function taskboardChecks(outcome: TaskboardOutcome): Promise<Report> {
  const counts = await outcome.board.counts();
  const done = await outcome.board.list({ status: 'done', limit: 10_000 });
  const byId = new Map(done.map((view) => [view.id, view]));
  const told = completionsTold(outcome.agents);
  const claimCount = outcome.agents.reduce(
    (sum, agent) => sum + agent.messages.filter((message) => message.type === 'claimed').length,
    0,
  );
  const checks: Check[] = [
    check(
      'all tasks done',
      counts.done === outcome.tasks.size && counts.open === 0 && counts.claimed === 0,
      `${counts.done} done, ${counts.open} open, ${counts.claimed} claimed of ${outcome.tasks.size}`,
    ),
    onceEach('each task completed once on the board', outcome.tasks, (id) =>
      byId.has(id) ? 1 : 0,
    ),
    onceEach(
      'each task completion accepted once in the log',
      outcome.tasks,
      (id) => outcome.accepted.get(id)?.length ?? 0,
    ),
    onceEach(
      'each task completion accepted once as agents were told',
      outcome.tasks,
      (id) => told.get(id) ?? 0,
    ),
    resultsCorrect(outcome.tasks, byId),
    crashRecovered(outcome, byId),
    agentsHealthy(outcome),
  ];
  return {
    example: 'agent task board: agents in separate processes, one SIGKILLed holding a claim',
    checks,
    events: crashEvents(outcome.crash),
    figures: {
      tasks: outcome.tasks.size,
      agents: outcome.agents.length,
      leaseMs: outcome.options.leaseMs,
      claims: claimCount,
      completionsRefused: refusedCount(outcome.agents),
      startAndPostMs: outcome.postMs,
      runMs: outcome.processMs,
      tasksPerSecond: (outcome.tasks.size * 1000) / Math.max(1, outcome.processMs),
    },
  };
}

/** Accepted completions per task, as the agents reported them. */
function completionsTold(agents: readonly AgentProcess[]): Map<string, number> {
  const told = new Map<string, number>();
  for (const agent of agents) {
    for (const message of agent.messages) {
      if (message.type === 'completed' && message.accepted) {
        told.set(message.taskId, (told.get(message.taskId) ?? 0) + 1);
      }
    }
  }
  return told;
}

function refusedCount(agents: readonly AgentProcess[]): number {
  return agents
    .flatMap((agent) => agent.messages)
    .filter((message) => message.type === 'completed' && !message.accepted).length;
}

function onceEach(
  name: string,
  tasks: ReadonlyMap<string, Task>,
  countOf: (id: string) => number,
): Check {
  const wrong = [...tasks.keys()].filter((id) => countOf(id) !== 1);
  return check(
    name,
    wrong.length === 0,
    wrong.length === 0
      ? `${tasks.size} of ${tasks.size} exactly once`
      : `${wrong.length} not exactly once: ${wrong
          .slice(0, 5)
          .map((id) => `${id}×${countOf(id)}`)
          .join(' ')}`,
  );
}

function resultsCorrect(
  tasks: ReadonlyMap<string, Task>,
  byId: ReadonlyMap<string, TaskView>,
): Check {
  const wrong = [...tasks].filter(([id, task]) => {
    const result = byId.get(id)?.result as { sha256?: unknown } | undefined;
    return result?.sha256 !== resultOf(task).sha256;
  });
  return check(
    'every result correct',
    wrong.length === 0,
    wrong.length === 0
      ? `${tasks.size} sha256 results recomputed and equal`
      : `${wrong.length} wrong: ${wrong
          .slice(0, 5)
          .map(([id]) => id)
          .join(' ')}`,
  );
}

function crashRecovered(outcome: TaskboardOutcome, byId: ReadonlyMap<string, TaskView>): Check {
  const name = "the crashed agent's task finished by another agent";
  if (!outcome.options.crashAgent) return check(name, true, 'no agent crash asked');
  const crash = outcome.crash;
  if (crash === null) return check(name, false, 'the victim never stalled holding a claim');
  const view = byId.get(crash.taskId);
  const ok =
    view !== undefined &&
    view.agentId !== crash.agentId &&
    crash.reclaimedBy !== null &&
    (view.token ?? 0) > crash.token &&
    view.attempts >= 2;
  return check(
    name,
    ok,
    `${crash.agentId} SIGKILLed holding ${crash.taskId} (token ${crash.token}); done by ${view?.agentId} with token ${view?.token}, attempt ${view?.attempts}, reclaimed ${crash.reclaimedAtMs === null ? 'never' : `${crash.reclaimedAtMs - crash.killedAtMs} ms`} after the crash (lease ${outcome.options.leaseMs} ms)`,
  );
}

function agentsHealthy(outcome: TaskboardOutcome): Check {
  const victim = outcome.crash?.agentId ?? null;
  const bad = outcome.agents.filter(
    (agent) => agent.agentId !== victim && (agent.has('failed') || agent.ending !== 'exit 0'),
  );
  return check(
    'every other agent ran to the end and exited cleanly',
    bad.length === 0,
    bad.length === 0
      ? `${outcome.agents.length - (victim === null ? 0 : 1)} agents exited 0`
      : bad
          .map((agent) => `${agent.agentId} ${agent.ending} ${agent.errorOutput.slice(0, 200)}`)
          .join('; '),
  );
}

function crashEvents(crash: Crash | null): string[] {
  if (crash === null) return ['no agent crashed'];
  const events = [`SIGKILL ${crash.agentId} while it held ${crash.taskId} (token ${crash.token})`];
  if (crash.reclaimedBy !== null && crash.reclaimedAtMs !== null) {
    events.push(
      `${crash.reclaimedBy} claimed ${crash.taskId} ${crash.reclaimedAtMs - crash.killedAtMs} ms after the crash`,
    );
  }
  return events;
}
