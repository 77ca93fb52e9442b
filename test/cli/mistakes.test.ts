// Mistakes typed at the `abcast` CLI, with no cluster running, each end with exactly one
// clear line on stderr and a non-zero exit: an unknown flag, bad JSON, a peer list without
// the node itself, a bad peer list or config file, and a node that cannot be reached; and a
// `send` to a node without a quorum retries for its --wait, then fails the same way.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePorts, hangBoundMs, waitFor } from '../support/ports.ts';
import { kill, oneLine, runCli, spawnCli } from './helpers.ts';

test('mistakes give one line and a non-zero exit', { timeout: 240_000 }, async () => {
  const [port] = await freePorts(1);
  const nowhere = `http://127.0.0.1:${port}`;
  const root = await mkdtemp(join(tmpdir(), 'abcast-cli-mistakes-'));
  const badConfig = join(root, 'bad.json');
  await writeFile(badConfig, '{"id": "n1",');
  const cases: { args: string[]; says: RegExp }[] = [
    { args: ['send', '--nod', nowhere, '{}'], says: /unknown option '--nod'/ },
    { args: ['status', '--bogus'], says: /unknown option '--bogus'/ },
    { args: ['frobnicate'], says: /unknown command 'frobnicate'/ },
    { args: ['send', '--node', nowhere, '{"type":'], says: /not valid JSON/ },
    {
      args: ['start', '--id', 'n9', '--data', '/tmp/x', '--listen', '127.0.0.1:7001'].concat([
        '--http',
        '127.0.0.1:8001',
        '--peers',
        'n1=127.0.0.1:7001,n2=127.0.0.1:7002',
      ]),
      says: /peer list does not include the node itself \(n9\)/,
    },
    { args: ['start', '--config', '/nonexistent/abcast.json'], says: /cannot read the config/ },
    { args: ['start', '--config', badConfig], says: /config file .* is not valid/ },
    {
      args: ['start', '--id', 'n1', '--data', '/tmp/x', '--listen', '127.0.0.1:7001'].concat([
        '--http',
        '127.0.0.1:8001',
        '--peers',
        'n1:7001',
      ]),
      says: /--peers takes id=host:port/,
    },
    {
      args: ['send', '--node', nowhere, '{"a":1}'],
      says: /cannot reach the node at .*ECONNREFUSED/,
    },
    { args: ['status', '--node', nowhere], says: /cannot reach the node/ },
    { args: ['tail', '--node', nowhere], says: /cannot reach the node/ },
    { args: ['send', '--node', 'not a url', '1'], says: /--node takes a URL/ },
    { args: ['tail', '--node', nowhere, '--from', '0'], says: /--from takes an integer >= 1/ },
  ];
  const results = await Promise.all(cases.map(({ args }) => runCli(args))).finally(() =>
    rm(root, { recursive: true, force: true }),
  );
  results.forEach((result, at) => {
    const { args, says } = cases[at] as { args: string[]; says: RegExp };
    assert.notEqual(result.code, 0, `abcast ${args.join(' ')} exits non-zero`);
    const line = oneLine(result.stderr);
    assert.match(line, says, `abcast ${args.join(' ')}`);
    assert.match(line, /^abcast: /);
  });
});

test('send to a node without a quorum retries, then fails in one line', {
  timeout: 240_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-cli-alone-'));
  const [peer, other, third, http] = (await freePorts(4)).map((port) => `127.0.0.1:${port}`);
  const peers = `n1=${peer},n2=${other},n3=${third}`;
  const node = spawnCli(
    ['start', '--id', 'n1', '--data', join(root, 'n1')]
      .concat(['--listen', peer as string, '--http', http as string, '--peers', peers])
      .concat(['--segment-bytes', String(1 << 20)]),
  );
  try {
    await waitFor(() => node.stdout().includes('up: HTTP'), 'the lone node up', hangBoundMs);
    const started = Date.now();
    const sent = await runCli(['send', '--node', `http://${http}`, '--wait', '2', '"x"']);
    assert.notEqual(sent.code, 0);
    assert.match(oneLine(sent.stderr), /answered 503 (no_leader|timeout)/);
    assert.ok(Date.now() - started >= 2000 || /timeout/.test(sent.stderr), 'it retried');
  } finally {
    await kill(node);
    await rm(root, { recursive: true, force: true });
  }
});
