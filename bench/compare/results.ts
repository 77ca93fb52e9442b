/** The shape of bench/results/compare.json, what the renderers read. */
import type { FloorRun } from '../floor.ts';
import type { SystemId } from './args.ts';
import type { LoadResult } from './load.ts';

/** One system driven through one client: a row of the table, a colour of the chart. */
export interface ResultRow {
  /** `etcd`, `zookeeper`, `nats`, `abcast-sdk-http`, `abcast-sdk-binary`. */
  readonly id: string;
  readonly system: SystemId;
  /** The server, as it reports its version. */
  readonly server: string;
  readonly client: string;
  readonly fsyncBeforeAck: boolean;
  readonly durability: string;
  /** One per load level, in the order of `settings.inFlight`. */
  readonly runs: readonly LoadResult[];
  /** Why the system has no runs (it did not start), or null. */
  readonly failure: string | null;
}

export interface CatchUp {
  readonly messages: number;
  /** Through the SDK over HTTP (server-sent events). */
  readonly seconds: number;
  readonly messagesPerSecond: number;
  /** The same reader over the binary protocol; absent in results of older runs. */
  readonly binary?: { readonly seconds: number; readonly messagesPerSecond: number };
}

/**
 * bench/floor.ts at the race's levels, run just before abcast: what a bare replicated log
 * does on this machine that day, for reading the absolute targets against.
 */
export interface FloorResult {
  readonly runs: readonly FloorRun[];
  /** Why the floor did not run, or null. */
  readonly failure: string | null;
}

export interface Machine {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  /** File system of the temporary directory the data lives in: fsync's cost depends on it. */
  readonly dataFileSystem: string;
  /** The race's own scheduling priority (nice value): the machine is shared. */
  readonly nice: number;
}

export interface CompareResults {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: Machine;
  readonly settings: {
    readonly seconds: number;
    readonly warmupSeconds: number;
    readonly clusterWarmupSeconds: number;
    readonly inFlight: readonly number[];
    readonly payloadBytes: number;
    readonly postConnections: number;
    /** The HTTP client of the POST run; absent in races before it was recorded (node:http). */
    readonly postClient?: string;
    readonly catchUpMessages: number;
  };
  /** 1, 5 and 15-minute load averages before the first cluster started and after the last. */
  readonly loadAverage: { readonly before: readonly number[]; readonly after: readonly number[] };
  readonly rows: readonly ResultRow[];
  /** abcast only: one POST /v1/broadcast per message on `postConnections` connections. */
  readonly abcastPost: LoadResult | null;
  /** abcast only: a subscriber reading positions 1..catchUpMessages. */
  readonly abcastCatchUp: CatchUp | null;
  /** Why the POST run or the catch-up did not finish, or null. */
  readonly abcastFailure: string | null;
  /** Absent in results of races before the floor was measured, and when abcast did not race. */
  readonly floor?: FloorResult;
  /**
   * Present when the race ran more than once (`--repeat N`): every figure above is then the
   * median of these races', and `races` keeps each race's own results, in the order they ran.
   */
  readonly repeats?: Repeats;
}

export interface Repeats {
  readonly count: number;
  readonly races: readonly CompareResults[];
}
