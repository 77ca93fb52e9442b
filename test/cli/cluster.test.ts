// Three nodes started with `abcast start` (separate processes, temp data directories, one
// from a --config file) are used as a user would: `send` prints index 1, `tail --from 1`
// prints that message, `status` shows 3 members and one leader, `transfer` moves leadership
// (a follower refuses it). A fourth `start` on a port in use, or on a data directory a
// running node holds, ends with one line and a non-zero exit; a node stopped by SIGTERM and
// started again on its directory recovers the message, and a `tail` following it resumes
// after the last index it printed.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePorts, hangBoundMs, waitFor } from '../support/ports.ts';
import { type CliRun, holdPort, kill, oneLine, runCli, spawnCli } from './helpers.ts';

const ids = ['n1', 'n2', 'n3'];
/** Small WAL segments: each is preallocated, and the tests share a disk with others. */
const segmentBytes = String(1 << 20);

test('abcast start ×3, then send, tail, status and start mistakes', {
  timeout: 240_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-cli-'));
  const ports = await freePorts(8);
  const peerPort = (at: number) => ports[at] as number;
  const httpUrl = (at: number) => `http://127.0.0.1:${ports[at + 3]}`;
  const peers = ids.map((id, at) => `${id}=127.0.0.1:${peerPort(at)}`).join(',');
  const startArgs = (at: number) => [
    'start',
    ...['--id', ids[at] as string, '--data', join(root, ids[at] as string)],
    ...['--listen', `127.0.0.1:${peerPort(at)}`, '--http', `127.0.0.1:${ports[at + 3]}`],
    ...['--peers', peers, '--segment-bytes', segmentBytes],
  ];
  const nodes: CliRun[] = [];
  const blocker = await holdPort(ports[6] as number);
  try {
    // n1 takes its settings from a config file, the others from flags.
    const config = join(root, 'n1.json');
    await writeFile(
      config,
      JSON.stringify({
        id: 'n1',
        data: join(root, 'n1'),
        listen: `127.0.0.1:${peerPort(0)}`,
        http: `127.0.0.1:${ports[3]}`,
        peers: Object.fromEntries(ids.map((id, at) => [id, `127.0.0.1:${peerPort(at)}`])),
        segmentBytes: 1 << 20,
      }),
    );
    nodes.push(spawnCli(['start', '--config', config]));
    for (let at = 1; at < 3; at++) nodes.push(spawnCli(startArgs(at)));
    await waitFor(
      () => {
        const dead = nodes.find((node) => node.child.exitCode !== null);
        if (dead !== undefined) throw new Error(`a node exited: ${dead.stderr()}`);
        return nodes.every((node) => node.stdout().includes('up: HTTP'));
      },
      'three nodes up',
      hangBoundMs,
    );

    const sent = await runCli(['send', '--node', httpUrl(1), '{"type":"Order_Placed"}']);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(sent.stdout.trim(), '1');

    const tail = spawnCli(['tail', '--node', httpUrl(2), '--from', '1']);
    try {
      await waitFor(() => tail.stdout().includes('\n'), 'tail prints a line', hangBoundMs);
      const message = JSON.parse(tail.stdout().split('\n')[0] as string);
      assert.equal(message.index, 1);
      assert.deepEqual(message.payload, { type: 'Order_Placed' });
    } finally {
      await kill(tail);
    }

    const status = await runCli(['status', '--node', httpUrl(0)]);
    assert.equal(status.code, 0, status.stderr);
    const rows = status.stdout.split('\n').filter((line) => /^n\d\s/.test(line));
    assert.equal(rows.length, 3, status.stdout);
    assert.equal(rows.filter((row) => /\sleader\s/.test(row)).length, 1, status.stdout);

    // Leadership moves with `transfer` asked at the leader; a follower refuses in one line.
    const leaderAt = rows.findIndex((row) => /\sleader\s/.test(row));
    const followerAt = (leaderAt + 1) % 3;
    const refused = await runCli(['transfer', '--node', httpUrl(followerAt)]);
    assert.notEqual(refused.code, 0);
    assert.match(oneLine(refused.stderr), /409 not_leader/);
    const target = ids[followerAt] as string;
    const moved = await runCli(['transfer', '--node', httpUrl(leaderAt), '--to', target]);
    assert.equal(moved.code, 0, moved.stderr);
    await waitFor(
      async () => {
        const seen = await fetch(`${httpUrl(followerAt)}/v1/status`).then((r) => r.json());
        return (seen as { role: string }).role === 'leader';
      },
      `${target} leads`,
      hangBoundMs,
    );

    // Port in use: the HTTP address is held by another socket.
    const spare = `127.0.0.1:${ports[7]}`;
    const busy = await runCli(
      ['start', '--id', 'n1', '--data', join(root, 'x')].concat([
        '--listen',
        spare,
        '--http',
        `127.0.0.1:${ports[6]}`,
        '--peers',
        `n1=${spare}`,
      ]),
    );
    assert.notEqual(busy.code, 0);
    assert.match(oneLine(busy.stderr), /port in use/);

    // Data directory locked: n1's directory while n1 runs.
    const locked = await runCli(
      ['start', '--id', 'n1', '--data', join(root, 'n1')].concat([
        '--listen',
        spare,
        '--http',
        '127.0.0.1:0',
        '--peers',
        `n1=${spare}`,
      ]),
    );
    assert.notEqual(locked.code, 0);
    assert.match(oneLine(locked.stderr), /data directory is locked/);

    // SIGTERM stops n3 gracefully; started again on its directory it recovers index 1, and a
    // `tail` that followed n3 throughout resumes after index 1: each index printed once.
    const follower = spawnCli(['tail', '--node', httpUrl(2), '--from', '1']);
    nodes.push(follower);
    await waitFor(() => follower.stdout().includes('\n'), 'tail on n3 prints index 1', hangBoundMs);
    (nodes[2] as CliRun).child.kill('SIGTERM');
    assert.equal(await (nodes[2] as CliRun).exited, 0);
    nodes[2] = spawnCli(startArgs(2));
    await waitFor(() => (nodes[2] as CliRun).stdout().includes('up: HTTP'), 'n3 back', hangBoundMs);
    const second = await runCli(['send', '--node', httpUrl(0), '{"type":"Order_Shipped"}']);
    assert.equal(second.stdout.trim(), '2', second.stderr);
    await waitFor(() => follower.stdout().includes('Order_Shipped'), 'tail resumed', hangBoundMs);
    const printed = follower
      .stdout()
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { index: number }).index);
    assert.deepEqual(printed, [1, 2]);
  } finally {
    blocker.close();
    await Promise.all(nodes.map(kill));
    await rm(root, { recursive: true, force: true });
  }
});
