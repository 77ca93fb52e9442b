// `abcast mcp --token` against three real `abcast start --auth` processes: the MCP server
// acts with its token's identity. A key's session belongs to the identity that sent it
// first, so the same key through another identity's server is refused `key_reused` (and
// nothing is delivered), while the owner's retry through a restarted server is answered as
// a duplicate; a read-only token's broadcast is refused `forbidden` with a sentence that
// says to ask for a token with the needed role.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { newToken } from '../../src/cli/commands/auth-file.ts';
import { tokenSha256Hex } from '../../src/server/auth.ts';
import { type AttackCluster, startAttackCluster } from '../security/cluster.ts';
import { call, callFailing, stdioClient } from './helpers.ts';

const tokens: Record<string, string> = {};
let cluster: AttackCluster;
let root: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'abcast-mcp-auth-'));
  const roles = { admin: 'admin', alice: 'write', bob: 'write', reader: 'read' };
  const identities = Object.entries(roles).map(([name, role]) => {
    tokens[name] = newToken();
    return { name, role, tokenSha256: tokenSha256Hex(tokens[name] as string) };
  });
  const authPath = join(root, 'auth.json');
  await writeFile(authPath, JSON.stringify({ identities }), { mode: 0o600 });
  cluster = await startAttackCluster(['--auth', authPath, '--log-level', 'warn'], {
    token: tokens.admin,
  });
  await cluster.agreedLeader();
});

after(async () => {
  await cluster?.close();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

function endpoints(): string[] {
  return cluster.ids.map((_, at) => cluster.httpUrl(at));
}

test('a key belongs to the identity that sent it; a read token may not broadcast', async () => {
  const topic = `auth-${Date.now()}`;
  const alice = await stdioClient(endpoints(), ['--token', tokens.alice as string]);
  const sent = await call(alice.client, 'broadcast', { payload: 'a', topic, key: 'shared-key' });
  assert.equal(sent.duplicate, false);
  await alice.client.close();

  const bob = await stdioClient(endpoints(), ['--token', tokens.bob as string]);
  try {
    const refused = await callFailing(bob.client, 'broadcast', {
      payload: 'a',
      topic,
      key: 'shared-key',
    });
    assert.equal(refused.error, 'key_reused');
    assert.match(refused.text, /another identity/);
  } finally {
    await bob.client.close();
  }

  const again = await stdioClient(endpoints(), ['--token', tokens.alice as string]);
  const reader = await stdioClient(endpoints(), ['--token', tokens.reader as string]);
  try {
    const retried = await call(again.client, 'broadcast', {
      payload: 'a',
      topic,
      key: 'shared-key',
    });
    assert.deepEqual(retried, { position: sent.position, duplicate: true });
    const forbidden = await callFailing(reader.client, 'broadcast', { payload: 'r', topic });
    assert.equal(forbidden.error, 'forbidden');
    assert.match(forbidden.text, /token with the needed role/);
    const page = await call(reader.client, 'read_messages', { from: 1, topic });
    assert.deepEqual(
      (page.messages as { payload: unknown }[]).map((message) => message.payload),
      ['a'],
    );
  } finally {
    await again.client.close();
    await reader.client.close();
  }
});
