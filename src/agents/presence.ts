/**
 * Presence: which agents are alive, agreed by every process. Each agent joins with a ttl and
 * heartbeats; a member whose last heartbeat is older than its ttl at a command's log time is
 * expired by the reducer as it applies that command. Expiry is decided on the log's clock
 * only (`context.time`, the same on every replica), so every replica agrees on who is alive
 * and on the order of joins, leaves and expiries. The local clock only decides WHEN an agent
 * appends (a heartbeat every ttl/3, or a `refresh()` tick), which is what moves the log's
 * clock forward and lets expiries be decided at all.
 *
 * Coming back after expiry is explicit, as with ZooKeeper's expired sessions: a heartbeat
 * from an incarnation that is no longer a member (expired, left) is refused with the typed
 * outcome `not_member`; the handle then stops, reports itself `lost`, and the agent calls
 * `join` again once it has re-established whatever its presence stood for. A join under an
 * agentId that is alive is refused (`already_member`), so two processes never share one
 * identity; a restarted agent rejoins once its old incarnation has expired or left.
 */
import { AgentError, invalidArgument } from './errors.ts';
import { checkTopic } from './log.ts';
import {
  checkAgentId,
  checkTtlMs,
  type PresenceCommand,
  type PresenceEvent,
  type PresenceMember,
  type PresenceResult,
  type PresenceState,
  presenceMachine,
  presenceMembersMax,
  presenceWatchBufferDefault,
} from './presence-machine.ts';
import { Watcher } from './presence-watcher.ts';
import { ReplicatedStateMachine } from './rsm.ts';
import type { LogSource } from './source.ts';
import type { ReplicaOptions } from './state-machine.ts';

/** The shortest wait before an expiry tick (see `expireOnTime`). */
const expiryTickMinDelayMs = 5;

// ------------------------------------------------------------------ the agents' API

export interface PresenceOptions
  extends Pick<
    ReplicaOptions<PresenceState, PresenceCommand, PresenceResult>,
    'snapshotStore' | 'snapshotEveryCommands' | 'checkDeterminism' | 'waitTimeoutMs' | 'onError'
  > {
  readonly log: LogSource;
  /** The presence group; its commands go to topic `presence/<name>`. */
  readonly name: string;
  /**
   * Append a tick when the earliest member's ttl runs out, by this process's estimate of
   * the log's clock, so expiries are decided even when nobody else appends (all members
   * crashed). One process or a few watchers need it; default false.
   */
  readonly expireOnTime?: boolean;
}

export interface JoinOptions {
  /** A member not heard from for longer than this, in log time, is expired. */
  readonly ttlMs: number;
  /** Any JSON value (at most 4 KiB) that others see in `members()`. */
  readonly meta?: unknown;
  /** How often to heartbeat, by this process's clock (default ttlMs/3). */
  readonly heartbeatEveryMs?: number;
  /** Called once when the handle learns it is no longer a member (expired). */
  readonly onLost?: (handle: PresenceHandle) => void;
}

export interface WatchOptions {
  readonly signal?: AbortSignal;
  /** Unread events kept before the watch ends with an `overflow` error (default 10,000). */
  readonly bufferMax?: number;
}

export class Presence {
  private readonly watchers = new Set<Watcher>();
  private readonly handles = new Set<PresenceHandle>();
  private expiryTimer: NodeJS.Timeout | null = null;
  private expiryTickAtMs: number | null = null;

  private constructor(
    readonly replica: ReplicatedStateMachine<PresenceState, PresenceCommand, PresenceResult>,
    readonly name: string,
    private readonly onError: ((error: Error) => void) | undefined,
    private readonly expireOnTime: boolean,
  ) {
    replica.onApplied((applied) => {
      if (applied.outcome.ok) {
        for (const event of applied.outcome.result.events) {
          for (const watcher of this.watchers) watcher.push(event);
        }
      }
      this.scheduleExpiryTick();
    });
    this.scheduleExpiryTick();
  }

  static async open(options: PresenceOptions): Promise<Presence> {
    const name = checkTopic(options?.name, 'name');
    let presence: Presence | null = null;
    const replica = await ReplicatedStateMachine.start({
      ...options,
      topic: `presence/${name}`,
      machine: presenceMachine,
      onError: (error) => {
        if (presence !== null && presence.replica.failure !== null) {
          presence.endWatchers(presence.replica.failure);
        }
        if (options.onError !== undefined) options.onError(error);
        else if (!(error instanceof AgentError && error.code === 'closed')) {
          process.emitWarning(`abcast presence ${name}: ${error.message}`);
        }
      },
    });
    presence = new Presence(replica, name, options.onError, options.expireOnTime ?? false);
    return presence;
  }

  /** Joins as `agentId`; the handle heartbeats until `leave()` or `close()`. */
  async join(agentId: string, options: JoinOptions): Promise<PresenceHandle> {
    checkAgentId(agentId);
    checkTtlMs(options?.ttlMs);
    const everyMs = options.heartbeatEveryMs ?? Math.max(1, Math.floor(options.ttlMs / 3));
    if (!Number.isSafeInteger(everyMs) || everyMs < 1 || everyMs >= options.ttlMs) {
      throw invalidArgument(
        'heartbeatEveryMs',
        'heartbeatEveryMs must be an integer in [1, ttlMs)',
      );
    }
    const result = await this.replica.submit({
      op: 'join',
      agentId,
      ttlMs: options.ttlMs,
      meta: options.meta ?? null,
    });
    const outcome = result.outcome;
    if (outcome.status !== 'joined') {
      throw new AgentError(
        'rejected',
        outcome.status === 'full'
          ? `presence ${this.name} is full (${presenceMembersMax} members)`
          : `${agentId} is already a member of presence ${this.name}; join again once it has left or expired`,
        { reason: outcome.status, agentId },
      );
    }
    const handle = new PresenceHandle(this, agentId, outcome.incarnation, everyMs, options.onLost);
    this.handles.add(handle);
    return handle;
  }

  /** Members alive as of this replica's applied log time, in join order (may be stale). */
  members(): PresenceMember[] {
    // A copy: the caller may change it without touching the replica's state.
    return this.replica.readLocal((state) => structuredClone([...state.members.values()]));
  }

  /** Whether `agentId` is a member as of this replica's applied log time. */
  isMember(agentId: string): boolean {
    return this.replica.readLocal((state) => state.members.has(agentId));
  }

  /**
   * Appends a tick so that every expiry up to now (in log time) is decided, and returns the
   * members after it: for an agent that needs a fresh view when nobody else is appending.
   */
  async refresh(): Promise<PresenceMember[]> {
    await this.replica.submit({ op: 'tick' });
    return this.members();
  }

  /**
   * Joins, leaves and expiries decided from now on, in log order (the same sequence on
   * every replica). Events are buffered for a slow consumer up to `bufferMax`; beyond that
   * the watch yields what it holds and then throws `stopped` with details.reason
   * `overflow` (it never drops an event silently): call `members()` and watch again.
   * Ends quietly on abort or close.
   */
  watch(options: WatchOptions = {}): AsyncIterableIterator<PresenceEvent> {
    const bufferMax = options.bufferMax ?? presenceWatchBufferDefault;
    if (!Number.isSafeInteger(bufferMax) || bufferMax < 1) {
      throw invalidArgument('bufferMax', 'bufferMax must be a positive integer');
    }
    const signal = options.signal;
    const onAbort = () => watcher.end(null);
    const watcher = new Watcher(bufferMax, () => {
      this.watchers.delete(watcher);
      signal?.removeEventListener('abort', onAbort);
    });
    this.watchers.add(watcher);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (this.replica.failure !== null) watcher.end(this.replica.failure);
    if (signal?.aborted) watcher.end(null);
    return watcher;
  }

  /**
   * Stops every handle's heartbeats WITHOUT leaving (its members expire after their ttl, as
   * if this process crashed; call `leave()` first for a clean exit), ends watches, closes
   * the replica.
   */
  async close(): Promise<void> {
    this.clearExpiryTimer();
    for (const handle of this.handles) handle.stop();
    this.handles.clear();
    this.endWatchers(null);
    await this.replica.close();
  }

  /** @internal */
  submit(command: PresenceCommand): Promise<PresenceResult> {
    return this.replica.submit(command);
  }

  /** @internal */
  forget(handle: PresenceHandle): void {
    this.handles.delete(handle);
  }

  /** @internal */
  report(error: unknown): void {
    if (this.onError !== undefined) {
      this.onError(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    const message = error instanceof Error ? error.message : String(error);
    process.emitWarning(`abcast presence ${this.name}: ${message}`);
  }

  /**
   * Arms one timer for the earliest deadline; the local clock only says when to append the
   * tick, the reducer decides the expiry on the tick's log time.
   */
  private scheduleExpiryTick(): void {
    if (!this.expireOnTime || this.replica.failure !== null) return;
    const earliest = this.replica.readLocal((state) => state.deadlines[0]?.[0]);
    if (earliest === undefined) {
      this.clearExpiryTimer();
      return;
    }
    if (this.expiryTickAtMs === earliest && this.expiryTimer !== null) return;
    this.clearExpiryTimer();
    this.expiryTickAtMs = earliest;
    // At least a few ms apart, so a log clock that lags this one cannot cause a tick storm.
    const delayMs = Math.max(expiryTickMinDelayMs, this.replica.msUntilLogTime(earliest + 1));
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = null;
      this.replica.submit({ op: 'tick' }).catch((error) => {
        if (this.replica.failure !== null) return;
        // Tried again at once; a failed submit took up to waitTimeoutMs, which paces this.
        this.report(error);
        this.scheduleExpiryTick();
      });
    }, delayMs);
  }

  private clearExpiryTimer(): void {
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    this.expiryTickAtMs = null;
  }

  private endWatchers(error: AgentError | null): void {
    for (const watcher of [...this.watchers]) watcher.end(error?.code === 'closed' ? null : error);
  }
}

/**
 * One agent's membership. `present` until `leave()`; `lost` once a heartbeat is refused
 * (expired, so the agent must join again); `stopped` after the Presence closed.
 */
export class PresenceHandle {
  private phase: 'present' | 'left' | 'lost' | 'stopped' = 'present';
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly presence: Presence,
    readonly agentId: string,
    readonly incarnation: number,
    readonly heartbeatEveryMs: number,
    private readonly onLost?: (handle: PresenceHandle) => void,
  ) {
    this.schedule();
  }

  get state(): 'present' | 'left' | 'lost' | 'stopped' {
    return this.phase;
  }

  /** Appends one heartbeat now; false when it was refused (the handle is then `lost`). */
  async heartbeat(): Promise<boolean> {
    if (this.phase !== 'present') return false;
    const command = { op: 'beat', agentId: this.agentId, incarnation: this.incarnation } as const;
    const result = await this.presence.submit(command);
    if (result.outcome.status === 'alive') return true;
    if (this.phase === 'present') {
      this.phase = 'lost';
      this.stop();
      this.onLost?.(this);
    }
    return false;
  }

  /** Leaves the group (idempotent); resolves once the leave is applied here. */
  async leave(): Promise<void> {
    if (this.phase !== 'present') return;
    this.phase = 'left';
    this.stop();
    await this.beating;
    await this.presence.submit({
      op: 'leave',
      agentId: this.agentId,
      incarnation: this.incarnation,
    });
  }

  /** @internal Stops heartbeating without leaving. */
  stop(): void {
    if (this.phase === 'present') this.phase = 'stopped';
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.presence.forget(this);
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      this.beating = this.heartbeat()
        .catch((error) => {
          if (this.phase !== 'present') return;
          // A stopped replica will not recover: heartbeating on would only repeat its error.
          if (this.presence.replica.failure !== null) this.stop();
          // A heartbeat that failed (no endpoint, timeout) is tried again at the next
          // interval; the ttl is three intervals, so one failure costs nothing.
          this.presence.report(error);
        })
        .finally(() => {
          if (this.phase === 'present') this.schedule();
        });
    }, this.heartbeatEveryMs);
  }
}
