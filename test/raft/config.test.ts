// Single-server configuration changes: each legal change moves one node by one step, illegal
// ones are refused with a reason, and encoding is deterministic and validated on decode.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  applyConfigChange,
  ConfigurationError,
  decodeConfiguration,
  encodeConfiguration,
  makeConfiguration,
} from '../../src/raft/config.ts';

const base = makeConfiguration(['n1', 'n2', 'n3'], []);

test('learners join, are promoted, demoted and removed one step at a time', () => {
  const withLearner = applyConfigChange(base, { type: 'addLearner', node: 'n4' });
  assert.deepEqual(withLearner, { voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
  if (typeof withLearner === 'string') return;
  const promoted = applyConfigChange(withLearner, { type: 'promoteLearner', node: 'n4' });
  assert.deepEqual(promoted, { voters: ['n1', 'n2', 'n3', 'n4'], learners: [] });
  if (typeof promoted === 'string') return;
  const demoted = applyConfigChange(promoted, { type: 'demoteVoter', node: 'n1' });
  assert.deepEqual(demoted, { voters: ['n2', 'n3', 'n4'], learners: ['n1'] });
  if (typeof demoted === 'string') return;
  assert.deepEqual(applyConfigChange(demoted, { type: 'remove', node: 'n1' }), {
    voters: ['n2', 'n3', 'n4'],
    learners: [],
  });
});

test('illegal changes are refused with a reason', () => {
  assert.match(String(applyConfigChange(base, { type: 'addLearner', node: 'n1' })), /already/);
  assert.match(
    String(applyConfigChange(base, { type: 'promoteLearner', node: 'n9' })),
    /not a learner/,
  );
  assert.match(String(applyConfigChange(base, { type: 'remove', node: 'n9' })), /not a member/);
  const solo = makeConfiguration(['n1'], []);
  assert.match(String(applyConfigChange(solo, { type: 'remove', node: 'n1' })), /last voter/);
  assert.match(String(applyConfigChange(solo, { type: 'demoteVoter', node: 'n1' })), /last voter/);
  assert.match(String(applyConfigChange(base, { type: 'addVoter', node: '' })), /non-empty/);
});

test('encoding is deterministic and decoding validates', () => {
  const a = encodeConfiguration({ voters: ['b', 'a'], learners: [] });
  const b = encodeConfiguration({ voters: ['a', 'b'], learners: [] });
  assert.deepEqual(a, b);
  assert.deepEqual(decodeConfiguration(a), { voters: ['a', 'b'], learners: [] });
  assert.throws(() => decodeConfiguration(new Uint8Array([0xff])), ConfigurationError);
  assert.throws(
    () => decodeConfiguration(new TextEncoder().encode('{"voters":1}')),
    ConfigurationError,
  );
  assert.throws(() => makeConfiguration(['a'], ['a']), /both voter and learner/);
});
