// `abcast dev` (what `npm start` runs) comes up as a user sees it: it prints each node's
// HTTP URL, the cluster takes a `send` and shows it in `tail`, and SIGINT (Ctrl-C) stops
// every node process and exits 0. A mistake in what dev passes on to its nodes (a flag, the
// data directory, a port in use) is one line before any node starts. The dev process runs
// in its own process group so that a failed test can still kill every node it started.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { waitFor } from '../support/ports.ts';
import { freeRange, holdPort, kill, killGroup, oneLine, runCli, spawnCli } from './helpers.ts';

test('abcast dev comes up, is used and stops on SIGINT', { timeout: 60_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-dev-'));
  const port = await freeRange(6);
  const httpPort = port + 3;
  const dev = spawnCli(
    [
      'dev',
      '--data',
      join(root, 'data'),
      '--port',
      String(port),
      '--http-port',
      String(httpPort),
    ].concat(['--segment-bytes', String(1 << 20)]),
    true,
  );
  try {
    await waitFor(() => dev.stdout().includes('Ctrl-C stops'), 'dev cluster up', 30_000);
    const urls = [...dev.stdout().matchAll(/node n\d at (http:\S+)/g)].map((match) => match[1]);
    assert.deepEqual(
      urls,
      [0, 1, 2].map((at) => `http://127.0.0.1:${httpPort + at}`),
    );

    const sent = await runCli(['send', '--node', urls[2] as string, '"hello"']);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(sent.stdout.trim(), '1');
    const tail = spawnCli(['tail', '--node', urls[0] as string]);
    try {
      await waitFor(() => tail.stdout().includes('"hello"'), 'tail shows the message', 15_000);
    } finally {
      await kill(tail);
    }
    // A topic filter skips other topics; the node's progress events are not printed.
    for (const [topic, text] of [
      ['noise', '"n"'],
      ['orders', '"o"'],
      ['noise', '"m"'],
    ]) {
      const answer = await runCli(['send', '--node', urls[1] as string, '--topic', topic!, text!]);
      assert.equal(answer.code, 0, answer.stderr);
    }
    const filtered = spawnCli(['tail', '--node', urls[0] as string, '--topic', 'orders']);
    try {
      await waitFor(() => filtered.stdout().includes('"o"'), 'tail shows the topic', 15_000);
      // The progress event for positions 3–4 follows the message at once; give it a moment.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const lines = filtered.stdout().trim().split('\n');
      assert.equal(lines.length, 1, filtered.stdout());
      assert.equal(JSON.parse(lines[0] as string).topic, 'orders');
    } finally {
      await kill(filtered);
    }
    const status = await runCli(['status', '--node', urls[1] as string]);
    assert.equal(status.code, 0, status.stderr);
    // Every member's HTTP URL is found from dev's port layout, so no cell is unknown.
    const rows = status.stdout.split('\n').filter((line) => /^n\d\s/.test(line));
    assert.equal(rows.length, 3);
    for (const row of rows) assert.doesNotMatch(row, /\s\?(\s|$)/, status.stdout);

    dev.child.kill('SIGINT');
    assert.equal(await dev.exited, 0);
    assert.equal((dev.stdout().match(/stopping \(SIGTERM\)/g) ?? []).length, 3);
    // Every node process is gone: the HTTP ports no longer answer.
    for (const url of urls) {
      await assert.rejects(fetch(`${url}/v1/status`, { signal: AbortSignal.timeout(2000) }));
    }
  } finally {
    killGroup(dev);
    await dev.exited;
    await rm(root, { recursive: true, force: true });
  }
});

test('a mistake in what dev passes on is one line, and no node starts', {
  timeout: 120_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-dev-mistakes-'));
  const file = join(root, 'file');
  await writeFile(file, 'not a directory');
  const port = await freeRange(6);
  const layout = ['--port', String(port), '--http-port', String(port + 3)];
  const data = ['--data', join(root, 'data'), ...layout];
  const cases: { args: string[]; says: RegExp; held?: number }[] = [
    { args: [...data, '--log-level', 'loud'], says: /--log-level takes one of/ },
    { args: [...data, '--segment-bytes', '1'], says: /--segment-bytes takes an integer from 4096/ },
    { args: ['--data', file, ...layout], says: /cannot hold the nodes' directories/ },
    { args: data, says: /port in use: 127\.0\.0\.1:\d+ \(--http-port/, held: port + 4 },
    // resolve('') is the working directory, which the nodes would fill.
    { args: ['--data', '', ...layout], says: /--data takes a directory/ },
  ];
  try {
    // One at a time, each asserted before the next: a dev that starts its nodes must not
    // leave them holding the ports the next case uses.
    for (const { args, says, held } of cases) {
      const holder = held === undefined ? null : await holdPort(held);
      const dev = spawnCli(['dev', ...args], true);
      try {
        const timer = setTimeout(() => killGroup(dev), 60_000);
        const code = await dev.exited;
        clearTimeout(timer);
        assert.equal(code, 1, `abcast dev ${args.join(' ')} exits 1`);
        assert.match(oneLine(dev.stderr()), says);
        assert.equal(dev.stdout(), '', 'no node started');
      } finally {
        killGroup(dev);
        holder?.close();
      }
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
