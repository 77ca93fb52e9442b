/**
 * Named locks with leases and fencing tokens, on the total order (topic `locks/<name>`).
 * A deterministic reducer decides every grant in log order, so all replicas agree:
 * - a lock has at most one holder at any log time; a lease lasts until `expiresAt` in log
 *   time unless renewed or released, and expiry is decided by the first command whose log
 *   time reaches it (a waiter appends a tick at that moment);
 * - waiters queue FIFO in the state; on release or expiry the head of the queue is granted
 *   in the log by that same command, and its agent sees the grant via `waitUntil`;
 * - a lease's `token` is the position of the command that granted it, so tokens of one
 *   lock strictly increase from grant to grant: give it to the storage you write, and let
 *   the storage refuse older tokens (`FencingGuard`), so a holder that paused past its
 *   lease cannot overwrite its successor's writes.
 * Locks are not reentrant: a second acquire by the same owner queues behind the first.
 */
import { assert } from '../util/assert.ts';
import { heapPop, heapPush, heapTidy } from '../util/heap.ts';
import {
  abortedError,
  checkDurationMs,
  checkName,
  checkObject,
  checkTimeoutMs,
  checkToken,
  leaseMsMax,
  waitForChange,
} from './coordination.ts';
import { AgentError, invalidArgument } from './errors.ts';
import { ReplicatedStateMachine } from './rsm.ts';
import type { ApplyContext, ReplicaOptions, StateMachine } from './state-machine.ts';

/** Locks held or waited for at once, at most; an acquire beyond it is refused. */
export const activeLocksMax = 100_000;
/** Waiters queued on one lock, at most. */
export const waitersPerLockMax = 10_000;
/** How long after a lease's end a waiter that is not first in line appends a tick itself. */
const backupTickDelayMs = 250;

export interface Lease {
  readonly lock: string;
  readonly owner: string;
  /** The fencing token: the position of the command that granted the lease. */
  readonly token: number;
  /** When the lease was granted and when it ends, in log time (ms). */
  readonly grantedAt: number;
  readonly expiresAt: number;
}

// ------------------------------------------------------------ the reducer

interface HolderRecord extends Lease {
  /** The position of the acquire command this grant answers. */
  readonly ticket: number;
}

interface QueuedWaiter {
  owner: string;
  ticket: number;
  ttlMs: number;
  /** The log time after which the waiter has given up (null: it waits for ever). */
  giveUpAt: number | null;
}

interface LockRecord {
  holder: HolderRecord | null;
  queue: QueuedWaiter[];
}

/** [expiresAt, token, lock]: a min-heap of leases; stale items are skipped. */
type LeaseItem = [number, number, string];

export interface LocksState {
  locks: Map<string, LockRecord>;
  leases: LeaseItem[];
  heldCount: number;
}

export type LocksCommand =
  | {
      op: 'acquire';
      lock: string;
      owner: string;
      ttlMs: number;
      wait: boolean;
      waitMs: number | null;
    }
  | { op: 'renew'; lock: string; token: number; ttlMs: number }
  | { op: 'release'; lock: string; token: number }
  | { op: 'cancel'; lock: string; ticket: number }
  | { op: 'tick' };

/** What an acquire command got: the lease, a place in the queue, or (no wait) nothing. */
export type AcquireResult =
  | { readonly granted: Lease }
  | { readonly queued: number; readonly position: number }
  | { readonly busy: true };

export type LocksResult = AcquireResult | Lease | boolean | null;

function parseLocksCommand(payload: unknown): LocksCommand {
  const command = checkObject(payload, 'locks');
  switch (command.op) {
    case 'acquire':
      return {
        op: 'acquire',
        lock: checkName(command.lock, 'lock'),
        owner: checkName(command.owner, 'owner'),
        ttlMs: checkDurationMs(command.ttlMs, 'ttlMs'),
        wait: command.wait === true,
        waitMs:
          command.waitMs === null || command.waitMs === undefined
            ? null
            : checkDurationMs(command.waitMs, 'waitMs'),
      };
    case 'renew':
      return {
        op: 'renew',
        lock: checkName(command.lock, 'lock'),
        token: checkToken(command.token),
        ttlMs: checkDurationMs(command.ttlMs, 'ttlMs'),
      };
    case 'release':
      return {
        op: 'release',
        lock: checkName(command.lock, 'lock'),
        token: checkToken(command.token),
      };
    case 'cancel':
      return {
        op: 'cancel',
        lock: checkName(command.lock, 'lock'),
        ticket: checkToken(command.ticket, 'ticket'),
      };
    case 'tick':
      return { op: 'tick' };
    default:
      throw invalidArgument('op', `unknown locks op ${JSON.stringify(command.op)}`);
  }
}

function applyLocks(state: LocksState, command: LocksCommand, context: ApplyContext): LocksResult {
  expireLeases(state, context);
  let result: LocksResult;
  switch (command.op) {
    case 'acquire':
      result = acquire(state, command, context);
      break;
    case 'renew':
      result = renew(state, command.lock, command.token, command.ttlMs, context.time);
      break;
    case 'release':
      result = release(state, command.lock, command.token, context);
      break;
    case 'cancel':
      result = cancel(state, command.lock, command.ticket, context);
      break;
    case 'tick':
      result = null;
      break;
  }
  heapTidy(state.leases, (item) => isLiveLease(state, item), state.heldCount);
  return result;
}

function isLiveLease(state: LocksState, [expiresAt, token, lock]: LeaseItem): boolean {
  const holder = state.locks.get(lock)?.holder;
  return holder?.token === token && holder.expiresAt === expiresAt;
}

/** Every lease that ended by the command's log time passes to the head of its queue. */
function expireLeases(state: LocksState, context: ApplyContext): void {
  for (
    let top = state.leases[0];
    top !== undefined && top[0] <= context.time;
    top = state.leases[0]
  ) {
    heapPop(state.leases);
    if (!isLiveLease(state, top)) continue;
    const record = state.locks.get(top[2]) as LockRecord;
    record.holder = null;
    state.heldCount -= 1;
    grantNext(state, top[2], record, context);
  }
}

/** Grants the lock to the first waiter that has not given up, or forgets an idle lock. */
function grantNext(
  state: LocksState,
  lock: string,
  record: LockRecord,
  context: ApplyContext,
): void {
  assert(record.holder === null, 'only a free lock is granted');
  let waiter = record.queue.shift();
  while (waiter !== undefined && hasLapsed(waiter, context.time)) waiter = record.queue.shift();
  if (waiter === undefined) {
    state.locks.delete(lock);
    return;
  }
  grant(state, lock, record, waiter.owner, waiter.ticket, waiter.ttlMs, context);
}

function hasLapsed(waiter: QueuedWaiter, timeMs: number): boolean {
  return waiter.giveUpAt !== null && waiter.giveUpAt <= timeMs;
}

function grant(
  state: LocksState,
  lock: string,
  record: LockRecord,
  owner: string,
  ticket: number,
  ttlMs: number,
  context: ApplyContext,
): Lease {
  const holder: HolderRecord = {
    lock,
    owner,
    token: context.position,
    grantedAt: context.time,
    expiresAt: context.time + ttlMs,
    ticket,
  };
  record.holder = holder;
  state.heldCount += 1;
  heapPush(state.leases, [holder.expiresAt, holder.token, lock]);
  return leaseOf(holder);
}

function leaseOf(holder: HolderRecord): Lease {
  const { lock, owner, token, grantedAt, expiresAt } = holder;
  return { lock, owner, token, grantedAt, expiresAt };
}

function acquire(
  state: LocksState,
  command: Extract<LocksCommand, { op: 'acquire' }>,
  context: ApplyContext,
): AcquireResult {
  let record = state.locks.get(command.lock);
  if (record === undefined) {
    if (state.locks.size >= activeLocksMax) {
      throw new Error(`${activeLocksMax} locks are active, the limit: release some first`);
    }
    record = { holder: null, queue: [] };
    state.locks.set(command.lock, record);
  }
  if (record.holder === null) {
    assert(record.queue.length === 0, 'a free lock has no waiters');
    return {
      granted: grant(
        state,
        command.lock,
        record,
        command.owner,
        context.position,
        command.ttlMs,
        context,
      ),
    };
  }
  if (!command.wait) return { busy: true };
  if (record.queue.length >= waitersPerLockMax) {
    // Waiters that gave up in log time (crashed before their cancel) are only skipped at
    // the next grant; a lock held for long would otherwise stay full of them.
    record.queue = record.queue.filter((waiter) => !hasLapsed(waiter, context.time));
  }
  if (record.queue.length >= waitersPerLockMax) {
    throw new Error(`${waitersPerLockMax} waiters already queue for lock ${command.lock}`);
  }
  record.queue.push({
    owner: command.owner,
    ticket: context.position,
    ttlMs: command.ttlMs,
    giveUpAt: command.waitMs === null ? null : context.time + command.waitMs,
  });
  return { queued: context.position, position: record.queue.length - 1 };
}

function renew(
  state: LocksState,
  lock: string,
  token: number,
  ttlMs: number,
  timeMs: number,
): Lease | null {
  const holder = state.locks.get(lock)?.holder;
  if (holder?.token !== token) return null;
  const renewed: HolderRecord = { ...holder, expiresAt: timeMs + ttlMs };
  (state.locks.get(lock) as LockRecord).holder = renewed;
  heapPush(state.leases, [renewed.expiresAt, token, lock]);
  return leaseOf(renewed);
}

function release(state: LocksState, lock: string, token: number, context: ApplyContext): boolean {
  const record = state.locks.get(lock);
  if (record?.holder?.token !== token) return false;
  record.holder = null;
  state.heldCount -= 1;
  grantNext(state, lock, record, context);
  return true;
}

/** A waiter gives up: leaves the queue, or releases the lock if it was granted meanwhile. */
function cancel(state: LocksState, lock: string, ticket: number, context: ApplyContext): boolean {
  const record = state.locks.get(lock);
  if (record === undefined) return false;
  if (record.holder?.ticket === ticket) return release(state, lock, record.holder.token, context);
  const at = record.queue.findIndex((waiter) => waiter.ticket === ticket);
  if (at < 0) return false;
  record.queue.splice(at, 1);
  return true;
}

interface EncodedLocks {
  locks: [string, LockRecord][];
  leases: LeaseItem[];
  heldCount: number;
}

/** The locks' reducer: deterministic, validating, O(log n) per command (O(queue) to cancel). */
export const locksMachine: StateMachine<LocksState, LocksCommand, LocksResult> = {
  initialState: () => ({ locks: new Map(), leases: [], heldCount: 0 }),
  parseCommand: parseLocksCommand,
  apply: applyLocks,
  encodeState: (state): EncodedLocks => ({ ...state, locks: [...state.locks.entries()] }),
  decodeState(encoded) {
    const locks = encoded as EncodedLocks;
    return { ...locks, locks: new Map(locks.locks) };
  },
};

// ------------------------------------------------------------ the agents' side

export interface LocksOptions
  extends Omit<ReplicaOptions<LocksState, LocksCommand, LocksResult>, 'topic' | 'machine'> {
  /** The name of this set of locks; its topic is `locks/<name>`. */
  readonly name: string;
}

export interface AcquireOptions {
  readonly owner: string;
  readonly ttlMs: number;
  /** How long to wait in the queue (default: no limit); then AgentError `timeout`. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** Where a waiter stands: granted, still queued (with what to watch), or out of the queue. */
type WaitView =
  | { readonly granted: Lease }
  | { readonly position: number; readonly holderToken: number; readonly holderEnd: number }
  | { readonly gone: true };

export class Locks {
  private constructor(
    readonly name: string,
    /** The replica behind the locks, for `onApplied`, `readLocal` and snapshots. */
    readonly replica: ReplicatedStateMachine<LocksState, LocksCommand, LocksResult>,
  ) {}

  static async open(options: LocksOptions): Promise<Locks> {
    const name = checkName(options?.name, 'name');
    const replica = await ReplicatedStateMachine.start({
      ...options,
      topic: `locks/${name}`,
      machine: locksMachine,
    });
    return new Locks(name, replica);
  }

  /**
   * Acquires `lock`, waiting in its FIFO queue as long as needed (or `timeoutMs`). A waiter
   * that gives up appends a cancel, which also releases a grant that raced with it.
   */
  async acquire(lock: string, options: AcquireOptions): Promise<Lease> {
    // From plain JavaScript: refused by name, not a TypeError on `options.owner` below.
    if (typeof options !== 'object' || options === null) {
      throw invalidArgument('options', 'acquire takes options { owner, ttlMs }');
    }
    const timeoutMs = checkTimeoutMs(options?.timeoutMs);
    const deadlineMs = Date.now() + timeoutMs;
    const answer = (await this.submit({
      op: 'acquire',
      lock,
      owner: options.owner,
      ttlMs: options.ttlMs,
      wait: true,
      waitMs: timeoutMs <= leaseMsMax ? Math.max(1, Math.ceil(timeoutMs)) : null,
    })) as AcquireResult;
    if ('granted' in answer) return answer.granted;
    assert('queued' in answer, 'an acquire that waits is granted or queued');
    try {
      return await this.awaitGrant(lock, answer.queued, deadlineMs, options.signal);
    } catch (error) {
      // Giving up is recorded in the log, so the queue never grants to an agent that left.
      await this.submit({ op: 'cancel', lock, ticket: answer.queued }).catch(() => undefined);
      throw error;
    }
  }

  /** Acquires `lock` if it is free at the command's log time; null otherwise. */
  async tryAcquire(
    lock: string,
    options: { readonly owner: string; readonly ttlMs: number },
  ): Promise<Lease | null> {
    const answer = (await this.submit({
      op: 'acquire',
      lock,
      owner: options?.owner,
      ttlMs: options?.ttlMs,
      wait: false,
      waitMs: null,
    })) as AcquireResult;
    return 'granted' in answer ? answer.granted : null;
  }

  /** Extends the lease to `ttlMs` after the renew's log time; null if it is no longer current. */
  async renew(lease: Lease, options: { readonly ttlMs: number }): Promise<Lease | null> {
    const { lock, token } = refOf(lease);
    return (await this.submit({ op: 'renew', lock, token, ttlMs: options?.ttlMs })) as Lease | null;
  }

  /** Releases the lease; false if it was no longer current (expired or released). */
  async release(lease: Lease): Promise<boolean> {
    return (await this.submit({ op: 'release', ...refOf(lease) })) as boolean;
  }

  /** The lock's current lease (linearizable), or null when it is free. */
  async holder(lock: string): Promise<Lease | null> {
    checkName(lock, 'lock');
    return this.replica.read((state) => {
      const holder = state.locks.get(lock)?.holder;
      return holder === null || holder === undefined ? null : leaseOf(holder);
    });
  }

  /** Appends a no-op so that the log's clock advances and due expiries are decided. */
  async tick(): Promise<void> {
    await this.submit({ op: 'tick' });
  }

  async close(): Promise<void> {
    await this.replica.close();
  }

  private async awaitGrant(
    lock: string,
    ticket: number,
    deadlineMs: number,
    signal?: AbortSignal,
  ): Promise<Lease> {
    for (;;) {
      if (signal?.aborted) throw abortedError();
      const view = this.replica.readLocal((state) => waitView(state, lock, ticket));
      if ('granted' in view) return view.granted;
      if ('gone' in view) {
        throw new AgentError(
          'timeout',
          `the wait for lock ${lock} ended in the log before a grant`,
          { lock },
        );
      }
      const leftMs = deadlineMs - Date.now();
      if (leftMs <= 0)
        throw new AgentError('timeout', `lock ${lock} was not granted in time`, { lock });
      // The head of the queue ticks when the lease ends; the others only if it does not.
      const tickAtMs = view.holderEnd + (view.position === 0 ? 0 : backupTickDelayMs);
      const dueInMs = this.replica.msUntilLogTime(tickAtMs);
      if (dueInMs === 0) {
        await this.tick();
        continue;
      }
      const changed = (state: LocksState) => {
        const now = waitView(state, lock, ticket);
        if ('granted' in now || 'gone' in now) return true;
        return now.holderToken !== view.holderToken || now.holderEnd !== view.holderEnd
          ? true
          : undefined;
      };
      await waitForChange(this.replica, changed, Math.min(leftMs, dueInMs), signal);
    }
  }

  /** Checks the command here first, so a bad argument is `invalid_argument`, not `rejected`. */
  private submit(command: LocksCommand): Promise<LocksResult> {
    return this.replica.submit(parseLocksCommand(command));
  }
}

function waitView(state: LocksState, lock: string, ticket: number): WaitView {
  const record = state.locks.get(lock);
  const holder = record?.holder;
  if (holder?.ticket === ticket) return { granted: leaseOf(holder) };
  const position = record?.queue.findIndex((waiter) => waiter.ticket === ticket) ?? -1;
  if (position < 0 || holder === null || holder === undefined) return { gone: true };
  return { position, holderToken: holder.token, holderEnd: holder.expiresAt };
}

function refOf(lease: Lease): { lock: string; token: number } {
  if (typeof lease !== 'object' || lease === null)
    throw invalidArgument('lease', 'lease takes a Lease from acquire()');
  return { lock: lease.lock, token: lease.token };
}

/**
 * The storage side of fencing. A lease can end while its holder is paused (GC, a slow
 * network) and the holder may still send a write afterwards; the lock service cannot stop
 * that write, but the storage can: every write carries the writer's lease token, and the
 * storage admits a token only if it is at least the highest it admitted for that resource.
 * Since tokens of one lock strictly increase from grant to grant, once the successor has
 * written, the old holder's writes are refused.
 *
 *   const lease = await locks.acquire('report', { owner, ttlMs: 10_000 });
 *   // in the storage service, for every write:
 *   if (!guard.admit('report', write.token)) throw new Error('stale lease: write refused');
 *
 * Keep the guard where the writes are applied (the check and the write must be atomic) and
 * persist the highest tokens with the data if the storage restarts.
 */
export class FencingGuard {
  private readonly highest = new Map<string, number>();

  /** True (and remembered) unless `token` is lower than the highest admitted for `resource`. */
  admit(resource: string, token: number): boolean {
    checkName(resource, 'resource');
    checkToken(token);
    const highest = this.highest.get(resource) ?? 0;
    if (token < highest) return false;
    this.highest.set(resource, token);
    return true;
  }

  /** The highest token admitted for `resource` (0 when none). */
  highestToken(resource: string): number {
    return this.highest.get(resource) ?? 0;
  }
}
