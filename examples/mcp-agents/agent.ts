/**
 * A scripted agent — what an LLM agent would do with the tools, without the LLM: claim a
 * task, work it out, complete it with its fencing token, announce it with a keyed
 * `broadcast`, and every few tasks write its results to the results store under the
 * `results` lock's fencing token. It stops once the board counts every task done.
 *
 * Two agents are also made to go stale once, as a paused process would:
 * - `staleLock`: takes the lock with a short lease and sleeps until a newer holder has
 *   written; its write must then be refused by the store and its release by the lock;
 * - `staleClaim`: claims a task with a short lease and sleeps until another agent has
 *   claimed it again; its completion must then be refused `fenced`.
 */
import { createHash } from 'node:crypto';
import type { McpLink } from './link.ts';
import type { ResultsStore } from './store.ts';

export interface AgentSettings {
  readonly name: string;
  readonly board: string;
  readonly taskCount: number;
  readonly leaseMs: number;
  readonly flushEvery: number;
  readonly workMs: number;
  readonly staleLock: boolean;
  readonly staleClaim: boolean;
}

/** What an agent saw, for the checks. */
export interface AgentRecord {
  /** Tasks this agent's claims completed (each call made once, retries inside it). */
  readonly completed: string[];
  /** Completions answered duplicate=true: a call sent again whose first had gone through. */
  duplicates: number;
  /** Completions refused, by code (a lease that ran out while the cluster had no leader). */
  readonly refused: Record<string, number>;
  staleLockWrite: { token: number; admitted: boolean; release: string } | null;
  staleClaim: { id: string; token: number; answer: string } | null;
}

const lockName = 'results';
const shortLeaseMs = 300;
const staleWaitMs = 60_000;
const pollMs = 50;

/** The work: the SHA-256 of the task's input, as hex. */
export function workOut(input: unknown): string {
  return createHash('sha256').update(JSON.stringify(input)).digest('hex').slice(0, 32);
}

export function doneTopic(board: string): string {
  return `done/${board}`;
}

export class ScriptedAgent {
  readonly record: AgentRecord = {
    completed: [],
    duplicates: 0,
    refused: {},
    staleLockWrite: null,
    staleClaim: null,
  };
  private pending: { id: string; result: string }[] = [];
  /** Set while the stale-lock agent holds its short lease: the run writes over it. */
  staleLockToken: number | null = null;

  constructor(
    readonly settings: AgentSettings,
    readonly link: McpLink,
    private readonly store: ResultsStore,
  ) {}

  async run(): Promise<void> {
    const { name, board } = this.settings;
    for (let claims = 0; ; claims++) {
      const stale = this.settings.staleClaim && this.record.staleClaim === null && claims === 2;
      const leaseMs = stale ? shortLeaseMs : this.settings.leaseMs;
      const claimed = await this.link.must('claim_task', {
        board,
        agent: name,
        leaseMs,
        waitMs: 500,
      });
      const task = claimed.task as { id: string; input: unknown; token: number } | null;
      if (task === null) {
        if (await this.allDone()) break;
        continue;
      }
      if (stale) {
        await this.goStaleOnClaim(task);
        continue;
      }
      await pause(this.settings.workMs);
      await this.complete(task, workOut(task.input));
      if (this.pending.length >= this.settings.flushEvery) await this.flush();
    }
    await this.flush();
  }

  private async complete(task: { id: string; token: number }, result: string): Promise<void> {
    const { board, name } = this.settings;
    const answer = await this.link.call('complete_task', {
      board,
      id: task.id,
      token: task.token,
      result,
    });
    if (!answer.ok) {
      this.record.refused[answer.error] = (this.record.refused[answer.error] ?? 0) + 1;
      return;
    }
    // duplicate=true: this call was sent again after its first answer was lost, and the
    // first had gone through; either way this claim completed the task, once.
    if (answer.value.duplicate === true) this.record.duplicates += 1;
    this.record.completed.push(task.id);
    // Announced once per task however often this call is retried: the key makes it so.
    await this.link.must('broadcast', {
      payload: { task: task.id, agent: name, result },
      topic: doneTopic(board),
      key: `${board}/done/${task.id}`,
    });
    this.pending.push({ id: task.id, result });
  }

  /** Writes the pending results under the lock; the stale-lock agent goes stale first. */
  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    if (this.settings.staleLock && this.record.staleLockWrite === null) await this.goStaleOnLock();
    const lease = await this.link.must('acquire_lock', {
      name: lockName,
      owner: this.settings.name,
      leaseMs: this.settings.leaseMs,
      waitMs: 30_000,
    });
    const token = lease.token as number;
    if (this.store.write(this.settings.name, token, this.pending)) this.pending = [];
    await this.link.call('release_lock', { name: lockName, token });
  }

  private async goStaleOnLock(): Promise<void> {
    const lease = await this.link.must('acquire_lock', {
      name: lockName,
      owner: this.settings.name,
      leaseMs: shortLeaseMs,
      waitMs: 30_000,
    });
    const token = lease.token as number;
    this.staleLockToken = token;
    // Paused: meanwhile the lease runs out and a newer holder writes.
    await until(() => this.store.highestToken() > token, 'a newer lock holder to write');
    const admitted = this.store.write(this.settings.name, token, this.pending);
    if (admitted) this.pending = [];
    const release = await this.link.call('release_lock', { name: lockName, token });
    this.record.staleLockWrite = {
      token,
      admitted,
      release: release.ok ? 'released' : release.error,
    };
  }

  private async goStaleOnClaim(task: { id: string; token: number; input: unknown }) {
    const { board } = this.settings;
    // Paused past the lease: another agent claims the task again.
    await until(async () => {
      const listed = await this.link.must('list_tasks', { board, limit: 10_000 });
      const now = (listed.tasks as { id: string; token: number | null }[]).find(
        (item) => item.id === task.id,
      );
      return now !== undefined && now.token !== task.token;
    }, `task ${task.id} to be claimed again`);
    const answer = await this.link.call('complete_task', {
      board,
      id: task.id,
      token: task.token,
      result: workOut(task.input),
    });
    this.record.staleClaim = {
      id: task.id,
      token: task.token,
      answer: answer.ok ? 'accepted' : answer.error,
    };
  }

  private async allDone(): Promise<boolean> {
    const listed = await this.link.must('list_tasks', { board: this.settings.board, limit: 1 });
    return (listed.counts as { done: number }).done >= this.settings.taskCount;
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resume) => setTimeout(resume, ms));
}

/** Polls `condition` until it holds; fails the agent after `staleWaitMs`. */
async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadlineMs = Date.now() + staleWaitMs;
  while (!(await condition())) {
    if (Date.now() > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await pause(pollMs);
  }
}
