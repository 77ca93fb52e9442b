/**
 * The coordination tools over abcast/agents: the task board (`post_task`, `claim_task`,
 * `renew_task`, `complete_task`, `release_task`, `list_tasks`), locks with fencing tokens
 * (`acquire_lock`, `renew_lock`, `release_lock`), presence (`join`, `heartbeat`, `leave`,
 * `members`) and `arrive_barrier`. Every decision is taken in log order by every replica
 * alike; a refused call is a tool error whose `error` says why (`fenced`, `lease_expired`,
 * …) and whose text says what to do.
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Backend } from './backend.ts';
import { answer, brief, durationMs, name, required, token } from './tool-result.ts';

const taskState = z.enum(['open', 'claimed', 'done']);

/** How long a claim or an acquire may wait: bounded below the clients' usual 60 s. */
const waitMs = (what: string) =>
  z
    .number()
    .int()
    .min(0)
    .max(55_000)
    .optional()
    .describe(`wait ${what} up to this long, in ms (default: do not wait)`);

export function registerTaskTools(server: McpServer, backend: Backend): void {
  const tasks = backend.coordination;
  server.registerTool(
    'post_task',
    {
      description:
        'Post a task to a board. Posting an id the board already knows changes nothing, so a retried post is safe.',
      inputSchema: {
        board: name('the board'),
        id: name('the task id, unique on the board (not starting with #)'),
        input: z.unknown().describe('what the task is: any JSON value'),
      },
    },
    (args) =>
      answer(async () => {
        const id = await tasks.postTask(args.board, args.id, required(args.input, 'input'));
        return { value: { board: args.board, id }, text: `Task ${id} is on board ${args.board}.` };
      }),
  );

  server.registerTool(
    'claim_task',
    {
      description:
        'Claim the oldest claimable task of a board under a lease. Returns {task, token}, or task=null when none is claimable. Exactly one agent wins each claim; keep the token and pass it to complete_task (before the lease ends, or renew_task). With waitMs, waits that long for a task.',
      inputSchema: {
        board: name('the board'),
        agent: name('your agent id'),
        leaseMs: durationMs('how long the claim is yours'),
        waitMs: waitMs('for a claimable task'),
      },
    },
    (args) =>
      answer(async () => {
        const claim = await tasks.claimTask(args.board, args.agent, args.leaseMs, args.waitMs);
        if (claim === null) {
          return {
            value: { task: null, token: null },
            text: `No claimable task on board ${args.board} now; call again later.`,
          };
        }
        return {
          value: { task: claim, token: claim.token },
          text: `You hold task ${claim.id} (token ${claim.token}) until ${new Date(claim.leaseExpiresAt).toISOString()}: ${brief(claim.input)}.`,
        };
      }),
  );

  server.registerTool(
    'renew_task',
    {
      description: 'Extend the lease of a task you hold, by leaseMs from now (in log time).',
      inputSchema: {
        board: name('the board'),
        id: name('the task id'),
        token,
        leaseMs: durationMs('the new lease'),
      },
    },
    (args) =>
      answer(async () => {
        const claim = await tasks.renewTask(args.board, args.id, args.token, args.leaseMs);
        return {
          value: { task: claim, token: claim.token },
          text: `Task ${args.id} stays yours until ${new Date(claim.leaseExpiresAt).toISOString()}.`,
        };
      }),
  );

  server.registerTool(
    'complete_task',
    {
      description:
        'Complete a task you claimed, with its result. Accepted only from the current claim while its lease runs: a stale token is refused (fenced or lease_expired), so each task is completed exactly once. A retried call of a completion that went through answers duplicate=true.',
      inputSchema: {
        board: name('the board'),
        id: name('the task id'),
        token,
        result: z.unknown().optional().describe('the task result: any JSON value'),
      },
    },
    (args) =>
      answer(async () => {
        const duplicate = await tasks.completeTask(
          args.board,
          args.id,
          args.token,
          args.result ?? null,
        );
        return {
          value: { completed: true, duplicate },
          text: duplicate
            ? `Task ${args.id} was already completed by this claim; nothing changed.`
            : `Task ${args.id} is done.`,
        };
      }),
  );

  server.registerTool(
    'release_task',
    {
      description:
        'Give back a task you claimed without completing it; it becomes claimable again at its place in post order.',
      inputSchema: {
        board: name('the board'),
        id: name('the task id'),
        token,
        reason: name('why').optional(),
      },
    },
    (args) =>
      answer(async () => {
        await tasks.releaseTask(args.board, args.id, args.token, args.reason);
        return { value: { released: true }, text: `Task ${args.id} is open again.` };
      }),
  );

  server.registerTool(
    'list_tasks',
    {
      description:
        'The tasks of a board in post order (optionally only open, claimed or done ones) and the counts of each state. Linearizable: reflects every call answered before it.',
      inputSchema: {
        board: name('the board'),
        state: taskState.optional(),
        limit: z.number().int().min(1).max(10_000).optional().describe('default 100'),
      },
    },
    (args) =>
      answer(async () => {
        const listed = await tasks.listTasks(args.board, args.state, args.limit ?? 100);
        const { open, claimed, done } = listed.counts;
        return {
          value: listed,
          text: `Board ${args.board}: ${open} open, ${claimed} claimed, ${done} done; ${listed.tasks.length} listed.`,
        };
      }),
  );
}

export function registerLockTools(server: McpServer, backend: Backend): void {
  const locks = backend.coordination;
  server.registerTool(
    'acquire_lock',
    {
      description:
        'Acquire a named lock under a lease. Returns a fencing token that strictly increases from grant to grant: send it with every write the lock protects so the storage can refuse an older holder. Without waitMs it fails at once (lock_busy) when held; with waitMs it waits in a FIFO queue.',
      inputSchema: {
        name: name('the lock'),
        owner: name('who holds it: your agent id'),
        leaseMs: durationMs('how long the lease lasts unless renewed'),
        waitMs: waitMs('in line'),
      },
    },
    (args) =>
      answer(async () => {
        const lease = await locks.acquireLock(args.name, args.owner, args.leaseMs, args.waitMs);
        return {
          value: { ...lease },
          text: `You hold lock ${lease.name} with token ${lease.token} until ${new Date(lease.expiresAt).toISOString()}.`,
        };
      }),
  );

  server.registerTool(
    'renew_lock',
    {
      description:
        'Extend your lease on a lock by leaseMs from now; refused if it is no longer yours.',
      inputSchema: { name: name('the lock'), token, leaseMs: durationMs('the new lease') },
    },
    (args) =>
      answer(async () => {
        const lease = await locks.renewLock(args.name, args.token, args.leaseMs);
        return {
          value: { ...lease },
          text: `Lock ${lease.name} stays yours (token ${lease.token}) until ${new Date(lease.expiresAt).toISOString()}.`,
        };
      }),
  );

  server.registerTool(
    'release_lock',
    {
      description:
        'Release a lock you hold. Refused (fenced or lease_expired) if your lease is no longer the current one.',
      inputSchema: { name: name('the lock'), token },
    },
    (args) =>
      answer(async () => {
        await locks.releaseLock(args.name, args.token);
        return { value: { released: true }, text: `Lock ${args.name} is released.` };
      }),
  );
}

export function registerPresenceTools(server: McpServer, backend: Backend): void {
  const presence = backend.coordination;
  server.registerTool(
    'join',
    {
      description:
        'Join the presence group as an agent: others see you in `members` until you leave or miss heartbeats for ttlMs. Call heartbeat more often than ttlMs.',
      inputSchema: {
        agent: name('your agent id'),
        ttlMs: z
          .number()
          .int()
          .min(10)
          .max(86_400_000)
          .describe('expire after this long without a heartbeat, in ms'),
        meta: z
          .unknown()
          .optional()
          .describe('anything others should see about you (JSON, at most 4 KiB)'),
      },
    },
    (args) =>
      answer(async () => {
        const member = await presence.join(args.agent, args.ttlMs, args.meta ?? null);
        return {
          value: { ...member },
          text: `${member.agent} joined (incarnation ${member.incarnation}); heartbeat before ${new Date(member.expiresAt).toISOString()}.`,
        };
      }),
  );

  server.registerTool(
    'heartbeat',
    {
      description:
        'Tell the group you are alive. Refused with not_member if you expired or left: then join again.',
      inputSchema: {
        agent: name('your agent id'),
        incarnation: z
          .number()
          .int()
          .min(1)
          .optional()
          .describe('from join (default: the current one)'),
      },
    },
    (args) =>
      answer(async () => {
        const member = await presence.heartbeat(args.agent, args.incarnation);
        return {
          value: { ...member },
          text: `${member.agent} is alive until ${new Date(member.expiresAt).toISOString()}.`,
        };
      }),
  );

  server.registerTool(
    'leave',
    {
      description: 'Leave the presence group.',
      inputSchema: {
        agent: name('your agent id'),
        incarnation: z.number().int().min(1).optional(),
      },
    },
    (args) =>
      answer(async () => {
        const left = await presence.leave(args.agent, args.incarnation);
        return {
          value: { left },
          text: left ? `${args.agent} left.` : `${args.agent} was no longer a member.`,
        };
      }),
  );

  server.registerTool(
    'members',
    {
      description: 'The agents alive now, in join order, with what they said about themselves.',
      inputSchema: {},
    },
    () =>
      answer(async () => {
        const members = await presence.members();
        return {
          value: { members },
          text:
            members.length === 0
              ? 'No agent is present.'
              : `${members.length} present: ${members.map((member) => member.agent).join(', ')}.`,
        };
      }),
  );

  server.registerTool(
    'arrive_barrier',
    {
      description:
        'Arrive at a named barrier and wait until `parties` distinct agents have arrived in the same generation; then every one of them returns. On timeout your arrival is withdrawn.',
      inputSchema: {
        name: name('the barrier'),
        parties: z.number().int().min(1).max(1_000).describe('how many agents complete it'),
        agent: name('your agent id'),
        timeoutMs: z.number().int().min(1).max(60_000).describe('longest wait, in ms'),
      },
    },
    (args) =>
      answer(async () => {
        const passed = await presence.arrive(args.name, args.parties, args.agent, args.timeoutMs);
        return {
          value: passed,
          text: `Barrier ${args.name} passed (generation ${passed.generation}) with ${passed.arrived.join(', ')}.`,
        };
      }),
  );
}
