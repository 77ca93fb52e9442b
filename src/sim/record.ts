/**
 * The committed record: the one log every node's delivered sequence must be a prefix of,
 * grown by whichever node first delivers each index: terms, kinds, data and prefix hashes, and
 * the configurations. Nodes and snapshots are compared against it in O(1) per index. What
 * the entries mean to clients (positions, sessions) is followed by runtime/delivery-checker.ts.
 */
import { ConfigurationError, decodeConfiguration, emptyConfiguration } from '../raft/config.ts';
import type { Configuration, Entry, EntryKind, NodeId } from '../raft/types.ts';
import { assert } from '../util/assert.ts';
import { extendPrefixHash } from './hash.ts';
import type { ViolationContext } from './violation.ts';

interface ConfigAt {
  readonly index: number;
  readonly config: Configuration;
}

export class CommittedRecord {
  // Per log index; slot 0 is the empty prefix.
  private readonly terms: number[] = [0];
  private readonly kinds: EntryKind[] = ['noop'];
  private readonly dataHashes: number[] = [0];
  private readonly prefixHashes: number[] = [0];
  private readonly configs: ConfigAt[] = [];

  constructor(private readonly context: ViolationContext) {}

  get length(): number {
    return this.terms.length - 1;
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

  /**
   * The first committed configuration that holds `id` again after an earlier one held it and
   * a later one did not, with the index where it had left; null when it never came back.
   */
  returnOf(id: NodeId): { readonly leftAtIndex: number; readonly backAtIndex: number } | null {
    const holds = (config: Configuration) =>
      config.voters.includes(id) || config.learners.includes(id);
    let wasIn = false;
    let leftAtIndex = 0;
    for (const change of this.configs) {
      const isIn = holds(change.config);
      if (isIn && leftAtIndex > 0) return { leftAtIndex, backAtIndex: change.index };
      if (wasIn && !isIn) leftAtIndex = change.index;
      wasIn = isIn;
    }
    return null;
  }

  /**
   * Appends the entry at index length + 1, delivered first by `node` whose log holds it with
   * `nodePrefixHash`.
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
    this.terms.push(entry.term);
    this.kinds.push(entry.kind);
    this.dataHashes.push(dataHash);
    this.prefixHashes.push(prefixHash);
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
}
