/**
 * How a tool fails: an MCP tool error (`isError: true`) whose structured content carries a
 * stable lowercase `error` code with details, as the HTTP API answers (`{"error": …,
 * "message": …}`), and whose text is one sentence an LLM can act on: what happened and
 * what to call next. Agents match on `error`; the sentence is for the model.
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { AgentError } from '../agents/index.ts';
import { ClientError } from '../client/index.ts';
import { AbcastError } from '../util/errors.ts';

/**
 * The codes a tool can fail with. Besides the cluster's and the agents' own codes:
 * `fenced` (a newer claim or lease holds the task or lock: stop writing for it),
 * `lease_expired` (the lease ran out in log time: claim or acquire again), `unknown_task`,
 * `already_done`, `lock_busy`, `already_member`, `not_member`, `key_reused`.
 */
export type ToolErrorCode =
  | 'fenced'
  | 'lease_expired'
  | 'unknown_task'
  | 'already_done'
  | 'lock_busy'
  | 'already_member'
  | 'not_member'
  | 'key_reused'
  | 'unavailable'
  | 'timeout'
  | 'invalid_argument'
  | (string & {});

/** A refusal the tool reports as it is: code, a sentence for the model, details. */
export class ToolFailure extends AbcastError<ToolErrorCode> {
  override readonly name = 'ToolFailure';
}

/** The MCP result of a failed call. */
export function toolError(error: unknown): CallToolResult {
  const failure = asFailure(error);
  return {
    isError: true,
    content: [{ type: 'text', text: `${failure.code}: ${failure.message}` }],
    structuredContent: { ...failure.details, error: failure.code, message: failure.message },
  };
}

/** Any error as a ToolFailure: typed errors keep their code; a bug says `internal`. */
export function asFailure(error: unknown): ToolFailure {
  if (error instanceof ToolFailure) return error;
  if (error instanceof ClientError) return fromClient(error);
  if (error instanceof AgentError) return fromAgent(error);
  if (error instanceof AbcastError) {
    return new ToolFailure(error.code, sentence(error.message), plain(error.details));
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ToolFailure(
    'internal',
    `The MCP server failed unexpectedly (${message}); the call may be retried.`,
  );
}

function fromClient(error: ClientError): ToolFailure {
  const details = plain(error.details);
  switch (error.code) {
    case 'unavailable':
      return new ToolFailure(
        'unavailable',
        'No node of the cluster answered in time (an election or a restart may be under way); wait a few seconds and call again.',
        details,
      );
    case 'compacted':
      return new ToolFailure(
        'compacted',
        `The nodes no longer keep that position; read again from position ${String(details.firstPosition ?? 'firstPosition')}.`,
        details,
      );
    case 'forbidden':
    case 'unauthorized':
      return new ToolFailure(
        error.code,
        'The cluster refused this MCP server’s token for that call; ask the operator for a token with the needed role or topic.',
        details,
      );
    default:
      return new ToolFailure(error.code, sentence(error.message), details);
  }
}

function fromAgent(error: AgentError): ToolFailure {
  const details = plain(error.details);
  switch (error.code) {
    case 'unknown_outcome':
      return new ToolFailure(
        'unknown_outcome',
        'The command may or may not have been applied (the cluster did not say in time); read the state (list_tasks, members) before trying again.',
        details,
      );
    case 'timeout':
      return new ToolFailure('timeout', sentence(error.message), details);
    default:
      return new ToolFailure(error.code, sentence(error.message), details);
  }
}

/** A message as a sentence: capitalised and ended. */
function sentence(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') return 'The call failed.';
  const first = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

/** Details as JSON-safe values (structured content must serialise). */
function plain(details: Readonly<Record<string, unknown>>): Record<string, unknown> {
  try {
    return JSON.parse(JSON.stringify(details ?? {})) as Record<string, unknown>;
  } catch {
    return {};
  }
}
