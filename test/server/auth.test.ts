// The auth file and its rules, without a server: a good file parses, each mistake is refused
// with the path of the field that is wrong; tokens match by their SHA-256 and nothing else;
// topic patterns match as documented (`*` any run of characters, none too); roles nest.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newToken } from '../../src/cli/commands/auth-file.ts';
import {
  AuthFileError,
  parseAuthFile,
  roleAllows,
  tokenSha256Hex,
  topicAllowed,
  topicMatches,
} from '../../src/server/auth.ts';

test('a good file parses; tokens are found by their hash, certificates by name', () => {
  const token = newToken();
  assert.match(token, /^abcast_[A-Za-z0-9_-]{43}$/);
  const table = parseAuthFile(
    JSON.stringify({
      identities: [
        { name: 'alice', role: 'write', tokenSha256: tokenSha256Hex(token), publish: ['orders.*'] },
        { name: 'ops', role: 'admin' },
      ],
    }),
  );
  assert.equal(table.byToken(token)?.name, 'alice');
  assert.equal(table.byToken(`${token}x`), null);
  assert.equal(table.byToken(tokenSha256Hex(token)), null, 'the hash is not the token');
  assert.equal(table.named('ops')?.role, 'admin');
  assert.equal(table.named('ops')?.tokenSha256, null);
  assert.equal(table.named('nobody'), null);
  assert.deepEqual(table.named('alice')?.publish, ['orders.*']);
  assert.equal(table.named('alice')?.subscribe, null);
});

test('each mistake names its field', () => {
  const hash = tokenSha256Hex('t');
  const cases: [unknown, string | RegExp][] = [
    ['not json', '(file)'],
    [[], '(file)'],
    [{ identities: {} }, 'identities'],
    [{ identities: [], extra: 1 }, 'extra'],
    [{ identities: [1] }, 'identities[0]'],
    [{ identities: [{ role: 'read' }] }, 'identities[0].name'],
    [{ identities: [{ name: 'a/b', role: 'read' }] }, 'identities[0].name'],
    [{ identities: [{ name: 'a', role: 'root' }] }, 'identities[0].role'],
    [
      { identities: [{ name: 'a', role: 'read', tokenSha256: 'abc' }] },
      'identities[0].tokenSha256',
    ],
    [{ identities: [{ name: 'a', role: 'read', token: 'x' }] }, 'identities[0].token'],
    [{ identities: [{ name: 'a', role: 'read', publish: 'x' }] }, 'identities[0].publish'],
    [
      { identities: [{ name: 'a', role: 'read', subscribe: ['ok', 3] }] },
      'identities[0].subscribe[1]',
    ],
    [
      {
        identities: [
          { name: 'a', role: 'read', tokenSha256: hash },
          { name: 'a', role: 'admin' },
        ],
      },
      'identities[1].name',
    ],
  ];
  for (const [file, field] of cases) {
    const text = typeof file === 'string' ? file : JSON.stringify(file);
    assert.throws(
      () => parseAuthFile(text),
      (error: unknown) => {
        assert.ok(error instanceof AuthFileError, text);
        assert.equal(error.field, field, text);
        assert.ok(error.message.startsWith(`${field}: `), error.message);
        return true;
      },
    );
  }
});

test('topic patterns: * is any run of characters; no topic is the empty one', () => {
  const yes: [string, string][] = [
    ['orders.*', 'orders.eu'],
    ['orders.*', 'orders.eu.paid'],
    ['orders.*', 'orders.'],
    ['*', ''],
    ['*', 'anything'],
    ['a*c*e', 'abcde'],
    ['a*c*e', 'ace'],
    ['prices', 'prices'],
  ];
  const no: [string, string][] = [
    ['orders.*', 'orders'],
    ['orders.*', 'prices.eu'],
    ['prices', 'prices.eu'],
    ['prices', ''],
    ['a*c*e', 'abcd'],
    ['a*a', 'a'],
  ];
  for (const [pattern, topic] of yes)
    assert.ok(topicMatches(pattern, topic), `${pattern} ~ ${topic}`);
  for (const [pattern, topic] of no)
    assert.ok(!topicMatches(pattern, topic), `${pattern} !~ ${topic}`);
  assert.ok(topicAllowed(null, 'whatever'));
  assert.ok(!topicAllowed([], ''));
  assert.ok(topicAllowed(['x', 'orders.*'], 'orders.1'));
});

test('roles nest: read < write < admin', () => {
  assert.ok(roleAllows('admin', 'write'));
  assert.ok(roleAllows('write', 'read'));
  assert.ok(roleAllows('read', 'read'));
  assert.ok(!roleAllows('read', 'write'));
  assert.ok(!roleAllows('write', 'admin'));
});
