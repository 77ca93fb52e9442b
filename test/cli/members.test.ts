// Membership from the command line, as an operator would: three `abcast start` nodes, a
// fourth started with --join, `abcast members add` makes it a voter (status lists four
// members), `abcast members remove` takes it out again (three), and a bad address is one
// line and a non-zero exit. `abcast bench` loads it for a second and prints its table, also
// through the SDK.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePorts, waitFor } from '../support/ports.ts';
import { type CliRun, kill, oneLine, runCli, spawnCli } from './helpers.ts';

test('abcast members add and remove a node started with --join', { timeout: 90_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-cli-members-'));
  const ports = await freePorts(8);
  const ids = ['n1', 'n2', 'n3', 'n4'];
  const peer = (at: number) => `127.0.0.1:${ports[at]}`;
  const http = (at: number) => `127.0.0.1:${ports[at + 4]}`;
  const peerList = (count: number) =>
    ids
      .slice(0, count)
      .map((id, at) => `${id}=${peer(at)}`)
      .join(',');
  const start = (at: number, extra: string[]) =>
    spawnCli([
      'start',
      ...['--id', ids[at] as string, '--data', join(root, ids[at] as string)],
      ...['--listen', peer(at), '--http', http(at), '--segment-bytes', String(1 << 20)],
      ...extra,
    ]);
  const nodes: CliRun[] = [];
  try {
    for (let at = 0; at < 3; at++) nodes.push(start(at, ['--peers', peerList(3)]));
    nodes.push(start(3, ['--peers', peerList(4), '--join']));
    await waitFor(
      () => {
        const dead = nodes.find((node) => node.child.exitCode !== null);
        if (dead !== undefined) throw new Error(`a node exited: ${dead.stderr()}`);
        return nodes.every((node) => node.stdout().includes('up: HTTP'));
      },
      'four nodes up',
      20_000,
    );
    const node = `http://${http(1)}`;
    const added = await runCli(['members', 'add', 'n4', peer(3), '--node', node], 40_000);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, new RegExp(`n4\\t${peer(3)}\\tvoter`));
    const sent = await runCli(['send', '--node', `http://${http(3)}`, '{"from":"n4"}']);
    assert.equal(sent.code, 0, sent.stderr);
    const removed = await runCli(['members', 'remove', 'n4', '--node', node], 40_000);
    assert.equal(removed.code, 0, removed.stderr);
    assert.doesNotMatch(removed.stdout, /^n4\t/m);
    assert.equal(removed.stdout.trim().split('\n').length, 3);
    const load = await runCli(['bench', '--node', node, '--seconds', '1', '--concurrency', '4']);
    assert.equal(load.code, 0, load.stderr);
    assert.match(load.stdout, /messages\/s\s+\d+/);
    assert.match(load.stdout, /acknowledged\s+[1-9]/);
    const warmed = await runCli([
      ...['bench', '--node', node, '--seconds', '2', '--warmup-seconds', '1'],
      ...['--concurrency', '4', '--json'],
    ]);
    assert.equal(warmed.code, 0, warmed.stderr);
    const summary = JSON.parse(warmed.stdout.trim());
    assert.equal(summary.warmupSeconds, 1);
    assert.ok(summary.messagesPerSecond > 0, warmed.stdout);
    // Through the SDK, which asks the node for a barrier before the load.
    const sdk = await runCli([
      ...['bench', '--node', node, '--seconds', '1', '--concurrency', '4', '--sdk', '--json'],
    ]);
    assert.equal(sdk.code, 0, sdk.stderr);
    assert.equal(JSON.parse(sdk.stdout.trim()).client, 'sdk');
    const badWarmup = await runCli(['bench', '--node', node, '--warmup-seconds', '-1']);
    assert.notEqual(badWarmup.code, 0);
    assert.match(oneLine(badWarmup.stderr), /--warmup-seconds takes an integer >= 0/);
    const bad = await runCli(['members', 'add', 'n5', 'nowhere', '--node', node]);
    assert.notEqual(bad.code, 0);
    assert.match(oneLine(bad.stderr), /address/);
  } finally {
    for (const run of nodes) await kill(run);
    await rm(root, { recursive: true, force: true });
  }
});
