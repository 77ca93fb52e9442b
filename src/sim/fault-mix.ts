/**
 * Each seed draws its own world: cluster size, core options, network and disk behaviour,
 * which fault kinds the nemesis uses and how often, and the client workload. So a sweep
 * explores many different worlds rather than one world many times.
 *
 * A shape biases the draw towards one kind of trouble: broad draws from everything,
 * elections and figure8 are sharp, calm is nearly fault-free. The default profile draws a
 * shape per seed (defaultShapeWeights), so a plain sweep meets the sharp worlds too, and
 * every unsafe core variant is caught within 2,000 of its seeds (test/sim/unsafe.test.ts);
 * a named profile fixes the shape for every seed.
 */
import { assert } from '../util/assert.ts';
import { Prng } from '../util/prng.ts';
import { finish32, hashString, mix32 } from './hash.ts';
import type { NetworkFaults } from './network.ts';

/**
 * Named draws: every parameter comes from its own stream, keyed by the run's seed and the
 * parameter's name, so adding or removing a parameter leaves every other one as it was and
 * old seeds keep most of their world.
 */
export class Draws {
  constructor(private readonly seed: number) {}

  private stream(name: string): Prng {
    return new Prng(finish32(mix32(this.seed, hashString(name))));
  }

  pick<T>(name: string, items: readonly T[]): T {
    return this.stream(name).pick(items);
  }

  /** A key of `weights`, each with probability proportional to its weight. */
  weighted<K extends string>(name: string, weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    const total = entries.reduce((sum, [, weight]) => sum + weight, 0);
    assert(
      entries.every(([, weight]) => weight >= 0),
      'weights are not negative',
    );
    assert(total > 0, 'some weight is positive');
    let point = this.stream(name).next() * total;
    for (const [key, weight] of entries) {
      if (point < weight) return key;
      point -= weight;
    }
    // Rounding can leave point a hair above the last weight: the last positive key takes it.
    const last = entries.filter(([, weight]) => weight > 0).pop();
    assert(last !== undefined, 'a positive weight was found above');
    return last[0];
  }

  between(name: string, low: number, high: number): number {
    return this.stream(name).between(low, high);
  }

  chance(name: string, probability: number): boolean {
    return this.stream(name).chance(probability);
  }

  /** 0 (off) with probability 1 - onProbability, else a weight in 1..5. */
  weight(name: string, onProbability: number): number {
    const stream = this.stream(name);
    return stream.chance(onProbability) ? stream.between(1, 5) : 0;
  }
}

export const profiles = ['default', 'broad', 'elections', 'figure8', 'calm'] as const;
export type Profile = (typeof profiles)[number];

/** What a seed's world is biased towards; a profile other than default names one. */
export type Shape = Exclude<Profile, 'default'>;

/**
 * The default profile's odds of each shape. Each unsafe core variant is caught mostly in
 * one shape: a stale vote counted (countStaleVotes) needs the frequent split elections of
 * elections, a Figure 8 commit needs figure8's short-lived leaders, while broad finds the
 * rest and the liveness bugs that need long, varied histories (membership changes, snapshots).
 * Measured over seeds 1..2000 of the default profile, see test/sim/unsafe.test.ts.
 */
export const defaultShapeWeights: Readonly<Record<Shape, number>> = {
  broad: 50,
  elections: 30,
  figure8: 15,
  calm: 5,
};

/** The shape of one seed's world: drawn for the default profile, else the profile's own. */
export function drawShape(draws: Draws, profile: Profile): Shape {
  return profile === 'default' ? draws.weighted('shape', defaultShapeWeights) : profile;
}

export interface CoreTuning {
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly appendBytesMax: number;
  readonly inflightAppendsMax: number;
}

/**
 * Moments when a crash hurts most: after a granted vote left (a forgotten vote lets a node
 * vote twice), after winning an election (before the new leader's entries spread), after a
 * leader advanced its commit index (before followers learn of it).
 */
export interface CrashPoints {
  readonly afterVote: number;
  readonly afterElection: number;
  readonly afterCommit: number;
}

/** Relative weights of the nemesis' actions; 0 turns a kind off. */
export interface NemesisWeights {
  readonly crash: number;
  readonly partition: number;
  readonly pause: number;
  readonly membership: number;
  readonly transfer: number;
  readonly campaign: number;
}

export interface FaultMix {
  readonly profile: Profile;
  /** The profile itself, or for the default profile the shape this seed drew. */
  readonly shape: Shape;
  readonly nodeCount: number;
  /** Node ids beyond the initial members, for membership changes. */
  readonly spareCount: number;
  readonly core: CoreTuning;
  readonly network: NetworkFaults;
  /** A Ready's write completes 0..fsyncTicksMax ticks after it starts. */
  readonly fsyncTicksMax: number;
  /** A leader's replication messages leave before its own write is durable (thesis §10.2.1). */
  readonly leaderSendsEarly: boolean;
  readonly nemesis: NemesisWeights;
  readonly nemesisGapTicksMax: number;
  /** A crash picks the leader with this probability, else any running node. */
  readonly crashLeaderProbability: number;
  /** Crash points: a node crashes right after one of these moments, with this probability. */
  readonly crashPoints: CrashPoints;
  readonly downTicksMax: number;
  readonly partitionTicksMax: number;
  readonly pauseTicksMax: number;
  /** A node's clock skips a tick with up to this probability (drift). */
  readonly clockSkipProbabilityMax: number;
  readonly compactGapTicksMax: number;
  /** Compaction waits for this many applied entries beyond the snapshot. */
  readonly compactEntriesMin: number;
  /** A compaction event only saves the application's checkpoint with this probability. */
  readonly checkpointOnlyProbability: number;
  /** A node removed from the configuration keeps running with this probability. */
  readonly zombieProbability: number;
  /** In the liveness phase a crashed node stays down with this probability, quorum allowing. */
  readonly keepDownProbability: number;
  readonly clientCount: number;
  readonly batchMessagesMax: number;
  readonly payloadBytesMax: number;
  readonly clientThinkTicksMax: number;
  readonly clientTimeoutTicks: number;
  readonly readGapTicksMax: number;
  readonly faultPhaseTicks: number;
  readonly livenessTicksMax: number;
}

export interface MixRequest {
  readonly profile: Profile;
  readonly nodeCount: number | null;
  readonly faultPhaseTicks: number;
}

export function drawFaultMix(draws: Draws, request: MixRequest): FaultMix {
  assert(request.faultPhaseTicks > 0, 'a run has a fault phase');
  const shape = drawShape(draws, request.profile);
  const nodeCount = request.nodeCount ?? draws.pick('nodeCount', [3, 3, 3, 5, 5, 7]);
  assert([3, 5, 7].includes(nodeCount), 'clusters have 3, 5 or 7 nodes');
  const core = drawCore(draws, shape);
  const nemesis = drawNemesis(draws, shape);
  const election = core.electionTimeoutTicks;
  const clientTimeoutTicks = 3 * election + draws.between('clientTimeout', 0, 2 * election - 1);
  const mix: FaultMix = {
    profile: request.profile,
    shape,
    nodeCount,
    spareCount: nemesis.membership > 0 ? draws.between('spareCount', 1, 2) : 0,
    core,
    network: drawNetwork(draws, shape, election),
    fsyncTicksMax: Math.min(draws.pick('fsync', [0, 1, 1, 2, 3]), Math.floor(election / 6)),
    leaderSendsEarly: draws.chance('leaderSendsEarly', 0.7),
    nemesis,
    nemesisGapTicksMax:
      shape === 'calm' ? 4 * election : draws.between('nemesisGap', election, 6 * election),
    crashLeaderProbability: draws.pick('crashLeader', [0.2, 0.5, 0.8]),
    crashPoints: drawCrashPoints(draws, shape),
    downTicksMax: draws.between('downTicks', election, 8 * election),
    partitionTicksMax: draws.between('partitionTicks', 2 * election, 12 * election),
    pauseTicksMax: draws.between('pauseTicks', election, 4 * election),
    clockSkipProbabilityMax: draws.pick('clockSkip', [0, 0, 0.1, 0.3]),
    compactGapTicksMax: draws.between('compactGap', 10, 100),
    compactEntriesMin: draws.pick('compactEntries', [1, 4, 16, 64]),
    checkpointOnlyProbability: draws.pick('checkpointOnly', [0, 0.3]),
    zombieProbability: draws.pick('zombie', [0, 0.5]),
    keepDownProbability: draws.pick('keepDown', [0, 0.5]),
    clientCount: draws.between('clientCount', 1, 8),
    batchMessagesMax: draws.between('batchMessages', 1, 6),
    payloadBytesMax: draws.pick('payloadBytes', [0, 16, 64, 300]),
    clientThinkTicksMax: draws.between('clientThink', 0, 10),
    clientTimeoutTicks,
    readGapTicksMax: draws.pick('readGap', [0, 10, 40]),
    faultPhaseTicks: request.faultPhaseTicks,
    // Room for elections, snapshot catch-up and a client's longest backoff (8 + 4 timeouts).
    livenessTicksMax: 400 + 40 * election + 16 * clientTimeoutTicks,
  };
  return shape === 'figure8' ? figure8(mix, draws) : mix;
}

/** Leaders die young: often, soon after election, with slow disks and big entries. */
function figure8(mix: FaultMix, draws: Draws): FaultMix {
  const election = mix.core.electionTimeoutTicks;
  return {
    ...mix,
    fsyncTicksMax: Math.min(3, Math.floor(election / 4)),
    nemesisGapTicksMax: draws.between('figure8NemesisGap', election, 3 * election),
    crashLeaderProbability: 0.9,
    downTicksMax: draws.between('figure8DownTicks', election, 3 * election),
    payloadBytesMax: 300,
    batchMessagesMax: 1,
    clientThinkTicksMax: 0,
  };
}

function drawCore(draws: Draws, profile: Shape): CoreTuning {
  const electionTimeoutTicks =
    profile === 'elections' ? draws.between('election', 6, 10) : draws.between('election', 8, 20);
  if (profile === 'figure8') {
    // The Raft paper's Figure 8 needs leaders that die between replicating an old entry and
    // replicating their own: one entry per Append, one Append in flight, free elections.
    return {
      electionTimeoutTicks,
      heartbeatIntervalTicks: draws.between('heartbeat', 1, 3),
      preVote: false,
      checkQuorum: false,
      appendBytesMax: 64,
      inflightAppendsMax: 1,
    };
  }
  return {
    electionTimeoutTicks,
    heartbeatIntervalTicks: draws.between('heartbeat', 1, Math.min(3, electionTimeoutTicks - 1)),
    preVote: draws.chance('preVote', profile === 'elections' ? 0.3 : 0.6),
    checkQuorum: draws.chance('checkQuorum', profile === 'elections' ? 0.3 : 0.6),
    appendBytesMax: draws.pick('appendBytes', [64, 256, 1024, 65536]),
    inflightAppendsMax: draws.pick('inflight', [1, 2, 4, 16, 64]),
  };
}

/**
 * Raft stays live only while a round trip (with fsyncs) is well below the election timeout
 * (Raft §5.6); latencies are drawn within a quarter of it, so a liveness failure is the
 * protocol's fault, not an impossible world's. Delay spikes are the deliberate exception.
 */
function drawNetwork(draws: Draws, profile: Shape, electionTimeoutTicks: number): NetworkFaults {
  const faulty = (name: string, probability: number) =>
    profile !== 'calm' && draws.chance(name, probability);
  const latencySpreadMax = Math.max(1, Math.floor(electionTimeoutTicks / 4) - 1);
  const latencyTicksMin = draws.between('latencyMin', 0, 1);
  return {
    dropProbability: faulty('lossy', 0.6) ? draws.pick('drop', [0.01, 0.05, 0.1, 0.2]) : 0,
    duplicateProbability: faulty('duplicating', 0.4)
      ? draws.pick('duplicate', [0.01, 0.05, 0.1])
      : 0,
    latencyTicksMin,
    latencyTicksMax:
      latencyTicksMin + draws.between('latencySpread', 0, Math.min(3, latencySpreadMax)),
    delaySpikeProbability: faulty('spiky', 0.4) ? draws.pick('spike', [0.005, 0.02]) : 0,
    delaySpikeTicksMax: 3 * electionTimeoutTicks,
  };
}

function drawNemesis(draws: Draws, profile: Shape): NemesisWeights {
  const weight = (name: keyof NemesisWeights, onProbability: number) =>
    draws.weight(`nemesis.${name}`, onProbability);
  switch (profile) {
    case 'calm':
      return {
        crash: 1,
        partition: 0,
        pause: 0,
        membership: weight('membership', 0.5),
        transfer: 1,
        campaign: 0,
      };
    case 'elections':
      return {
        crash: 5,
        partition: weight('partition', 0.5),
        pause: weight('pause', 0.5),
        membership: 0,
        transfer: weight('transfer', 0.5),
        campaign: 8,
      };
    case 'figure8':
      return {
        crash: 8,
        partition: 4,
        pause: weight('pause', 0.5),
        membership: 0,
        transfer: weight('transfer', 0.3),
        campaign: 3,
      };
    case 'broad':
      return {
        crash: weight('crash', 0.7),
        partition: weight('partition', 0.7),
        pause: weight('pause', 0.4),
        membership: weight('membership', 0.5),
        transfer: weight('transfer', 0.4),
        campaign: weight('campaign', 0.3),
      };
  }
}

function drawCrashPoints(draws: Draws, profile: Shape): CrashPoints {
  const sometimes = (name: keyof CrashPoints) =>
    draws.chance(`crashPoint.${name}`, 0.25) ? draws.pick(`crashPoint.${name}.p`, [0.05, 0.2]) : 0;
  switch (profile) {
    case 'calm':
      return { afterVote: 0, afterElection: 0, afterCommit: 0 };
    case 'elections':
      return { afterVote: 0.5, afterElection: sometimes('afterElection'), afterCommit: 0 };
    case 'figure8':
      return { afterVote: 0, afterElection: 0.3, afterCommit: 0.3 };
    case 'broad':
      return {
        afterVote: sometimes('afterVote'),
        afterElection: sometimes('afterElection'),
        afterCommit: sometimes('afterCommit'),
      };
  }
}

export function describeMix(mix: FaultMix): string {
  const n = mix.network;
  const on = Object.entries(mix.nemesis)
    .filter(([, weight]) => weight > 0)
    .map(([kind, weight]) => `${kind}×${weight}`)
    .join(' ');
  return [
    `profile=${mix.profile}${mix.profile === mix.shape ? '' : ` shape=${mix.shape}`} nodes=${mix.nodeCount}+${mix.spareCount}`,
    `election=${mix.core.electionTimeoutTicks} heartbeat=${mix.core.heartbeatIntervalTicks}`,
    `preVote=${mix.core.preVote} checkQuorum=${mix.core.checkQuorum}`,
    `appendBytesMax=${mix.core.appendBytesMax} inflight=${mix.core.inflightAppendsMax}`,
    `drop=${n.dropProbability} dup=${n.duplicateProbability} latency=${n.latencyTicksMin}..${n.latencyTicksMax} spike=${n.delaySpikeProbability}`,
    `fsync≤${mix.fsyncTicksMax}${mix.leaderSendsEarly ? ' early' : ''} nemesis[${on || 'off'}] gap≤${mix.nemesisGapTicksMax} crashAfter[vote=${mix.crashPoints.afterVote} election=${mix.crashPoints.afterElection} commit=${mix.crashPoints.afterCommit}]`,
    `clients=${mix.clientCount} batch≤${mix.batchMessagesMax} payload≤${mix.payloadBytesMax} compactMin=${mix.compactEntriesMin}`,
  ].join(' ');
}
