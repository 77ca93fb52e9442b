/**
 * The history of a chaos run, in the style of Jepsen: every client operation is an `invoke`
 * followed by exactly one completion — `ok` (it happened, with its result), `fail` (it
 * certainly did not happen) or `info` (the outcome is unknown: it may or may not have
 * happened). The nemesis writes `info` events for the faults it starts and ends, and
 * subscribers write `ok` events for what they observed.
 *
 * The history is all the checker knows about the clients; it never sees the node's code.
 * Every event is one JSON line in history.jsonl, in the order the runner recorded it.
 */
import { createWriteStream, type WriteStream } from 'node:fs';

export type EventType = 'invoke' | 'ok' | 'fail' | 'info';

/** A broadcast: `key` is unique per operation and travels inside the payload. */
export interface BroadcastInvoke {
  readonly key: string;
  /** How it was sent: the SDK, raw HTTP in a session, raw HTTP without one. */
  readonly via: 'sdk' | 'http-session' | 'http';
  readonly client: string | null;
  readonly seq: number | null;
  readonly node: string | null;
}

export interface BroadcastOk {
  readonly position: number;
  readonly duplicate: boolean;
}

export interface BarrierOk {
  readonly position: number;
  readonly node: string | null;
}

/** What one subscriber was handed, in the order it was handed it. */
export interface Observation {
  readonly observed: readonly (readonly [position: number, key: string | null])[];
}

export interface FaultValue {
  readonly phase: 'start' | 'end' | 'outcome';
  readonly nodes: readonly string[];
  readonly detail: string;
}

interface EventBase {
  /** Milliseconds since the run began, on the runner's monotonic clock. */
  readonly timeMs: number;
  /** Who acted: a client ("sdk-3", "http-5"), a subscriber ("sub-1") or "nemesis". */
  readonly process: string;
  /** Links a completion to its invoke (unique per process). */
  readonly opId: number;
  readonly type: EventType;
}

export type HistoryEvent =
  | (EventBase & { readonly f: 'broadcast'; readonly value: BroadcastInvoke })
  | (EventBase & { readonly f: 'broadcast'; readonly value: BroadcastOk })
  | (EventBase & { readonly f: 'broadcast'; readonly value: { readonly error: string } })
  | (EventBase & { readonly f: 'barrier'; readonly value: { readonly node: string | null } })
  | (EventBase & { readonly f: 'barrier'; readonly value: BarrierOk })
  | (EventBase & { readonly f: 'barrier'; readonly value: { readonly error: string } })
  | (EventBase & { readonly f: 'observe'; readonly value: Observation })
  | (EventBase & { readonly f: `fault:${string}`; readonly value: FaultValue });

/** Appends events in memory and, when given a path, to a JSON-lines file as they come. */
export class HistoryRecorder {
  readonly events: HistoryEvent[] = [];
  private file: WriteStream | null;
  private nextOpId = 1;

  constructor(
    private readonly nowMs: () => number,
    path: string | null,
  ) {
    this.file = path === null ? null : createWriteStream(path, { flags: 'w' });
  }

  /** A fresh operation id, unique over the whole run (so also per process). */
  opId(): number {
    return this.nextOpId++;
  }

  record(event: Omit<HistoryEvent, 'timeMs'>): void {
    const full = { timeMs: Math.round(this.nowMs() * 1000) / 1000, ...event } as HistoryEvent;
    this.events.push(full);
    this.file?.write(`${JSON.stringify(full)}\n`);
  }

  fault(kind: string, phase: FaultValue['phase'], nodes: readonly string[], detail: string): void {
    this.record({
      process: 'nemesis',
      opId: this.opId(),
      type: 'info',
      f: `fault:${kind}`,
      value: { phase, nodes, detail },
    } as Omit<HistoryEvent, 'timeMs'>);
  }

  async close(): Promise<void> {
    const file = this.file;
    if (file === null) return;
    this.file = null;
    await new Promise<void>((resolve) => file.end(resolve));
  }
}

/** Parses history.jsonl back (for `--check` on a saved run and for tests). */
export function parseHistory(text: string): HistoryEvent[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as HistoryEvent);
}
