// The limits an operator sets on `abcast start` reach the node and its HTTP API: a payload
// over --payload-bytes-max is a 413 that `send` reports in one line; a malformed limit is a
// one-line mistake before anything starts.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePorts, waitFor } from '../support/ports.ts';
import { kill, oneLine, runCli, spawnCli } from './helpers.ts';

test('start --payload-bytes-max is enforced; a bad limit is one line', {
  timeout: 60_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-cli-limits-'));
  const [peerPort, httpPort] = await freePorts(2);
  const base = [
    'start',
    '--id',
    'n1',
    '--data',
    join(root, 'n1'),
    '--listen',
    `127.0.0.1:${peerPort}`,
  ];
  const rest = [
    '--http',
    `127.0.0.1:${httpPort}`,
    '--peers',
    `n1=127.0.0.1:${peerPort}`,
    '--segment-bytes',
    String(1 << 20),
  ];
  const bad = await runCli([...base, ...rest, '--payload-bytes-max', 'lots']);
  assert.notEqual(bad.code, 0);
  assert.match(oneLine(bad.stderr), /payload-bytes-max/);
  // Larger than a message stream's record: the node would store what no subscriber reads.
  const huge = await runCli([...base, ...rest, '--payload-bytes-max', String((16 << 20) + 1)]);
  assert.notEqual(huge.code, 0);
  assert.match(oneLine(huge.stderr), /payload-bytes-max is at most 16777216/);
  const node = spawnCli([
    ...base,
    ...rest,
    '--payload-bytes-max',
    '64',
    '--request-timeout-ms',
    '3000',
  ]);
  try {
    await waitFor(() => node.stdout().includes('up: HTTP'), 'the node is up', 20_000);
    const url = `http://127.0.0.1:${httpPort}`;
    const small = await runCli(['send', '--node', url, '"small"']);
    assert.equal(small.code, 0, small.stderr);
    const large = await runCli(['send', '--node', url, JSON.stringify('x'.repeat(100))]);
    assert.notEqual(large.code, 0);
    assert.match(oneLine(large.stderr), /413|payload_too_large/);
  } finally {
    await kill(node);
    await rm(root, { recursive: true, force: true });
  }
});
