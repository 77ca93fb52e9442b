/**
 * What one seed of the runtime simulation draws: cluster size and timing, how hostile the
 * nodes' network and the clients' network are, which faults the nemesis uses and how often
 * (crashes, partitions, pauses, clock jumps, membership changes, leadership transfers, disk
 * corruption), each machine's clock error and disk faults, and the clients' workload. Every
 * value comes from the seed, so a seed is a whole scenario.
 *
 * A shape biases the draw towards one kind of trouble: broad draws from everything,
 * elections and figure8 are sharp, calm is nearly fault-free. The default profile draws a
 * shape per seed, so a plain sweep meets the sharp worlds too, and every broken variant is
 * caught within 2,000 of its seeds (test/sim/runtime-unsafe.test.ts); a named profile fixes
 * the shape for every seed.
 */
import type { RetentionPolicy } from '../../broadcast/retention.ts';
import { assert } from '../../util/assert.ts';
import type { Prng } from '../../util/prng.ts';
import type { NetworkFaults } from '../network.ts';
import type { SimDiskFaults } from '../sim-file-system.ts';
import type { ClientNetworkFaults } from './exchange.ts';

export const profiles = ['default', 'broad', 'elections', 'figure8', 'calm'] as const;
export type Profile = (typeof profiles)[number];

/**
 * mixed: the clients authenticate, and each seed draws whether some share c0's client id and
 * whether they call barriers; plain: the workload from before identities came in (no
 * authentication, no shared ids, no barriers), so that seeds found then replay their worlds
 * bit for bit (owners in the log change batch and snapshot sizes, and so the timing).
 */
export const clientMixes = ['mixed', 'plain'] as const;
export type ClientMix = (typeof clientMixes)[number];

/** What a seed's world is biased towards; a profile other than default names one. */
export type Shape = Exclude<Profile, 'default'>;

/**
 * The default profile's odds of each shape. A stale vote counted needs the forced split
 * elections of elections, a Figure 8 commit needs figure8's short-lived leaders, while broad
 * finds the rest and the bugs that need long, varied histories (membership changes,
 * snapshots, disk faults).
 */
export const defaultShapeWeights: Readonly<Record<Shape, number>> = {
  broad: 50,
  elections: 30,
  figure8: 15,
  calm: 5,
};

/**
 * Vote answers (VoteResponse, PreVoteResponse) held back in the network until their
 * candidate starts a later round, or copied and the copy held so: a grant then reaches a
 * candidate campaigning in a later term, where it says nothing about the voter's choice
 * (Raft §5.2). Split elections with such stragglers are what a counted stale vote needs to
 * elect two leaders in one term.
 */
export interface VoteAnswerFaults {
  /** An answer is held back, every copy of it, with this probability. */
  readonly holdProbability: number;
  /** An answer arrives on time and a copy of it is held back, with this probability. */
  readonly lateCopyProbability: number;
  /** A held answer arrives after this many ms if its candidate never campaigns again. */
  readonly lateMsMax: number;
}

export const noVoteAnswerFaults: VoteAnswerFaults = {
  holdProbability: 0,
  lateCopyProbability: 0,
  lateMsMax: 0,
};

/** Relative weights of the nemesis' actions; 0 turns a kind off. */
export interface RuntimeNemesisWeights {
  readonly crash: number;
  readonly partition: number;
  readonly clientCut: number;
  readonly pause: number;
  /** Sets a machine's wall clock off by up to `clockSkewMsMax`, a jump either way. */
  readonly clockJump: number;
  readonly membership: number;
  readonly transfer: number;
  /** A forced election at one running machine, or at two at once for a split vote. */
  readonly campaign: number;
  /** A bit flip or a zeroed sector at rest, on a machine with a faulty disk. */
  readonly corrupt: number;
}

export interface RuntimeMix {
  readonly profile: Profile;
  /** The profile itself, or for the default profile the shape this seed drew. */
  readonly shape: Shape;
  readonly nodeCount: number;
  /** Machines beyond the initial members, which membership changes may add. */
  readonly spareCount: number;
  readonly msPerTick: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly inflightAppendsMax: number;
  readonly appendBytesMax: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly network: NetworkFaults;
  readonly voteAnswers: VoteAnswerFaults;
  readonly clientNetwork: ClientNetworkFaults;
  readonly nemesis: RuntimeNemesisWeights;
  /** Mean virtual ms between nemesis actions in the fault phase. */
  readonly nemesisIntervalMs: number;
  /** A crash picks the leader with this probability, else any running machine. */
  readonly crashLeaderProbability: number;
  /**
   * A machine crashes right after it grants a vote, with this probability: the candidate
   * must win or lose without it, and the voter's restart must remember the vote.
   */
  readonly crashAfterVoteProbability: number;
  /** A node comes back after a crash within this many ms. */
  readonly downMsMax: number;
  readonly partitionMsMax: number;
  readonly pauseMsMax: number;
  /** Each machine's wall clock is off by up to this much, either way. */
  readonly clockSkewMsMax: number;
  /** Each machine's clock runs at a rate in [1 - drift, 1 + drift]. */
  readonly clockDriftMax: number;
  /**
   * Machines whose disks misbehave beyond losing unsynced writes: at most a minority, so a
   * majority always keeps what it acknowledged (until repair lands, such a node may stop).
   */
  readonly faultyDiskCount: number;
  readonly diskFaults: SimDiskFaults;
  /** A faulty disk's capacity (ENOSPC past it); Infinity for none. */
  readonly faultyDiskBytesMax: number;
  readonly clientCount: number;
  readonly broadcastsPerClient: number;
  readonly issueGapMsMax: number;
  readonly inFlightMax: number;
  readonly batching: boolean;
  readonly payloadPadBytesMax: number;
  readonly snapshotIntervalBytes: number;
  readonly batchBytesMax: number;
  /** Virtual ms one datasync takes at most. */
  readonly datasyncMsMax: number;
  /** What a power cut tears: sectors or whole pages. */
  readonly sectorBytes: number;
  /** WAL segment size: small, so runs rotate segments often (and zero-fill little). */
  readonly segmentBytesMax: number;
  /** Who the clients are, and which of them share a client id (see SessionSharing). */
  readonly sharing: SessionSharing;
  /** A client calls a barrier (GET /v1/barrier) after a broadcast with this probability. */
  readonly barrierProbability: number;
  /** The message store: small segments, so retention and backfill work in whole segments. */
  readonly store: StoreMix;
}

export interface StoreMix {
  readonly segmentBytesMax: number;
  /** What every node is told to retain: forever, by log age, or by bytes. */
  readonly retention: RetentionPolicy;
}

/**
 * The clients authenticate with tokens, each as one of two identities (both may broadcast),
 * and some deliberately share a client id with client c0 (which then names its own): a twin
 * of c0's identity whose SDK drew another nonce, so the session table must refuse whichever
 * comes second with session_conflict; and an impostor of the other identity that copies c0's
 * nonce off the wire (the nonce is no secret), so only the session's owner check stands
 * between it and c0's session (session_forbidden).
 */
export interface SessionSharing {
  /** The identity of each of the `clientCount` ordinary clients, by index into identities. */
  readonly identityOfClient: readonly number[];
  readonly twin: boolean;
  readonly impostor: boolean;
}

/** The identities of the simulated cluster's auth file; both have the `write` role. */
export const simIdentities = ['app-a', 'app-b'] as const;

const msPerTick = 10;

export interface RuntimeMixRequest {
  readonly profile: Profile;
  readonly nodeCount: number | null;
  readonly clients: ClientMix;
}

/** A shape drawn in proportion to the core's default weights, or the profile's own. */
function drawShape(prng: Prng, profile: Profile): Shape {
  if (profile !== 'default') return profile;
  const entries = Object.entries(defaultShapeWeights) as [Shape, number][];
  const total = entries.reduce((sum, [, weight]) => sum + weight, 0);
  let point = prng.below(total);
  for (const [shape, weight] of entries) {
    if (point < weight) return shape;
    point -= weight;
  }
  assert(false, 'a point below the total falls in some weight');
}

export function drawRuntimeMix(prng: Prng, request: RuntimeMixRequest): RuntimeMix {
  const shape = drawShape(prng, request.profile);
  const calm = shape === 'calm';
  const nodeCount = request.nodeCount ?? prng.pick([3, 3, 5]);
  const nemesis = drawNemesis(prng, shape);
  const electionTimeoutTicks = shape === 'elections' ? prng.between(8, 12) : prng.between(10, 20);
  const faultyDiskCount =
    calm || shape === 'elections' ? 0 : prng.between(0, Math.floor((nodeCount - 1) / 2));
  const mix: RuntimeMix = {
    profile: request.profile,
    shape,
    nodeCount,
    spareCount: nemesis.membership > 0 ? prng.between(1, 2) : 0,
    msPerTick,
    electionTimeoutTicks,
    heartbeatIntervalTicks: prng.between(2, 3),
    inflightAppendsMax: prng.pick([1, 2, 8, 64]),
    appendBytesMax: prng.pick([256, 8 << 10, 64 << 10]),
    // Without them split elections and stale votes are common, as the elections shape wants.
    preVote: prng.chance(shape === 'elections' ? 0.3 : 0.8),
    checkQuorum: prng.chance(shape === 'elections' ? 0.3 : 0.8),
    network: drawNetwork(prng, calm),
    voteAnswers: drawVoteAnswerFaults(prng, shape, electionTimeoutTicks * msPerTick),
    clientNetwork: {
      requestLossProbability: calm ? 0 : prng.pick([0, 0.02, 0.1]),
      answerLossProbability: calm ? 0 : prng.pick([0, 0.02, 0.1]),
      latencyMsMin: 1,
      latencyMsMax: prng.between(2, 20),
    },
    nemesis,
    nemesisIntervalMs: shape === 'elections' ? prng.between(150, 600) : prng.between(300, 1500),
    crashLeaderProbability: prng.pick([0.2, 0.5, 0.8]),
    crashAfterVoteProbability: drawCrashAfterVote(prng, shape),
    downMsMax: prng.between(200, 3000),
    partitionMsMax: prng.between(300, 4000),
    pauseMsMax: prng.between(100, 4 * electionTimeoutTicks * 10),
    clockSkewMsMax: calm ? 0 : prng.pick([0, 0, 50, 5_000]),
    clockDriftMax: calm ? 0 : prng.pick([0, 0, 0.05, 0.3]),
    faultyDiskCount,
    diskFaults: {
      lostWriteProbability: prng.pick([0, 0, 0.01]),
      misdirectedWriteProbability: prng.pick([0, 0, 0.01]),
      datasyncErrorProbability: prng.pick([0, 0, 0.002, 0.02]),
    },
    faultyDiskBytesMax: prng.pick([Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, 600 << 10]),
    clientCount: prng.between(1, 4),
    broadcastsPerClient: prng.between(5, 40),
    issueGapMsMax: prng.pick([5, 50, 300]),
    inFlightMax: prng.pick([1, 2, 8, 32]),
    batching: prng.chance(0.7),
    payloadPadBytesMax: prng.pick([0, 16, 400]),
    snapshotIntervalBytes: prng.pick([1 << 10, 8 << 10, 1 << 20]),
    batchBytesMax: prng.pick([512, 4 << 10, 64 << 10]),
    datasyncMsMax: prng.pick([0, 1, 5]),
    sectorBytes: prng.pick([512, 4096]),
    segmentBytesMax: prng.pick([16 << 10, 64 << 10, 256 << 10]),
    sharing: { identityOfClient: [], twin: false, impostor: false },
    barrierProbability: 0,
    store: { segmentBytesMax: 4096, retention: { ageMs: null, bytesMax: null } },
  };
  const shaped = shape === 'figure8' ? figure8(mix, prng) : mix;
  // Drawn last, so that adding them left every earlier draw of a seed as it was.
  const clientsSide = drawClientsSide(prng, shaped.clientCount);
  const store = drawStore(prng);
  if (request.clients === 'plain') {
    const { identityOfClient } = clientsSide.sharing;
    const sharing = { identityOfClient, twin: false, impostor: false };
    return { ...shaped, sharing, barrierProbability: 0, store };
  }
  return { ...shaped, ...clientsSide, store };
}

/** Drawn after everything else, so that adding it left every earlier draw as it was. */
function drawStore(prng: Prng): StoreMix {
  const segmentBytesMax = prng.pick([512, 2048, 16 << 10]);
  const kind = prng.pick(['forever', 'age', 'bytes'] as const);
  const retention: RetentionPolicy = {
    ageMs: kind === 'age' ? prng.pick([500, 2_000, 5_000]) : null,
    bytesMax: kind === 'bytes' ? prng.pick([2 << 10, 8 << 10, 32 << 10]) : null,
  };
  return { segmentBytesMax, retention };
}

function drawClientsSide(
  prng: Prng,
  clientCount: number,
): Pick<RuntimeMix, 'sharing' | 'barrierProbability'> {
  const identityOfClient = Array.from({ length: clientCount }, () =>
    prng.below(simIdentities.length),
  );
  return {
    sharing: { identityOfClient, twin: prng.chance(0.25), impostor: prng.chance(0.25) },
    barrierProbability: prng.pick([0, 0, 0.05, 0.3]),
  };
}

/**
 * Leaders die young: often, soon after election, with slow disks and one entry per Append,
 * so an old term's entry can be half replicated when its leader goes (the Raft paper's
 * Figure 8).
 */
function figure8(mix: RuntimeMix, prng: Prng): RuntimeMix {
  return {
    ...mix,
    inflightAppendsMax: 1,
    appendBytesMax: 64,
    preVote: false,
    checkQuorum: false,
    crashLeaderProbability: 0.9,
    nemesisIntervalMs: prng.between(150, 500),
    downMsMax: prng.between(100, 600),
    datasyncMsMax: 5,
    batchBytesMax: 512,
    issueGapMsMax: 5,
  };
}

function drawNetwork(prng: Prng, calm: boolean): NetworkFaults {
  return {
    dropProbability: calm ? 0 : prng.pick([0, 0.02, 0.1]),
    duplicateProbability: calm ? 0 : prng.pick([0, 0.02, 0.1]),
    latencyTicksMin: 0,
    latencyTicksMax: prng.between(1, 3),
    delaySpikeProbability: calm ? 0 : prng.pick([0, 0.01]),
    delaySpikeTicksMax: 30,
  };
}

function drawVoteAnswerFaults(prng: Prng, shape: Shape, electionMs: number): VoteAnswerFaults {
  if (shape === 'calm' || shape === 'figure8') return noVoteAnswerFaults;
  if (shape === 'broad' && !prng.chance(0.3)) return noVoteAnswerFaults;
  return {
    holdProbability: prng.pick([0.1, 0.3]),
    lateCopyProbability: prng.pick([0.1, 0.3]),
    lateMsMax: prng.between(3, 20) * electionMs,
  };
}

function drawCrashAfterVote(prng: Prng, shape: Shape): number {
  if (shape === 'elections') return prng.pick([0.1, 0.3]);
  if (shape === 'broad') return prng.chance(0.25) ? prng.pick([0.05, 0.2]) : 0;
  return 0;
}

function drawNemesis(prng: Prng, shape: Shape): RuntimeNemesisWeights {
  const weight = (onProbability: number) => (prng.chance(onProbability) ? prng.between(1, 5) : 0);
  switch (shape) {
    case 'calm':
      return {
        crash: 1,
        partition: 0,
        clientCut: 0,
        pause: 0,
        clockJump: 0,
        membership: weight(0.5),
        transfer: 1,
        campaign: 0,
        corrupt: 0,
      };
    case 'elections':
      return {
        crash: 5,
        partition: weight(0.5),
        clientCut: 0,
        pause: weight(0.5),
        clockJump: weight(0.3),
        membership: 0,
        transfer: weight(0.5),
        campaign: 8,
        corrupt: 0,
      };
    case 'figure8':
      return {
        crash: 8,
        partition: 4,
        clientCut: 0,
        pause: weight(0.5),
        clockJump: 0,
        membership: 0,
        transfer: weight(0.3),
        campaign: 3,
        corrupt: weight(0.3),
      };
    case 'broad':
      return {
        crash: weight(0.8),
        partition: weight(0.7),
        clientCut: weight(0.4),
        pause: weight(0.4),
        clockJump: weight(0.3),
        membership: weight(0.5),
        transfer: weight(0.4),
        campaign: weight(0.3),
        corrupt: weight(0.5),
      };
  }
}

export function describeRuntimeMix(mix: RuntimeMix): string {
  const network = mix.network;
  const disk = mix.diskFaults;
  const on = Object.entries(mix.nemesis)
    .filter(([, weight]) => weight > 0)
    .map(([kind, weight]) => `${kind}×${weight}`)
    .join(' ');
  return [
    `profile=${mix.profile}${mix.profile === mix.shape ? '' : ` shape=${mix.shape}`} nodes=${mix.nodeCount}+${mix.spareCount}`,
    `election=${mix.electionTimeoutTicks}x${mix.msPerTick}ms heartbeat=${mix.heartbeatIntervalTicks} inflight=${mix.inflightAppendsMax} append≤${mix.appendBytesMax}B preVote=${mix.preVote} checkQuorum=${mix.checkQuorum}`,
    `drop=${network.dropProbability} dup=${network.duplicateProbability} latency≤${network.latencyTicksMax}`,
    `voteAnswers[hold=${mix.voteAnswers.holdProbability} lateCopy=${mix.voteAnswers.lateCopyProbability} ≤${mix.voteAnswers.lateMsMax}ms] crashAfterVote=${mix.crashAfterVoteProbability}`,
    `clientLoss=${mix.clientNetwork.requestLossProbability}/${mix.clientNetwork.answerLossProbability}`,
    `nemesis every ~${mix.nemesisIntervalMs}ms [${on || 'off'}]`,
    `clock skew≤${mix.clockSkewMsMax}ms drift≤${mix.clockDriftMax}`,
    `faultyDisks=${mix.faultyDiskCount} [lost=${disk.lostWriteProbability} misdirected=${disk.misdirectedWriteProbability} eio=${disk.datasyncErrorProbability} capacity=${mix.faultyDiskBytesMax}]`,
    `clients=${mix.clientCount}×${mix.broadcastsPerClient} inFlight=${mix.inFlightMax} batching=${mix.batching} identities=${mix.sharing.identityOfClient.join('')} twin=${mix.sharing.twin} impostor=${mix.sharing.impostor} barriers=${mix.barrierProbability}`,
    `snapshotEvery=${mix.snapshotIntervalBytes}B batch≤${mix.batchBytesMax}B fsync≤${mix.datasyncMsMax}ms`,
    `store segment≤${mix.store.segmentBytesMax}B retention age=${mix.store.retention.ageMs ?? '∞'}ms bytes=${mix.store.retention.bytesMax ?? '∞'}`,
  ].join(' ');
}
