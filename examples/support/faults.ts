/**
 * The node fault the examples inject: once a share of the work is answered, SIGKILL the
 * leader (a crash: no shutdown, no flush beyond what was fsynced), and restart it on its
 * data directory once more work is answered — or at the end, so that every node is back for
 * the final checks. Only on a cluster this process started; otherwise it says so.
 */
import type { Cluster } from './cluster.ts';
import { type Check, check, type Say } from './report.ts';

export interface CrashPlan {
  readonly cluster: Cluster;
  /** False skips the fault (the run says so in its events). */
  readonly enabled: boolean;
  /** How much work the run has in all, and how much is answered so far. */
  readonly totalCount: number;
  readonly answeredCount: () => number;
  /** Shares of `totalCount` answered before the kill and before the restart. */
  readonly killAtFraction: number;
  readonly restartAtFraction: number;
  /** Where the plan writes what it did, in order. */
  readonly events: string[];
  readonly say: Say;
}

export interface ScheduledCrash {
  /** Call once the work is done: waits for the kill (if begun) and the restart. */
  finish(): Promise<void>;
  /** How much work was answered when the leader was gone, and when it was back. */
  readonly record: CrashRecord;
}

export interface CrashRecord {
  readonly totalCount: number;
  killedAfterCount: number | null;
  restartedAfterCount: number | null;
}

/** No run of an example takes this long; past it the schedule gives up waiting. */
const answersWaitMsMax = 10 * 60_000;
const answersPollMs = 20;

export function scheduleLeaderCrash(plan: CrashPlan): ScheduledCrash {
  const { cluster, events } = plan;
  const record: CrashRecord = {
    totalCount: plan.totalCount,
    killedAfterCount: null,
    restartedAfterCount: null,
  };
  if (!plan.enabled || !cluster.ownsNodes) {
    events.push(
      cluster.ownsNodes
        ? 'no fault injected (asked)'
        : 'no fault injected: the cluster is not ours',
    );
    return { finish: async () => undefined, record };
  }
  const startedMs = Date.now();
  const note = (line: string) => {
    events.push(`${line} after ${plan.answeredCount()} answers (${Date.now() - startedMs} ms)`);
    plan.say(events.at(-1) as string);
  };
  const answered = (fraction: number) =>
    waitForAnswers(plan.answeredCount, Math.floor(plan.totalCount * fraction));
  let killing: Promise<string> | null = null;
  let restarting: Promise<void> | null = null;
  const restart = (id: string) => {
    if (restarting === null) {
      note(`restarting ${id}`);
      restarting = cluster.restart(id).then(() => {
        record.restartedAfterCount = plan.answeredCount();
        note(`restarted ${id} (it knows a leader)`);
      });
    }
    return restarting;
  };
  const allAnswered = answered(1);
  const schedule = (async () => {
    await answered(plan.killAtFraction);
    killing = killLeader(cluster).then((id) => {
      record.killedAfterCount = plan.answeredCount();
      note(`SIGKILL leader ${id}`);
      return id;
    });
    const id = await killing;
    await Promise.race([answered(plan.restartAtFraction), allAnswered]);
    await restart(id);
  })();
  // Both are awaited by finish(); these handlers only keep an early failure from crashing
  // the process before then.
  schedule.catch(() => undefined);
  allAnswered.catch(() => undefined);
  return {
    record,
    finish: async () => {
      await Promise.race([schedule, allAnswered]);
      if (killing !== null) await restart(await killing);
      await schedule;
    },
  };
}

async function killLeader(cluster: Cluster): Promise<string> {
  const id = (await cluster.leaderId()) ?? (cluster.ids[0] as string);
  await cluster.kill(id, 'SIGKILL');
  return id;
}

/** Polls the answer count; bounded, since every call of the work ends within its timeout. */
async function waitForAnswers(answeredCount: () => number, count: number): Promise<void> {
  const deadlineMs = Date.now() + answersWaitMsMax;
  while (answeredCount() < count) {
    if (Date.now() > deadlineMs) throw new Error(`fewer than ${count} calls were answered`);
    await new Promise((resume) => setTimeout(resume, answersPollMs));
  }
}

/**
 * The report's check that the crash happened as asked: the leader killed while work was
 * still unanswered (mid-run), and restarted; or, when not asked, no kill at all.
 */
export function crashCheck(cluster: Cluster, enabled: boolean, record: CrashRecord): Check {
  const name = 'fault injected mid-run as asked';
  if (!enabled || !cluster.ownsNodes) {
    const ok = record.killedAfterCount === null;
    return check(name, ok, ok ? 'no fault asked or possible' : 'a node was killed unasked');
  }
  const killed = record.killedAfterCount;
  const midRun = killed !== null && killed < record.totalCount;
  const restarted = record.restartedAfterCount !== null;
  return check(
    name,
    midRun && restarted,
    `leader SIGKILLed after ${killed ?? 'never'} of ${record.totalCount} answers, restarted ${restarted ? `after ${record.restartedAfterCount}` : 'never'}`,
  );
}
