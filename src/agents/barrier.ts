/**
 * Cyclic barriers: N agents wait until all N have arrived, then the barrier resets for the
 * next generation. Arrivals are commands in the log, so every replica agrees on who arrived
 * in which generation, in which order, and which arrival completed it.
 *
 * - An arrival is idempotent per agent and generation: an agent already counted in the
 *   current generation is not counted twice (its retry just waits with the others).
 * - The first arrival of a generation fixes its `parties`; an arrival that names another
 *   number is refused (`rejected`, details.reason `parties_mismatch`).
 * - An agent that crashes BEFORE arriving leaves the others waiting: each waits until its
 *   own timeout or abort, and then withdraws (a command removing its arrival from the
 *   generation, so a later arrival of a replacement agent is counted instead). An agent
 *   that crashes AFTER arriving stays counted: its arrival is in the log.
 * - A withdrawal that lands after the generation completed is refused by the reducer, and
 *   the waiting call then resolves with the completed generation instead of failing: the
 *   barrier tripped with this agent counted, and every replica says so.
 */
import { AgentError, invalidArgument } from './errors.ts';
import { checkTopic } from './log.ts';
import { checkAgentId } from './presence-machine.ts';
import { ReplicatedStateMachine } from './rsm.ts';
import type { LogSource } from './source.ts';
import type { ReplicaOptions, StateMachine } from './state-machine.ts';

/** Barrier one topic holds; arrivals at a new one beyond it are refused with `full`. */
export const barriersMax = 10_000;
export const barrierPartiesMax = 1_000;
/** Completed generations each barrier remembers, for waiters that look late. */
export const barrierHistoryMax = 16;

export interface CompletedGeneration {
  readonly generation: number;
  /** The agents, in arrival order. */
  readonly arrived: readonly string[];
  /** The position and log time of the arrival that completed it. */
  readonly position: number;
  readonly time: number;
}

export interface BarrierRecord {
  /** The generation now filling (0 first). */
  generation: number;
  /** Fixed by the generation's first arrival; null while it is empty. */
  parties: number | null;
  arrived: string[];
  /** The newest completed generations, oldest first. */
  history: CompletedGeneration[];
}

export interface BarrierState {
  /** By barrier name. A Map: names are foreign input and may be `__proto__`. */
  readonly barriers: Map<string, BarrierRecord>;
}

export type BarrierCommand =
  | {
      readonly op: 'arrive';
      readonly barrier: string;
      readonly agentId: string;
      readonly parties: number;
    }
  | {
      readonly op: 'withdraw';
      readonly barrier: string;
      readonly agentId: string;
      readonly generation: number;
    };

export type BarrierOutcome =
  /** Counted in `generation`, which is not complete yet. */
  | { readonly status: 'waiting'; readonly generation: number; readonly arrivedCount: number }
  /** Already counted in `generation` (a retry): nothing changed. */
  | { readonly status: 'already_arrived'; readonly generation: number }
  /** This arrival completed `generation`. */
  | { readonly status: 'complete'; readonly completed: CompletedGeneration }
  | { readonly status: 'parties_mismatch'; readonly generation: number; readonly parties: number }
  | { readonly status: 'full'; readonly barriersMax: number }
  | { readonly status: 'withdrawn'; readonly generation: number }
  /** The withdrawal came too late: the generation completed (with or without the agent). */
  | { readonly status: 'not_waiting'; readonly generation: number };

// ------------------------------------------------------------------ the reducer

export const barrierMachine: StateMachine<BarrierState, BarrierCommand, BarrierOutcome> = {
  initialState: () => ({ barriers: new Map() }),
  parseCommand: parseBarrierCommand,
  apply(state, command, context) {
    if (command.op === 'withdraw') return withdraw(state, command);
    let record = state.barriers.get(command.barrier);
    if (record === undefined) {
      if (state.barriers.size >= barriersMax && !evictIdle(state)) {
        return { status: 'full', barriersMax };
      }
      record = { generation: 0, parties: null, arrived: [], history: [] };
      state.barriers.set(command.barrier, record);
    }
    const generation = record.generation;
    if (record.arrived.includes(command.agentId)) return { status: 'already_arrived', generation };
    if (record.parties !== null && record.parties !== command.parties) {
      return { status: 'parties_mismatch', generation, parties: record.parties };
    }
    record.parties = command.parties;
    record.arrived.push(command.agentId);
    if (record.arrived.length < command.parties) {
      return { status: 'waiting', generation, arrivedCount: record.arrived.length };
    }
    const completed: CompletedGeneration = {
      generation,
      arrived: record.arrived,
      position: context.position,
      time: context.time,
    };
    record.history.push(completed);
    if (record.history.length > barrierHistoryMax) record.history.shift();
    record.generation += 1;
    record.parties = null;
    record.arrived = [];
    // A copy: the result leaves the reducer (listeners, the submitter), the state stays.
    return { status: 'complete', completed: { ...completed, arrived: [...completed.arrived] } };
  },
  encodeState: (state) => [...state.barriers],
  decodeState: (encoded) => ({
    barriers: new Map(
      (encoded as [string, BarrierRecord][]).map(([name, record]) => [
        name,
        { ...record, history: record.history.map(renamedIndex) },
      ]),
    ),
  }),
};

/** A generation of a snapshot written before its `index` was called `position`. */
function renamedIndex(completed: CompletedGeneration): CompletedGeneration {
  const old = completed as CompletedGeneration & { readonly index?: number };
  if (old.position !== undefined || old.index === undefined) return completed;
  const { index, ...rest } = old;
  return { ...rest, position: index };
}

/**
 * Forgets the idle barrier (nobody waiting) that completed longest ago, so that a topic that
 * names a new barrier per round does not fill up; false when every barrier has waiters.
 * A forgotten barrier starts again at generation 0 if it is named again.
 */
function evictIdle(state: BarrierState): boolean {
  let oldest: string | null = null;
  let oldestIndex = Number.POSITIVE_INFINITY;
  for (const [name, record] of state.barriers) {
    if (record.arrived.length > 0) continue;
    const completedIndex = record.history.at(-1)?.position ?? 0;
    if (completedIndex < oldestIndex) {
      oldest = name;
      oldestIndex = completedIndex;
    }
  }
  if (oldest === null) return false;
  state.barriers.delete(oldest);
  return true;
}

function withdraw(
  state: BarrierState,
  command: Extract<BarrierCommand, { op: 'withdraw' }>,
): BarrierOutcome {
  const record = state.barriers.get(command.barrier);
  const at = record?.arrived.indexOf(command.agentId) ?? -1;
  if (record === undefined || record.generation !== command.generation || at < 0) {
    return { status: 'not_waiting', generation: command.generation };
  }
  record.arrived.splice(at, 1);
  if (record.arrived.length === 0) record.parties = null;
  return { status: 'withdrawn', generation: command.generation };
}

// ------------------------------------------------------------------ validation

function checkParties(parties: unknown): number {
  if (
    typeof parties !== 'number' ||
    !Number.isSafeInteger(parties) ||
    parties < 1 ||
    parties > barrierPartiesMax
  ) {
    throw invalidArgument('parties', `parties must be an integer from 1 to ${barrierPartiesMax}`);
  }
  return parties;
}

function checkGeneration(generation: unknown): number {
  if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 0) {
    throw invalidArgument('generation', 'generation must be an integer >= 0');
  }
  return generation;
}

export function parseBarrierCommand(payload: unknown): BarrierCommand {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw invalidArgument('command', 'a barrier command is an object with an op');
  }
  const raw = payload as Record<string, unknown>;
  const barrier = checkAgentId(raw.barrier, 'barrier');
  const agentId = checkAgentId(raw.agentId);
  if (raw.op === 'arrive') {
    return { op: 'arrive', barrier, agentId, parties: checkParties(raw.parties) };
  }
  if (raw.op === 'withdraw') {
    return { op: 'withdraw', barrier, agentId, generation: checkGeneration(raw.generation) };
  }
  throw invalidArgument('op', 'op must be arrive or withdraw');
}

// ------------------------------------------------------------------ the agents' API

export interface BarrierOptions
  extends Pick<
    ReplicaOptions<BarrierState, BarrierCommand, BarrierOutcome>,
    'snapshotStore' | 'snapshotEveryCommands' | 'checkDeterminism' | 'waitTimeoutMs' | 'onError'
  > {
  readonly log: LogSource;
  /** The group of barriers; its commands go to topic `barrier/<name>`. */
  readonly name: string;
}

export interface ArriveOptions {
  /** How many distinct agents complete a generation (1–1000). */
  readonly parties: number;
  /** How long to wait for the others (default: the replica's waitTimeoutMs). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface BarrierPassed {
  readonly generation: number;
  /** The generation's agents, in arrival order. */
  readonly arrived: readonly string[];
}

export interface BarrierStatus {
  readonly generation: number;
  readonly parties: number | null;
  readonly arrived: readonly string[];
}

export class Barrier {
  private constructor(
    readonly replica: ReplicatedStateMachine<BarrierState, BarrierCommand, BarrierOutcome>,
    readonly name: string,
  ) {}

  static async open(options: BarrierOptions): Promise<Barrier> {
    const name = checkTopic(options?.name, 'name');
    const replica = await ReplicatedStateMachine.start({
      ...options,
      topic: `barrier/${name}`,
      machine: barrierMachine,
    });
    return new Barrier(replica, name);
  }

  /**
   * Arrives at `barrierName` as `agentId` and resolves once `parties` distinct agents have
   * arrived in the same generation. On timeout (`timeout`) or abort (`aborted`) it first
   * withdraws the arrival; if the generation completed before the withdrawal landed, it
   * resolves with that generation instead.
   */
  async arrive(
    barrierName: string,
    agentId: string,
    options: ArriveOptions,
  ): Promise<BarrierPassed> {
    const command = {
      op: 'arrive',
      barrier: checkAgentId(barrierName, 'barrierName'),
      agentId: checkAgentId(agentId),
      parties: checkParties(options?.parties),
    } as const;
    if (options.signal?.aborted) throw new AgentError('aborted', 'the arrival was aborted');
    const outcome = await this.replica.submit(command);
    switch (outcome.status) {
      case 'complete':
        return passed(outcome.completed);
      case 'parties_mismatch':
        throw new AgentError(
          'rejected',
          `barrier ${barrierName} expects ${outcome.parties} parties in generation ${outcome.generation}, not ${command.parties}`,
          { reason: 'parties_mismatch', parties: outcome.parties, generation: outcome.generation },
        );
      case 'full':
        throw new AgentError('rejected', `too many barriers in ${this.name} (${barriersMax})`, {
          reason: 'full',
        });
      case 'waiting':
      case 'already_arrived':
        return this.awaitGeneration(command.barrier, agentId, outcome.generation, options);
      default:
        throw new AgentError('rejected', `unexpected answer ${outcome.status} to an arrival`);
    }
  }

  /**
   * Withdraws `agentId` from `barrierName`'s current generation (cancel an arrival, say one
   * made before a restart). True if it was waiting there and is no longer counted.
   */
  async withdraw(barrierName: string, agentId: string): Promise<boolean> {
    checkAgentId(barrierName, 'barrierName');
    checkAgentId(agentId);
    const generation = (await this.replica.read((state) => state.barriers.get(barrierName)))
      ?.generation;
    if (generation === undefined) return false;
    const outcome = await this.replica.submit({
      op: 'withdraw',
      barrier: barrierName,
      agentId,
      generation,
    });
    return outcome.status === 'withdrawn';
  }

  /** The generation now filling, as this replica knows it (may be stale). */
  status(barrierName: string): BarrierStatus {
    return this.replica.readLocal((state) => {
      const record = state.barriers.get(barrierName);
      if (record === undefined) return { generation: 0, parties: null, arrived: [] };
      return {
        generation: record.generation,
        parties: record.parties,
        arrived: [...record.arrived],
      };
    });
  }

  close(): Promise<void> {
    return this.replica.close();
  }

  private async awaitGeneration(
    barrier: string,
    agentId: string,
    generation: number,
    options: ArriveOptions,
  ): Promise<BarrierPassed> {
    const probe = (state: BarrierState) => completedIn(state, barrier, agentId, generation);
    try {
      // The replica's wait only hears an abort that comes after it starts: one that came
      // while the arrival was being appended would otherwise wait out the whole timeout.
      if (options.signal?.aborted) throw new AgentError('aborted', 'the wait was aborted');
      return passed(
        await this.replica.waitUntil(probe, {
          ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        }),
      );
    } catch (error) {
      if (!(error instanceof AgentError) || !['timeout', 'aborted'].includes(error.code))
        throw error;
      if (this.replica.failure !== null) throw error;
      const outcome = await this.replica.submit({ op: 'withdraw', barrier, agentId, generation });
      if (outcome.status === 'not_waiting') {
        // The generation completed before the withdrawal: the barrier passed.
        const completed = this.replica.readLocal(probe);
        if (completed !== undefined) return passed(completed);
      }
      const why = error.code === 'timeout' ? 'timed out' : 'was aborted';
      throw new AgentError(
        error.code,
        `the wait at barrier ${barrier} ${why} in generation ${generation}; the arrival is withdrawn`,
        { barrier, generation, arrived: this.status(barrier).arrived },
        { cause: error },
      );
    }
  }
}

/**
 * The completed generation once there is one, if `agentId` is in it; throws when the
 * arrival was withdrawn (by another process's `withdraw`) or the outcome was forgotten.
 */
function completedIn(
  state: BarrierState,
  barrier: string,
  agentId: string,
  generation: number,
): CompletedGeneration | undefined {
  const record = state.barriers.get(barrier);
  if (record !== undefined && record.generation === generation) {
    if (record.arrived.includes(agentId)) return undefined;
    throw new AgentError('rejected', `${agentId} was withdrawn from barrier ${barrier}`, {
      reason: 'withdrawn',
      generation,
    });
  }
  const completed = record?.history.find((entry) => entry.generation === generation);
  if (completed === undefined) {
    throw new AgentError(
      'unknown_outcome',
      `generation ${generation} of barrier ${barrier} completed longer ago than this replica remembers`,
      { generation },
    );
  }
  if (!completed.arrived.includes(agentId)) {
    throw new AgentError('rejected', `${agentId} was withdrawn from barrier ${barrier}`, {
      reason: 'withdrawn',
      generation,
    });
  }
  return completed;
}

function passed(completed: CompletedGeneration): BarrierPassed {
  return { generation: completed.generation, arrived: [...completed.arrived] };
}
