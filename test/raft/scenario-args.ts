/**
 * One scenario command line, split into positional words and `key=value` options. Every getter
 * validates, and `finish()` rejects whatever the handler did not read, so a typo in a script
 * fails loudly with its line instead of being ignored.
 */
import type { MessageType, NodeId } from '../../src/raft/types.ts';
import { ScenarioError } from './scenario-cluster.ts';
import type { MessageFilter } from './scenario-network.ts';

const messageTypes: readonly MessageType[] = [
  'PreVote',
  'PreVoteResponse',
  'Vote',
  'VoteResponse',
  'Append',
  'AppendResponse',
  'Heartbeat',
  'HeartbeatResponse',
  'Snapshot',
  'TimeoutNow',
  'ReadIndex',
  'ReadIndexResponse',
];

export class CommandArgs {
  readonly name: string;
  private readonly positionals: string[] = [];
  private readonly options = new Map<string, string>();
  private readonly used = new Set<string>();
  private positionalsRead = 0;

  constructor(text: string) {
    const words = text.trim().split(/\s+/);
    this.name = words[0] ?? '';
    for (const word of words.slice(1)) {
      const equals = word.indexOf('=');
      if (equals <= 0) {
        this.positionals.push(word);
        continue;
      }
      const key = word.slice(0, equals);
      if (this.options.has(key)) throw new ScenarioError(`option ${key} given twice`);
      this.options.set(key, word.slice(equals + 1));
    }
  }

  /** The next positional word, or an error naming what was expected. */
  word(what: string): string {
    const value = this.positionals[this.positionalsRead];
    if (value === undefined) throw new ScenarioError(`${this.name}: missing ${what}`);
    this.positionalsRead++;
    return value;
  }

  /** All positional words not read yet. */
  rest(): string[] {
    const words = this.positionals.slice(this.positionalsRead);
    this.positionalsRead = this.positionals.length;
    return words;
  }

  natural(what: string): number {
    return parseNatural(this.word(what), `${this.name}: ${what}`);
  }

  option(key: string): string | null {
    this.used.add(key);
    return this.options.get(key) ?? null;
  }

  naturalOption(key: string, fallback: number): number {
    const text = this.option(key);
    return text === null ? fallback : parseNatural(text, `${this.name}: ${key}`);
  }

  /** `on`/`off`, or null when absent. */
  switchOption(key: string): boolean | null {
    const text = this.option(key);
    if (text === null) return null;
    if (text !== 'on' && text !== 'off') {
      throw new ScenarioError(`${this.name}: ${key} is on or off, not ${text}`);
    }
    return text === 'on';
  }

  listOption(key: string): string[] | null {
    const text = this.option(key);
    if (text === null) return null;
    const items = text.split(',').filter((item) => item.length > 0);
    if (items.length === 0) throw new ScenarioError(`${this.name}: ${key} is empty`);
    return items;
  }

  /** `from=`, `to=` and `type=` as a filter; each takes a comma-separated list. */
  messageFilter(within: readonly NodeId[] | null): MessageFilter {
    const types = this.listOption('type');
    for (const type of types ?? []) {
      if (!(messageTypes as readonly string[]).includes(type)) {
        throw new ScenarioError(`${this.name}: unknown message type ${type}`);
      }
    }
    return {
      from: this.listOption('from'),
      to: this.listOption('to'),
      types: types as MessageType[] | null,
      within,
    };
  }

  /** Throws if the line holds words or options the handler never asked for. */
  finish(): void {
    const extraWords = this.positionals.slice(this.positionalsRead);
    if (extraWords.length > 0) {
      throw new ScenarioError(`${this.name}: unexpected ${extraWords.join(' ')}`);
    }
    for (const key of this.options.keys()) {
      if (!this.used.has(key)) throw new ScenarioError(`${this.name}: unknown option ${key}`);
    }
  }
}

export function parseNatural(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new ScenarioError(`${what} must be a natural number, not ${text}`);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new ScenarioError(`${what} is too large: ${text}`);
  return value;
}
