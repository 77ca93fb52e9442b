/**
 * The agents' primitives (abcast/agents) behind the MCP tools: task boards by name, one set
 * of locks, one presence group and one set of barriers, all named by the server's `space`,
 * opened on first use over the server's SDK client and kept open, so each replica follows
 * its topic once. This file is the only one that reads the agents' API shapes; the tools
 * see plain views whose positions are called `position`.
 *
 * Refusals the agents report as outcomes (a claim superseded, a lease run out) become
 * ToolFailures here, each with a sentence telling the agent what to do next.
 */
import {
  AgentError,
  Barrier,
  type Claim,
  type ClaimLostReason,
  type Lease,
  Locks,
  Presence,
  TaskBoard,
  type TaskStatus,
  type TaskView,
} from '../agents/index.ts';
import type { Client } from '../client/index.ts';
import { ToolFailure } from './tool-errors.ts';

/** Boards (and the locks, presence and barriers) one server keeps open at most. */
export const openedMax = 256;

export interface ClaimView {
  readonly id: string;
  readonly input: unknown;
  /** The fencing token: pass it to complete_task, renew_task, release_task. */
  readonly token: number;
  /** When the lease ends, in log time (ms since the epoch). */
  readonly leaseExpiresAt: number;
  readonly attempt: number;
}

export interface TaskItem {
  readonly id: string;
  readonly input: unknown;
  readonly state: TaskStatus;
  readonly postedPosition: number;
  readonly agent: string | null;
  readonly token: number | null;
  readonly leaseExpiresAt: number | null;
  readonly attempts: number;
  readonly result: unknown;
  readonly completedAt: number | null;
}

export interface LeaseView {
  readonly name: string;
  readonly owner: string;
  readonly token: number;
  readonly expiresAt: number;
}

export interface MemberView {
  readonly agent: string;
  readonly incarnation: number;
  readonly meta: unknown;
  readonly joinedAt: number;
  readonly lastBeatAt: number;
  readonly expiresAt: number;
}

/** What the tools open: each follows its topic through a replica until closed. */
interface Primitive {
  readonly replica: { readonly failure: unknown };
  close(): Promise<void>;
}

export class Coordination {
  /** By `board/<name>`, `locks`, `presence`, `barrier`: opened once, reopened if stopped. */
  private readonly opened = new Map<string, Promise<Primitive>>();

  constructor(
    private readonly client: Client,
    /** Names the locks set, the presence group and the barriers set. */
    readonly space: string,
  ) {}

  // ------------------------------------------------------------ task boards

  async postTask(board: string, id: string, input: unknown): Promise<string> {
    return (await this.board(board)).post(input, { id });
  }

  async claimTask(
    board: string,
    agent: string,
    leaseMs: number,
    waitMs: number | undefined,
  ): Promise<ClaimView | null> {
    const opened = await this.board(board);
    if (waitMs === undefined || waitMs === 0) {
      const claim = await opened.claim(agent, { leaseMs });
      return claim === null ? null : claimView(claim);
    }
    try {
      return claimView(await opened.next(agent, { leaseMs, timeoutMs: waitMs }));
    } catch (error) {
      if (error instanceof AgentError && error.code === 'timeout') return null;
      throw error;
    }
  }

  /** True when this claim had completed the task already (a retried call). */
  async completeTask(board: string, id: string, token: number, result: unknown): Promise<boolean> {
    const outcome = await (await this.board(board)).complete(claimRef(id, token), result);
    if (outcome.ok) return false;
    if (outcome.reason === 'already_done') return true;
    throw claimLost(board, id, token, outcome.reason);
  }

  async renewTask(board: string, id: string, token: number, leaseMs: number): Promise<ClaimView> {
    const outcome = await (await this.board(board)).renew(claimRef(id, token), { leaseMs });
    if (outcome.ok) return claimView(outcome.claim);
    throw claimLost(board, id, token, outcome.reason);
  }

  async releaseTask(board: string, id: string, token: number, reason?: string): Promise<void> {
    const outcome = await (await this.board(board)).release(claimRef(id, token), reason);
    if (!outcome.ok) throw claimLost(board, id, token, outcome.reason);
  }

  async listTasks(
    board: string,
    state: TaskStatus | undefined,
    limit: number,
  ): Promise<{ tasks: TaskItem[]; counts: { open: number; claimed: number; done: number } }> {
    const opened = await this.board(board);
    const tasks = await opened.list({ ...(state === undefined ? {} : { status: state }), limit });
    const counts = await opened.counts();
    return { tasks: tasks.map(taskItem), counts };
  }

  private board(name: string): Promise<TaskBoard> {
    return this.open(`board/${name}`, () => TaskBoard.open({ log: this.client, name }));
  }

  /**
   * The primitive under `key`, opened on first use. One whose replica stopped (the log
   * could not go on: positions no longer kept, a refused snapshot) is closed and opened
   * afresh, so one failure does not refuse every later call.
   */
  private async open<T extends Primitive>(key: string, start: () => Promise<T>): Promise<T> {
    const known = this.opened.get(key) as Promise<T> | undefined;
    if (known !== undefined) {
      const current = await known.catch(() => null);
      if (current !== null && current.replica.failure === null) return current;
      if (this.opened.get(key) === known) this.opened.delete(key);
      void current?.close().catch(() => undefined);
    }
    const again = this.opened.get(key) as Promise<T> | undefined;
    if (again !== undefined) return again;
    if (this.opened.size >= openedMax) {
      throw new ToolFailure(
        'too_many_boards',
        `This MCP server has ${openedMax} boards open, its limit; use one of the boards already in use.`,
        { boardsMax: openedMax },
      );
    }
    const opening = start();
    this.opened.set(key, opening);
    opening.catch(() => {
      if (this.opened.get(key) === opening) this.opened.delete(key);
    });
    return opening;
  }

  // ------------------------------------------------------------ locks

  async acquireLock(
    name: string,
    owner: string,
    leaseMs: number,
    waitMs: number | undefined,
  ): Promise<LeaseView> {
    const locks = await this.openLocks();
    if (waitMs === undefined || waitMs === 0) {
      const lease = await locks.tryAcquire(name, { owner, ttlMs: leaseMs });
      if (lease !== null) return leaseView(lease);
      const holder = await locks.holder(name);
      throw new ToolFailure(
        'lock_busy',
        `Lock ${name} is held by ${holder?.owner ?? 'another owner'} until ${isoTime(holder?.expiresAt)}; call acquire_lock again with waitMs to wait in line.`,
        { name, holder: holder?.owner ?? null, expiresAt: holder?.expiresAt ?? null },
      );
    }
    try {
      return leaseView(await locks.acquire(name, { owner, ttlMs: leaseMs, timeoutMs: waitMs }));
    } catch (error) {
      if (!(error instanceof AgentError && error.code === 'timeout')) throw error;
      throw new ToolFailure(
        'timeout',
        `Lock ${name} was not granted within ${waitMs} ms; you left the queue. Call acquire_lock again to wait again.`,
        { name, waitMs },
      );
    }
  }

  async renewLock(name: string, token: number, leaseMs: number): Promise<LeaseView> {
    const locks = await this.openLocks();
    const lease = await locks.renew(leaseRef(name, token), { ttlMs: leaseMs });
    if (lease !== null) return leaseView(lease);
    throw await this.lockLost(locks, name, token);
  }

  async releaseLock(name: string, token: number): Promise<void> {
    const locks = await this.openLocks();
    if (await locks.release(leaseRef(name, token))) return;
    throw await this.lockLost(locks, name, token);
  }

  private async lockLost(locks: Locks, name: string, token: number): Promise<ToolFailure> {
    const holder = await locks.holder(name);
    if (holder !== null && holder.token > token) {
      return new ToolFailure(
        'fenced',
        `Your lease on lock ${name} (token ${token}) was superseded: ${holder.owner} holds it now with token ${holder.token}. Stop writing under token ${token}; acquire the lock again if you still need it.`,
        { name, token, holder: holder.owner, holderToken: holder.token },
      );
    }
    return new ToolFailure(
      'lease_expired',
      `Your lease on lock ${name} (token ${token}) has ended (it expired or was released); writes under it may be refused. Acquire the lock again if you still need it.`,
      { name, token },
    );
  }

  private openLocks(): Promise<Locks> {
    return this.open('locks', () => Locks.open({ log: this.client, name: this.space }));
  }

  // ------------------------------------------------------------ presence

  async join(agent: string, ttlMs: number, meta: unknown): Promise<MemberView> {
    const presence = await this.openPresence();
    const result = await presence.replica.submit({ op: 'join', agentId: agent, ttlMs, meta });
    const outcome = result.outcome;
    if (outcome.status === 'already_member') {
      throw new ToolFailure(
        'already_member',
        `${agent} is already a member (incarnation ${outcome.incarnation}); call heartbeat to stay alive, or leave first and join again.`,
        { agent, incarnation: outcome.incarnation },
      );
    }
    if (outcome.status !== 'joined') {
      throw new ToolFailure('presence_full', `Presence group ${this.space} is full; try later.`, {
        agent,
      });
    }
    return this.member(presence, agent, outcome.incarnation);
  }

  async heartbeat(agent: string, incarnation: number | undefined): Promise<MemberView> {
    const presence = await this.openPresence();
    const current = incarnation ?? (await this.incarnationOf(presence, agent));
    const result = await presence.replica.submit({
      op: 'beat',
      agentId: agent,
      incarnation: current,
    });
    if (result.outcome.status !== 'alive') throw notMember(agent);
    return this.member(presence, agent, current);
  }

  async leave(agent: string, incarnation: number | undefined): Promise<boolean> {
    const presence = await this.openPresence();
    const current = incarnation ?? (await this.incarnationOf(presence, agent));
    const result = await presence.replica.submit({
      op: 'leave',
      agentId: agent,
      incarnation: current,
    });
    return result.outcome.status === 'left';
  }

  /** The members alive now: a tick first decides every expiry due in log time. */
  async members(): Promise<MemberView[]> {
    const presence = await this.openPresence();
    return (await presence.refresh()).map(memberView);
  }

  private async incarnationOf(presence: Presence, agent: string): Promise<number> {
    const incarnation = await presence.replica.read(
      (state) => state.members.get(agent)?.incarnation,
    );
    if (incarnation === undefined) throw notMember(agent);
    return incarnation;
  }

  private member(presence: Presence, agent: string, incarnation: number): MemberView {
    const member = presence.members().find((one) => one.agentId === agent);
    if (member === undefined || member.incarnation !== incarnation) throw notMember(agent);
    return memberView(member);
  }

  private openPresence(): Promise<Presence> {
    return this.open('presence', () => Presence.open({ log: this.client, name: this.space }));
  }

  // ------------------------------------------------------------ barriers

  async arrive(
    name: string,
    parties: number,
    agent: string,
    timeoutMs: number,
  ): Promise<{ generation: number; arrived: string[] }> {
    const barrier = await this.open('barrier', () =>
      Barrier.open({ log: this.client, name: this.space }),
    );
    try {
      const passed = await barrier.arrive(name, agent, { parties, timeoutMs });
      return { generation: passed.generation, arrived: [...passed.arrived] };
    } catch (error) {
      if (!(error instanceof AgentError)) throw error;
      if (error.code === 'timeout') {
        const arrived = barrier.status(name).arrived;
        throw new ToolFailure(
          'timeout',
          `Only ${arrived.length} of ${parties} parties had arrived at barrier ${name} after ${timeoutMs} ms; your arrival was withdrawn. Call arrive_barrier again to wait again.`,
          { name, parties, arrived: [...arrived] },
        );
      }
      if (error.details.reason === 'parties_mismatch') {
        throw new ToolFailure(
          'parties_mismatch',
          `Barrier ${name} is waiting for ${String(error.details.parties)} parties in this generation, not ${parties}; call again with parties ${String(error.details.parties)}.`,
          { name, parties: error.details.parties },
        );
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    const opened = [...this.opened.values()];
    this.opened.clear();
    await Promise.all(
      opened.map(async (opening) =>
        (await opening.catch(() => null))?.close().catch(() => undefined),
      ),
    );
  }
}

function notMember(agent: string): ToolFailure {
  return new ToolFailure(
    'not_member',
    `${agent} is not a member (it left, or expired after missing heartbeats); call join again.`,
    { agent },
  );
}

function claimLost(board: string, id: string, token: number, reason: ClaimLostReason): ToolFailure {
  switch (reason) {
    case 'superseded':
      return new ToolFailure(
        'fenced',
        `Your claim on task ${id} (token ${token}) was superseded by a newer claim; stop working on it and do not publish its result. Call claim_task for another task.`,
        { board, id, token },
      );
    case 'lease_expired':
      return new ToolFailure(
        'lease_expired',
        `Your lease on task ${id} (token ${token}) ran out before this call; the task is open again. Call claim_task to get a task, with a new token.`,
        { board, id, token },
      );
    case 'already_done':
      return new ToolFailure('already_done', `Task ${id} is already done; nothing to do.`, {
        board,
        id,
        token,
      });
    case 'unknown_task':
      return new ToolFailure(
        'unknown_task',
        `Board ${board} has no task ${id} (never posted, or completed long ago); check the id with list_tasks.`,
        { board, id },
      );
  }
}

/** The claim a tool call names by (task id, token): all the board reads of it. */
function claimRef(id: string, token: number): Claim {
  return { taskId: id, token, task: null, agentId: '', leaseExpiresAt: 0, attempt: 0 };
}

function leaseRef(name: string, token: number): Lease {
  return { lock: name, token, owner: '', grantedAt: 0, expiresAt: 0 };
}

function claimView(claim: Claim): ClaimView {
  return {
    id: claim.taskId,
    input: claim.task,
    token: claim.token,
    leaseExpiresAt: claim.leaseExpiresAt,
    attempt: claim.attempt,
  };
}

function taskItem(task: TaskView): TaskItem {
  return {
    id: task.id,
    input: task.task,
    state: task.status,
    postedPosition: task.postedPosition,
    agent: task.agentId,
    token: task.token,
    leaseExpiresAt: task.leaseExpiresAt,
    attempts: task.attempts,
    result: task.result,
    completedAt: task.completedAt,
  };
}

function leaseView(lease: Lease): LeaseView {
  return { name: lease.lock, owner: lease.owner, token: lease.token, expiresAt: lease.expiresAt };
}

function memberView(member: {
  readonly agentId: string;
  readonly incarnation: number;
  readonly meta: unknown;
  readonly joinedAt: number;
  readonly lastBeatAt: number;
  readonly expiresAt: number;
}): MemberView {
  return {
    agent: member.agentId,
    incarnation: member.incarnation,
    meta: member.meta,
    joinedAt: member.joinedAt,
    lastBeatAt: member.lastBeatAt,
    expiresAt: member.expiresAt,
  };
}

function isoTime(ms: number | undefined): string {
  return ms === undefined ? 'its lease ends' : new Date(ms).toISOString();
}
