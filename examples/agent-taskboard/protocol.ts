/**
 * What the task board example's parent and its agent processes share: the agent's settings
 * (argv[2], JSON), the messages an agent sends over IPC, the task, and the work's result —
 * which the parent recomputes to check every completion.
 */
import { createHash } from 'node:crypto';
import { ExampleError } from '../support/errors.ts';

export interface AgentSettings {
  readonly agentId: string;
  readonly endpoints: readonly string[];
  readonly boardName: string;
  readonly leaseMs: number;
  /** Simulated work per task, on top of hashing its input. */
  readonly workMs: number;
  /** Stall (holding the claim, never renewing) at this claim; 0 never. */
  readonly stallAtClaim: number;
}

export type AgentMessage =
  | { readonly type: 'ready'; readonly agentId: string }
  | {
      readonly type: 'claimed';
      readonly agentId: string;
      readonly taskId: string;
      readonly token: number;
      readonly attempt: number;
    }
  | {
      readonly type: 'stalling';
      readonly agentId: string;
      readonly taskId: string;
      readonly token: number;
    }
  | {
      readonly type: 'completed';
      readonly agentId: string;
      readonly taskId: string;
      readonly token: number;
      /** True when the board accepted the completion; else why not. */
      readonly accepted: boolean;
      readonly reason: string | null;
    }
  | { readonly type: 'failed'; readonly message: string };

/** A task: its number and an input whose hash is the work's result. */
export interface Task {
  readonly n: number;
  readonly input: string;
}

export interface TaskResult {
  readonly sha256: string;
}

export function resultOf(task: unknown): TaskResult {
  const input = (task as Task | null)?.input;
  if (typeof input !== 'string') {
    throw new ExampleError('invalid_argument', 'a task has a string input', { field: 'task' });
  }
  return { sha256: createHash('sha256').update(input).digest('hex') };
}

export function parseAgentSettings(text: string | undefined): AgentSettings {
  let value: Partial<AgentSettings>;
  try {
    value = JSON.parse(text ?? '') as Partial<AgentSettings>;
  } catch {
    throw new ExampleError('invalid_argument', 'an agent takes its settings as JSON in argv[2]');
  }
  const integers = ['leaseMs', 'workMs', 'stallAtClaim'] as const;
  const bad =
    typeof value?.agentId !== 'string' ||
    typeof value.boardName !== 'string' ||
    !Array.isArray(value.endpoints) ||
    value.endpoints.length === 0 ||
    integers.some((name) => !Number.isSafeInteger(value[name]) || (value[name] as number) < 0);
  if (bad) {
    throw new ExampleError('invalid_argument', `bad agent settings: ${text}`, {
      field: 'settings',
    });
  }
  return value as AgentSettings;
}
