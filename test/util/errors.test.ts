// Proves that the runtime, SDK and agents errors share one shape: each is an instance of its
// own class and of AbcastError, names itself, keeps its cause, and serialises to
// {code, message, details} — so a logged or JSON-encoded error loses nothing but the cause.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentError } from '../../src/agents/errors.ts';
import { BroadcastError } from '../../src/broadcast/errors.ts';
import { ClientError, refusal } from '../../src/client/errors.ts';
import { AbcastError } from '../../src/util/errors.ts';

test('every layer error is an AbcastError of its own class and name', () => {
  const cause = new Error('disk gone');
  const errors = [
    new BroadcastError('timeout', 'not delivered in time', { seq: 3 }, { cause }),
    new ClientError('unavailable', 'no endpoint answered', { lastReason: 'reset' }, { cause }),
    new AgentError('stopped', 'following stopped', { reason: 'x' }, { cause }),
  ];
  const names = ['BroadcastError', 'ClientError', 'AgentError'];
  errors.forEach((error, at) => {
    assert.ok(error instanceof AbcastError);
    assert.ok(error instanceof Error);
    assert.equal(error.name, names[at]);
    assert.equal(error.cause, cause);
    assert.match(String(error), new RegExp(`^${names[at]}: `));
  });
  assert.ok(errors[0] instanceof BroadcastError);
  assert.ok(!(errors[0] instanceof ClientError));
  assert.ok(errors[1] instanceof ClientError);
  assert.ok(errors[2] instanceof AgentError);
});

test('toJSON gives code, message and details, and no cause', () => {
  const error = new BroadcastError(
    'compacted',
    'position 3 is no longer kept',
    { firstPosition: 9 },
    { cause: new Error('hidden') },
  );
  assert.deepEqual(JSON.parse(JSON.stringify(error)), {
    code: 'compacted',
    message: 'position 3 is no longer kept',
    details: { firstPosition: 9 },
  });
  assert.deepEqual(new AgentError('closed', 'closed').details, {});
});

test("a node's refusal keeps the answer's fields as details and its message in the text", () => {
  const error = refusal('session_unknown', { error: 'session_unknown', message: 'start at 1' });
  assert.equal(error.code, 'session_unknown');
  assert.equal(error.message, 'session_unknown: start at 1');
  assert.equal(error.details.message, 'start at 1');
  assert.equal(refusal('http_418', {}).message, 'http_418');
});
