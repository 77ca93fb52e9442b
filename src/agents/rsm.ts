/**
 * A replicated state machine: the user's deterministic reducer, applied by every replica to
 * the commands of one topic in the log's total order, so every replica holds the same state
 * at the same position. `submit` resolves with the result the reducer returned when the
 * command was applied (read-your-writes: the local replica has applied it by then); `read`
 * is linearizable through the cluster's read index; `readLocal` answers from this replica
 * at once and may be stale. Snapshots let a restarted or new replica skip the replay.
 */
import {
  copyKeepingPrototypes,
  differenceOf,
  type Outcome,
  runReducer,
  survivesJson,
  withPerturbedGlobals,
} from './determinism.ts';
import { AgentError, invalidArgument } from './errors.ts';
import { checkTopic, type LogEntry, type SharedLog } from './log.ts';
import { appendFailure, readIndexFailure, stopReason } from './replica-failures.ts';
import { ReplicaWaiters } from './replica-waiters.ts';
import { type StateSnapshot, stateSnapshotOf } from './snapshots.ts';
import { toSharedLog } from './source.ts';
import type {
  AppliedCommand,
  ApplyContext,
  ReplicaOptions,
  StateMachine,
} from './state-machine.ts';

/** Results kept for this process's own submits until they collect them. */
const ownResultsKeptMax = 65_536;

export class ReplicatedStateMachine<State, Command = unknown, Result = unknown> {
  readonly topic: string;
  private readonly log: SharedLog;
  private readonly machine: StateMachine<State, Command, Result>;
  private state: State;
  private applied = 0;
  private timeMs = 0;
  /** This process's clock when the last command was applied, to estimate the log's now. */
  private timeSeenAtMs = Date.now();
  private readonly results = new Map<number, Outcome<Result>>();
  /**
   * This replica's submits between append and answer. Results of the session's commands are
   * kept only while one is: others on the session (another replica of the topic on the same
   * client) must not leave theirs here for ever.
   */
  private submitsInFlight = 0;
  private readonly waiters: ReplicaWaiters;
  private readonly listeners = new Set<(event: AppliedCommand<Command, Result>) => void>();
  private readonly closer = new AbortController();
  private failed: AgentError | null = null;
  private running: Promise<void> = Promise.resolve();
  /** While a snapshot the replica started from is checked against the log; null after. */
  private snapshotChecked: Promise<void> | null = null;
  private commandsSinceSnapshot = 0;
  private snapshotSaving: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private readonly settings: {
    readonly snapshotEveryCommands: number;
    readonly checkDeterminism: boolean;
    readonly waitTimeoutMs: number;
  };

  private constructor(
    private readonly options: ReplicaOptions<State, Command, Result>,
    snapshot: StateSnapshot | null,
  ) {
    this.topic = checkTopic(options.topic);
    this.log = toSharedLog(options.log);
    this.machine = options.machine;
    this.waiters = new ReplicaWaiters(this.topic, () => this.applied);
    this.settings = {
      snapshotEveryCommands: positive(
        options.snapshotEveryCommands ?? 10_000,
        'snapshotEveryCommands',
      ),
      checkDeterminism: options.checkDeterminism ?? process.env.ABCAST_CHECK_DETERMINISM === '1',
      waitTimeoutMs: positive(options.waitTimeoutMs ?? 30_000, 'waitTimeoutMs'),
    };
    if (options.onApplied !== undefined) this.listeners.add(options.onApplied);
    if (snapshot === null) {
      this.state = this.machine.initialState();
    } else {
      this.state = this.decode(snapshot.state);
      this.applied = snapshot.position;
      this.timeMs = snapshot.time;
    }
  }

  /** Loads the newest snapshot, if a store is given, and starts following the topic. */
  static async start<State, Command, Result>(
    options: ReplicaOptions<State, Command, Result>,
  ): Promise<ReplicatedStateMachine<State, Command, Result>> {
    if (typeof options?.machine?.apply !== 'function') {
      throw invalidArgument('machine', 'machine needs initialState() and apply()');
    }
    const loaded = (await options.snapshotStore?.load(checkTopic(options.topic))) ?? null;
    // A store of the application's own may hand back a snapshot saved with `index`.
    const snapshot = loaded === null ? null : stateSnapshotOf(loaded);
    if (loaded !== null && snapshot === null) {
      throw new AgentError('corrupt_snapshot', `the snapshot of ${options.topic} lacks fields`, {
        topic: options.topic,
      });
    }
    const replica = new ReplicatedStateMachine(options, snapshot);
    if (snapshot === null) {
      replica.running = replica.follow();
    } else {
      const checked = replica.checkSnapshot().finally(() => {
        replica.snapshotChecked = null;
      });
      replica.snapshotChecked = checked;
      replica.running = checked.then(() => replica.follow());
    }
    return replica;
  }

  /** The last position this replica's state includes. */
  get appliedPosition(): number {
    return this.applied;
  }

  /** The log time at the last applied command (ms): the replicas' shared clock. */
  get time(): number {
    return this.timeMs;
  }

  /**
   * How long, by this process's clock, until the log's clock reaches `logTimeMs`, assuming
   * both run at the same rate since the last applied command. Agents use it to know when
   * to append something (a tick) so that an expiry gets decided in the log.
   */
  msUntilLogTime(logTimeMs: number): number {
    return Math.max(0, logTimeMs - this.timeMs - (Date.now() - this.timeSeenAtMs));
  }

  /** Why the replica stopped, or null while it runs. */
  get failure(): AgentError | null {
    return this.failed;
  }

  /** Applies `command` through the log; resolves with the reducer's result for it. */
  async submit(command: Command): Promise<Result> {
    this.throwIfStopped();
    const payload = this.checkedCommand(command);
    this.submitsInFlight += 1;
    try {
      return await this.submitted(payload);
    } finally {
      this.submitsInFlight -= 1;
      if (this.submitsInFlight === 0) this.results.clear();
    }
  }

  private async submitted(payload: unknown): Promise<Result> {
    const deadlineMs = Date.now() + this.settings.waitTimeoutMs;
    const answer = await this.log.append(payload, this.topic).catch((error: unknown) => {
      throw appendFailure(error);
    });
    if (answer.position === null) {
      throw new AgentError(
        'unknown_outcome',
        'the command was applied long ago and its position is no longer remembered',
      );
    }
    const index = answer.position;
    if (this.snapshotChecked !== null) await this.snapshotChecked;
    this.throwIfStopped();
    await this.waiters.untilApplied(index, deadlineMs);
    const outcome = this.results.get(index);
    this.results.delete(index);
    if (outcome === undefined) {
      throw new AgentError(
        'unknown_outcome',
        `the command is at position ${index}, which this replica did not apply itself (it started from a later snapshot)`,
        { position: index },
      );
    }
    if (!outcome.ok) throw new AgentError('rejected', outcome.error, { position: index });
    return outcome.result;
  }

  /** Linearizable: sees every command acknowledged anywhere before the call. */
  async read<View = State>(view?: (state: State) => View): Promise<View> {
    this.throwIfStopped();
    const deadlineMs = Date.now() + this.settings.waitTimeoutMs;
    const index = await this.log.readIndex().catch((error: unknown) => {
      throw readIndexFailure(error);
    });
    if (this.snapshotChecked !== null) await this.snapshotChecked;
    this.throwIfStopped();
    await this.waiters.untilApplied(index, deadlineMs);
    return this.readLocal(view);
  }

  /** This replica's state now: fast, and possibly behind the cluster. */
  readLocal<View = State>(view?: (state: State) => View): View {
    this.throwIfStopped();
    return view === undefined ? (this.state as unknown as View) : view(this.state);
  }

  /**
   * Resolves with the first defined value `probe` returns, tried now and after every
   * applied command: how agents wait for a grant, a release or a barrier.
   */
  async waitUntil<T>(
    probe: (state: State, replica: this) => T | undefined,
    options: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {},
  ): Promise<T> {
    let found: T | undefined;
    const deadlineMs = Date.now() + (options.timeoutMs ?? this.settings.waitTimeoutMs);
    this.throwIfStopped();
    await this.waiters.until(
      () => {
        found = probe(this.state, this);
        return found !== undefined;
      },
      deadlineMs,
      options.signal,
    );
    return found as T;
  }

  /** Calls `listener` after each applied command, in log order; returns the unsubscribe. */
  onApplied(listener: (event: AppliedCommand<Command, Result>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Saves a snapshot of the state now (there must be a store). */
  async saveSnapshot(): Promise<StateSnapshot> {
    const store = this.options.snapshotStore;
    if (store === undefined) throw invalidArgument('snapshotStore', 'no snapshot store is set');
    const snapshot = this.captureSnapshot();
    await store.save(snapshot);
    return snapshot;
  }

  /** Stops following; waiting calls fail with `closed`. Saves a last snapshot if it can. */
  close(): Promise<void> {
    // Every close resolves once the replica has stopped and its last snapshot is saved.
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    if (this.closer.signal.aborted) {
      // Stopped by a failure: no last snapshot of a state that may be wrong.
      await this.running;
      await this.snapshotSaving;
      return;
    }
    const closed = new AgentError('closed', 'the replica is closed');
    this.failed ??= closed;
    this.closer.abort(closed);
    this.waiters.failAll(this.failed);
    await this.running;
    await this.snapshotSaving;
    if (this.options.snapshotStore !== undefined && this.failed === closed && this.applied > 0) {
      await this.saveSnapshot().catch((error) => this.report(error));
    }
  }

  // ------------------------------------------------------------ applying

  /**
   * A snapshot beyond everything the log holds belongs to another log (the cluster was reset,
   * or the store is shared with another cluster): following from after it would skip the
   * log's commands and answer from a state no replica of this log has. Best effort: when no
   * read index can be had now, the replica follows as it would have.
   */
  private async checkSnapshot(): Promise<void> {
    const snapshotIndex = this.applied;
    const signal = this.closer.signal;
    // close() does not wait for a read index that may take the SDK a minute of retries.
    const closed = new Promise<null>((resolve) => {
      signal.addEventListener('abort', () => resolve(null), { once: true });
    });
    const logIndex = await Promise.race([this.log.readIndex().catch(() => null), closed]);
    if (logIndex === null || logIndex >= snapshotIndex || signal.aborted) return;
    this.stop(
      new AgentError(
        'corrupt_snapshot',
        `the snapshot of ${this.topic} is at position ${snapshotIndex}, beyond the log's ${logIndex}: it belongs to another log (was the cluster reset?); remove it to replay this log`,
        { position: snapshotIndex, logPosition: logIndex, topic: this.topic },
      ),
    );
  }

  private async follow(): Promise<void> {
    if (this.failed !== null) return;
    try {
      const events = this.log.follow({
        from: this.applied + 1,
        topics: [this.topic],
        signal: this.closer.signal,
      });
      for await (const event of events) {
        if (this.failed !== null) return;
        if (event.kind === 'entry') this.applyEntry(event.entry);
        else if (event.position > this.applied) this.applied = event.position;
        this.waiters.wake();
      }
      if (!this.closer.signal.aborted) this.stop(new AgentError('stopped', 'the log ended'));
    } catch (error) {
      if (!this.closer.signal.aborted) this.stop(stopReason(error, this.applied));
    }
  }

  private applyEntry(entry: LogEntry): void {
    // A failover may hand over a position already seen; each is applied once.
    if (entry.position <= this.applied) return;
    this.timeMs = Math.max(this.timeMs, entry.time);
    this.timeSeenAtMs = Date.now();
    const context: ApplyContext = {
      position: entry.position,
      time: this.timeMs,
      client: entry.client,
    };
    let command: Command | undefined;
    let outcome: Outcome<Result>;
    const parsed = runReducer(() => this.parse(entry.payload));
    if (!parsed.ok) {
      outcome = { ok: false, error: `the command does not parse: ${parsed.error}` };
    } else {
      command = parsed.result;
      const applied = this.applyCommand(command as Command, context);
      if (applied === null) return;
      outcome = applied;
    }
    this.applied = entry.position;
    // The reducer may have kept the command, or returned a piece of its state: callers get
    // copies, so that what they do with them can never change a replica.
    if (this.submitsInFlight > 0 && this.log.isOwnSession(entry.client))
      this.keepResult(entry.position, copyOf(outcome));
    if (this.listeners.size > 0) {
      this.tell({
        position: entry.position,
        time: this.timeMs,
        client: entry.client,
        command: copyOf(command),
        outcome: copyOf(outcome),
      });
    }
    this.commandsSinceSnapshot += 1;
    if (this.commandsSinceSnapshot >= this.settings.snapshotEveryCommands)
      this.snapshotInBackground();
  }

  /** The reducer's outcome; null if the guard caught it being non-deterministic. */
  private applyCommand(command: Command, context: ApplyContext): Outcome<Result> | null {
    if (!this.settings.checkDeterminism) {
      return runReducer(() => this.machine.apply(this.state, command, context));
    }
    // Through the machine's own codec when it has one; otherwise a copy that keeps class
    // instances working (a state or command need not survive structuredClone to be applied).
    const copy = this.machine.decodeState
      ? this.decode(structuredClone(this.encode(this.state)))
      : copyKeepingPrototypes(this.state);
    const commandCopy = copyKeepingPrototypes(command);
    const first = withPerturbedGlobals(() =>
      runReducer(() => this.machine.apply(copy, commandCopy, context)),
    );
    const second = runReducer(() => this.machine.apply(this.state, command, context));
    const difference = differenceOf(
      { state: copy, outcome: first },
      { state: this.state, outcome: second },
    );
    if (difference === null) return second;
    this.stop(
      new AgentError(
        'non_deterministic',
        `the reducer is not deterministic: applying the command at position ${context.position} twice, ${difference}. Take time from context.time and no randomness in apply()`,
        { position: context.position, topic: this.topic },
      ),
    );
    return null;
  }

  private parse(payload: unknown): Command {
    return this.machine.parseCommand ? this.machine.parseCommand(payload) : (payload as Command);
  }

  private keepResult(index: number, outcome: Outcome<Result>): void {
    this.results.set(index, outcome);
    if (this.results.size > ownResultsKeptMax) {
      // The oldest result is one whose submit gave up long ago (its outcome was unknown).
      const oldest = this.results.keys().next().value as number;
      this.results.delete(oldest);
    }
  }

  private tell(event: AppliedCommand<Command, Result>): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.report(error);
      }
    }
  }

  // ------------------------------------------------------------ snapshots

  private encode(state: State): unknown {
    return this.machine.encodeState ? this.machine.encodeState(state) : state;
  }

  private decode(encoded: unknown): State {
    return this.machine.decodeState ? this.machine.decodeState(encoded) : (encoded as State);
  }

  private captureSnapshot(): StateSnapshot {
    const text = JSON.stringify(this.encode(this.state));
    const encoded: unknown = text === undefined ? null : JSON.parse(text);
    // JSON drops what it cannot say (a Map becomes {}): refuse a snapshot that would
    // restore a different state instead of finding out at the next restart.
    if (!survivesJson(this.state, this.decode(structuredClone(encoded)))) {
      throw new AgentError(
        'invalid_argument',
        'the state does not survive JSON (Maps, Sets, class instances, undefined?): give the machine encodeState and decodeState',
        { field: 'machine' },
      );
    }
    return { topic: this.topic, position: this.applied, time: this.timeMs, state: encoded };
  }

  private snapshotInBackground(): void {
    const store = this.options.snapshotStore;
    if (store === undefined || this.snapshotSaving !== null) return;
    this.commandsSinceSnapshot = 0;
    let snapshot: StateSnapshot;
    try {
      snapshot = this.captureSnapshot();
    } catch (error) {
      this.report(error);
      return;
    }
    this.snapshotSaving = store
      .save(snapshot)
      .catch((error) => this.report(error))
      .finally(() => {
        this.snapshotSaving = null;
      });
  }

  // ------------------------------------------------------------ stopping

  private stop(error: AgentError): void {
    if (this.failed !== null) return;
    this.failed = error;
    this.closer.abort(error);
    this.waiters.failAll(error);
    this.report(error);
  }

  private throwIfStopped(): void {
    if (this.failed === null) return;
    if (this.failed.code === 'closed') throw this.failed;
    throw new AgentError(
      'stopped',
      `the replica stopped: ${this.failed.message}`,
      {},
      {
        cause: this.failed,
      },
    );
  }

  private checkedCommand(command: Command): unknown {
    let text: string | undefined;
    try {
      text = JSON.stringify(command);
    } catch (error) {
      throw invalidArgument('command', `the command is not JSON: ${(error as Error).message}`);
    }
    if (text === undefined) throw invalidArgument('command', 'the command is not a JSON value');
    const payload: unknown = JSON.parse(text);
    const parsed = runReducer(() => this.parse(payload));
    if (!parsed.ok) {
      throw invalidArgument('command', `the command does not parse: ${parsed.error}`);
    }
    return payload;
  }

  /** Never throws: it runs inside the follow loop, where a throw would stop the replica. */
  private report(error: unknown): void {
    const reported = error instanceof Error ? error : new Error(String(error));
    if (this.options.onError) {
      try {
        this.options.onError(reported);
        return;
      } catch (thrown) {
        const message = thrown instanceof Error ? thrown.message : String(thrown);
        process.emitWarning(
          `abcast replica of ${this.topic}: onError threw (${message}) on: ${reported.message}`,
        );
        return;
      }
    }
    if (!(reported instanceof AgentError && reported.code === 'closed')) {
      process.emitWarning(`abcast replica of ${this.topic}: ${reported.message}`);
    }
  }
}

/**
 * What callers get of a result, command or outcome. Not structuredClone: it would fail on a
 * function in a result (on the replicas that copy it only, stopping some and not others)
 * and turn class instances into plain objects.
 */
function copyOf<T>(value: T): T {
  return copyKeepingPrototypes(value);
}

function positive(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw invalidArgument(field, `${field} takes a positive integer, got ${value}`);
  }
  return value;
}
