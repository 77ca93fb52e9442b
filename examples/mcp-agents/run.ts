/**
 * The MCP agents example: three scripted agents, each with its own `abcast mcp` server over
 * stdio, split the tasks of one board through `claim_task`/`complete_task`, announce each
 * with a keyed `broadcast`, and write results to a store guarded by the `results` lock's
 * fencing tokens — while the leader node is SIGKILLed (and later restarted) and one agent's
 * MCP server process is SIGKILLed and started again. ./checks.ts judges the outcome.
 */
import { randomBytes } from 'node:crypto';
import { type Cluster, openCluster } from '../support/cluster.ts';
import { ExampleError } from '../support/errors.ts';
import type { Report, Say } from '../support/report.ts';
import { type AgentSettings, ScriptedAgent } from './agent.ts';
import { mcpChecks } from './checks.ts';
import { McpLink } from './link.ts';
import { ResultsStore } from './store.ts';

export interface McpAgentsOptions {
  /** An existing cluster's HTTP endpoints; null starts a local 3-node cluster. */
  readonly endpoints: readonly string[] | null;
  readonly taskCount: number;
  readonly leaseMs: number;
  readonly flushEvery: number;
  readonly say: Say;
}

export const mcpAgentsDefaults: Omit<McpAgentsOptions, 'say' | 'endpoints'> = {
  taskCount: 300,
  leaseMs: 5_000,
  flushEvery: 10,
};

const agentCount = 3;
const postsInFlightMax = 16;
const runTimeoutMs = 300_000;
const watchEveryMs = 50;

export async function run(options: McpAgentsOptions): Promise<Report> {
  for (const name of ['taskCount', 'leaseMs', 'flushEvery'] as const) {
    if (!Number.isSafeInteger(options[name]) || options[name] < 1) {
      throw new ExampleError('invalid_argument', `${name} takes a positive integer`, {
        field: name,
      });
    }
  }
  const cluster = await openCluster(options.endpoints);
  const links: McpLink[] = [];
  try {
    return await runOn(cluster, options, links);
  } finally {
    await Promise.all(links.map((link) => link.close()));
    await cluster.stop();
  }
}

async function runOn(cluster: Cluster, options: McpAgentsOptions, links: McpLink[]) {
  const say = options.say;
  const board = `mcp-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const coordinator = new McpLink('coordinator', cluster.endpoints);
  links.push(coordinator);
  const inputs = new Map<string, unknown>();
  for (let n = 0; n < options.taskCount; n++) {
    inputs.set(`task-${String(n).padStart(4, '0')}`, { n, salt: randomBytes(4).toString('hex') });
  }
  const startedMs = Date.now();
  await postAll(coordinator, board, inputs);
  say(`${inputs.size} tasks posted to board ${board} through MCP`);

  const store = new ResultsStore();
  const agents = Array.from({ length: agentCount }, (_, at) => {
    const settings: AgentSettings = {
      name: `agent-${at + 1}`,
      board,
      taskCount: options.taskCount,
      leaseMs: options.leaseMs,
      flushEvery: options.flushEvery,
      workMs: 2,
      staleLock: at === 0,
      staleClaim: at === 2,
    };
    const link = new McpLink(settings.name, cluster.endpoints);
    links.push(link);
    return new ScriptedAgent(settings, link, store);
  });
  const events: string[] = [];
  const running = Promise.all(agents.map((agent) => agent.run()));
  const faults = injectFaults({ cluster, agents, coordinator, store, options, events, say });
  let deadline: NodeJS.Timeout | undefined;
  const finished = await Promise.race([
    running.then(() => true),
    new Promise<boolean>((resolve) => {
      deadline = setTimeout(() => resolve(false), runTimeoutMs);
    }),
  ]);
  // Left armed, the deadline kept the process alive for minutes after a finished run.
  clearTimeout(deadline);
  faults.stop();
  await faults.done;
  if (!finished)
    throw new ExampleError('timeout', `the agents did not finish in ${runTimeoutMs} ms`);
  const elapsedMs = Date.now() - startedMs;
  say(`all agents stopped after ${elapsedMs} ms`);
  return mcpChecks({ options, board, inputs, agents, store, coordinator, events, elapsedMs });
}

async function postAll(link: McpLink, board: string, inputs: Map<string, unknown>) {
  const ids = [...inputs.keys()];
  let next = 0;
  const poster = async () => {
    for (let at = next++; at < ids.length; at = next++) {
      const id = ids[at] as string;
      await link.must('post_task', { board, id, input: inputs.get(id) });
    }
  };
  await Promise.all(Array.from({ length: postsInFlightMax }, poster));
}

interface FaultSetup {
  readonly cluster: Cluster;
  readonly agents: readonly ScriptedAgent[];
  readonly coordinator: McpLink;
  readonly store: ResultsStore;
  readonly options: McpAgentsOptions;
  readonly events: string[];
  readonly say: Say;
}

/**
 * As the work goes on: at a quarter done the leader is SIGKILLed, at half one agent's MCP
 * server, at three quarters the node comes back. Whenever the stale-lock agent holds its
 * short lease, the coordinator waits in line for the lock and writes over it.
 */
function injectFaults(setup: FaultSetup): { stop: () => void; done: Promise<void> } {
  const { cluster, agents, options, events } = setup;
  let stopped = false;
  let killed: string | null = null;
  const note = (event: string) => {
    events.push(event);
    setup.say(event);
  };
  const steps = [
    {
      at: 0.25,
      act: async () => {
        if (!cluster.ownsNodes) return;
        const leader = await cluster.leaderId();
        if (leader === null) return;
        await cluster.kill(leader, 'SIGKILL');
        killed = leader;
        note(`SIGKILL leader ${leader}`);
      },
    },
    {
      at: 0.5,
      act: async () => {
        const victim = agents[1] as ScriptedAgent;
        await victim.link.crash();
        note(`SIGKILL the MCP server of ${victim.settings.name}; its next call starts another`);
      },
    },
    {
      at: 0.75,
      act: async () => {
        if (killed === null) return;
        await cluster.restart(killed);
        note(`restarted ${killed}`);
      },
    },
  ];
  const done = (async () => {
    let tookOver = false;
    let lastSaidMs = Date.now();
    while (!stopped) {
      const completed = agents.reduce((sum, agent) => sum + agent.record.completed.length, 0);
      if (Date.now() - lastSaidMs > 5_000) {
        lastSaidMs = Date.now();
        setup.say(`${completed} of ${options.taskCount} tasks completed`);
      }
      const step = steps[0];
      if (step !== undefined && completed >= step.at * options.taskCount) {
        steps.shift();
        await step.act();
      }
      const staleToken = (agents[0] as ScriptedAgent).staleLockToken;
      if (!tookOver && staleToken !== null) {
        tookOver = true;
        await writeOver(setup, staleToken);
      }
      await new Promise((resume) => setTimeout(resume, watchEveryMs));
    }
  })();
  return {
    stop: () => {
      stopped = true;
    },
    done,
  };
}

/** The coordinator takes the lock after the stale holder's lease and writes (nothing). */
async function writeOver(setup: FaultSetup, staleToken: number): Promise<void> {
  const lease = await setup.coordinator.must('acquire_lock', {
    name: 'results',
    owner: 'coordinator',
    leaseMs: setup.options.leaseMs,
    waitMs: 30_000,
  });
  const token = lease.token as number;
  setup.store.write('coordinator', token, []);
  await setup.coordinator.call('release_lock', { name: 'results', token });
  setup.events.push(
    `coordinator wrote with lock token ${token} over agent-1's lapsed ${staleToken}`,
  );
}
