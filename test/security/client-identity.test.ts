// Client identities over HTTPS on a real `abcast start --auth` node: a client certificate of
// the cluster CA naming an identity of the auth file is that identity (its broadcasts pass,
// its session is its own), one naming nobody or signed by another CA gets 401, and the
// SDK's `connect({ endpoints, ca, token })` sends the token with broadcasts and streams.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createCa, issueClient, issueNode } from '../../src/cli/certificates.ts';
import { newToken } from '../../src/cli/commands/auth-file.ts';
import { connect } from '../../src/client/index.ts';
import { tokenSha256Hex } from '../../src/server/auth.ts';
import { kill, spawnCli } from '../cli/helpers.ts';
import { freePorts, waitFor } from '../support/ports.ts';

interface Credentials {
  readonly cert?: string;
  readonly key?: string;
}

function call(
  url: string,
  ca: string,
  credentials: Credentials,
  method: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      url,
      { method, ca, ...credentials, headers: { 'content-type': 'application/json' } },
      (answer) => {
        let text = '';
        answer.on('data', (chunk: Buffer) => {
          text += chunk.toString('utf8');
        });
        answer.on('end', () =>
          resolve({
            status: answer.statusCode ?? 0,
            body: JSON.parse(text) as Record<string, unknown>,
          }),
        );
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function pair(dir: string, name: string): Promise<Credentials> {
  const files = await issueClient(dir, { name, days: 1 });
  return {
    cert: await readFile(files.certificatePath, 'utf8'),
    key: await readFile(files.keyPath, 'utf8'),
  };
}

test('a client certificate names its identity; the SDK presents a token', {
  timeout: 30_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-client-identity-'));
  const certs = join(root, 'certs');
  const foreign = join(root, 'foreign');
  await createCa(certs, 1);
  await createCa(foreign, 1);
  const node = await issueNode(certs, { nodeId: 'n1', hosts: ['127.0.0.1'], days: 1 });
  const alice = await pair(certs, 'alice');
  const mallory = await pair(certs, 'mallory');
  const forgedAlice = await pair(foreign, 'alice');
  const ca = await readFile(join(certs, 'ca.crt'), 'utf8');
  const token = newToken();
  const authPath = join(root, 'auth.json');
  await writeFile(
    authPath,
    JSON.stringify({
      identities: [
        { name: 'alice', role: 'write' },
        { name: 'sdk', role: 'write', tokenSha256: tokenSha256Hex(token) },
      ],
    }),
  );
  const [peerPort, httpPort] = (await freePorts(2)) as [number, number];
  const started = spawnCli([
    ...['start', '--id', 'n1', '--data', join(root, 'n1')],
    ...['--listen', `127.0.0.1:${peerPort}`, '--http', `127.0.0.1:${httpPort}`],
    ...['--peers', `n1=127.0.0.1:${peerPort}`, '--segment-bytes', String(1 << 20)],
    ...['--cert', node.certificatePath, '--key', node.keyPath, '--ca', join(certs, 'ca.crt')],
    ...['--auth', authPath],
  ]);
  const base = `https://127.0.0.1:${httpPort}`;
  try {
    await waitFor(() => started.stdout().includes('up: HTTP'), 'the node up', 15_000);
    await waitFor(
      async () => (await call(`${base}/v1/status`, ca, alice, 'GET')).body.role === 'leader',
      'a leader',
      15_000,
    );
    const sent = await call(`${base}/v1/broadcast`, ca, alice, 'POST', {
      payload: 'by certificate',
      client: 'alice-1',
      seq: 1,
    });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    for (const [who, credentials] of [
      ['no certificate', {}],
      ['a certificate naming nobody', mallory],
      ["another CA's alice", forgedAlice],
    ] as const) {
      const refused = await call(`${base}/v1/status`, ca, credentials, 'GET');
      assert.equal(refused.status, 401, `${who}: ${JSON.stringify(refused.body)}`);
      assert.equal(refused.body.error, 'unauthorized');
    }

    // The SDK with a token: a broadcast, and a stream that sees it.
    assert.throws(() => connect({ endpoints: [base], ca, token: 'not a token' }), {
      code: 'invalid_argument',
    });
    const client = connect({ endpoints: [base], ca, token, clientId: 'sdk-1' });
    try {
      const answer = await client.broadcast({ by: 'token' });
      assert.equal(answer.duplicate, false);
      const seen: unknown[] = [];
      const subscription = client.subscribe({ from: 1 });
      for await (const message of subscription) {
        seen.push(message.payload);
        if (seen.length === 2) break;
      }
      assert.deepEqual(seen, ['by certificate', { by: 'token' }]);
      // The certificate's session is alice's: the token's identity may not write in it.
      const sdkAsAlice = connect({ endpoints: [base], ca, token, clientId: 'alice-1' });
      await assert.rejects(sdkAsAlice.broadcast('take over'), { code: 'session_forbidden' });
      sdkAsAlice.close();
    } finally {
      client.close();
    }
  } finally {
    await kill(started);
    await rm(root, { recursive: true, force: true });
  }
});
