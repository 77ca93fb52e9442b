/**
 * What one seed of the runtime simulation draws: cluster size and timing, how hostile the
 * nodes' network and the clients' network are, how often nodes crash and partitions form,
 * and the clients' workload. Every value comes from the seed, so a seed is a whole scenario.
 */
import type { Prng } from '../../util/prng.ts';
import type { NetworkFaults } from '../network.ts';
import type { ClientNetworkFaults } from './exchange.ts';

export interface RuntimeMix {
  readonly nodeCount: number;
  readonly msPerTick: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly network: NetworkFaults;
  readonly clientNetwork: ClientNetworkFaults;
  /** Mean virtual ms between nemesis actions in the fault phase. */
  readonly nemesisIntervalMs: number;
  readonly crashWeight: number;
  readonly partitionWeight: number;
  readonly clientCutWeight: number;
  /** A node comes back after a crash within this many ms. */
  readonly downMsMax: number;
  readonly partitionMsMax: number;
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
}

export function drawRuntimeMix(prng: Prng, nodeCount: number | null): RuntimeMix {
  const msPerTick = 10;
  const calm = prng.chance(0.15);
  return {
    nodeCount: nodeCount ?? prng.pick([3, 3, 5]),
    msPerTick,
    electionTimeoutTicks: prng.between(10, 20),
    heartbeatIntervalTicks: prng.between(2, 3),
    network: {
      dropProbability: calm ? 0 : prng.pick([0, 0.02, 0.1]),
      duplicateProbability: calm ? 0 : prng.pick([0, 0.02, 0.1]),
      latencyTicksMin: 0,
      latencyTicksMax: prng.between(1, 3),
      delaySpikeProbability: calm ? 0 : prng.pick([0, 0.01]),
      delaySpikeTicksMax: 30,
    },
    clientNetwork: {
      requestLossProbability: calm ? 0 : prng.pick([0, 0.02, 0.1]),
      answerLossProbability: calm ? 0 : prng.pick([0, 0.02, 0.1]),
      latencyMsMin: 1,
      latencyMsMax: prng.between(2, 20),
    },
    nemesisIntervalMs: prng.between(300, 1500),
    crashWeight: calm ? 0 : prng.pick([1, 2, 4]),
    partitionWeight: calm ? 0 : prng.pick([0, 1, 2]),
    clientCutWeight: calm ? 0 : prng.pick([0, 1]),
    downMsMax: prng.between(200, 3000),
    partitionMsMax: prng.between(300, 4000),
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
  };
}

export function describeRuntimeMix(mix: RuntimeMix): string {
  const network = mix.network;
  return [
    `nodes=${mix.nodeCount} election=${mix.electionTimeoutTicks}x${mix.msPerTick}ms heartbeat=${mix.heartbeatIntervalTicks}`,
    `drop=${network.dropProbability} dup=${network.duplicateProbability} latency≤${network.latencyTicksMax}`,
    `clientLoss=${mix.clientNetwork.requestLossProbability}/${mix.clientNetwork.answerLossProbability}`,
    `nemesis every ~${mix.nemesisIntervalMs}ms [crash×${mix.crashWeight} partition×${mix.partitionWeight} clientCut×${mix.clientCutWeight}]`,
    `clients=${mix.clientCount}×${mix.broadcastsPerClient} inFlight=${mix.inFlightMax} batching=${mix.batching}`,
    `snapshotEvery=${mix.snapshotIntervalBytes}B batch≤${mix.batchBytesMax}B fsync≤${mix.datasyncMsMax}ms`,
  ].join(' ');
}
