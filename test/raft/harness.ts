/**
 * A tiny synchronous cluster for unit tests of the core: perfect network unless told
 * otherwise, persistence recorded per node so a crash can rebuild a core from it.
 */
import { type CoreOptions, RaftCore } from '../../src/raft/core.ts';
import type { Entry, HardState, Message, NodeId, Ready, Snapshot } from '../../src/raft/types.ts';
import { Prng } from '../../src/util/prng.ts';

export interface NodeDisk {
  hardState: HardState | null;
  snapshot: Snapshot | null;
  entries: Entry[];
  appliedIndex: number;
}

export class TestCluster {
  readonly cores = new Map<NodeId, RaftCore>();
  readonly disks = new Map<NodeId, NodeDisk>();
  readonly delivered = new Map<NodeId, Entry[]>();
  readonly queue: Message[] = [];
  /** Every message a Ready put out, in order. */
  readonly sent: Message[] = [];
  readonly cut = new Set<NodeId>();
  /** Messages `stabilize` was told to hold back. */
  readonly held: Message[] = [];
  /** Readies that held nothing to do (hasReady() said there was work). */
  emptyReadyCount = 0;
  private readonly prng: Prng;

  constructor(
    readonly ids: NodeId[],
    seed = 1,
    private readonly overrides: Partial<CoreOptions> = {},
  ) {
    this.prng = new Prng(seed);
    for (const id of ids) {
      this.disks.set(id, { hardState: null, snapshot: null, entries: [], appliedIndex: 0 });
      this.delivered.set(id, []);
      this.start(id);
    }
  }

  options(id: NodeId): CoreOptions {
    return {
      nodeId: id,
      electionTimeoutTicks: 10,
      heartbeatIntervalTicks: 1,
      random: () => this.prng.next(),
      preVote: true,
      checkQuorum: true,
      appendBytesMax: 1 << 20,
      inflightAppendsMax: 64,
      bootstrap: { voters: [...this.ids].sort(), learners: [] },
      ...this.overrides,
    };
  }

  start(id: NodeId): RaftCore {
    const disk = this.disks.get(id)!;
    const core = new RaftCore(this.options(id), {
      hardState: disk.hardState,
      snapshot: disk.snapshot,
      entries: [...disk.entries],
      appliedIndex: disk.appliedIndex,
    });
    this.cores.set(id, core);
    return core;
  }

  core(id: NodeId): RaftCore {
    return this.cores.get(id)!;
  }

  /**
   * Processes every node's Ready until nothing is left to do, delivering messages; those
   * `hold` picks wait in `held` until the test puts them back on the queue.
   */
  stabilize(limit = 10_000, hold: (message: Message) => boolean = () => false): void {
    for (let round = 0; round < limit; round++) {
      let busy = false;
      for (const [id, core] of this.cores) {
        while (core.hasReady()) {
          busy = true;
          this.process(id, core);
        }
      }
      const batch = this.queue.splice(0);
      for (const message of batch) {
        if (this.cut.has(message.from) || this.cut.has(message.to)) continue;
        if (hold(message)) {
          this.held.push(message);
          continue;
        }
        const target = this.cores.get(message.to);
        if (target !== undefined) {
          busy = true;
          target.step(message);
        }
      }
      if (!busy) return;
    }
    throw new Error('cluster did not stabilize');
  }

  private process(id: NodeId, core: RaftCore): void {
    const ready = core.ready();
    // hasReady() promised work: an empty Ready would cost the runtime a loop turn for nothing.
    this.emptyReadyCount += isEmptyReady(ready) ? 1 : 0;
    const disk = this.disks.get(id)!;
    if (ready.snapshot !== null) {
      disk.snapshot = ready.snapshot;
      disk.entries = [];
      disk.appliedIndex = ready.snapshot.meta.index;
    }
    const first = ready.entriesToAppend[0];
    if (first !== undefined) {
      disk.entries = disk.entries.filter((entry) => entry.index < first.index);
      disk.entries.push(...ready.entriesToAppend);
    }
    if (ready.hardState !== null) disk.hardState = ready.hardState;
    this.queue.push(...ready.messagesToSend);
    this.sent.push(...ready.messagesToSend);
    this.delivered.get(id)!.push(...ready.entriesToDeliver);
    const last = ready.entriesToDeliver[ready.entriesToDeliver.length - 1];
    if (last !== undefined) disk.appliedIndex = last.index;
    core.advance(ready);
  }

  tickAll(ticks: number): void {
    for (let tick = 0; tick < ticks; tick++) {
      for (const core of this.cores.values()) core.tick();
      this.stabilize();
    }
  }

  leader(): RaftCore | undefined {
    return [...this.cores.values()].find((core) => core.status().role === 'leader');
  }

  /** Ticks until some node leads; throws after `ticksMax`. */
  electLeader(ticksMax = 200): RaftCore {
    for (let tick = 0; tick < ticksMax; tick++) {
      const leader = this.leader();
      if (leader !== undefined) return leader;
      this.tickAll(1);
    }
    throw new Error('no leader elected');
  }

  normalData(id: NodeId): string[] {
    return this.delivered
      .get(id)!
      .filter((entry) => entry.kind === 'normal')
      .map((entry) => new TextDecoder().decode(entry.data));
  }
}

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

function isEmptyReady(ready: Ready): boolean {
  return (
    ready.softState === null &&
    ready.hardState === null &&
    ready.snapshot === null &&
    ready.entriesToAppend.length === 0 &&
    ready.messagesToSend.length === 0 &&
    ready.entriesToDeliver.length === 0 &&
    ready.readStates.length === 0
  );
}
