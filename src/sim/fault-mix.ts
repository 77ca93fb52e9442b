/**
 * Each seed draws its own world: cluster size, core options, network and disk behaviour,
 * which fault kinds the nemesis uses and how often, and the client workload. So a sweep
 * explores many different worlds rather than one world many times.
 *
 * A profile biases the draw towards one kind of trouble; the default profile draws from
 * everything. Profiles exist so the tests can show each unsafe core variant is found fast.
 */
import { assert } from '../util/assert.ts';
import type { Prng } from '../util/prng.ts';
import type { NetworkFaults } from './network.ts';

export const profiles = ['default', 'elections', 'figure8', 'calm'] as const;
export type Profile = (typeof profiles)[number];

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
  readonly nodeCount: number;
  /** Node ids beyond the initial members, for membership changes. */
  readonly spareCount: number;
  readonly core: CoreTuning;
  readonly network: NetworkFaults;
  /** A Ready's write completes 0..fsyncTicksMax ticks after it starts. */
  readonly fsyncTicksMax: number;
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

export function drawFaultMix(prng: Prng, request: MixRequest): FaultMix {
  assert(request.faultPhaseTicks > 0, 'a run has a fault phase');
  const nodeCount = request.nodeCount ?? prng.pick([3, 3, 3, 5, 5, 7]);
  assert([3, 5, 7].includes(nodeCount), 'clusters have 3, 5 or 7 nodes');
  const core = drawCore(prng, request.profile);
  const nemesis = drawNemesis(prng, request.profile);
  const election = core.electionTimeoutTicks;
  const clientTimeoutTicks = 3 * election + prng.below(2 * election);
  const mix: FaultMix = {
    profile: request.profile,
    nodeCount,
    spareCount: nemesis.membership > 0 ? prng.between(1, 2) : 0,
    core,
    network: drawNetwork(prng, request.profile, election),
    fsyncTicksMax: Math.min(prng.pick([0, 1, 1, 2, 3]), Math.floor(election / 6)),
    nemesis,
    nemesisGapTicksMax:
      request.profile === 'calm' ? 4 * election : prng.between(election, 6 * election),
    crashLeaderProbability: prng.pick([0.2, 0.5, 0.8]),
    crashPoints: drawCrashPoints(prng, request.profile),
    downTicksMax: prng.between(election, 8 * election),
    partitionTicksMax: prng.between(2 * election, 12 * election),
    pauseTicksMax: prng.between(election, 4 * election),
    clockSkipProbabilityMax: prng.pick([0, 0, 0.1, 0.3]),
    compactGapTicksMax: prng.between(10, 100),
    compactEntriesMin: prng.pick([1, 4, 16, 64]),
    checkpointOnlyProbability: prng.pick([0, 0.3]),
    zombieProbability: prng.pick([0, 0.5]),
    keepDownProbability: prng.pick([0, 0.5]),
    clientCount: prng.between(1, 8),
    batchMessagesMax: prng.between(1, 6),
    payloadBytesMax: prng.pick([0, 16, 64, 300]),
    clientThinkTicksMax: prng.between(0, 10),
    clientTimeoutTicks,
    readGapTicksMax: prng.pick([0, 10, 40]),
    faultPhaseTicks: request.faultPhaseTicks,
    // Room for elections, snapshot catch-up and a client's longest backoff (8 + 4 timeouts).
    livenessTicksMax: 400 + 40 * election + 16 * clientTimeoutTicks,
  };
  return request.profile === 'figure8' ? figure8(mix, prng) : mix;
}

/** Leaders die young: often, soon after election, with slow disks and big entries. */
function figure8(mix: FaultMix, prng: Prng): FaultMix {
  const election = mix.core.electionTimeoutTicks;
  return {
    ...mix,
    fsyncTicksMax: Math.min(3, Math.floor(election / 4)),
    nemesisGapTicksMax: prng.between(election, 3 * election),
    crashLeaderProbability: 0.9,
    downTicksMax: prng.between(election, 3 * election),
    payloadBytesMax: 300,
    batchMessagesMax: 1,
    clientThinkTicksMax: 0,
  };
}

function drawCore(prng: Prng, profile: Profile): CoreTuning {
  const electionTimeoutTicks = profile === 'elections' ? prng.between(6, 10) : prng.between(8, 20);
  if (profile === 'figure8') {
    // The Raft paper's Figure 8 needs leaders that die between replicating an old entry and
    // replicating their own: one entry per Append, one Append in flight, free elections.
    return {
      electionTimeoutTicks,
      heartbeatIntervalTicks: prng.between(1, 3),
      preVote: false,
      checkQuorum: false,
      appendBytesMax: 64,
      inflightAppendsMax: 1,
    };
  }
  return {
    electionTimeoutTicks,
    heartbeatIntervalTicks: prng.between(1, Math.min(3, electionTimeoutTicks - 1)),
    preVote: profile === 'elections' ? prng.chance(0.3) : prng.chance(0.6),
    checkQuorum: profile === 'elections' ? prng.chance(0.3) : prng.chance(0.6),
    appendBytesMax: prng.pick([64, 256, 1024, 65536]),
    inflightAppendsMax: prng.pick([1, 2, 4, 16, 64]),
  };
}

/**
 * Raft stays live only while a round trip (with fsyncs) is well below the election timeout
 * (Raft §5.6); latencies are drawn within a quarter of it, so a liveness failure is the
 * protocol's fault, not an impossible world's. Delay spikes are the deliberate exception.
 */
function drawNetwork(prng: Prng, profile: Profile, electionTimeoutTicks: number): NetworkFaults {
  const lossy = profile !== 'calm' && prng.chance(0.6);
  const latencySpreadMax = Math.max(1, Math.floor(electionTimeoutTicks / 4) - 1);
  const latencyTicksMin = prng.between(0, 1);
  return {
    dropProbability: lossy ? prng.pick([0.01, 0.05, 0.1, 0.2]) : 0,
    duplicateProbability: profile !== 'calm' && prng.chance(0.4) ? prng.pick([0.01, 0.05, 0.1]) : 0,
    latencyTicksMin,
    latencyTicksMax: latencyTicksMin + prng.between(0, Math.min(3, latencySpreadMax)),
    delaySpikeProbability: profile !== 'calm' && prng.chance(0.4) ? prng.pick([0.005, 0.02]) : 0,
    delaySpikeTicksMax: 3 * electionTimeoutTicks,
  };
}

function drawNemesis(prng: Prng, profile: Profile): NemesisWeights {
  const weight = (onProbability: number) => (prng.chance(onProbability) ? prng.between(1, 5) : 0);
  switch (profile) {
    case 'calm':
      return {
        crash: 1,
        partition: 0,
        pause: 0,
        membership: weight(0.5),
        transfer: 1,
        campaign: 0,
      };
    case 'elections':
      return {
        crash: 5,
        partition: weight(0.5),
        pause: weight(0.5),
        membership: 0,
        transfer: weight(0.5),
        campaign: 8,
      };
    case 'figure8':
      return {
        crash: 8,
        partition: 4,
        pause: weight(0.5),
        membership: 0,
        transfer: weight(0.3),
        campaign: 3,
      };
    case 'default':
      return {
        crash: weight(0.7),
        partition: weight(0.7),
        pause: weight(0.4),
        membership: weight(0.5),
        transfer: weight(0.4),
        campaign: weight(0.3),
      };
  }
}

function drawCrashPoints(prng: Prng, profile: Profile): CrashPoints {
  const sometimes = () => (prng.chance(0.25) ? prng.pick([0.05, 0.2]) : 0);
  switch (profile) {
    case 'calm':
      return { afterVote: 0, afterElection: 0, afterCommit: 0 };
    case 'elections':
      return { afterVote: 0.5, afterElection: sometimes(), afterCommit: 0 };
    case 'figure8':
      return { afterVote: 0, afterElection: 0.3, afterCommit: 0.3 };
    case 'default':
      return { afterVote: sometimes(), afterElection: sometimes(), afterCommit: sometimes() };
  }
}

export function describeMix(mix: FaultMix): string {
  const n = mix.network;
  const on = Object.entries(mix.nemesis)
    .filter(([, weight]) => weight > 0)
    .map(([kind, weight]) => `${kind}×${weight}`)
    .join(' ');
  return [
    `profile=${mix.profile} nodes=${mix.nodeCount}+${mix.spareCount}`,
    `election=${mix.core.electionTimeoutTicks} heartbeat=${mix.core.heartbeatIntervalTicks}`,
    `preVote=${mix.core.preVote} checkQuorum=${mix.core.checkQuorum}`,
    `appendBytesMax=${mix.core.appendBytesMax} inflight=${mix.core.inflightAppendsMax}`,
    `drop=${n.dropProbability} dup=${n.duplicateProbability} latency=${n.latencyTicksMin}..${n.latencyTicksMax} spike=${n.delaySpikeProbability}`,
    `fsync≤${mix.fsyncTicksMax} nemesis[${on || 'off'}] gap≤${mix.nemesisGapTicksMax} crashAfter[vote=${mix.crashPoints.afterVote} election=${mix.crashPoints.afterElection} commit=${mix.crashPoints.afterCommit}]`,
    `clients=${mix.clientCount} batch≤${mix.batchMessagesMax} payload≤${mix.payloadBytesMax} compactMin=${mix.compactEntriesMin}`,
  ].join(' ');
}
