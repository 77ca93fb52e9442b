/**
 * One agent of the task board example, as its own process (forked by ./run.ts with its
 * settings as JSON in argv[2]): its own SDK client and board replica, looping next() → work
 * → complete(), and telling the parent over IPC what it claimed and whether each completion
 * was accepted. A long job renews its lease. The parent's `stop` (or the parent going away)
 * ends the loop. An agent told to `stallAtClaim` n reports its n-th claim and then stalls,
 * holding the claim, so that the parent can SIGKILL it with a task in hand.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { AgentError, type Claim, TaskBoard } from '../../src/agents/index.ts';
import { connect } from '../../src/client/index.ts';
import { type AgentMessage, type AgentSettings, parseAgentSettings, resultOf } from './protocol.ts';

/** How long one next() waits before the loop looks at `stop` again. */
const nextTimeoutMs = 5_000;

function tell(message: AgentMessage): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const settings = parseAgentSettings(process.argv[2]);
  const stop = new AbortController();
  process.on('message', (message: { type?: string }) => {
    if (message?.type === 'stop') stop.abort();
  });
  // The parent is gone (it crashed or was killed): so is the reason to work.
  process.on('disconnect', () => stop.abort());
  const client = connect({ endpoints: settings.endpoints, requestTimeoutMs: 3_000 });
  const board = await TaskBoard.open({ log: client, name: settings.boardName });
  tell({ type: 'ready', agentId: settings.agentId });
  let claimCount = 0;
  try {
    while (!stop.signal.aborted) {
      const claim = await nextClaim(board, settings, stop.signal);
      if (claim === null) continue;
      claimCount += 1;
      tell({
        type: 'claimed',
        agentId: settings.agentId,
        taskId: claim.taskId,
        token: claim.token,
        attempt: claim.attempt,
      });
      if (claimCount === settings.stallAtClaim) {
        await stall(claim, settings, stop.signal);
        continue;
      }
      await work(board, claim, settings);
    }
  } finally {
    await board.close();
    client.close();
  }
}

/** The next claim, or null when next() timed out or was stopped (the loop checks why). */
async function nextClaim(
  board: TaskBoard,
  settings: AgentSettings,
  signal: AbortSignal,
): Promise<Claim | null> {
  try {
    return await board.next(settings.agentId, {
      leaseMs: settings.leaseMs,
      timeoutMs: nextTimeoutMs,
      signal,
    });
  } catch (error) {
    if (error instanceof AgentError && (error.code === 'timeout' || error.code === 'aborted'))
      return null;
    throw error;
  }
}

/** The job: a hash of the task's input after a little simulated work, lease renewed. */
async function work(board: TaskBoard, claim: Claim, settings: AgentSettings): Promise<void> {
  let held = claim;
  const renewEveryMs = Math.max(1, Math.floor(settings.leaseMs / 3));
  const renewals = setInterval(() => {
    board.renew(held, { leaseMs: settings.leaseMs }).then(
      (outcome) => {
        if (outcome.ok) held = outcome.claim;
      },
      () => undefined, // the completion below tells whether the claim was kept
    );
  }, renewEveryMs);
  try {
    await delay(settings.workMs);
    const result = resultOf(claim.task);
    const outcome = await board.complete(held, result);
    tell({
      type: 'completed',
      agentId: settings.agentId,
      taskId: claim.taskId,
      token: claim.token,
      accepted: outcome.ok,
      reason: outcome.ok ? null : outcome.reason,
    });
  } finally {
    clearInterval(renewals);
  }
}

/** Holds the claim without renewing, until the parent kills this process. */
async function stall(claim: Claim, settings: AgentSettings, signal: AbortSignal): Promise<void> {
  tell({ type: 'stalling', agentId: settings.agentId, taskId: claim.taskId, token: claim.token });
  await new Promise<void>((resolve) =>
    signal.addEventListener('abort', () => resolve(), { once: true }),
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    tell({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  },
);
