// The committed record names a member that left the configuration and came back (what the
// runtime simulation's membership property fails on), and only that: a machine added for
// the first time, or one that leaves and stays out, is no return.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeConfiguration } from '../../src/raft/config.ts';
import type { Configuration } from '../../src/raft/types.ts';
import { extendPrefixHash } from '../../src/sim/hash.ts';
import { CommittedRecord } from '../../src/sim/record.ts';
import { ViolationContext } from '../../src/sim/violation.ts';

/** A record of one config entry per configuration, in order, all in term 1. */
function recordOf(configs: readonly Configuration[]): CommittedRecord {
  const context = new ViolationContext({ seed: 1, nodeCount: null, unsafe: null, profile: null });
  const record = new CommittedRecord(context);
  configs.forEach((config, at) => {
    const index = at + 1;
    const entry = { index, term: 1, kind: 'config' as const, data: encodeConfiguration(config) };
    const prefixHash = extendPrefixHash(record.prefixHashAt(index - 1), 1, 'config', 0);
    record.extend(entry, 0, 'n1', prefixHash);
  });
  assert.equal(record.length, configs.length);
  return record;
}

test('a member that leaves and comes back is named with both indexes', () => {
  const record = recordOf([
    { voters: ['a', 'b', 'c'], learners: [] },
    { voters: ['a', 'c'], learners: [] },
    { voters: ['a', 'c'], learners: ['b'] },
  ]);
  assert.deepEqual(record.returnOf('b'), { leftAtIndex: 2, backAtIndex: 3 });
  assert.equal(record.returnOf('a'), null);
});

test('joining for the first time, or leaving for good, is no return', () => {
  const record = recordOf([
    { voters: ['a', 'b', 'c'], learners: [] },
    { voters: ['a', 'b', 'c'], learners: ['d'] },
    { voters: ['a', 'b', 'c', 'd'], learners: [] },
    { voters: ['a', 'b', 'd'], learners: [] },
  ]);
  assert.equal(record.returnOf('d'), null);
  assert.equal(record.returnOf('c'), null);
  assert.equal(record.returnOf('z'), null);
});
