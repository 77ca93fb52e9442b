import { assert } from '../util/assert.ts';
import type { ConfigChange, Configuration, NodeId } from './types.ts';

export const emptyConfiguration: Configuration = Object.freeze({ voters: [], learners: [] });

export class ConfigurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigurationError';
  }
}

function sortedUnique(ids: readonly NodeId[]): NodeId[] {
  return [...new Set(ids)].sort();
}

/** Validates and normalises (sorted, unique); throws ConfigurationError on bad input. */
export function makeConfiguration(
  voters: readonly NodeId[],
  learners: readonly NodeId[],
): Configuration {
  for (const id of [...voters, ...learners]) {
    if (typeof id !== 'string' || id.length === 0 || id.length > 255) {
      throw new ConfigurationError(`node ids are non-empty strings of at most 255 characters`);
    }
  }
  const voterSet = sortedUnique(voters);
  const learnerSet = sortedUnique(learners);
  const both = learnerSet.filter((id) => voterSet.includes(id));
  if (both.length > 0) {
    throw new ConfigurationError(`node ${both[0]} cannot be both voter and learner`);
  }
  return { voters: voterSet, learners: learnerSet };
}

export function isVoter(config: Configuration, id: NodeId): boolean {
  return config.voters.includes(id);
}

export function isMember(config: Configuration, id: NodeId): boolean {
  return config.voters.includes(id) || config.learners.includes(id);
}

export function members(config: Configuration): NodeId[] {
  return [...config.voters, ...config.learners];
}

export function sameConfiguration(a: Configuration, b: Configuration): boolean {
  return (
    a.voters.length === b.voters.length &&
    a.learners.length === b.learners.length &&
    a.voters.every((id, position) => b.voters[position] === id) &&
    a.learners.every((id, position) => b.learners[position] === id)
  );
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Deterministic: equal configurations encode to equal bytes on every node. */
export function encodeConfiguration(config: Configuration): Uint8Array {
  const normal = makeConfiguration(config.voters, config.learners);
  return encoder.encode(JSON.stringify({ voters: normal.voters, learners: normal.learners }));
}

export function decodeConfiguration(data: Uint8Array): Configuration {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch {
    throw new ConfigurationError('configuration entry is not valid UTF-8 JSON');
  }
  const record = parsed as { voters?: unknown; learners?: unknown } | null;
  if (
    record === null ||
    typeof record !== 'object' ||
    !Array.isArray(record.voters) ||
    !Array.isArray(record.learners)
  ) {
    throw new ConfigurationError('configuration entry lacks voters and learners arrays');
  }
  return makeConfiguration(record.voters as NodeId[], record.learners as NodeId[]);
}

/**
 * The configuration after one single-server change (Raft thesis §4.1), or a string saying
 * why the change is refused. Any two majorities of configurations that differ by one voter
 * overlap, which is what makes one-at-a-time changes safe without joint consensus.
 */
export function applyConfigChange(
  config: Configuration,
  change: ConfigChange,
): Configuration | string {
  const { node } = change;
  if (typeof node !== 'string' || node.length === 0) return 'node id must be a non-empty string';
  const voter = isVoter(config, node);
  const learner = config.learners.includes(node);
  const withoutNode = (ids: readonly NodeId[]) => ids.filter((id) => id !== node);
  switch (change.type) {
    case 'addLearner':
      if (voter || learner) return `node ${node} is already a member`;
      return makeConfiguration(config.voters, [...config.learners, node]);
    case 'addVoter':
      if (voter) return `node ${node} is already a voter`;
      return makeConfiguration([...config.voters, node], withoutNode(config.learners));
    case 'promoteLearner':
      if (!learner) return `node ${node} is not a learner`;
      return makeConfiguration([...config.voters, node], withoutNode(config.learners));
    case 'demoteVoter':
      if (!voter) return `node ${node} is not a voter`;
      if (config.voters.length === 1) return 'cannot demote the last voter';
      return makeConfiguration(withoutNode(config.voters), [...config.learners, node]);
    case 'remove':
      if (!voter && !learner) return `node ${node} is not a member`;
      if (voter && config.voters.length === 1) return 'cannot remove the last voter';
      return makeConfiguration(withoutNode(config.voters), withoutNode(config.learners));
    default: {
      const unknown: { type?: unknown } = change;
      return `unknown configuration change ${String(unknown.type)}`;
    }
  }
}

export function assertConfiguration(config: Configuration): void {
  const normal = makeConfiguration(config.voters, config.learners);
  assert(sameConfiguration(normal, config), 'configurations are sorted and unique');
}
