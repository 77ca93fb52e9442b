import { AbcastError } from '../util/errors.ts';

/**
 * The agents' one error type. Callers match on `code`, never on `message`:
 * - `rejected`: the state machine refused the command (its reducer threw, or the command
 *   did not parse); every replica refused it the same way, so it changed nothing anywhere
 *   unless the reducer mutated the state before throwing.
 * - `non_deterministic`: the determinism guard saw the reducer give two different answers
 *   for one command; the replica stopped, since its state can no longer be trusted.
 * - `snapshot_too_old`: the cluster no longer keeps the positions this replica needs;
 *   give it a newer snapshot.
 * - `unknown_outcome`: the command may or may not have been applied (the log could not say
 *   where it went); read the state to find out.
 * - `timeout`, `aborted` (the caller's signal), `closed`, `invalid_argument`,
 *   `corrupt_snapshot`, `stopped` (the replica stopped because of an earlier error, given
 *   as `cause`).
 */
export type AgentErrorCode =
  | 'rejected'
  | 'non_deterministic'
  | 'snapshot_too_old'
  | 'unknown_outcome'
  | 'timeout'
  | 'aborted'
  | 'closed'
  | 'invalid_argument'
  | 'corrupt_snapshot'
  | 'stopped';

export class AgentError extends AbcastError<AgentErrorCode> {
  override readonly name = 'AgentError';
}

export function invalidArgument(field: string, message: string): AgentError {
  return new AgentError('invalid_argument', message, { field });
}
