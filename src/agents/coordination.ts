/**
 * What the task board and the locks share: argument checks that reducers and callers both
 * use (anyone can append to a topic, so reducers re-check everything), and a wait that ends
 * either on a change in the replica's state or when a local timer fires. Their lease and task
 * queues are heaps on plain arrays (src/util/heap.ts), so snapshots need no codec for them.
 */
import { AgentError, invalidArgument } from './errors.ts';

/** The part of a replica that waiting needs. */
export interface Waitable<State> {
  waitUntil<T>(
    probe: (state: State) => T | undefined,
    options: { readonly timeoutMs?: number; readonly signal?: AbortSignal },
  ): Promise<T>;
}

/** The longest lease or TTL: a week, far below setTimeout's and JSON's limits. */
export const leaseMsMax = 7 * 24 * 3600 * 1000;
/** A JSON payload (task, result) carried in a command: at most 64 KiB of text. */
export const payloadBytesMax = 64 * 1024;
export function checkName(value: unknown, field: string): string {
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    value.length > 200 ||
    hasControlCharacter(value)
  ) {
    throw invalidArgument(
      field,
      `${field} must be a string of 1–200 characters without control characters`,
    );
  }
  return value;
}

export function checkDurationMs(value: unknown, field: string): number {
  if (
    typeof value !== 'number' ||
    !Number.isSafeInteger(value) ||
    value < 1 ||
    value > leaseMsMax
  ) {
    throw invalidArgument(
      field,
      `${field} takes an integer number of ms in [1, ${leaseMsMax}], got ${String(value)}`,
    );
  }
  return value;
}

export function checkToken(value: unknown, field = 'token'): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw invalidArgument(
      field,
      `${field} is a log position (a positive integer), got ${String(value)}`,
    );
  }
  return value;
}

/** A JSON value of bounded size, copied (the state never shares objects with callers). */
export function checkPayload(value: unknown, field: string): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw invalidArgument(field, `${field} is not JSON: ${(error as Error).message}`);
  }
  if (text === undefined) throw invalidArgument(field, `${field} is not a JSON value`);
  if (Buffer.byteLength(text) > payloadBytesMax) {
    throw invalidArgument(field, `${field} takes at most ${payloadBytesMax} bytes of JSON`);
  }
  return JSON.parse(text);
}

export function checkObject(payload: unknown, what: string): Record<string, unknown> {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw invalidArgument('command', `a ${what} command is an object with an op`);
  }
  return payload as Record<string, unknown>;
}

function hasControlCharacter(text: string): boolean {
  for (let at = 0; at < text.length; at++) if (text.charCodeAt(at) < 0x20) return true;
  return false;
}

// ------------------------------------------------------------ waiting

/**
 * Waits until `probe` gives a value (returned), `timeoutMs` passes on this process's clock
 * (undefined), or `signal` aborts (AgentError `aborted`). Other failures propagate.
 */
export async function waitForChange<State, T>(
  replica: Waitable<State>,
  probe: (state: State) => T | undefined,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<T | undefined> {
  if (signal?.aborted) throw abortedError();
  try {
    return await replica.waitUntil(probe, {
      // The replica re-arms its timer for waits beyond what one Node timer takes.
      timeoutMs: Math.max(0, timeoutMs),
      ...(signal === undefined ? {} : { signal }),
    });
  } catch (error) {
    if (signal?.aborted) throw abortedError();
    if (error instanceof AgentError && error.code === 'timeout') return undefined;
    throw error;
  }
}

export function abortedError(): AgentError {
  return new AgentError('aborted', 'the wait was aborted');
}

export function checkTimeoutMs(value: unknown, field = 'timeoutMs'): number {
  if (value === undefined) return Number.POSITIVE_INFINITY;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw invalidArgument(field, `${field} takes a number of ms >= 0, got ${String(value)}`);
  }
  return value;
}
