/**
 * A task board on the total order: agents post tasks, claim them under a lease, renew,
 * complete or release them. Every decision is taken by a deterministic reducer applied in
 * log order on topic `taskboard/<name>`, so every replica agrees on who holds what:
 * - exactly one agent wins each claim, and claims go FIFO by post order among claimable
 *   tasks (open ones, and claimed ones whose lease has expired at the command's log time);
 * - a claim's fencing `token` is the position of the claim command, so tokens of one task
 *   strictly increase across reassignments;
 * - `complete`, `renew` and `release` are accepted only from the current claim while its
 *   lease runs (in log time): a crashed agent's late complete is refused with a typed
 *   outcome, so each task is completed exactly once.
 * Lease expiry is decided only by the log's clock (`context.time`), at the first command
 * whose time reaches it; a waiting agent uses its own clock only to decide when to append
 * that command (see `next`).
 */
import { assert } from '../util/assert.ts';
import { heapPop, heapPush, heapTidy } from '../util/heap.ts';
import {
  abortedError,
  checkDurationMs,
  checkName,
  checkObject,
  checkPayload,
  checkTimeoutMs,
  checkToken,
  waitForChange,
} from './coordination.ts';
import { AgentError, invalidArgument } from './errors.ts';
import { ReplicatedStateMachine } from './rsm.ts';
import type { ApplyContext, ReplicaOptions, StateMachine } from './state-machine.ts';

/** Tasks not yet done that a board holds at most; posts beyond it are refused. */
export const pendingTasksMax = 100_000;
/** Done tasks kept for `task(id)` and idempotent posts; the oldest are forgotten first. */
export const doneTasksKeptMax = 10_000;
/** A `list` returns at most this many tasks. */
const listLimitMax = 10_000;

export type TaskStatus = 'open' | 'claimed' | 'done';

/** A task as the board holds it (and as views return it). */
export interface TaskView {
  readonly id: string;
  readonly task: unknown;
  readonly status: TaskStatus;
  /** The position of the post command: the FIFO order of claims. */
  readonly postedPosition: number;
  readonly postedAt: number;
  /** The last claim's agent and token (kept after expiry, release and completion). */
  readonly agentId: string | null;
  readonly token: number | null;
  /** While claimed: when the lease ends, in log time (ms). */
  readonly leaseExpiresAt: number | null;
  /** How many times it has been claimed. */
  readonly attempts: number;
  readonly result: unknown;
  readonly completedAt: number | null;
}

/** What a winning claim gives the agent; pass it back to renew, complete or release. */
export interface Claim {
  readonly taskId: string;
  readonly task: unknown;
  readonly agentId: string;
  /** The fencing token: the position of the claim command. */
  readonly token: number;
  /** The lease's end in log time (ms); renew before it. */
  readonly leaseExpiresAt: number;
  /** 1 for the first claim of the task, more after expiries and releases. */
  readonly attempt: number;
}

/**
 * Why a claim's command was refused: the lease ran out in log time (`lease_expired`),
 * another claim took the task since (`superseded`), this claim already completed it
 * (`already_done`), or the board no longer knows the task (`unknown_task`).
 */
export type ClaimLostReason = 'lease_expired' | 'superseded' | 'already_done' | 'unknown_task';

export type ClaimOutcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: ClaimLostReason };
export type RenewOutcome =
  | { readonly ok: true; readonly claim: Claim }
  | { readonly ok: false; readonly reason: ClaimLostReason };

export interface TaskCounts {
  readonly open: number;
  readonly claimed: number;
  /** Every task ever completed, including those no longer kept. */
  readonly done: number;
}

// ------------------------------------------------------------ the reducer

interface TaskRecord {
  id: string;
  task: unknown;
  status: TaskStatus;
  postedPosition: number;
  postedAt: number;
  agentId: string | null;
  token: number | null;
  leaseExpiresAt: number | null;
  attempts: number;
  result: unknown;
  completedAt: number | null;
}

/** [postedPosition, taskId]: a min-heap of the open tasks, FIFO by post order. */
type OpenItem = [number, string];
/** [leaseExpiresAt, token, taskId]: a min-heap of leases; stale items are skipped. */
type LeaseItem = [number, number, string];

export interface BoardState {
  tasks: Map<string, TaskRecord>;
  open: OpenItem[];
  leases: LeaseItem[];
  claimedCount: number;
  doneCount: number;
  /** Ids of kept done tasks, oldest first. */
  doneKept: string[];
}

export type BoardCommand =
  | { op: 'post'; id: string | null; task: unknown }
  | { op: 'claim'; agentId: string; leaseMs: number }
  | { op: 'renew'; taskId: string; token: number; leaseMs: number }
  | { op: 'complete'; taskId: string; token: number; result: unknown }
  | { op: 'release'; taskId: string; token: number; reason: string | null }
  | { op: 'tick' };

export type BoardResult = string | Claim | null | ClaimOutcome | RenewOutcome;

function parseBoardCommand(payload: unknown): BoardCommand {
  const command = checkObject(payload, 'task board');
  switch (command.op) {
    case 'post':
      return {
        op: 'post',
        id: command.id === null || command.id === undefined ? null : checkTaskId(command.id),
        task: checkPayload(command.task, 'task'),
      };
    case 'claim':
      return {
        op: 'claim',
        agentId: checkName(command.agentId, 'agentId'),
        leaseMs: checkDurationMs(command.leaseMs, 'leaseMs'),
      };
    case 'renew':
      return {
        op: 'renew',
        ...claimRef(command),
        leaseMs: checkDurationMs(command.leaseMs, 'leaseMs'),
      };
    case 'complete':
      return {
        op: 'complete',
        ...claimRef(command),
        result: checkPayload(command.result ?? null, 'result'),
      };
    case 'release':
      return {
        op: 'release',
        ...claimRef(command),
        reason:
          command.reason === null || command.reason === undefined
            ? null
            : checkName(command.reason, 'reason'),
      };
    case 'tick':
      return { op: 'tick' };
    default:
      throw invalidArgument('op', `unknown task board op ${JSON.stringify(command.op)}`);
  }
}

function claimRef(command: Record<string, unknown>): { taskId: string; token: number } {
  return { taskId: checkName(command.taskId, 'taskId'), token: checkToken(command.token) };
}

/** Caller ids never start with `#`: that is where generated ids (`#<position>`) live. */
function checkTaskId(value: unknown): string {
  const id = checkName(value, 'id');
  if (id.startsWith('#'))
    throw invalidArgument('id', 'a task id given by the caller must not start with #');
  return id;
}

function applyBoard(state: BoardState, command: BoardCommand, context: ApplyContext): BoardResult {
  expireLeases(state, context.time);
  try {
    return applyOp(state, command, context);
  } finally {
    // Also when the command is refused after the expiries above: they may have uncovered
    // a stale lease at the heap's top, and `next()` reads the top as the earliest lease end.
    heapTidy(state.leases, (item) => isLiveLease(state, item), state.claimedCount);
  }
}

function applyOp(state: BoardState, command: BoardCommand, context: ApplyContext): BoardResult {
  let result: BoardResult;
  switch (command.op) {
    case 'post':
      result = post(state, command.id, command.task, context);
      break;
    case 'claim':
      result = claim(state, command.agentId, command.leaseMs, context);
      break;
    case 'renew':
      result = renew(state, command.taskId, command.token, command.leaseMs, context.time);
      break;
    case 'complete':
      result = complete(state, command.taskId, command.token, command.result, context.time);
      break;
    case 'release':
      result = release(state, command.taskId, command.token);
      break;
    case 'tick':
      result = null;
      break;
  }
  return result;
}

function isLiveLease(state: BoardState, [expiresAt, token, taskId]: LeaseItem): boolean {
  const task = state.tasks.get(taskId);
  return task?.status === 'claimed' && task.token === token && task.leaseExpiresAt === expiresAt;
}

/** Every lease that ended by `timeMs` reopens its task (at its place in post order). */
function expireLeases(state: BoardState, timeMs: number): void {
  for (let top = state.leases[0]; top !== undefined && top[0] <= timeMs; top = state.leases[0]) {
    heapPop(state.leases);
    if (!isLiveLease(state, top)) continue;
    const task = state.tasks.get(top[2]) as TaskRecord;
    task.status = 'open';
    task.leaseExpiresAt = null;
    state.claimedCount -= 1;
    heapPush(state.open, [task.postedPosition, task.id]);
  }
}

function post(
  state: BoardState,
  id: string | null,
  payload: unknown,
  context: ApplyContext,
): string {
  const taskId = id ?? `#${context.position}`;
  if (state.tasks.has(taskId)) return taskId;
  if (state.open.length + state.claimedCount >= pendingTasksMax) {
    throw new Error(
      `the board holds ${pendingTasksMax} pending tasks, its limit: complete some first`,
    );
  }
  state.tasks.set(taskId, {
    id: taskId,
    // A copy: the command object also reaches onApplied listeners, which must not be able
    // to change the replica's state through it.
    task: structuredClone(payload),
    status: 'open',
    postedPosition: context.position,
    postedAt: context.time,
    agentId: null,
    token: null,
    leaseExpiresAt: null,
    attempts: 0,
    result: null,
    completedAt: null,
  });
  heapPush(state.open, [context.position, taskId]);
  return taskId;
}

function claim(
  state: BoardState,
  agentId: string,
  leaseMs: number,
  context: ApplyContext,
): Claim | null {
  const head = heapPop(state.open);
  if (head === undefined) return null;
  const task = state.tasks.get(head[1]);
  assert(task?.status === 'open', 'the open heap holds exactly the open tasks');
  task.status = 'claimed';
  task.agentId = agentId;
  task.token = context.position;
  task.leaseExpiresAt = context.time + leaseMs;
  task.attempts += 1;
  state.claimedCount += 1;
  heapPush(state.leases, [task.leaseExpiresAt, task.token, task.id]);
  return claimOf(task);
}

function claimOf(task: TaskRecord): Claim {
  assert(
    task.agentId !== null && task.token !== null && task.leaseExpiresAt !== null,
    'a claimed task has a lease',
  );
  return {
    taskId: task.id,
    // A copy: the caller's object must never alias the replica's state.
    task: structuredClone(task.task),
    agentId: task.agentId,
    token: task.token,
    leaseExpiresAt: task.leaseExpiresAt,
    attempt: task.attempts,
  };
}

/** Null when `token` is the task's current, running claim; else why it is not. */
function lostReason(task: TaskRecord | undefined, token: number): ClaimLostReason | null {
  if (task === undefined) return 'unknown_task';
  if (task.token !== token) return 'superseded';
  if (task.status === 'done') return 'already_done';
  if (task.status === 'open') return 'lease_expired';
  return null;
}

function renew(
  state: BoardState,
  taskId: string,
  token: number,
  leaseMs: number,
  timeMs: number,
): RenewOutcome {
  const task = state.tasks.get(taskId);
  const reason = lostReason(task, token);
  if (reason !== null) return { ok: false, reason };
  const held = task as TaskRecord;
  held.leaseExpiresAt = timeMs + leaseMs;
  heapPush(state.leases, [held.leaseExpiresAt, token, taskId]);
  return { ok: true, claim: claimOf(held) };
}

function complete(
  state: BoardState,
  taskId: string,
  token: number,
  result: unknown,
  timeMs: number,
): ClaimOutcome {
  const task = state.tasks.get(taskId);
  const reason = lostReason(task, token);
  if (reason !== null) return { ok: false, reason };
  const held = task as TaskRecord;
  held.status = 'done';
  held.leaseExpiresAt = null;
  held.result = structuredClone(result); // a copy, as in post
  held.completedAt = timeMs;
  state.claimedCount -= 1;
  state.doneCount += 1;
  state.doneKept.push(taskId);
  if (state.doneKept.length > doneTasksKeptMax)
    state.tasks.delete(state.doneKept.shift() as string);
  return { ok: true };
}

function release(state: BoardState, taskId: string, token: number): ClaimOutcome {
  const task = state.tasks.get(taskId);
  const reason = lostReason(task, token);
  if (reason !== null) return { ok: false, reason };
  const held = task as TaskRecord;
  held.status = 'open';
  held.leaseExpiresAt = null;
  state.claimedCount -= 1;
  heapPush(state.open, [held.postedPosition, taskId]);
  return { ok: true };
}

interface EncodedBoard {
  tasks: TaskRecord[];
  open: OpenItem[];
  leases: LeaseItem[];
  claimedCount: number;
  doneCount: number;
  doneKept: string[];
}

/** The board's reducer: deterministic, validating, O(log n) per command. */
export const taskBoardMachine: StateMachine<BoardState, BoardCommand, BoardResult> = {
  initialState: () => ({
    tasks: new Map(),
    open: [],
    leases: [],
    claimedCount: 0,
    doneCount: 0,
    doneKept: [],
  }),
  parseCommand: parseBoardCommand,
  apply: applyBoard,
  encodeState: (state): EncodedBoard => ({ ...state, tasks: [...state.tasks.values()] }),
  decodeState(encoded) {
    const board = encoded as EncodedBoard;
    const tasks = board.tasks.map(renamedPostedIndex);
    return { ...board, tasks: new Map(tasks.map((task) => [task.id, task])) };
  },
};

/** A task of a snapshot written before `postedIndex` was called `postedPosition`. */
function renamedPostedIndex(task: TaskRecord): TaskRecord {
  const old = task as TaskRecord & { readonly postedIndex?: number };
  if (old.postedPosition !== undefined || old.postedIndex === undefined) return task;
  const { postedIndex, ...rest } = old;
  return { ...rest, postedPosition: postedIndex };
}

// ------------------------------------------------------------ the agents' side

export interface TaskBoardOptions
  extends Omit<ReplicaOptions<BoardState, BoardCommand, BoardResult>, 'topic' | 'machine'> {
  /** The board's name; its topic is `taskboard/<name>`. */
  readonly name: string;
}

export interface NextOptions {
  readonly leaseMs: number;
  readonly signal?: AbortSignal;
  /** How long to wait for a task (default: no limit); then AgentError `timeout`. */
  readonly timeoutMs?: number;
}

export class TaskBoard {
  private constructor(
    readonly name: string,
    /** The replica behind the board, for `onApplied`, `readLocal` and snapshots. */
    readonly replica: ReplicatedStateMachine<BoardState, BoardCommand, BoardResult>,
  ) {}

  /** Opens the board `name` on `log`, loading the newest snapshot if a store is given. */
  static async open(options: TaskBoardOptions): Promise<TaskBoard> {
    const name = checkName(options?.name, 'name');
    const replica = await ReplicatedStateMachine.start({
      ...options,
      topic: `taskboard/${name}`,
      machine: taskBoardMachine,
    });
    return new TaskBoard(name, replica);
  }

  /** Posts a task; with `id`, posting an id the board knows returns it and adds nothing. */
  async post(task: unknown, options: { readonly id?: string } = {}): Promise<string> {
    // From plain JavaScript: refused by name, not a TypeError on `options.id` below.
    if (typeof options !== 'object' || options === null) {
      throw invalidArgument('options', 'post takes options { id } or none');
    }
    const command: BoardCommand = { op: 'post', id: options.id ?? null, task };
    return (await this.submit(command)) as string;
  }

  /** Claims the first claimable task in post order, or null when none is claimable. */
  async claim(agentId: string, options: { readonly leaseMs: number }): Promise<Claim | null> {
    const command: BoardCommand = { op: 'claim', agentId, leaseMs: options?.leaseMs };
    return (await this.submit(command)) as Claim | null;
  }

  /** Extends the lease to `leaseMs` after the renew command's log time. */
  async renew(claim: Claim, options: { readonly leaseMs: number }): Promise<RenewOutcome> {
    const command: BoardCommand = { op: 'renew', ...refOf(claim), leaseMs: options?.leaseMs };
    return (await this.submit(command)) as RenewOutcome;
  }

  /** Marks the task done with `result`, if `claim` is still the task's running claim. */
  async complete(claim: Claim, result: unknown = null): Promise<ClaimOutcome> {
    const command: BoardCommand = { op: 'complete', ...refOf(claim), result };
    return (await this.submit(command)) as ClaimOutcome;
  }

  /** Gives the task back (open again, at its place in post order). */
  async release(claim: Claim, reason?: string): Promise<ClaimOutcome> {
    const command: BoardCommand = { op: 'release', ...refOf(claim), reason: reason ?? null };
    return (await this.submit(command)) as ClaimOutcome;
  }

  /** Appends a no-op so that the log's clock advances and due expiries are decided. */
  async tick(): Promise<void> {
    await this.submit({ op: 'tick' });
  }

  /** Checks the command here first, so a bad argument is `invalid_argument`, not `rejected`. */
  private submit(command: BoardCommand): Promise<BoardResult> {
    return this.replica.submit(parseBoardCommand(command));
  }

  /**
   * Waits until `agentId` claims a task. With open tasks it claims at once; when every
   * pending task is leased it waits for a completion or release, or — by this process's
   * estimate of when the log's clock reaches the earliest lease end — appends a claim,
   * which decides the expiry in the log and takes the task in one command; on an empty
   * board it waits for a post.
   */
  async next(agentId: string, options: NextOptions): Promise<Claim> {
    checkName(agentId, 'agentId');
    checkDurationMs(options?.leaseMs, 'leaseMs');
    const deadlineMs = Date.now() + checkTimeoutMs(options.timeoutMs);
    for (;;) {
      if (options.signal?.aborted) throw abortedError();
      const view = this.replica.readLocal(candidates);
      const dueInMs =
        view.earliestLeaseEnd === null ? null : this.replica.msUntilLogTime(view.earliestLeaseEnd);
      if (view.open > 0 || dueInMs === 0) {
        const claimed = await this.claim(agentId, { leaseMs: options.leaseMs });
        if (claimed !== null) return claimed;
      }
      const leftMs = deadlineMs - Date.now();
      if (leftMs <= 0)
        throw new AgentError('timeout', `no task could be claimed on board ${this.name} in time`);
      const after = this.replica.readLocal(candidates);
      // Wake on anything that may make a task claimable: a post, a release, a new lease end.
      const changed = (state: BoardState) => {
        const now = candidates(state);
        return now.open > 0 || now.earliestLeaseEnd !== after.earliestLeaseEnd ? true : undefined;
      };
      const untilDueMs =
        after.earliestLeaseEnd === null
          ? leftMs
          : Math.max(1, this.replica.msUntilLogTime(after.earliestLeaseEnd));
      await waitForChange(this.replica, changed, Math.min(leftMs, untilDueMs), options.signal);
    }
  }

  /** The task as the board holds it now (linearizable), or null if unknown. */
  async task(id: string): Promise<TaskView | null> {
    checkName(id, 'id');
    return this.replica.read((state) => {
      const task = state.tasks.get(id);
      return task === undefined ? null : (structuredClone(task) as TaskView);
    });
  }

  /** How many tasks are open, claimed and done (linearizable). */
  async counts(): Promise<TaskCounts> {
    return this.replica.read((state) => ({
      open: state.open.length,
      claimed: state.claimedCount,
      done: state.doneCount,
    }));
  }

  /** Tasks in post order, optionally of one status; at most `limit` (default 100). */
  async list(
    options: { readonly status?: TaskStatus; readonly limit?: number } = {},
  ): Promise<TaskView[]> {
    const limit = options.limit ?? 100;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > listLimitMax) {
      throw invalidArgument('limit', `limit takes an integer in [1, ${listLimitMax}]`);
    }
    if (options.status !== undefined && !['open', 'claimed', 'done'].includes(options.status)) {
      throw invalidArgument('status', 'status is open, claimed or done');
    }
    return this.replica.read((state) => {
      const found: TaskView[] = [];
      for (const task of state.tasks.values()) {
        if (found.length >= limit) break;
        if (options.status === undefined || task.status === options.status)
          found.push(structuredClone(task));
      }
      return found.sort((a, b) => a.postedPosition - b.postedPosition);
    });
  }

  async close(): Promise<void> {
    await this.replica.close();
  }
}

function refOf(claim: Claim): { taskId: string; token: number } {
  if (typeof claim !== 'object' || claim === null)
    throw invalidArgument('claim', 'claim takes a Claim from claim() or next()');
  return { taskId: claim.taskId, token: claim.token };
}

function candidates(state: BoardState): { open: number; earliestLeaseEnd: number | null } {
  // The lease heap's top is always live (the reducer tidies it after every command).
  return { open: state.open.length, earliestLeaseEnd: state.leases[0]?.[0] ?? null };
}
