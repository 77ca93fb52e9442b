// `abcast dev --secure` end to end, as its printed instructions say: it makes a CA, node
// certificates and an admin token in its data directory (keys and token 0600), serves HTTPS
// with authentication, and `send`, `tail` and `status` work with the CA (by --ca and by
// ABCAST_CA) and the token (by --token and by ABCAST_TOKEN), and fail without either, naming
// the flag that is missing; the SDK broadcasts over the binary port's TLS with the same CA
// and token. A second start on the same directory reuses all of them. The dev process runs in its
// own process group so that a failed test can still kill every node it started.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { type CliRun, freeRange, kill, killGroup, runCli, spawnCli } from '../cli/helpers.ts';
import { hangBoundMs, waitFor } from '../support/ports.ts';

async function startDev(data: string, port: number): Promise<CliRun> {
  const args = ['dev', '--secure', '--data', data, '--port', String(port)];
  const dev = spawnCli(
    [...args, '--http-port', String(port + 3), '--segment-bytes', String(1 << 20)],
    true,
  );
  // The last line it prints: the usage lines checked below come after 'Ctrl-C stops', and a
  // loaded machine can deliver them to this process in a later read.
  await waitFor(
    () => /rotate: abcast certs node .*\n/.test(dev.stdout()),
    'secure dev cluster up, its usage printed',
    hangBoundMs,
  );
  return dev;
}

async function stopDev(dev: CliRun): Promise<void> {
  dev.child.kill('SIGINT');
  assert.equal(await dev.exited, 0);
}

test('abcast dev --secure: send, tail and status with the CA and the token', {
  timeout: 90_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-dev-secure-'));
  const data = join(root, 'data');
  const port = await freeRange(6);
  let dev = await startDev(data, port);
  try {
    const urls = [...dev.stdout().matchAll(/node n\d at (https:\S+)/g)].map((match) => match[1]);
    assert.equal(urls.length, 3, dev.stdout());
    const caPath = join(data, 'certs', 'ca.crt');
    const tokenPath = join(data, 'certs', 'admin.token');
    assert.match(dev.stdout(), new RegExp(`ABCAST_CA=${caPath}`));
    assert.match(dev.stdout(), new RegExp(`ABCAST_TOKEN=\\$\\(cat ${tokenPath}\\)`));
    const token = (await readFile(tokenPath, 'utf8')).trim();
    for (const key of ['ca.key', 'node-n1.key', 'node-n2.key', 'node-n3.key', 'admin.token']) {
      assert.equal((await stat(join(data, 'certs', key))).mode & 0o777, 0o600, key);
    }

    const refused = await runCli(['send', '--node', urls[0] as string, '"x"']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /--ca/);
    const anonymous = await runCli(['send', '--node', urls[0] as string, '--ca', caPath, '"x"']);
    assert.notEqual(anonymous.code, 0);
    assert.match(anonymous.stderr, /401 unauthorized.*--token/);
    const sent = await runCli([
      ...['send', '--node', urls[2] as string, '--ca', caPath, '--token', token, '"hello"'],
    ]);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(sent.stdout.trim(), '1');

    process.env.ABCAST_CA = caPath;
    process.env.ABCAST_TOKEN = token;
    const tail = spawnCli(['tail', '--node', urls[0] as string]);
    delete process.env.ABCAST_CA;
    delete process.env.ABCAST_TOKEN;
    try {
      await waitFor(() => tail.stdout().includes('"hello"'), 'tail shows the message', 15_000);
    } finally {
      await kill(tail);
    }
    const status = await runCli([
      ...['status', '--node', urls[1] as string, '--ca', caPath, '--token', token],
    ]);
    assert.equal(status.code, 0, status.stderr);
    const rows = status.stdout.split('\n').filter((line) => /^n\d\s/.test(line));
    assert.equal(rows.length, 3, status.stdout);
    for (const row of rows) assert.doesNotMatch(row, /\s\?(\s|$)/, status.stdout);

    // The binary client port speaks TLS too, with the same CA and token.
    const binaryUrls = [...dev.stdout().matchAll(/binary protocol (abcasts:\/\/[^)\s]+)/g)].map(
      (match) => match[1] as string,
    );
    assert.equal(binaryUrls.length, 3, dev.stdout());
    const client = connect({ endpoints: binaryUrls, ca: await readFile(caPath, 'utf8'), token });
    try {
      const answer = await client.broadcast('over the binary port');
      assert.equal(answer.position, 2);
      assert.equal(answer.duplicate, false);
    } finally {
      client.close();
    }

    // Restarted on its directory, the cluster keeps its CA and certificates.
    const ca = await readFile(caPath, 'utf8');
    await stopDev(dev);
    dev = await startDev(data, port);
    assert.equal(await readFile(caPath, 'utf8'), ca);
    assert.equal((await readFile(tokenPath, 'utf8')).trim(), token, 'the token is kept');
    const again = await runCli([
      ...['send', '--node', urls[0] as string, '--ca', caPath, '--token', token, '"again"'],
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout.trim(), '3', 'after hello and the binary broadcast');
    await stopDev(dev);
  } finally {
    killGroup(dev);
    await dev.exited;
    await rm(root, { recursive: true, force: true });
  }
});
