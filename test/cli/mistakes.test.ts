// Mistakes typed at the `abcast` CLI, with no cluster running, each end with exactly one
// clear line on stderr and a non-zero exit: an unknown flag, bad JSON, a peer list without
// the node itself, a bad peer list or config file, and a node that cannot be reached.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePorts } from '../support/ports.ts';
import { oneLine, runCli } from './helpers.ts';

test('mistakes give one line and a non-zero exit', { timeout: 60_000 }, async () => {
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
