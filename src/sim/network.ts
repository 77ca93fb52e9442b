/**
 * The simulated network between nodes 0..n-1: it decides each message's fate when sent (lost,
 * delivered after a random latency, or delivered twice) and whether a link is cut when it
 * arrives. Random latencies reorder messages; a rare delay spike models a message stuck in a
 * queue. Partitions cut directed links, so one-way partitions are as easy as symmetric ones.
 */
import { assert } from '../util/assert.ts';
import type { Prng } from '../util/prng.ts';

export interface NetworkFaults {
  readonly dropProbability: number;
  readonly duplicateProbability: number;
  readonly latencyTicksMin: number;
  readonly latencyTicksMax: number;
  /** A message is held back by up to `delaySpikeTicksMax` with this probability. */
  readonly delaySpikeProbability: number;
  readonly delaySpikeTicksMax: number;
}

export const perfectNetwork: NetworkFaults = {
  dropProbability: 0,
  duplicateProbability: 0,
  latencyTicksMin: 0,
  latencyTicksMax: 1,
  delaySpikeProbability: 0,
  delaySpikeTicksMax: 0,
};

export type PartitionKind = 'symmetric' | 'one-way' | 'isolate';

export interface PartitionSpec {
  readonly kind: PartitionKind;
  /** symmetric: one side; one-way: the senders that cannot reach `other`; isolate: the node. */
  readonly side: readonly number[];
  /** The rest of the cluster as the partition sees it. */
  readonly other: readonly number[];
}

export function validateFaults(faults: NetworkFaults): void {
  for (const probability of [
    faults.dropProbability,
    faults.duplicateProbability,
    faults.delaySpikeProbability,
  ]) {
    assert(probability >= 0 && probability <= 1, 'probabilities lie in [0, 1]');
  }
  assert(Number.isSafeInteger(faults.latencyTicksMin), 'latencyTicksMin is an integer');
  assert(faults.latencyTicksMin >= 0, 'latencies are not negative');
  assert(faults.latencyTicksMax >= faults.latencyTicksMin, 'latency bounds are ordered');
  assert(Number.isSafeInteger(faults.delaySpikeTicksMax), 'delaySpikeTicksMax is an integer');
}

export class SimNetwork {
  private faultsInForce: NetworkFaults;
  /** cut[from * n + to] === 1: messages from `from` to `to` are lost on arrival. */
  private readonly cut: Uint8Array;
  private partitionInForce: PartitionSpec | null = null;

  constructor(
    readonly nodeCount: number,
    private readonly prng: Prng,
    faults: NetworkFaults,
  ) {
    assert(Number.isSafeInteger(nodeCount) && nodeCount > 0, 'a network has nodes');
    validateFaults(faults);
    this.faultsInForce = faults;
    this.cut = new Uint8Array(nodeCount * nodeCount);
  }

  get faults(): NetworkFaults {
    return this.faultsInForce;
  }

  set faults(faults: NetworkFaults) {
    validateFaults(faults);
    this.faultsInForce = faults;
  }

  get partition(): PartitionSpec | null {
    return this.partitionInForce;
  }

  /**
   * The delays after which copies of one message arrive: [] lost, one delay normally, two
   * when duplicated. Cut links lose the message at once.
   */
  plan(from: number, to: number): number[] {
    this.checkNode(from);
    this.checkNode(to);
    if (!this.linkUp(from, to)) return [];
    const faults = this.faultsInForce;
    if (faults.dropProbability > 0 && this.prng.chance(faults.dropProbability)) return [];
    const first = this.latency();
    if (faults.duplicateProbability > 0 && this.prng.chance(faults.duplicateProbability)) {
      return [first, this.latency()];
    }
    return [first];
  }

  private latency(): number {
    const faults = this.faultsInForce;
    let delayTicks = this.prng.between(faults.latencyTicksMin, faults.latencyTicksMax);
    if (faults.delaySpikeProbability > 0 && this.prng.chance(faults.delaySpikeProbability)) {
      delayTicks += this.prng.between(0, faults.delaySpikeTicksMax);
    }
    return delayTicks;
  }

  linkUp(from: number, to: number): boolean {
    return this.cut[from * this.nodeCount + to] === 0;
  }

  /** Replaces any partition in force, unless `adding`: then its cuts join the others. */
  applyPartition(spec: PartitionSpec, adding = false): void {
    if (!adding) this.heal();
    for (const node of [...spec.side, ...spec.other]) this.checkNode(node);
    for (const a of spec.side) {
      for (const b of spec.other) {
        assert(a !== b, 'a partition separates distinct nodes');
        this.cut[a * this.nodeCount + b] = 1;
        if (spec.kind !== 'one-way') this.cut[b * this.nodeCount + a] = 1;
      }
    }
    this.partitionInForce = spec;
  }

  heal(): void {
    this.cut.fill(0);
    this.partitionInForce = null;
  }

  private checkNode(node: number): void {
    assert(Number.isSafeInteger(node) && node >= 0 && node < this.nodeCount, 'a known node');
  }
}

/** Draws a partition over `nodes` (at least two), of the given kind. */
export function drawPartition(
  prng: Prng,
  kind: PartitionKind,
  nodes: readonly number[],
  leader: number | null,
): PartitionSpec {
  assert(nodes.length >= 2, 'a partition needs two nodes');
  if (kind === 'isolate') {
    const isolated = leader !== null && nodes.includes(leader) ? leader : prng.pick(nodes);
    return { kind, side: [isolated], other: nodes.filter((node) => node !== isolated) };
  }
  const shuffled = shuffle(prng, nodes);
  const sideSize = prng.between(1, nodes.length - 1);
  return { kind, side: shuffled.slice(0, sideSize), other: shuffled.slice(sideSize) };
}

export function shuffle<T>(prng: Prng, items: readonly T[]): T[] {
  const result = items.slice();
  for (let position = result.length - 1; position > 0; position--) {
    const other = prng.below(position + 1);
    const held = result[position] as T;
    result[position] = result[other] as T;
    result[other] = held;
  }
  return result;
}
