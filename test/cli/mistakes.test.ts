// Mistakes typed at the `abcast` CLI, with no cluster running, each end with exactly one
// clear line on stderr and a non-zero exit: an unknown flag, bad JSON (also when what it
// quotes holds line breaks), an empty --client, a peer list without the node itself, a bad
// peer list or config file, a bench payload no node takes, and a node that cannot be
// reached (also by bench over the binary protocol); and a `send` to a node without a quorum
// retries for its --wait (only what it may safely send again), then fails the same way.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePorts, hangBoundMs, waitFor } from '../support/ports.ts';
import { kill, oneLine, runCli, spawnCli } from './helpers.ts';

test('mistakes give one line and a non-zero exit', { timeout: 240_000 }, async () => {
  // Port 1 (tcpmux, privileged) has no listener: a port found free now could be taken by
  // another test's node before the commands below try it.
  const nowhere = 'http://127.0.0.1:1';
  const root = await mkdtemp(join(tmpdir(), 'abcast-cli-mistakes-'));
  const badConfig = join(root, 'bad.json');
  await writeFile(badConfig, '{"id": "n1",');
  // YAML where JSON belongs: JSON.parse's message quotes the text, line breaks and all.
  const yamlConfig = join(root, 'yaml.json');
  await writeFile(yamlConfig, 'id: n1\nlisten: 127.0.0.1:7001\n');
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
    { args: ['start', '--config', yamlConfig], says: /is not valid: .*"id: n1\\n/ },
    { args: ['send', '--node', nowhere, 'hello\nworld'], says: /not valid JSON: .*hello\\nworld/ },
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
    // Checked before the node is asked: it used to end as "cannot reach", or as the node's
    // 400 naming the body's `client` rather than the flag.
    {
      args: ['send', '--node', nowhere, '--client', '', '--seq', '1', '{}'],
      says: /--client must not be empty/,
    },
    { args: ['verify', '--nodes', 'here,there'], says: /--nodes takes a URL/ },
    // The SDK's load asks the node first, as the HTTP load does: it used to run its second
    // and then wait a minute for the unanswered messages before printing a table of zeros.
    {
      args: ['bench', '--protocol', 'binary', '--binary-node', 'abcast://127.0.0.1:1'].concat([
        '--seconds',
        '1',
      ]),
      says: /cannot reach the node at abcast:\/\/127\.0\.0\.1:1/,
    },
    {
      args: ['bench', '--node', nowhere, '--payload-bytes', '999999999999'],
      says: /--payload-bytes is at most 16777216/,
    },
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

/** How many POST /v1/broadcast the node answered 503, from its /metrics. */
async function broadcastsRefused(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const name = 'abcast_http_requests_total{route="/v1/broadcast",method="POST",status="503"}';
  const line = text.split('\n').find((one) => one.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}

test('send to a node without a quorum retries, then fails in one line', {
  timeout: 240_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-cli-alone-'));
  const [peer, other, third, http] = (await freePorts(4)).map((port) => `127.0.0.1:${port}`);
  const peers = `n1=${peer},n2=${other},n3=${third}`;
  // A short request deadline: each broadcast is answered 503 timeout within about a second,
  // so `send` has the room to retry within its --wait even on a loaded machine.
  const node = spawnCli(
    ['start', '--id', 'n1', '--data', join(root, 'n1')]
      .concat(['--listen', peer as string, '--http', http as string, '--peers', peers])
      .concat(['--segment-bytes', String(1 << 20), '--request-timeout-ms', '500']),
  );
  const url = `http://${http}`;
  try {
    await waitFor(() => node.stdout().includes('up: HTTP'), 'the lone node up', hangBoundMs);
    // With a (client, seq) a timed-out message is sent again (the node deduplicates it),
    // until --wait is spent; the node counts every attempt it refused.
    const session = await runCli([
      'send',
      '--node',
      url,
      '--wait',
      '10',
      '--client',
      'c1',
      '--seq',
      '1',
      '"x"',
    ]);
    assert.notEqual(session.code, 0);
    assert.match(oneLine(session.stderr), /answered 503 timeout/);
    const refused = await broadcastsRefused(url);
    assert.ok(refused >= 2, `it retried: the node refused ${refused} broadcasts`);
    // Without one, a timed-out message may still be delivered: it is sent once, never again.
    const plain = await runCli(['send', '--node', url, '--wait', '10', '"y"']);
    assert.notEqual(plain.code, 0);
    assert.match(oneLine(plain.stderr), /answered 503 timeout/);
    assert.equal(await broadcastsRefused(url), refused + 1, 'sent once');
  } finally {
    await kill(node);
    await rm(root, { recursive: true, force: true });
  }
});
