/**
 * N `BroadcastNode`s in one process over the in-memory twins: a `MemoryStorage` on a
 * `MemoryDisk` that outlives the node (so a node can crash and restart from what its disk
 * kept), and `MemoryTransport`s on one `MemoryNetwork` (cut, one-way cut, heal, pause).
 *
 * A `DeliveryRecorder` follows every running node's `deliveries()` subscription and checks,
 * as messages arrive, that a position means the same message on every node (agreement), that
 * a (clientId, seq) takes one position only (integrity), and, at the end, per-client FIFO.
 * Frame rules drop chosen frames before they leave a node, for deterministic message loss.
 * Every wait polls a condition with a deadline; nothing sleeps blindly.
 */
import assert from 'node:assert/strict';
import type { DeliveredMessage } from '../../src/broadcast/deliveries.ts';
import { BroadcastError } from '../../src/broadcast/errors.ts';
import {
  BroadcastNode,
  type BroadcastNodeOptions,
  defaultNodeTuning,
  type NodeLogger,
} from '../../src/broadcast/node.ts';
import type { BroadcastResult } from '../../src/broadcast/pending.ts';
import { makeConfiguration } from '../../src/raft/config.ts';
import type { NodeId, Snapshot } from '../../src/raft/types.ts';
import { StorageError } from '../../src/storage/errors.ts';
import { MemoryDisk, MemoryStorage } from '../../src/storage/memory-storage.ts';
import type { AppendRequest, RaftStorage, StorageCounters } from '../../src/storage/types.ts';
import { MemoryNetwork, type MemoryTransport } from '../../src/transport/memory.ts';
import type { Frame, FrameHandler, Transport, TransportStats } from '../../src/transport/types.ts';
import { systemEnvironment } from '../../src/util/system-environment.ts';

export type Tuning = Omit<BroadcastNodeOptions, 'id' | 'bootstrap' | 'logger'>;

/** Fast clocks for tests: 5 ms ticks, elections after 150–300 ms, heartbeats every 15 ms. */
export const twinTuning: Tuning = {
  ...defaultNodeTuning,
  tickIntervalMs: 5,
  electionTimeoutTicks: 30,
  heartbeatIntervalTicks: 3,
  requestTimeoutMs: 5_000,
  retryIntervalMs: 200,
  environment: systemEnvironment,
};

export const silentLogger: NodeLogger = { info() {}, warn() {}, error() {} };

const clusterId = 'twin';
const transportLimits = {
  frameBytesMax: 8 << 20,
  peerBufferBytesMax: 64 << 20,
  snapshotBytesMax: 64 << 20,
};

export const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
export const decode = (payload: Uint8Array): string => new TextDecoder().decode(payload);

/** Polls `condition` every few ms until it holds; throws naming `what` at the deadline. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Settles to what happened, so a test can look at a promise without awaiting it. */
export class Outcome<T> {
  result: T | undefined;
  error: unknown;
  settled = false;

  constructor(readonly promise: Promise<T>) {
    promise.then(
      (value) => {
        this.result = value;
        this.settled = true;
      },
      (error: unknown) => {
        this.error = error;
        this.settled = true;
      },
    );
  }

  get code(): string | undefined {
    return this.error instanceof BroadcastError ? this.error.code : undefined;
  }
}

/** The error a promise rejects with, or a failure if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<BroadcastError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BroadcastError, `a BroadcastError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a rejection');
}

// ------------------------------------------------------------------ frame rules

export interface DropRule {
  /** Frames this rule has dropped so far. */
  readonly droppedCount: number;
  remove(): void;
}

class FrameRule implements DropRule {
  droppedCount = 0;
  removed = false;

  constructor(
    readonly matches: (frame: Frame) => boolean,
    private remaining: number,
  ) {}

  take(frame: Frame): boolean {
    if (this.removed || this.remaining <= 0 || !this.matches(frame)) return false;
    this.remaining--;
    this.droppedCount++;
    return true;
  }

  remove(): void {
    this.removed = true;
  }
}

export interface FrameWatch {
  /** Frames seen leaving any node that matched, dropped or not. */
  readonly count: number;
}

class FrameCounter implements FrameWatch {
  count = 0;

  constructor(readonly matches: (frame: Frame) => boolean) {}
}

/** A MemoryTransport whose outgoing frames are counted, then pass the drop rules. */
class RuledTransport implements Transport {
  readonly nodeId: NodeId;

  constructor(
    private readonly inner: MemoryTransport,
    private readonly rules: readonly FrameRule[],
    private readonly watches: readonly FrameCounter[],
  ) {
    this.nodeId = inner.nodeId;
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  send(frames: readonly Frame[]): void {
    for (const frame of frames) {
      for (const watch of this.watches) if (watch.matches(frame)) watch.count++;
    }
    const kept = frames.filter((frame) => !this.rules.some((rule) => rule.take(frame)));
    if (kept.length > 0) this.inner.send(kept);
  }

  /** Bypasses the rules: a test injecting a frame as if this node had sent it. */
  sendUnruled(frames: readonly Frame[]): void {
    this.inner.send(frames);
  }

  onFrame(handler: FrameHandler): () => void {
    return this.inner.onFrame(handler);
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    this.inner.setPeers(peers);
  }

  stats(): TransportStats {
    return this.inner.stats();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

// ------------------------------------------------------------------ held writes

interface HeldWrite {
  readonly run: () => Promise<void>;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * A MemoryStorage whose writes can be held: while held, appends and snapshot saves wait
 * here, in call order, without reaching the disk (written but not yet fsynced). A crash
 * loses them; a release passes them on in order.
 */
export class GatedStorage implements RaftStorage {
  private held: HeldWrite[] | null = null;
  private heldKinds: 'all' | 'snapshots' = 'all';

  constructor(readonly inner: MemoryStorage) {}

  get heldCount(): number {
    return this.held?.length ?? 0;
  }

  /**
   * Holds every write, or only snapshot saves (appends pass: the runtime awaits a snapshot
   * save before it writes again, so nothing is reordered).
   */
  hold(kinds: 'all' | 'snapshots' = 'all'): void {
    this.held ??= [];
    this.heldKinds = kinds;
  }

  release(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const write of held) write.run().then(write.resolve, write.reject);
  }

  append(request: AppendRequest): Promise<void> {
    return this.gate(() => this.inner.append(request), this.heldKinds === 'all');
  }

  saveSnapshot(snapshot: Snapshot): Promise<void> {
    return this.gate(() => this.inner.saveSnapshot(snapshot), true);
  }

  private gate(run: () => Promise<void>, holds: boolean): Promise<void> {
    const held = this.held;
    if (held === null || !holds) return run();
    return new Promise((resolve, reject) => held.push({ run, resolve, reject }));
  }

  /** kill -9: held writes never reach the disk, queued ones are dropped too. */
  crash(): void {
    const held = this.held ?? [];
    this.held = null;
    const error = new StorageError('CLOSED', 'the node crashed before this was written');
    for (const write of held) write.reject(error);
    this.inner.crash();
  }

  counters(): StorageCounters {
    return this.inner.counters();
  }

  repairDone(): Promise<void> {
    return this.inner.repairDone();
  }

  close(): Promise<void> {
    this.release();
    return this.inner.close();
  }
}

// ------------------------------------------------------------------ the recorder

export interface RecordedMessage {
  readonly clientId: string;
  readonly seq: number;
  readonly topic: string;
  readonly text: string;
}

/**
 * Everything any node delivered, by position. A position seen twice must name the same
 * message (agreement); a (clientId, seq) must keep one position (integrity).
 */
export class DeliveryRecorder {
  readonly byPosition = new Map<number, RecordedMessage>();
  readonly violations: string[] = [];
  private readonly positionByKey = new Map<string, number>();
  /** Per node, the next position its subscription must yield (density per node). */
  private readonly nextByNode = new Map<NodeId, number>();

  record(nodeId: NodeId, message: DeliveredMessage): void {
    const expected = this.nextByNode.get(nodeId);
    if (expected !== undefined && message.position !== expected) {
      this.violations.push(`${nodeId} delivered ${message.position} where ${expected} was due`);
    }
    this.nextByNode.set(nodeId, message.position + 1);
    const seen: RecordedMessage = {
      clientId: message.clientId,
      seq: message.seq,
      topic: message.topic,
      text: decode(message.payload),
    };
    const earlier = this.byPosition.get(message.position);
    if (earlier === undefined) this.byPosition.set(message.position, seen);
    else if (JSON.stringify(earlier) !== JSON.stringify(seen)) {
      this.violations.push(
        `agreement: position ${message.position} is ${JSON.stringify(earlier)} and, on ` +
          `${nodeId}, ${JSON.stringify(seen)}`,
      );
    }
    const key = `${seen.clientId}#${seen.seq}`;
    const position = this.positionByKey.get(key);
    if (position === undefined) this.positionByKey.set(key, message.position);
    else if (position !== message.position) {
      this.violations.push(`integrity: ${key} delivered at ${position} and ${message.position}`);
    }
  }

  /** A new subscription on `nodeId` starts at `from` (a restart or a snapshot install). */
  resume(nodeId: NodeId, from: number): void {
    this.nextByNode.set(nodeId, from);
  }

  positionOf(clientId: string, seq: number): number | undefined {
    return this.positionByKey.get(`${clientId}#${seq}`);
  }

  get lastPosition(): number {
    let last = 0;
    for (const position of this.byPosition.keys()) last = Math.max(last, position);
    return last;
  }

  /** Positions of messages whose payload text is `text`: more than one is a duplicate. */
  positionsOfText(text: string): number[] {
    const positions: number[] = [];
    for (const [position, message] of this.byPosition) {
      if (message.text === text) positions.push(position);
    }
    return positions.sort((a, b) => a - b);
  }

  /** Per client, seqs increase along the positions. */
  fifoViolations(): string[] {
    const lastSeqByClient = new Map<string, number>();
    const problems: string[] = [];
    const positions = [...this.byPosition.keys()].sort((a, b) => a - b);
    for (const position of positions) {
      const message = this.byPosition.get(position) as RecordedMessage;
      if (message.clientId === '') continue;
      const last = lastSeqByClient.get(message.clientId) ?? 0;
      if (message.seq <= last) {
        problems.push(`fifo: ${message.clientId} seq ${message.seq} at ${position} after ${last}`);
      }
      lastSeqByClient.set(message.clientId, message.seq);
    }
    return problems;
  }

  /** Positions in 1..last that no node delivered while it was followed. */
  gaps(): number[] {
    const missing: number[] = [];
    for (let position = 1; position <= this.lastPosition; position++) {
      if (!this.byPosition.has(position)) missing.push(position);
    }
    return missing;
  }
}

// ------------------------------------------------------------------ the cluster

interface Incarnation {
  readonly node: BroadcastNode;
  readonly storage: GatedStorage;
  readonly transport: RuledTransport;
  readonly follower: Promise<void>;
}

export interface TwinClusterOptions {
  /** Default n1, n2, n3. */
  readonly ids?: readonly NodeId[];
  readonly tuning?: Partial<Tuning>;
}

export class TwinCluster {
  readonly ids: readonly NodeId[];
  readonly network = new MemoryNetwork();
  readonly recorder = new DeliveryRecorder();
  readonly tuning: Tuning;
  private readonly disks = new Map<NodeId, MemoryDisk>();
  private readonly running = new Map<NodeId, Incarnation>();
  private readonly rules: FrameRule[] = [];
  private readonly watches: FrameCounter[] = [];
  private readonly closeHooks: (() => void)[] = [];
  private readonly peers: ReadonlyMap<NodeId, string>;

  private constructor(ids: readonly NodeId[], tuning: Tuning) {
    this.ids = ids;
    this.tuning = tuning;
    this.peers = new Map(ids.map((id) => [id, `memory:${id}`]));
    for (const id of ids) this.disks.set(id, new MemoryDisk());
  }

  /** Starts every node; does not wait for a leader (see `waitForLeader`). */
  static async start(options: TwinClusterOptions = {}): Promise<TwinCluster> {
    const ids = options.ids ?? ['n1', 'n2', 'n3'];
    const cluster = new TwinCluster(ids, { ...twinTuning, ...options.tuning });
    for (const id of ids) await cluster.startNode(id);
    return cluster;
  }

  node(id: NodeId): BroadcastNode {
    const incarnation = this.running.get(id);
    assert.ok(incarnation !== undefined, `node ${id} is running`);
    return incarnation.node;
  }

  disk(id: NodeId): MemoryDisk {
    return this.disks.get(id) as MemoryDisk;
  }

  isRunning(id: NodeId): boolean {
    return this.running.has(id);
  }

  runningIds(): NodeId[] {
    return this.ids.filter((id) => this.running.has(id));
  }

  /** Opens the node's disk (as a restart would) and starts a node on it. */
  async startNode(id: NodeId, tuning: Partial<Tuning> = {}): Promise<BroadcastNode> {
    assert.ok(this.ids.includes(id), `${id} is a member`);
    assert.ok(!this.running.has(id), `${id} is not running yet`);
    const opened = await MemoryStorage.open({ disk: this.disk(id), clusterId, nodeId: id });
    const storage = new GatedStorage(opened.storage);
    const persisted = opened.persisted;
    const inner = this.network.createTransport({
      nodeId: id,
      clusterId,
      logger: silentLogger,
      ...transportLimits,
    });
    const transport = new RuledTransport(inner, this.rules, this.watches);
    transport.setPeers(this.peers);
    await transport.start();
    const options: BroadcastNodeOptions = {
      ...this.tuning,
      ...tuning,
      id,
      bootstrap: makeConfiguration(this.ids, []),
      logger: silentLogger,
    };
    const node = new BroadcastNode(options, storage, transport, persisted);
    node.start();
    const follower = this.follow(id, node);
    this.running.set(id, { node, storage, transport, follower });
    return node;
  }

  /** Follows the node's deliveries into the recorder until it stops; jumps on compacted. */
  private async follow(id: NodeId, node: BroadcastNode): Promise<void> {
    let from = node.status().firstRetainedPosition;
    this.recorder.resume(id, from);
    for (let restarts = 0; restarts < 1_000; restarts++) {
      try {
        for await (const message of node.deliveries({ from })) {
          this.recorder.record(id, message);
          from = message.position + 1;
        }
        return;
      } catch (error) {
        if (!(error instanceof BroadcastError) || error.code !== 'compacted') throw error;
        from = Number(error.details.firstPosition);
        this.recorder.resume(id, from);
      }
    }
    throw new Error(`${id}: the subscription was compacted away 1000 times`);
  }

  /**
   * kill -9: the node's links go first (nothing more leaves it), then its storage drops what
   * it had not written yet, then the runtime is stopped so its timers end. Callers waiting
   * on it get node_stopped or storage_failed.
   */
  async crash(id: NodeId): Promise<void> {
    const incarnation = this.running.get(id);
    assert.ok(incarnation !== undefined, `node ${id} is running`);
    this.running.delete(id);
    void incarnation.transport.close();
    incarnation.storage.crash();
    await incarnation.node.close();
    await incarnation.follower;
  }

  /** A graceful stop: pending broadcasts reject with node_stopped, queued writes finish. */
  async stop(id: NodeId): Promise<void> {
    const incarnation = this.running.get(id);
    assert.ok(incarnation !== undefined, `node ${id} is running`);
    this.running.delete(id);
    await incarnation.node.close();
    await incarnation.follower;
  }

  async restart(id: NodeId, tuning: Partial<Tuning> = {}): Promise<BroadcastNode> {
    if (this.running.has(id)) await this.crash(id);
    return this.startNode(id, tuning);
  }

  /** The node's storage, to hold and release its writes. */
  storage(id: NodeId): GatedStorage {
    const incarnation = this.running.get(id);
    assert.ok(incarnation !== undefined, `node ${id} is running`);
    return incarnation.storage;
  }

  // ---------------------------------------------------------------- the network

  /** Cuts every link between the groups; links inside a group stay. */
  partition(...groups: readonly (readonly NodeId[])[]): void {
    for (const [offset, group] of groups.entries()) {
      for (const other of groups.slice(offset + 1)) {
        for (const a of group) for (const b of other) this.network.cut(a, b);
      }
    }
  }

  isolate(id: NodeId): void {
    this.partition(
      [id],
      this.ids.filter((other) => other !== id),
    );
  }

  heal(): void {
    this.network.healAll();
  }

  /** Drops up to `count` outgoing frames (from any node) that match, until removed. */
  dropFrames(matches: (frame: Frame) => boolean, count = Number.POSITIVE_INFINITY): DropRule {
    const rule = new FrameRule(matches, count);
    this.rules.push(rule);
    return rule;
  }

  /**
   * Sends `frame` from the running node `frame.from`, past the drop rules: a delayed or
   * duplicated message arriving at a chosen moment.
   */
  injectFrame(frame: Frame): void {
    const incarnation = this.running.get(frame.from);
    assert.ok(incarnation !== undefined, `node ${frame.from} is running`);
    incarnation.transport.sendUnruled([frame]);
  }

  /** Counts the outgoing frames (from any node) that match, from now on. */
  watchFrames(matches: (frame: Frame) => boolean): FrameWatch {
    const watch = new FrameCounter(matches);
    this.watches.push(watch);
    return watch;
  }

  // ---------------------------------------------------------------- observing

  /** The running leader with the highest term, if any. */
  leaderId(among: readonly NodeId[] = this.runningIds()): NodeId | null {
    let best: { id: NodeId; term: number } | null = null;
    for (const id of among) {
      if (!this.running.has(id)) continue;
      const status = this.node(id).status();
      if (status.role === 'leader' && (best === null || status.term > best.term)) {
        best = { id, term: status.term };
      }
    }
    return best?.id ?? null;
  }

  /** Waits until one node of `among` leads and every other node of `among` follows it. */
  async waitForLeader(
    among: readonly NodeId[] = this.runningIds(),
    timeoutMs = 10_000,
  ): Promise<NodeId> {
    let leader: NodeId | null = null;
    await waitFor(
      () => {
        leader = this.leaderId(among);
        const known = leader;
        return known !== null && among.every((id) => this.node(id).status().leaderId === known);
      },
      `a leader among ${among.join(',')}`,
      timeoutMs,
    );
    return leader as unknown as NodeId;
  }

  followers(leader: NodeId): NodeId[] {
    return this.runningIds().filter((id) => id !== leader);
  }

  /** Waits until the nodes of `among` have applied the same index and the same position. */
  async waitConverged(
    among: readonly NodeId[] = this.runningIds(),
    timeoutMs = 10_000,
  ): Promise<number> {
    let position = 0;
    await waitFor(
      () => {
        const statuses = among.map((id) => this.node(id).status());
        const first = statuses[0];
        if (first === undefined) return false;
        position = first.lastPosition;
        return statuses.every(
          (status) =>
            status.lastPosition === first.lastPosition &&
            status.appliedIndex === first.appliedIndex &&
            status.commitIndex === status.appliedIndex,
        );
      },
      `nodes ${among.join(',')} converge`,
      timeoutMs,
    );
    return position;
  }

  /** Waits until every node of `among` has delivered `position`. */
  async waitDelivered(
    position: number,
    among: readonly NodeId[] = this.runningIds(),
    timeoutMs = 10_000,
  ): Promise<void> {
    await waitFor(
      () => among.every((id) => this.node(id).status().lastPosition >= position),
      `position ${position} on ${among.join(',')}`,
      timeoutMs,
    );
  }

  /** Agreement, integrity, per-client FIFO; with `dense`, every position was seen. */
  assertConsistent(options: { readonly dense?: boolean } = {}): void {
    assert.deepEqual(this.recorder.violations, [], 'agreement and integrity');
    assert.deepEqual(this.recorder.fifoViolations(), [], 'per-client FIFO');
    if (options.dense ?? true) assert.deepEqual(this.recorder.gaps(), [], 'dense positions');
  }

  /** The messages a node keeps, as `position:text` lines (for comparing nodes). */
  transcript(id: NodeId, from = 1): string[] {
    const lines: string[] = [];
    for (let cursor = from; ; ) {
      const page = this.node(id).read(cursor, 4096);
      if (page.length === 0) return lines;
      for (const message of page) lines.push(`${message.position}:${decode(message.payload)}`);
      cursor += page.length;
    }
  }

  /** Runs `hook` when the cluster closes, before any node stops (to end load generators). */
  beforeClose(hook: () => void): void {
    this.closeHooks.push(hook);
  }

  async close(): Promise<void> {
    for (const hook of this.closeHooks.splice(0)) hook();
    for (const id of this.runningIds()) await this.stop(id);
  }
}

// ------------------------------------------------------------------ retrying clients

/**
 * A client with its own session: one message at a time, each retried with the same
 * (clientId, seq) on the next running node until acknowledged. Records what was acknowledged.
 */
export class RetryingClient {
  readonly acknowledged = new Map<number, BroadcastResult>();
  readonly errorCodes = new Map<string, number>();
  private seq = 0;
  private cursor: number;
  private aborted = false;

  constructor(
    readonly clientId: string,
    private readonly cluster: TwinCluster,
    offset = 0,
  ) {
    this.cursor = offset;
  }

  private nextNode(): BroadcastNode | null {
    const running = this.cluster.runningIds();
    if (running.length === 0) return null;
    this.cursor++;
    return this.cluster.node(running[this.cursor % running.length] as NodeId);
  }

  /** Gives up at once, even on the message in flight (the cluster is being torn down). */
  abort(): void {
    this.aborted = true;
  }

  /** Sends until `shouldStop()`, then finishes the message in flight (bounded attempts). */
  async run(shouldStop: () => boolean, attemptsMax = 500): Promise<void> {
    while (!shouldStop()) {
      const seq = ++this.seq;
      const payload = encode(`${this.clientId}:${seq}`);
      for (let attempt = 0; ; attempt++) {
        if (this.aborted) return;
        assert.ok(attempt < attemptsMax, `${this.clientId}:${seq} acknowledged in time`);
        const node = this.nextNode();
        try {
          if (node === null) throw new BroadcastError('node_stopped', 'no node is running');
          const result = await node.broadcast(payload, { clientId: this.clientId, seq });
          this.acknowledged.set(seq, result);
          break;
        } catch (error) {
          const code = error instanceof BroadcastError ? error.code : String(error);
          this.errorCodes.set(code, (this.errorCodes.get(code) ?? 0) + 1);
          // Only outcome-unknown errors are retried; anything else is a bug for this client.
          const retriable = ['timeout', 'node_stopped', 'storage_failed', 'overloaded'];
          assert.ok(retriable.includes(code), `${this.clientId}:${seq} failed with ${code}`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
    }
  }

  /** Every acknowledged message was delivered once, at the position it was acknowledged at. */
  assertDelivered(recorder: DeliveryRecorder): void {
    for (const [seq, result] of this.acknowledged) {
      const position = recorder.positionOf(this.clientId, seq);
      assert.ok(position !== undefined, `${this.clientId}:${seq} was delivered`);
      if (result.position !== null) {
        assert.equal(position, result.position, `${this.clientId}:${seq} kept its position`);
      }
    }
  }
}

// ------------------------------------------------------------------ load

export interface OwnBroadcast {
  readonly nodeId: NodeId;
  readonly text: string;
  readonly outcome: Outcome<BroadcastResult>;
}

/**
 * Traffic for fault tests: `clientCount` retrying clients with their own sessions, plus
 * every running node broadcasting under its own session every `ownIntervalMs` (at most
 * `ownPerNodeMax` each, so the load is bounded).
 */
export class Load {
  readonly clients: RetryingClient[];
  readonly own: OwnBroadcast[] = [];
  private stopping = false;
  private readonly runs: Promise<void>[];
  private readonly ownTimer: NodeJS.Timeout;
  private readonly ownCounts = new Map<NodeId, number>();

  constructor(
    private readonly cluster: TwinCluster,
    options: {
      readonly clientCount: number;
      readonly ownIntervalMs: number;
      readonly ownPerNodeMax: number;
    },
  ) {
    this.clients = Array.from(
      { length: options.clientCount },
      (_, offset) => new RetryingClient(`client-${offset}`, cluster, offset),
    );
    this.runs = this.clients.map((client) => client.run(() => this.stopping));
    // However a test ends, closing the cluster ends its load first.
    cluster.beforeClose(() => this.abort());
    this.ownTimer = setInterval(() => {
      for (const nodeId of cluster.runningIds()) {
        const count = this.ownCounts.get(nodeId) ?? 0;
        if (count >= options.ownPerNodeMax) continue;
        this.ownCounts.set(nodeId, count + 1);
        const text = `own:${nodeId}:${count}:${this.own.length}`;
        const outcome = new Outcome(cluster.node(nodeId).broadcast(encode(text)));
        this.own.push({ nodeId, text, outcome });
      }
    }, options.ownIntervalMs);
  }

  /** Messages acknowledged so far, over all clients. */
  get acknowledgedCount(): number {
    return this.clients.reduce((sum, client) => sum + client.acknowledged.size, 0);
  }

  /** Stops everything at once, acknowledged or not; idempotent. */
  abort(): void {
    this.stopping = true;
    clearInterval(this.ownTimer);
    for (const client of this.clients) client.abort();
    for (const run of this.runs) run.catch(() => undefined);
  }

  /** Stops new messages; waits for each client's message in flight to be acknowledged. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.ownTimer);
    await Promise.all(this.runs);
  }

  /**
   * Every acknowledged client message is delivered once at its position; every own
   * broadcast is delivered at most once, and at its position when it resolved.
   */
  assertDelivered(): void {
    const recorder = this.cluster.recorder;
    for (const client of this.clients) client.assertDelivered(recorder);
    for (const { text, outcome } of this.own) {
      const positions = recorder.positionsOfText(text);
      assert.ok(positions.length <= 1, `${text} delivered at most once: ${positions}`);
      if (outcome.result !== undefined) {
        assert.deepEqual(positions, [outcome.result.position], `${text} at its position`);
      }
    }
  }
}
