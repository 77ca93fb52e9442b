/**
 * The task board example: a coordinator posts tasks to a TaskBoard; agents, each its own
 * process with its own SDK client, loop next() → work → complete(). One agent is SIGKILLed
 * while it holds a claim; its task goes to another agent once the lease runs out in log
 * time. The report checks that every task was done exactly once, with the right result.
 */
import { randomBytes } from 'node:crypto';
import { TaskBoard } from '../../src/agents/index.ts';
import { connect } from '../../src/client/index.ts';
import { type Cluster, endpointsPreferring, openCluster } from '../support/cluster.ts';
import { ExampleError } from '../support/errors.ts';
import type { Report, Say } from '../support/report.ts';
import { type AcceptedCompletions, auditCompletions, taskboardChecks } from './checks.ts';
import { AgentProcess, waitForAgents } from './processes.ts';
import type { AgentMessage, Task } from './protocol.ts';

export interface TaskboardOptions {
  /** An existing cluster's HTTP endpoints; null starts a local 3-node cluster. */
  readonly endpoints: readonly string[] | null;
  readonly taskCount: number;
  readonly agentCount: number;
  /** The claims' lease: a crashed agent's task is claimable again this long after. */
  readonly leaseMs: number;
  /** Simulated work per task (ms), on top of hashing its input. */
  readonly workMs: number;
  /** SIGKILL one agent while it holds a claim. */
  readonly crashAgent: boolean;
  readonly say: Say;
}

export const taskboardDefaults: Omit<TaskboardOptions, 'say' | 'endpoints'> = {
  taskCount: 1_000,
  agentCount: 10,
  leaseMs: 1_500,
  workMs: 3,
  crashAgent: true,
};

/** What happened to the agent that was crashed. */
export interface Crash {
  readonly agentId: string;
  readonly taskId: string;
  readonly token: number;
  /** This process's clock when the agent was gone. */
  killedAtMs: number;
  /** When another agent claimed the task, and who. */
  reclaimedAtMs: number | null;
  reclaimedBy: string | null;
}

const agentsReadyTimeoutMs = 60_000;
const doneTimeoutMs = 180_000;
const postsInFlightMax = 32;

export async function run(options: TaskboardOptions): Promise<Report> {
  checkOptions(options);
  const cluster = await openCluster(options.endpoints);
  const client = connect({ endpoints: cluster.endpoints, requestTimeoutMs: 3_000 });
  const agents: AgentProcess[] = [];
  let board: TaskBoard | null = null;
  try {
    const boardName = `tasks-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    board = await TaskBoard.open({ log: client, name: boardName });
    return await runOn({ cluster, options, board, boardName, agents });
  } finally {
    await Promise.all(agents.map((agent) => agent.kill('SIGKILL')));
    await board?.close();
    client.close();
    await cluster.stop();
  }
}

function checkOptions(options: TaskboardOptions): void {
  for (const name of ['taskCount', 'agentCount', 'leaseMs', 'workMs'] as const) {
    if (!Number.isSafeInteger(options[name]) || options[name] < 1) {
      throw new ExampleError('invalid_argument', `${name} takes a positive integer`, {
        field: name,
      });
    }
  }
  if (options.crashAgent && options.agentCount < 2) {
    throw new ExampleError(
      'invalid_argument',
      'crashing an agent needs another to finish its task',
      {
        field: 'agentCount',
      },
    );
  }
}

interface Setup {
  readonly cluster: Cluster;
  readonly options: TaskboardOptions;
  readonly board: TaskBoard;
  readonly boardName: string;
  readonly agents: AgentProcess[];
}

async function runOn(setup: Setup): Promise<Report> {
  const { options, board } = setup;
  const say = options.say;
  const accepted: AcceptedCompletions = auditCompletions(board);
  const victimAt = options.crashAgent ? Math.min(3, options.agentCount - 1) : -1;
  // The victim stalls a third of the way through its share: mid-run, with a task in hand.
  const stallAtClaim = Math.max(1, Math.floor(options.taskCount / options.agentCount / 3));
  for (let at = 0; at < options.agentCount; at++) {
    setup.agents.push(
      AgentProcess.start({
        agentId: `agent-${at}`,
        endpoints: endpointsPreferring(setup.cluster.endpoints, at),
        boardName: setup.boardName,
        leaseMs: options.leaseMs,
        workMs: options.workMs,
        stallAtClaim: at === victimAt ? stallAtClaim : 0,
      }),
    );
  }
  const watch = victimAt < 0 ? null : watchCrash(setup.agents, victimAt, say);
  const startedMs = Date.now();
  await waitForAgents(setup.agents, agentsReadyTimeoutMs);
  say(`${setup.agents.length} agent processes ready in ${Date.now() - startedMs} ms`);
  const tasks = await postTasks(board, options.taskCount);
  const postMs = Date.now() - startedMs;
  say(`${tasks.size} tasks posted`);
  await board.replica.waitUntil(
    (state) => (state.doneCount >= options.taskCount ? true : undefined),
    { timeoutMs: doneTimeoutMs },
  );
  const processMs = Date.now() - startedMs;
  say(`all ${options.taskCount} tasks done in ${processMs} ms; stopping the agents`);
  await watch?.killed;
  await Promise.all(setup.agents.map((agent) => agent.stop()));
  const crash = watch?.crash ?? null;
  return taskboardChecks({
    options,
    board,
    tasks,
    agents: setup.agents,
    accepted,
    crash,
    postMs,
    processMs,
  });
}

/** Posts `count` tasks (ids t0, t1, …), `postsInFlightMax` at a time. */
async function postTasks(board: TaskBoard, count: number): Promise<Map<string, Task>> {
  const tasks = new Map<string, Task>();
  for (let n = 0; n < count; n++)
    tasks.set(`t${n}`, { n, input: `task ${n} ${randomBytes(8).toString('hex')}` });
  const ids = [...tasks.keys()];
  let next = 0;
  const poster = async () => {
    for (let at = next++; at < ids.length; at = next++) {
      const id = ids[at] as string;
      await board.post(tasks.get(id), { id });
    }
  };
  await Promise.all(Array.from({ length: postsInFlightMax }, poster));
  return tasks;
}

interface CrashWatch {
  /** Set once the victim said it stalls with a claim in hand. */
  crash: Crash | null;
  /** The kill in progress or done. */
  killed: Promise<void> | null;
}

/**
 * SIGKILLs the victim the moment it says it is stalling with a claim in hand, then watches
 * who claims that task next.
 */
function watchCrash(agents: readonly AgentProcess[], victimAt: number, say: Say): CrashWatch {
  const victim = agents[victimAt] as AgentProcess;
  const watch: CrashWatch = { crash: null, killed: null };
  victim.onMessage = (message) => {
    if (message.type !== 'stalling' || watch.crash !== null) return;
    const crash: Crash = {
      agentId: victim.agentId,
      taskId: message.taskId,
      token: message.token,
      killedAtMs: 0,
      reclaimedAtMs: null,
      reclaimedBy: null,
    };
    watch.crash = crash;
    for (const agent of agents) {
      if (agent !== victim) agent.onMessage = (other) => noteReclaim(crash, other, say);
    }
    watch.killed = victim.kill('SIGKILL').then(() => {
      crash.killedAtMs = Date.now();
      say(`SIGKILL ${victim.agentId} while it held ${crash.taskId} (token ${crash.token})`);
    });
  };
  return watch;
}

function noteReclaim(crash: Crash, message: AgentMessage, say: Say): void {
  if (message.type !== 'claimed' || message.taskId !== crash.taskId) return;
  if (crash.reclaimedBy !== null) return;
  crash.reclaimedAtMs = Date.now();
  crash.reclaimedBy = message.agentId;
  say(
    `${message.agentId} claimed ${crash.taskId} (attempt ${message.attempt}) ${crash.reclaimedAtMs - crash.killedAtMs} ms after the crash`,
  );
}
