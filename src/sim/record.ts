/**
 * The committed record: the one log every node's delivered sequence must be a prefix of,
 * grown by whichever node first delivers each index, and beside it a reference model of the
 * broadcast (a naive twin of the session table: per client the next sequence it may deliver)
 * with the common state after every index: positions handed out, hash chain over delivered
 * messages, session digest. Nodes and snapshots are compared against it in O(1) per index.
 */
import { decodeBatch } from '../broadcast/batch.ts';
import { ConfigurationError, decodeConfiguration, emptyConfiguration } from '../raft/config.ts';
import type { Configuration, Entry, EntryKind, NodeId } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { chainStep, type SimApp } from './app.ts';
import { extendPrefixHash, finish32, mix32, mixNumber } from './hash.ts';
import type { ViolationContext } from './violation.ts';
import { clientIndexOf, clientName, messageFor, sameBytes } from './workload.ts';

export interface WorkloadShape {
  readonly clientCount: number;
  readonly salt: number;
  readonly payloadBytesMax: number;
}

interface ConfigAt {
  readonly index: number;
  readonly config: Configuration;
}

/** One client's share of the session digest: only clients that delivered something count. */
export function sessionShare(clientIndex: number, nextSeq: number): number {
  return finish32(mixNumber(mix32(0x5e55, clientIndex), nextSeq));
}

export class CommittedRecord {
  // Per log index; slot 0 is the empty prefix.
  private readonly terms: number[] = [0];
  private readonly kinds: EntryKind[] = ['noop'];
  private readonly dataHashes: number[] = [0];
  private readonly prefixHashes: number[] = [0];
  private readonly positionsAfter: number[] = [0];
  private readonly chainsAfter: number[] = [0];
  private readonly digestsAfter: number[] = [0];
  private readonly sessionCountsAfter: number[] = [0];
  private readonly configs: ConfigAt[] = [];
  // Per position; slot 0 unused.
  private readonly positionClients: number[] = [-1];
  private readonly positionSeqs: number[] = [0];
  // The reference broadcast state after the last recorded index.
  private readonly nextSeqs: number[];
  private readonly issuedSeqs: number[];
  private chain = 0;
  private digest = 0;
  private sessionCount = 0;

  /**
   * `workload` null: the entries' batches are not modelled (a run of the real runtime, whose
   * clients and application state its own checkers follow); the record then holds the log
   * alone: terms, kinds, data and prefix hashes, and the configurations.
   */
  constructor(
    private readonly context: ViolationContext,
    private readonly workload: WorkloadShape | null,
  ) {
    const clientCount = workload?.clientCount ?? 0;
    assert(workload === null || clientCount > 0, 'a workload has clients');
    this.nextSeqs = new Array<number>(clientCount).fill(1);
    this.issuedSeqs = new Array<number>(clientCount).fill(0);
  }

  get length(): number {
    return this.terms.length - 1;
  }

  get lastPosition(): number {
    return this.positionClients.length - 1;
  }

  termAt(index: number): number {
    return this.at(this.terms, index);
  }

  kindAt(index: number): EntryKind {
    return this.at(this.kinds, index);
  }

  dataHashAt(index: number): number {
    return this.at(this.dataHashes, index);
  }

  prefixHashAt(index: number): number {
    return this.at(this.prefixHashes, index);
  }

  positionAfter(index: number): number {
    return this.at(this.positionsAfter, index);
  }

  chainAfter(index: number): number {
    return this.at(this.chainsAfter, index);
  }

  private at<T>(values: readonly T[], index: number): T {
    assert(Number.isSafeInteger(index) && index >= 0 && index <= this.length, 'a recorded index');
    return values[index] as T;
  }

  /** The configuration in force at `index` by the committed log. */
  configAt(index: number): Configuration {
    let result = emptyConfiguration;
    for (const change of this.configs) {
      if (change.index > index) break;
      result = change.config;
    }
    return result;
  }

  /** The index of the newest committed config entry, 0 when none was delivered yet. */
  get latestConfigIndex(): number {
    return this.configs[this.configs.length - 1]?.index ?? 0;
  }

  latestConfig(): Configuration {
    return this.configs[this.configs.length - 1]?.config ?? emptyConfiguration;
  }

  /** A client announces (clientIndex, seq) before sending it anywhere. */
  issue(clientIndex: number, seq: number): void {
    assert(this.workload !== null, 'issues come from a modelled workload');
    assert(clientIndex >= 0 && clientIndex < this.workload.clientCount, 'a known client');
    assert(seq === (this.issuedSeqs[clientIndex] as number) + 1, 'clients issue in sequence');
    this.issuedSeqs[clientIndex] = seq;
  }

  /** The highest seq of this client that took a position. */
  deliveredSeq(clientIndex: number): number {
    return (this.nextSeqs[clientIndex] as number) - 1;
  }

  /** Whether `position` holds (clientIndex, seq). */
  positionHolds(position: number, clientIndex: number, seq: number): boolean {
    if (!Number.isSafeInteger(position) || position < 1 || position > this.lastPosition) {
      return false;
    }
    return this.positionClients[position] === clientIndex && this.positionSeqs[position] === seq;
  }

  /**
   * Appends the entry at index length + 1, delivered first by `node` whose log holds it with
   * `nodePrefixHash`, and applies it to the reference broadcast state.
   */
  extend(entry: Entry, dataHash: number, node: NodeId, nodePrefixHash: number | null): void {
    const index = this.length + 1;
    assert(entry.index === index, 'the record grows one index at a time');
    const prefixHash = extendPrefixHash(
      this.prefixHashAt(index - 1),
      entry.term,
      entry.kind,
      dataHash,
    );
    if (nodePrefixHash !== prefixHash) {
      this.context.fail(
        'log matching',
        `${node} delivered index ${index} (term ${entry.term}) but its log prefix up to there differs from the committed prefix`,
        [node],
      );
    }
    if (entry.term < this.termAt(index - 1)) {
      this.context.fail(
        'log matching',
        `committed terms go back at index ${index}: ${entry.term} after ${this.termAt(index - 1)}`,
        [node],
      );
    }
    if (entry.kind === 'config') this.recordConfig(entry, node);
    if (entry.kind === 'normal' && this.workload !== null)
      this.applyBatch(entry, node, this.workload);
    this.terms.push(entry.term);
    this.kinds.push(entry.kind);
    this.dataHashes.push(dataHash);
    this.prefixHashes.push(prefixHash);
    this.positionsAfter.push(this.lastPosition);
    this.chainsAfter.push(this.chain);
    this.digestsAfter.push(this.digest);
    this.sessionCountsAfter.push(this.sessionCount);
  }

  private recordConfig(entry: Entry, node: NodeId): void {
    try {
      this.configs.push({ index: entry.index, config: decodeConfiguration(entry.data) });
    } catch (error) {
      if (!(error instanceof ConfigurationError)) throw error;
      this.context.fail(
        'integrity',
        `config entry ${entry.index} does not decode: ${error.message}`,
        [node],
      );
    }
  }

  private applyBatch(entry: Entry, node: NodeId, workload: WorkloadShape): void {
    let messages: ReturnType<typeof decodeBatch>['messages'];
    try {
      messages = decodeBatch(entry.data).messages;
    } catch (error) {
      this.context.fail('integrity', `entry ${entry.index} is not a batch: ${String(error)}`, [
        node,
      ]);
      return;
    }
    for (const message of messages) {
      const clientIndex = clientIndexOf(message.clientId);
      if (clientIndex === null || clientIndex >= workload.clientCount) {
        this.context.fail(
          'integrity',
          `entry ${entry.index} carries unknown client ${JSON.stringify(message.clientId)}`,
          [node],
        );
        continue;
      }
      this.checkProposed(entry.index, clientIndex, message, node, workload);
      const nextSeq = this.nextSeqs[clientIndex] as number;
      if (message.seq < nextSeq) continue; // a retry of something delivered: no position
      if (message.seq > nextSeq) {
        this.context.fail(
          'per-client fifo',
          `entry ${entry.index}: ${message.clientId} seq ${message.seq} arrives while seq ${nextSeq} was never delivered, yet clients send seq n+1 only after n is acknowledged`,
          [node],
        );
        continue;
      }
      this.deliverReference(clientIndex, message);
    }
  }

  /** Nothing is delivered that was never proposed (integrity). */
  private checkProposed(
    index: number,
    clientIndex: number,
    message: ReturnType<typeof decodeBatch>['messages'][number],
    node: NodeId,
    workload: WorkloadShape,
  ): void {
    if (message.seq > (this.issuedSeqs[clientIndex] as number)) {
      this.context.fail(
        'integrity',
        `entry ${index}: ${message.clientId} never issued seq ${message.seq}`,
        [node],
      );
      return;
    }
    const expected = messageFor(clientIndex, message.seq, workload.salt, workload.payloadBytesMax);
    if (expected.topic !== message.topic || !sameBytes(expected.payload, message.payload)) {
      this.context.fail(
        'integrity',
        `entry ${index}: ${message.clientId} seq ${message.seq} differs from what it proposed`,
        [node],
      );
    }
  }

  private deliverReference(
    clientIndex: number,
    message: ReturnType<typeof decodeBatch>['messages'][number],
  ): void {
    const nextSeq = this.nextSeqs[clientIndex] as number;
    if (nextSeq > 1) this.digest = (this.digest - sessionShare(clientIndex, nextSeq)) >>> 0;
    else this.sessionCount++;
    this.nextSeqs[clientIndex] = nextSeq + 1;
    this.digest = (this.digest + sessionShare(clientIndex, nextSeq + 1)) >>> 0;
    const position = this.lastPosition + 1;
    this.positionClients.push(clientIndex);
    this.positionSeqs.push(message.seq);
    this.chain = chainStep(this.chain, position, message);
  }

  /**
   * Why an application state (restored from a snapshot, or live after delivering `index`)
   * differs from the common state at `index`, or null when it is equal.
   */
  appStateProblem(app: SimApp, index: number): string | null {
    if (app.lastPosition !== this.positionAfter(index)) {
      return `last position ${app.lastPosition}, the common sequence has ${this.positionAfter(index)} at index ${index}`;
    }
    if (app.chainHash !== this.chainAfter(index)) {
      return `delivered messages (hash chain) differ from the common sequence at index ${index}`;
    }
    return null;
  }

  /** The session-table part of `appStateProblem`: O(clients), for snapshots only. */
  sessionProblem(app: SimApp, index: number): string | null {
    const expectedCount = this.at(this.sessionCountsAfter, index);
    if (app.sessionCount !== expectedCount) {
      return `${app.sessionCount} sessions, the common state has ${expectedCount} at index ${index}`;
    }
    let digest = 0;
    for (let clientIndex = 0; clientIndex < this.nextSeqs.length; clientIndex++) {
      const nextSeq = app.expectedSeq(clientName(clientIndex));
      if (nextSeq > 1) digest = (digest + sessionShare(clientIndex, nextSeq)) >>> 0;
    }
    if (digest !== this.at(this.digestsAfter, index)) {
      return `session table differs from the common state at index ${index}`;
    }
    return null;
  }
}
