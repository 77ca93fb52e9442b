/**
 * The nemesis: injects faults on a schedule drawn from the run's seed, and records each one's
 * start, end and outcome in the history. Two lanes run at once, so operations overlap faults:
 *
 * - the fault lane, one fault at a time: kill (SIGKILL, then restart), pause (SIGSTOP, then
 *   SIGCONT — often the leader), partition (majority/minority, an isolated node, a bridge,
 *   one-way), network (loss, duplication, delay, reordering), clock (a node's wall clock
 *   jumps or drifts, through libfaketime), disk (a stopped node's data damaged, then a restart),
 *   full-disk (a running node's small disk filled, then emptied; root only);
 * - the operations lane: membership changes (add, remove, replace a node) and leadership
 *   transfers, through the HTTP API as an operator would.
 *
 * Faults never touch more than a minority of the voters at once, so the cluster can always
 * make progress once a fault ends; `healAll` ends everything for the final phase.
 */
import { readFile, rm, stat } from 'node:fs/promises';
import type { Prng } from '../util/prng.ts';
import type { ChaosCluster } from './cluster.ts';
import { diskFaultVariants, injectDiskFault } from './disk.ts';
import type { HistoryRecorder } from './history.ts';
import { errorCode, request } from './http.ts';
import { healthyLink, type LinkFaults } from './proxy.ts';

export type FaultKind =
  | 'kill'
  | 'pause'
  | 'partition'
  | 'network'
  | 'clock'
  | 'disk'
  | 'full-disk'
  | 'membership'
  | 'transfer';

export const allFaultKinds: readonly FaultKind[] = [
  'kill',
  'pause',
  'partition',
  'network',
  'clock',
  'disk',
  'full-disk',
  'membership',
  'transfer',
];

const laneOperations: readonly FaultKind[] = ['membership', 'transfer'];

export interface NemesisOptions {
  readonly cluster: ChaosCluster;
  readonly history: HistoryRecorder;
  readonly random: Prng;
  readonly kinds: readonly FaultKind[];
  /** The voters at the start; membership changes keep the count within one of it. */
  readonly initialMembers: readonly string[];
  readonly faultMsMin: number;
  readonly faultMsMax: number;
  readonly quietMsMax: number;
  /**
   * Whether a membership change may remove the leader. Off in `npm test`: removing the
   * leader can stall the cluster for good today (docs/chaos.md, "Findings").
   */
  readonly leaderRemoval: boolean;
  /** Called with a removed node before it is stopped (the runner reads what it delivered). */
  readonly beforeStop: (id: string) => Promise<void>;
}

/** Free space a full disk leaves: less than a segment the node must zero-fill next. */
const fullDiskHeadroomBytesMax = 64 * 1024;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Nemesis {
  /** The members as the nemesis last made them (the configuration's voters). */
  readonly members: string[];
  readonly injected = new Map<string, number>();
  private stopping = false;
  private readonly lanes: Promise<void>[] = [];
  /** Nodes a fault or operation holds right now; the other lane leaves them alone. */
  private readonly busy = new Set<string>();
  private nextNodeNumber: number;
  /** Holds in progress, woken early when the run stops. */
  private readonly sleepers = new Set<() => void>();

  constructor(private readonly options: NemesisOptions) {
    this.members = [...options.initialMembers];
    this.nextNodeNumber = options.initialMembers.length + 1;
  }

  start(): void {
    const faults = this.options.kinds.filter((kind) => !laneOperations.includes(kind));
    const operations = this.options.kinds.filter((kind) => laneOperations.includes(kind));
    if (faults.length > 0) this.lanes.push(this.lane(faults, this.options.random.fork(), 1));
    // Operations are quick: slower pacing keeps a long run from replacing every node many times.
    if (operations.length > 0)
      this.lanes.push(this.lane(operations, this.options.random.fork(), 3));
  }

  /** Ends the lanes (a fault in progress ends early), then heals everything. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const wake of this.sleepers) wake();
    await Promise.all(this.lanes);
  }

  private count(kind: string): void {
    this.injected.set(kind, (this.injected.get(kind) ?? 0) + 1);
  }

  /** Waits `ms`, or less if the run is stopping. */
  private async hold(ms: number): Promise<void> {
    if (this.stopping) return;
    let wake: () => void = () => undefined;
    const woken = new Promise<void>((resolve) => {
      wake = resolve;
    });
    this.sleepers.add(wake);
    await Promise.race([sleep(ms), woken]);
    this.sleepers.delete(wake);
  }

  /** Injects `kinds` one at a time, with quiet gaps of up to `quietScale` × quietMsMax. */
  private async lane(kinds: readonly FaultKind[], random: Prng, quietScale: number): Promise<void> {
    await this.hold(1_000 + random.below(this.options.quietMsMax + 1));
    while (!this.stopping) {
      const kind = random.pick(kinds);
      try {
        await this.inject(kind, random);
      } catch (error) {
        this.options.history.fault(kind, 'outcome', [], `nemesis error: ${String(error)}`);
      }
      await this.hold(500 * quietScale + random.below(this.options.quietMsMax * quietScale + 1));
    }
  }

  private duration(random: Prng): number {
    return random.between(this.options.faultMsMin, this.options.faultMsMax);
  }

  private async inject(kind: FaultKind, random: Prng): Promise<void> {
    switch (kind) {
      case 'kill':
        return this.killFault(random);
      case 'pause':
        return this.pauseFault(random);
      case 'partition':
        return this.partitionFault(random);
      case 'network':
        return this.networkFault(random);
      case 'clock':
        return this.clockFault(random);
      case 'disk':
        return this.diskFault(random);
      case 'full-disk':
        return this.fullDiskFault(random);
      case 'membership':
        return this.membershipChange(random);
      case 'transfer':
        return this.transfer(random);
    }
  }

  /** Running, healthy members no lane holds. */
  private available(): string[] {
    const { cluster } = this.options;
    return this.members.filter(
      (id) => !this.busy.has(id) && cluster.isRunning(id) && !cluster.node(id).paused,
    );
  }

  /** How many members may be faulty at once and leave a quorum. */
  private minority(): number {
    const damaged = this.members.filter((id) => this.options.cluster.node(id).damaged !== null);
    return Math.max(0, Math.floor((this.members.length - 1) / 2) - damaged.length);
  }

  /** Up to `countMax` available members, the leader among them with probability one half. */
  private async targets(random: Prng, countMax: number): Promise<string[]> {
    const candidates = this.available();
    const count = Math.min(countMax, candidates.length, this.minority());
    if (count <= 0) return [];
    const chosen: string[] = [];
    const leader = await this.leader();
    if (leader !== null && candidates.includes(leader) && random.chance(0.5)) chosen.push(leader);
    while (chosen.length < count) {
      const id = random.pick(candidates);
      if (!chosen.includes(id)) chosen.push(id);
    }
    return chosen;
  }

  /** The leader most running members name, or null. */
  async leader(): Promise<string | null> {
    const votes = new Map<string, number>();
    await Promise.all(
      this.members.map(async (id) => {
        const node = this.options.cluster.node(id);
        if (!this.options.cluster.isRunning(id) || node.paused) return;
        try {
          const { body } = await request(`${node.httpUrl}/v1/status`, { method: 'GET' }, 1_000);
          // A node that stopped itself (a full disk) names the leader it last knew.
          if (typeof body.leader === 'string' && body.stopped == null)
            votes.set(body.leader, (votes.get(body.leader) ?? 0) + 1);
        } catch {
          // Not answering: no vote.
        }
      }),
    );
    const best = [...votes].sort((a, b) => b[1] - a[1])[0];
    return best === undefined ? null : best[0];
  }

  private async withBusy(nodes: readonly string[], body: () => Promise<void>): Promise<void> {
    for (const id of nodes) this.busy.add(id);
    try {
      await body();
    } finally {
      for (const id of nodes) this.busy.delete(id);
    }
  }

  private async killFault(random: Prng): Promise<void> {
    const nodes = await this.targets(random, random.between(1, 2));
    if (nodes.length === 0) return;
    const { cluster, history } = this.options;
    await this.withBusy(nodes, async () => {
      this.count('kill');
      history.fault('kill', 'start', nodes, 'SIGKILL');
      await Promise.all(nodes.map((id) => cluster.kill(id)));
      await this.hold(this.duration(random));
      await Promise.all(nodes.map((id) => this.restart(id)));
      history.fault('kill', 'end', nodes, 'restarted');
    });
  }

  /** Restarts a stopped member; a refusal is recorded (and leaves the node down). */
  async restart(id: string): Promise<void> {
    const { cluster, history } = this.options;
    const node = cluster.node(id);
    if (node.departed || node.damaged !== null || cluster.isRunning(id)) return;
    try {
      await cluster.start(id, this.members, false);
    } catch (error) {
      history.fault('restart', 'outcome', [id], `refused to start: ${String(error)}`);
    }
  }

  private async pauseFault(random: Prng): Promise<void> {
    const nodes = await this.targets(random, random.between(1, 2));
    if (nodes.length === 0) return;
    const { cluster, history } = this.options;
    await this.withBusy(nodes, async () => {
      this.count('pause');
      history.fault('pause', 'start', nodes, 'SIGSTOP');
      for (const id of nodes) cluster.pause(id);
      await this.hold(this.duration(random));
      for (const id of nodes) cluster.resume(id);
      history.fault('pause', 'end', nodes, 'SIGCONT');
    });
  }

  private cut(from: string, to: string): void {
    const proxy = this.options.cluster.node(to).proxy;
    proxy.setFaults(from, { ...proxy.faultsFrom(from), cut: true });
  }

  /** Splits the members into the sides of a partition of a random shape; returns its name. */
  private partitionShape(random: Prng, members: string[]): string {
    const shuffled = [...members].sort(() => random.next() - 0.5);
    const shape = random.pick(['majority-minority', 'isolate', 'bridge', 'one-way']);
    const cutBoth = (left: readonly string[], right: readonly string[]) => {
      for (const a of left)
        for (const b of right) {
          this.cut(a, b);
          this.cut(b, a);
        }
    };
    if (shape === 'majority-minority') {
      const minoritySize = random.between(1, Math.floor(shuffled.length / 2));
      const minority = shuffled.slice(0, minoritySize);
      cutBoth(minority, shuffled.slice(minoritySize));
      return `${shape}: [${minority.join(',')}] | [${shuffled.slice(minoritySize).join(',')}]`;
    }
    if (shape === 'isolate') {
      const [alone, ...rest] = shuffled as [string, ...string[]];
      cutBoth([alone], rest);
      return `${shape}: ${alone}`;
    }
    if (shape === 'bridge') {
      // The bridge sees both sides; the sides do not see each other.
      const [bridge, ...rest] = shuffled as [string, ...string[]];
      const half = Math.ceil(rest.length / 2);
      cutBoth(rest.slice(0, half), rest.slice(half));
      return `${shape}: [${rest.slice(0, half).join(',')}] <${bridge}> [${rest.slice(half).join(',')}]`;
    }
    const [node, ...rest] = shuffled as [string, ...string[]];
    const outbound = random.chance(0.5);
    for (const other of rest) {
      if (outbound) this.cut(node, other);
      else this.cut(other, node);
    }
    return `${shape}: ${outbound ? `${node} is not heard` : `${node} hears nothing`}`;
  }

  private async partitionFault(random: Prng): Promise<void> {
    // Not marked busy: membership changes and transfers go on across a partition.
    const members = [...this.members];
    if (members.length < 3) return;
    const { history } = this.options;
    this.count('partition');
    const shape = this.partitionShape(random, members);
    history.fault('partition', 'start', members, shape);
    await this.hold(this.duration(random));
    this.healNetwork();
    history.fault('partition', 'end', members, 'healed');
  }

  private async networkFault(random: Prng): Promise<void> {
    const members = [...this.members];
    if (members.length < 2) return;
    const faults: LinkFaults = {
      ...healthyLink,
      lossRate: random.chance(0.7) ? random.next() * 0.2 : 0,
      duplicateRate: random.chance(0.5) ? random.next() * 0.1 : 0,
      delayMs: random.chance(0.6) ? random.between(1, 40) : 0,
      jitterMs: random.chance(0.6) ? random.between(1, 80) : 0,
    };
    const { cluster, history } = this.options;
    this.count('network');
    for (const to of members)
      for (const from of members) if (from !== to) cluster.node(to).proxy.setFaults(from, faults);
    const detail = `loss ${faults.lossRate.toFixed(3)} dup ${faults.duplicateRate.toFixed(3)} delay ${faults.delayMs} ms jitter ${faults.jitterMs} ms`;
    history.fault('network', 'start', members, detail);
    await this.hold(this.duration(random));
    this.healNetwork();
    history.fault('network', 'end', members, 'healed');
  }

  private healNetwork(): void {
    for (const node of this.options.cluster.nodes.values()) node.proxy.healAll();
  }

  private async clockFault(random: Prng): Promise<void> {
    const { cluster, history } = this.options;
    if (cluster.fakeTime === null) return;
    const nodes = await this.targets(random, 1);
    if (nodes.length === 0) return;
    const id = nodes[0] as string;
    const spec = random.pick([
      `+${random.between(30, 7_200)}s`,
      `-${random.between(30, 3_600)}s`,
      `+0s x${(0.5 + random.next() * 1.5).toFixed(2)}`,
    ]);
    await this.withBusy([id], async () => {
      this.count('clock');
      await cluster.setClock(id, spec);
      history.fault('clock', 'start', [id], `wall clock ${spec}`);
      await this.hold(this.duration(random));
      await cluster.setClock(id, '+0s');
      history.fault('clock', 'end', [id], 'wall clock back to real time');
    });
  }

  private async diskFault(random: Prng): Promise<void> {
    const { cluster, history } = this.options;
    // One damaged node at most: a node that refuses to start stays down until repair lands.
    if (this.members.some((id) => cluster.node(id).damaged !== null)) return;
    const nodes = await this.targets(random, 1);
    if (nodes.length === 0) return;
    const id = nodes[0] as string;
    const variant = random.pick(diskFaultVariants);
    await this.withBusy([id], async () => {
      this.count('disk');
      await cluster.kill(id);
      const detail = await injectDiskFault(cluster.node(id).dataDir, variant, random);
      history.fault('disk', 'start', [id], `${variant}: ${detail}`);
      await this.hold(random.between(500, 2_000));
      try {
        await cluster.start(id, this.members, false);
        history.fault('disk', 'end', [id], 'restarted on the damaged data');
      } catch (error) {
        cluster.node(id).damaged = `${variant}: ${String(error)}`;
        history.fault(
          'disk',
          'outcome',
          [id],
          `refused to start (damage it cannot repair alone, e.g. a segment cut inside its synced records: docs/design.md): ${String(error)}`,
        );
      }
    });
  }

  /**
   * Fills a running node's small disk to within a few kilobytes (less than one WAL segment),
   * so that its own writes run it out of space; after the hold the space comes back. A node
   * may stop itself on the error (its log says so), or keep running; one that stopped is
   * restarted, as an operator would once space returns. Either way the checker holds it to
   * everything acknowledged.
   */
  private async fullDiskFault(random: Prng): Promise<void> {
    const { cluster, history } = this.options;
    const nodes = await this.targets(random, 1);
    if (nodes.length === 0) return;
    const id = nodes[0] as string;
    const node = cluster.node(id);
    if (node.diskDir === null) return;
    await this.withBusy([id], async () => {
      this.count('full-disk');
      const logBytes = await stat(node.logPath).then(
        (info) => info.size,
        () => 0,
      );
      const detail = await cluster.fillDisk(id, random.below(fullDiskHeadroomBytesMax));
      history.fault('full-disk', 'start', [id], detail);
      // Twice a fault's usual hold: the node needs a while to use up what is left.
      await this.hold(2 * this.duration(random));
      await cluster.freeDisk(id);
      const logTail = await readFile(node.logPath).catch(() => Buffer.alloc(0));
      const log = logTail.subarray(logBytes).toString('utf8');
      const stoppedItself = log.includes('the node stops');
      if (stoppedItself || !cluster.isRunning(id)) {
        await cluster.stop(id);
        await this.restart(id);
      }
      const outcome = stoppedItself
        ? 'space back; the node had stopped itself and was restarted'
        : cluster.isRunning(id)
          ? 'space back; the node kept running'
          : 'space back; the node exited and was restarted';
      history.fault('full-disk', 'end', [id], outcome);
    });
  }

  /** Add, remove or replace a member, keeping the voter count within one of the start. */
  private async membershipChange(random: Prng): Promise<void> {
    const base = this.options.initialMembers.length;
    const grow = this.members.length <= base && (this.members.length < base || random.chance(0.5));
    if (grow) {
      await this.addMember(random);
      if (this.members.length > base && random.chance(0.5)) await this.removeMember(random);
    } else await this.removeMember(random);
  }

  private async askMembers(
    random: Prng,
    path: string,
    method: string,
    body: unknown,
  ): Promise<string> {
    let last = 'no member answered';
    for (let attempt = 0; attempt < 6 && !this.stopping; attempt++) {
      const asked = this.available();
      if (asked.length === 0) break;
      const node = this.options.cluster.node(random.pick(asked));
      try {
        const answer = await request(`${node.httpUrl}${path}`, { method, body }, 15_000);
        if (answer.status === 200) return 'ok';
        last = `${answer.status} ${String(answer.body.error)}`;
        if (answer.status === 400) break;
      } catch (error) {
        last = errorCode(error);
      }
      await sleep(500);
    }
    return last;
  }

  private async addMember(random: Prng): Promise<void> {
    const { cluster, history } = this.options;
    const id = `n${this.nextNodeNumber++}`;
    await cluster.prepare([id]);
    const node = cluster.node(id);
    await rm(node.dataDir, { recursive: true, force: true });
    await this.withBusy([id], async () => {
      this.count('membership');
      history.fault('membership', 'start', [id], `add ${id}`);
      await cluster.start(id, [...this.members, id], true);
      const outcome = await this.askMembers(random, '/v1/members', 'POST', {
        id,
        address: node.proxyAddress,
        voter: true,
      });
      // Even an unanswered request may have been committed: the node stays and counts.
      this.members.push(id);
      history.fault('membership', 'end', [id], `add ${id}: ${outcome}`);
    });
  }

  private async removeMember(random: Prng): Promise<void> {
    const { cluster, history } = this.options;
    const leader = await this.leader();
    const candidates = this.available().filter(
      (id) => this.options.leaderRemoval || (leader !== null && id !== leader),
    );
    if (candidates.length === 0 || this.members.length <= 3) return;
    const id =
      leader !== null && candidates.includes(leader) && random.chance(0.3)
        ? leader
        : random.pick(candidates);
    await this.withBusy([id], async () => {
      this.count('membership');
      history.fault(
        'membership',
        'start',
        [id],
        `remove ${id}${id === leader ? ' (the leader)' : ''}`,
      );
      const outcome = await this.askMembers(random, `/v1/members/${id}`, 'DELETE', undefined);
      if (outcome === 'ok') {
        this.members.splice(this.members.indexOf(id), 1);
        cluster.node(id).departed = true;
        await this.options.beforeStop(id).catch(() => undefined);
        await cluster.stop(id);
      }
      history.fault('membership', 'end', [id], `remove ${id}: ${outcome}`);
    });
  }

  private async transfer(random: Prng): Promise<void> {
    const { cluster, history } = this.options;
    const leader = await this.leader();
    if (leader === null || this.busy.has(leader) || !this.members.includes(leader)) return;
    const followers = this.available().filter((id) => id !== leader);
    if (followers.length === 0) return;
    const to = random.pick(followers);
    this.count('transfer');
    let outcome: string;
    try {
      const answer = await request(
        `${cluster.node(leader).httpUrl}/v1/leader/transfer`,
        { method: 'POST', body: { to } },
        5_000,
      );
      outcome = `${answer.status} ${answer.status === 202 ? 'started' : String(answer.body.error)}`;
    } catch (error) {
      outcome = errorCode(error);
    }
    history.fault('transfer', 'outcome', [leader, to], `${leader} → ${to}: ${outcome}`);
  }

  /** Ends every fault: network healed, clocks real, processes resumed, members restarted. */
  async healAll(): Promise<void> {
    const { cluster, history } = this.options;
    this.healNetwork();
    for (const node of cluster.nodes.values()) {
      await cluster.setClock(node.id, '+0s');
      cluster.resume(node.id);
    }
    await Promise.all(this.members.map((id) => this.restart(id)));
    history.fault('heal', 'end', [...this.members], 'all faults healed');
  }
}
