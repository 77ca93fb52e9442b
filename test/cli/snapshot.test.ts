// Backup and restore on real processes, as an operator would run them. An `abcast dev`
// cluster takes broadcasts from two clients (one with its own session) while `abcast snapshot
// save` runs; the file's checksum catches a flipped byte; every message in the file, up to
// the snapshot's position, is the one the cluster delivered there. `abcast snapshot restore`
// makes three new data directories on other ports; the new cluster continues at the next
// position, answers a resent (client, seq) from before the snapshot as a duplicate at its old
// position, and takes the next seq. Then `abcast start --force-new-cluster` turns one of those
// nodes into a cluster of one, with loud warnings, and it takes broadcasts alone.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSnapshotFile, type SnapshotMessage } from '../../src/cli/commands/snapshot-file.ts';
import { freePorts, hangBoundMs, waitFor } from '../support/ports.ts';
import { type CliRun, freeRange, kill, killGroup, runCli, spawnCli } from './helpers.ts';

/** A backup file's header fields and every message in it. */
async function readBackup(file: string) {
  const messages: SnapshotMessage[] = [];
  const { header } = await readSnapshotFile(file, (message) => messages.push(message));
  return { ...header, messages };
}

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field and asserted
async function call(url: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(url, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/**
 * POSTs a broadcast that carries a (client, seq) and sends it again while the answer is a 503
 * (or none comes), as the SDK does: a loaded machine can miss heartbeats and hold an election
 * mid-load, and the node answers a resent seq with its first position, never a second one.
 */
// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field and asserted
async function broadcast(url: string, body: unknown): Promise<{ status: number; body: any }> {
  let answer = { status: 0, body: {} };
  await waitFor(
    async () => {
      answer = await call(`${url}/v1/broadcast`, body);
      return answer.status !== 503;
    },
    `an answer other than 503 to ${JSON.stringify(body)}`,
    hangBoundMs,
  );
  return answer;
}

async function leaderKnown(urls: readonly string[]): Promise<void> {
  await waitFor(
    async () => {
      const all = await Promise.all(
        urls.map((url) => call(`${url}/v1/status`).catch(() => ({ status: 0, body: {} }))),
      );
      const leader = all[0]?.body.leader ?? null;
      return (
        leader !== null && all.every((one) => one.status === 200 && one.body.leader === leader)
      );
    },
    'a leader every node knows',
    60_000,
  );
}

async function stopDev(dev: CliRun): Promise<void> {
  dev.child.kill('SIGINT');
  const stopped = await Promise.race([dev.exited, new Promise((r) => setTimeout(r, 30_000))]);
  if (stopped === undefined) killGroup(dev);
}

test('save under load, restore into a new cluster, force a new cluster of one', {
  timeout: 240_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-snapshot-'));
  const port = await freeRange(6);
  const dev = spawnCli(
    [
      'dev',
      '--data',
      join(root, 'old'),
      '--port',
      String(port),
      '--http-port',
      String(port + 3),
    ].concat(['--segment-bytes', String(1 << 20)]),
    true,
  );
  const started: CliRun[] = [];
  try {
    await waitFor(() => dev.stdout().includes('Ctrl-C stops'), 'dev cluster up', 60_000);
    const urls = [0, 1, 2].map((at) => `http://127.0.0.1:${port + 3 + at}`);
    await leaderKnown(urls);

    // Two clients: one with its own session (seq 1, 2, …), one without.
    let loading = true;
    let lastSeqAcknowledged = 0;
    const sessionLoad = (async () => {
      for (let seq = 1; loading; seq++) {
        const answer = await broadcast(urls[0] as string, {
          client: 'backup-client',
          seq,
          topic: 'orders',
          payload: { order: seq },
        });
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        lastSeqAcknowledged = seq;
      }
    })();
    const plainLoad = (async () => {
      for (let n = 0; loading; n++) {
        await call(`${urls[2]}/v1/broadcast`, { payload: { plain: n } });
      }
    })();
    await waitFor(() => lastSeqAcknowledged >= 20, 'load under way', hangBoundMs);
    const file = join(root, 'backup.snap');
    const saved = await runCli(['snapshot', 'save', file, '--node', urls[1] as string], 60_000);
    assert.equal(saved.code, 0, saved.stderr);
    const seqAtSave = lastSeqAcknowledged;
    await waitFor(
      () => lastSeqAcknowledged >= seqAtSave + 5,
      'load goes on after the save',
      hangBoundMs,
    );
    loading = false;
    await Promise.all([sessionLoad, plainLoad]);

    const body = await readBackup(file);
    assert.match(saved.stdout, new RegExp(`at position ${body.position} `));
    assert.ok(body.position >= 20);
    assert.equal(body.firstPosition, 1);
    assert.deepEqual(
      body.messages.map((message) => message.position),
      Array.from({ length: body.position }, (_, at) => at + 1),
    );
    // Every message in the file is the one the cluster delivered at its position. The node
    // read may lag the one that saved on a loaded machine: wait until it delivered that far.
    await waitFor(
      async () => (await call(`${urls[2]}/v1/status`)).body.deliveredIndex >= body.position,
      `${urls[2]} delivers position ${body.position}`,
      hangBoundMs,
    );
    const delivered = await call(`${urls[2]}/v1/messages?from=1&limit=${body.position}`);
    assert.equal(delivered.body.messages.length, body.position);
    for (const [at, message] of body.messages.entries()) {
      const wire = delivered.body.messages[at];
      assert.equal(wire.index, message.position);
      assert.equal(wire.client ?? '', message.client);
      assert.equal(wire.seq ?? 0, message.client === '' ? 0 : message.seq);
      assert.equal(wire.topic ?? '', message.topic);
      assert.deepEqual(
        JSON.parse(Buffer.from(message.payloadBase64, 'base64').toString('utf8')),
        wire.payload,
      );
    }
    const sessionMessages = body.messages.filter((message) => message.client === 'backup-client');
    const lastInSnapshot = sessionMessages[sessionMessages.length - 1]!;
    assert.ok(lastInSnapshot.seq < lastSeqAcknowledged, 'the load went on past the snapshot');

    // A flipped byte is caught before anything is written.
    const bytes = await readFile(file);
    bytes[bytes.length - 10] = (bytes[bytes.length - 10] as number) ^ 1;
    await writeFile(join(root, 'damaged.snap'), bytes);
    const damaged = await runCli(
      [
        'snapshot',
        'restore',
        join(root, 'damaged.snap'),
        '--data',
        join(root, 'x'),
        '--id',
        'n1',
      ].concat(['--peers', 'n1=127.0.0.1:1']),
    );
    assert.equal(damaged.code, 1);
    assert.match(damaged.stderr, /damaged: its checksum does not match/);
    await stopDev(dev);

    // A new cluster on other ports, from the file.
    const ports = await freePorts(6);
    const ids = ['n1', 'n2', 'n3'];
    const peers = ids.map((id, at) => `${id}=127.0.0.1:${ports[at]}`).join(',');
    const newUrls = ids.map((_, at) => `http://127.0.0.1:${ports[at + 3]}`);
    for (const id of ids) {
      const restored = await runCli([
        'snapshot',
        'restore',
        file,
        '--data',
        join(root, 'new', id),
        '--id',
        id,
        '--peers',
        peers,
      ]);
      assert.equal(restored.code, 0, restored.stderr);
      assert.match(restored.stdout, new RegExp(`next position ${body.position + 1}`));
    }
    const again = await runCli([
      'snapshot',
      'restore',
      file,
      '--data',
      join(root, 'new', 'n1'),
      '--id',
      'n1',
      '--peers',
      peers,
    ]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already holds a node's data/);
    for (const [at, id] of ids.entries()) {
      started.push(
        spawnCli(
          ['start', '--id', id, '--data', join(root, 'new', id), '--peers', peers]
            .concat(['--listen', `127.0.0.1:${ports[at]}`, '--http', `127.0.0.1:${ports[at + 3]}`])
            .concat(['--segment-bytes', String(1 << 20)]),
        ),
      );
    }
    await leaderKnown(newUrls);
    const status = await call(`${newUrls[1]}/v1/status`);
    assert.equal(status.body.deliveredIndex, body.position);
    assert.equal(status.body.firstIndex, body.position + 1);

    // The sessions came along: a resent seq is a duplicate at its old position.
    const resent = await broadcast(newUrls[2] as string, {
      client: 'backup-client',
      seq: lastInSnapshot.seq,
      topic: 'orders',
      payload: { order: lastInSnapshot.seq },
    });
    assert.equal(resent.status, 200, JSON.stringify(resent.body));
    assert.equal(resent.body.duplicate, true);
    assert.equal(resent.body.index, lastInSnapshot.position);
    const next = await broadcast(newUrls[0] as string, {
      client: 'backup-client',
      seq: lastInSnapshot.seq + 1,
      topic: 'orders',
      payload: { order: lastInSnapshot.seq + 1 },
    });
    assert.equal(next.status, 200, JSON.stringify(next.body));
    assert.deepEqual([next.body.index, next.body.duplicate], [body.position + 1, false]);
    const gap = await broadcast(newUrls[0] as string, {
      client: 'backup-client',
      seq: lastInSnapshot.seq + 3,
      payload: 'gap',
    });
    assert.equal(gap.body.error, 'sequence_gap');
    const before = await call(`${newUrls[0]}/v1/messages?from=1`);
    assert.equal(before.status, 410);

    // The majority is lost for good: n1 alone becomes the cluster.
    for (const run of started) await kill(run);
    started.length = 0;
    const forced = spawnCli(
      ['start', '--id', 'n1', '--data', join(root, 'new', 'n1'), '--peers', peers]
        .concat(['--listen', `127.0.0.1:${ports[0]}`, '--http', `127.0.0.1:${ports[3]}`])
        .concat(['--force-new-cluster', '--segment-bytes', String(1 << 20)]),
    );
    started.push(forced);
    await waitFor(() => forced.stderr().includes('old members n2, n3 removed'), 'n1 alone', 60_000);
    assert.match(forced.stderr(), /WARNING: --force-new-cluster makes this node a cluster of one/);
    const alone = await broadcast(newUrls[0] as string, {
      client: 'backup-client',
      seq: lastInSnapshot.seq + 2,
      payload: 'alone',
    });
    assert.equal(alone.status, 200, JSON.stringify(alone.body));
    assert.equal(alone.body.index, body.position + 2);
    const members = await call(`${newUrls[0]}/v1/status`);
    assert.deepEqual(
      members.body.members.map((member: { id: string }) => member.id),
      ['n1'],
    );
    assert.equal((await call(`${newUrls[0]}/readyz`)).status, 200);
  } finally {
    for (const run of started) await kill(run);
    if (dev.child.exitCode === null) killGroup(dev);
    await rm(root, { recursive: true, force: true });
  }
});

test('save asks again while the node answers 503, and gives up on any other error', {
  timeout: 240_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-snapshot-retry-'));
  const header = {
    format: 'abcast-snapshot',
    version: 2,
    node: 'n1',
    takenAtMs: 0,
    ...{ index: 9, term: 2, config: { voters: ['n1'], learners: [] }, position: 7 },
    ...{ state: '', firstPosition: 8 },
  };
  // A node whose barrier finds no leader twice (an election under way), then answers.
  let refusals = 2;
  let asked = 0;
  const server = createServer((request, response) => {
    asked++;
    if (request.url?.startsWith('/v1/broken')) {
      response.writeHead(500, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: 'internal', message: 'broken' }));
    } else if (refusals-- > 0) {
      response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' });
      response.end(JSON.stringify({ error: 'no_leader', message: 'no leader confirmed a read' }));
    } else {
      response.writeHead(200, { 'content-type': 'application/x-ndjson' });
      response.end(
        `${JSON.stringify(header)}\n${JSON.stringify({ end: true, messageCount: 0 })}\n`,
      );
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  try {
    const file = join(root, 'backup.snap');
    const saved = await runCli(['snapshot', 'save', file, '--node', `http://127.0.0.1:${port}`]);
    assert.equal(saved.code, 0, saved.stderr);
    assert.equal(asked, 3);
    assert.match(saved.stdout, /snapshot of node n1 at position 7 /);
    assert.deepEqual(await readBackup(file), { ...header, messages: [] });
    // Any other failure is not asked again: one request, one line.
    asked = 0;
    const failed = await runCli([
      'snapshot',
      'save',
      join(root, 'x.snap'),
      '--node',
      `http://127.0.0.1:${port}/v1/broken`,
    ]);
    assert.equal(failed.code, 1);
    assert.equal(asked, 1);
    assert.match(failed.stderr, /answered 500 internal: broken/);
  } finally {
    server.close();
    await rm(root, { recursive: true, force: true });
  }
});
