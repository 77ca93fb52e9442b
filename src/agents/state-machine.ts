/**
 * What a replicated state machine is made of, as its users write it: the reducer
 * (`StateMachine`), what it may know besides state and command (`ApplyContext`), the
 * replica's options, and what `onApplied` listeners see. The replica itself is rsm.ts.
 */
import type { Outcome } from './determinism.ts';
import type { SnapshotStore } from './snapshots.ts';
import type { LogSource } from './source.ts';

/** What the reducer may know besides state and command: the same on every replica. */
export interface ApplyContext {
  /** The command's position in the total order. */
  readonly position: number;
  /** The log's clock (ms since the Unix epoch): use it, never the process's own clock. */
  readonly time: number;
  /** The session that sent the command (null for an anonymous message). */
  readonly client: string | null;
}

export interface StateMachine<State, Command, Result> {
  /** The state before the topic's first command. */
  initialState(): State;
  /**
   * Turns a payload from the log into a command, or throws to refuse it; anyone can append
   * to the topic, so this is where foreign input stops. Defaults to the payload as it is.
   * `submit` runs it before sending, so a command it refuses never enters the log.
   */
  parseCommand?(payload: unknown): Command;
  /**
   * Applies one command: may change `state` in place, returns the submitter's result. It
   * must be synchronous and deterministic — no clock, randomness or I/O; take time from
   * `context.time`. A throw refuses the command (the submitter gets `rejected`); validate
   * before changing the state, since a throw does not undo changes made before it.
   */
  apply(state: State, command: Command, context: ApplyContext): Result;
  /** The state as a JSON value for snapshots (default: the state itself). */
  encodeState?(state: State): unknown;
  decodeState?(encoded: unknown): State;
}

export interface ReplicaOptions<State, Command, Result> {
  /** The SDK client, an in-process node, or any SharedLog. */
  readonly log: LogSource;
  /** The topic holding this state machine's commands. */
  readonly topic: string;
  readonly machine: StateMachine<State, Command, Result>;
  /** Where snapshots are loaded from at start and saved to; none by default. */
  readonly snapshotStore?: SnapshotStore;
  /** Applied commands between two snapshots (default 10,000). */
  readonly snapshotEveryCommands?: number;
  /** The determinism guard (./determinism.ts); default: env ABCAST_CHECK_DETERMINISM=1. */
  readonly checkDeterminism?: boolean;
  /** How long `submit`, `read` and `waitUntil` wait for this replica (default 30 s). */
  readonly waitTimeoutMs?: number;
  /** Called for every applied command from the first on (see `onApplied`). */
  readonly onApplied?: (event: AppliedCommand<Command, Result>) => void;
  /** Told about errors that do not belong to any call (a listener threw, a save failed). */
  readonly onError?: (error: Error) => void;
}

/** One applied command, as `onApplied` listeners see it. */
export interface AppliedCommand<Command, Result> {
  /** The command's position in the total order. */
  readonly position: number;
  readonly time: number;
  readonly client: string | null;
  /** Undefined when the payload did not parse. */
  readonly command: Command | undefined;
  readonly outcome: Outcome<Result>;
}
