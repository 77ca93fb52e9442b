// Tokens, roles, topics and session owners on three real `abcast start --auth` processes:
// every route answers 401 without a token and 403 to a role or topic below it, with the
// typed error body (a reader reaches the reads, the status and the consumers, its acks
// included); a session started by one identity is refused to another (nothing
// delivered, no duplicate answer) and to a second client with another nonce; a client id
// in the nodes' namespace is refused; a transfer is logged with the identity that asked.
// One identity is made by `abcast token create` (printed once, file 0600), the rest are
// written beside it with their hashes.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { newToken } from '../../src/cli/commands/auth-file.ts';
import { tokenSha256Hex } from '../../src/server/auth.ts';
import { runCli } from '../cli/helpers.ts';
import { waitFor } from '../support/ports.ts';
import { type AttackCluster, startAttackCluster } from './cluster.ts';

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly headers: Headers;
}

const tokens: Record<string, string> = {};
let cluster: AttackCluster;
let root: string;
let leaderAt = 0;

async function call(
  who: string | null,
  method: string,
  path: string,
  body?: unknown,
  at = leaderAt,
): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (who !== null) headers.authorization = `Bearer ${tokens[who] ?? who}`;
  const controller = new AbortController();
  const answer = await fetch(`${cluster.httpUrl(at)}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: controller.signal,
  });
  // A stream that was let in answers 200 at once; its body never ends, so it is cut here.
  if (answer.headers.get('content-type')?.startsWith('text/event-stream')) {
    controller.abort();
    return { status: answer.status, body: {}, headers: answer.headers };
  }
  const text = await answer.text();
  let parsed: Record<string, unknown> = { text };
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // /metrics is text
  }
  return { status: answer.status, body: parsed, headers: answer.headers };
}

async function expectRefused(
  who: string | null,
  method: string,
  path: string,
  body: unknown,
  expected: { status: number; error: string },
): Promise<Answer> {
  const answer = await call(who, method, path, body);
  assert.equal(
    answer.status,
    expected.status,
    `${who} ${method} ${path}: ${JSON.stringify(answer.body)}`,
  );
  assert.equal(answer.body.error, expected.error, `${who} ${method} ${path}`);
  assert.equal(typeof answer.body.message, 'string');
  return answer;
}

const routes: readonly [string, string, unknown][] = [
  ['POST', '/v1/broadcast', { payload: 1 }],
  ['POST', '/v1/broadcast/batch', { client: 'door', seq: 1, messages: [{ payload: 1 }] }],
  ['GET', '/v1/messages', undefined],
  ['GET', '/v1/stream', undefined],
  ['GET', '/v1/barrier', undefined],
  ['GET', '/v1/status', undefined],
  // A reader keeps its own cursor: acks need the read role only.
  ['GET', '/v1/consumers', undefined],
  ['POST', '/v1/consumers/billing/ack', { index: 0 }],
  ['POST', '/v1/members', { id: 'n9', address: '127.0.0.1:1' }],
  ['DELETE', '/v1/members/n9', undefined],
  ['POST', '/v1/leader/transfer', {}],
  ['GET', '/metrics', undefined],
];

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'abcast-auth-'));
  const authPath = join(root, 'auth.json');
  const created = await runCli([
    ...['token', 'create', '--auth', authPath, '--name', 'admin', '--role', 'admin'],
  ]);
  assert.equal(created.code, 0, created.stderr);
  tokens.admin = created.stdout.trim();
  assert.match(tokens.admin, /^abcast_/);
  assert.match(created.stderr, /shown only now/);
  assert.equal((await stat(authPath)).mode & 0o777, 0o600);
  assert.ok(!(await readFile(authPath, 'utf8')).includes(tokens.admin), 'the file keeps no token');
  const file = JSON.parse(await readFile(authPath, 'utf8')) as { identities: object[] };
  const more = {
    reader: { role: 'read' },
    writer: { role: 'write' },
    bob: { role: 'write' },
    orders: { role: 'write', publish: ['orders.*'], subscribe: ['orders.*'] },
  };
  for (const [name, rights] of Object.entries(more)) {
    tokens[name] = newToken();
    file.identities.push({ name, ...rights, tokenSha256: tokenSha256Hex(tokens[name]) });
  }
  await writeFile(authPath, JSON.stringify(file));
  cluster = await startAttackCluster(['--auth', authPath, '--log-level', 'warn'], {
    token: tokens.admin,
  });
  leaderAt = (await cluster.agreedLeader()).at;
});

after(async () => {
  await cluster?.close();
  await rm(root, { recursive: true, force: true });
});

describe('tokens and roles', () => {
  test('no token, or an unknown one: 401 on every route', async () => {
    for (const [method, path, body] of routes) {
      const answer = await expectRefused(null, method, path, body, {
        status: 401,
        error: 'unauthorized',
      });
      assert.equal(answer.headers.get('www-authenticate'), 'Bearer realm="abcast"');
      await expectRefused('abcast_not-a-token', method, path, body, {
        status: 401,
        error: 'unauthorized',
      });
    }
  });

  test('each role reaches its routes and gets 403 beyond them', async () => {
    const read = [
      '/v1/messages',
      '/v1/stream',
      '/v1/barrier',
      '/v1/status',
      '/v1/consumers',
      '/v1/consumers/billing/ack',
    ];
    const allowed: Record<string, readonly string[]> = {
      reader: read,
      writer: ['/v1/broadcast', '/v1/broadcast/batch', ...read],
    };
    for (const [who, paths] of Object.entries(allowed)) {
      for (const [method, path, body] of routes) {
        const sent =
          path === '/v1/broadcast/batch' ? { ...(body as object), client: `door-${who}` } : body;
        if (paths.includes(path)) {
          const answer = await call(who, method, path, sent);
          assert.equal(
            answer.status,
            200,
            `${who} ${method} ${path}: ${JSON.stringify(answer.body)}`,
          );
          continue;
        }
        const refused = await expectRefused(who, method, path, sent, {
          status: 403,
          error: 'forbidden',
        });
        assert.equal(refused.body.identity, who);
        assert.equal(refused.body.required, path.startsWith('/v1/broadcast') ? 'write' : 'admin');
      }
    }
    // The admin passes the door everywhere: a bad body is its route's 400, not a 403.
    assert.equal((await call('admin', 'POST', '/v1/members', {})).status, 400);
    assert.equal((await call('admin', 'GET', '/metrics')).status, 200);
  });

  test('a transfer by the admin is accepted and logged with its identity', async () => {
    const answer = await call('admin', 'POST', '/v1/leader/transfer', {});
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    const logged = () =>
      cluster
        .log(leaderAt)
        .split('\n')
        .some(
          (line) =>
            line.includes('leadership transfer requested') && line.includes('"identity":"admin"'),
        );
    await waitFor(logged, 'the transfer logged with its identity', 5_000);
    leaderAt = (await cluster.agreedLeader()).at;
  });
});

describe('topics', () => {
  test('publish: only matching topics, per message of a batch too', async () => {
    assert.equal(
      (await call('orders', 'POST', '/v1/broadcast', { payload: 1, topic: 'orders.eu' })).status,
      200,
    );
    const refused = await expectRefused(
      'orders',
      'POST',
      '/v1/broadcast',
      { payload: 1, topic: 'prices' },
      {
        status: 403,
        error: 'forbidden',
      },
    );
    assert.equal(refused.body.topic, 'prices');
    await expectRefused(
      'orders',
      'POST',
      '/v1/broadcast',
      { payload: 1 },
      { status: 403, error: 'forbidden' },
    );
    const batch = {
      client: 'orders-batch',
      seq: 1,
      messages: [
        { payload: 'ok', topic: 'orders.us' },
        { payload: 'no', topic: 'prices' },
      ],
    };
    const whole = await expectRefused('orders', 'POST', '/v1/broadcast/batch', batch, {
      status: 403,
      error: 'forbidden',
    });
    assert.equal(whole.body.field, 'messages[1].topic');
    // Refused whole: the allowed message of that batch was not delivered either.
    const read = await call('orders', 'GET', '/v1/messages?topic=orders.us');
    assert.deepEqual(read.body.messages, []);
  });

  test('subscribe: a restricted reader names a topic it may read', async () => {
    const read = await call('orders', 'GET', '/v1/messages?topic=orders.eu');
    assert.equal(read.status, 200);
    assert.equal((read.body.messages as unknown[]).length, 1);
    assert.equal((await call('orders', 'GET', '/v1/stream?topic=orders.eu')).status, 200);
    for (const path of [
      '/v1/messages',
      '/v1/stream',
      '/v1/messages?topic=prices',
      '/v1/stream?topic=prices',
    ]) {
      const refused = await expectRefused('orders', 'GET', path, undefined, {
        status: 403,
        error: 'forbidden',
      });
      assert.equal(refused.body.field, 'topic');
    }
  });
});

describe('sessions belong to their owner', () => {
  test('another identity in a session: 403, nothing delivered, no duplicate answer', async () => {
    const first = await call('writer', 'POST', '/v1/broadcast', {
      payload: 'mine',
      client: 'taken',
      seq: 1,
    });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const followerAt = (leaderAt + 1) % 3;
    for (const at of [leaderAt, followerAt]) {
      for (const seq of [1, 2]) {
        const refused = await call(
          'bob',
          'POST',
          '/v1/broadcast',
          { payload: 'theirs', client: 'taken', seq },
          at,
        );
        assert.equal(refused.status, 403, JSON.stringify(refused.body));
        assert.equal(refused.body.error, 'session_forbidden');
        assert.equal(refused.body.duplicate, undefined);
      }
    }
    const batch = await call('bob', 'POST', '/v1/broadcast/batch', {
      client: 'taken',
      seq: 2,
      messages: [{ payload: 'theirs' }],
    });
    assert.equal((batch.body.results as { error?: string }[])[0]?.error, 'session_forbidden');
    // The owner goes on at seq 2: nothing of bob's took a seq or a position.
    const next = await call('writer', 'POST', '/v1/broadcast', {
      payload: 'mine-2',
      client: 'taken',
      seq: 2,
    });
    assert.equal(next.status, 200);
    assert.equal(next.body.duplicate, false);
    const all = await call('admin', 'GET', '/v1/messages?limit=1000');
    const payloads = (all.body.messages as { client: string; payload: unknown }[])
      .filter((message) => message.client === 'taken')
      .map((message) => message.payload);
    assert.deepEqual(payloads, ['mine', 'mine-2']);
  });

  test('two clients of one identity with one id: the second nonce gets 409 session_conflict', async () => {
    const body = { payload: 'a', client: 'shared', seq: 1 };
    assert.equal(
      (await call('writer', 'POST', '/v1/broadcast', { ...body, nonce: 'aaaa' })).status,
      200,
    );
    const again = await call('writer', 'POST', '/v1/broadcast', { ...body, nonce: 'aaaa' });
    assert.equal(again.body.duplicate, true, 'the same client retrying is a duplicate');
    const other = await call('writer', 'POST', '/v1/broadcast', {
      ...body,
      payload: 'b',
      nonce: 'bbbb',
    });
    assert.equal(other.status, 409, JSON.stringify(other.body));
    assert.equal(other.body.error, 'session_conflict');
  });

  test("a client id in the nodes' namespace is refused", async () => {
    // A message without a session goes in the node's own one; its id is shown, not writable.
    await call('writer', 'POST', '/v1/broadcast', { payload: 'anonymous' });
    const all = await call('admin', 'GET', '/v1/messages?limit=1000');
    const own = (all.body.messages as { client: string; seq: number }[]).find((message) =>
      message.client.startsWith('$'),
    );
    assert.ok(own !== undefined, 'a node session is listed');
    for (const client of [own.client, '$n1.0000000000000000']) {
      const refused = await call('writer', 'POST', '/v1/broadcast', {
        payload: 'x',
        client,
        seq: own.seq + 1,
      });
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      assert.equal(refused.body.field, 'client');
    }
  });
});
