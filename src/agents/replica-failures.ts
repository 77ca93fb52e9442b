/**
 * How the log's failures read in the agents' terms: what a replica's submit, read or follow
 * loop throws when the log below it (SDK client, in-process node, memory log) failed.
 */
import { AgentError } from './errors.ts';

/**
 * An append that failed, in the agents' terms: refused input is the caller's to fix; any
 * other failure leaves the outcome open, since the log may still apply the command.
 */
export function appendFailure(error: unknown): AgentError {
  if (error instanceof AgentError) return error;
  const code = String((error as { code?: unknown })?.code ?? '').toLowerCase();
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'closed') return new AgentError('closed', message, {}, { cause: error });
  if (code === 'invalid_argument' || code === 'payload_too_large') {
    return new AgentError('invalid_argument', message, {}, { cause: error });
  }
  return new AgentError(
    'unknown_outcome',
    `the log did not confirm the command (${message}); it may still be applied: read the state to find out`,
    {},
    { cause: error },
  );
}

/** A read index the log could not give: the read did not get there in time, or closed. */
export function readIndexFailure(error: unknown): AgentError {
  if (error instanceof AgentError) return error;
  const code = String((error as { code?: unknown })?.code ?? '').toLowerCase();
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'closed') return new AgentError('closed', message, {}, { cause: error });
  return new AgentError('timeout', `the log gave no read index (${message})`, {}, { cause: error });
}

/** Why following stopped, in the agents' terms. */
export function stopReason(error: unknown, appliedIndex: number): AgentError {
  if (error instanceof AgentError) return error;
  const code = (error as { code?: unknown })?.code;
  if (code === 'compacted') {
    return new AgentError(
      'snapshot_too_old',
      `the cluster no longer keeps position ${appliedIndex + 1}, which this replica needs next: start it from a newer snapshot`,
      { appliedIndex },
      { cause: error },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new AgentError('stopped', `following the log failed: ${message}`, {}, { cause: error });
}
