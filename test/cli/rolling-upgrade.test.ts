// A rolling restart of three `abcast start` processes under load, as an upgrade is run: each
// node in turn gets SIGTERM, comes back on its data directory with the same flags, and is
// ready (GET /readyz) before the next goes. An SDK client broadcasts with its session all the
// while; afterwards every acknowledged broadcast is delivered exactly once, at the position it
// was told, in the client's order, and the three nodes hold the same sequence. (The build is
// the same on both sides here: what this shows is the procedure and its 0 violations; version
// checks are below.) A data directory of a format newer than this release is refused at start
// with one line naming both versions.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { metadataChecksum } from '../../src/storage/metadata.ts';
import { STORAGE_FORMAT_VERSION } from '../../src/storage/types.ts';
import { freePorts, waitFor } from '../support/ports.ts';
import { type CliRun, kill, oneLine, runCli, spawnCli } from './helpers.ts';

async function ready(url: string): Promise<boolean> {
  return fetch(`${url}/readyz`).then(
    (answer) => answer.status === 200,
    () => false,
  );
}

test('a rolling restart under load loses, repeats and reorders nothing', {
  timeout: 300_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-rolling-'));
  const ports = await freePorts(6);
  const ids = ['n1', 'n2', 'n3'];
  const peers = ids.map((id, at) => `${id}=127.0.0.1:${ports[at]}`).join(',');
  const urls = ids.map((_, at) => `http://127.0.0.1:${ports[at + 3]}`);
  const args = (at: number) =>
    ['start', '--id', ids[at] as string, '--data', join(root, ids[at] as string)]
      .concat(['--listen', `127.0.0.1:${ports[at]}`, '--http', `127.0.0.1:${ports[at + 3]}`])
      .concat(['--peers', peers, '--segment-bytes', String(1 << 20)]);
  const nodes: CliRun[] = ids.map((_, at) => spawnCli(args(at)));
  const client = connect({ endpoints: urls, clientId: 'rolling-client' });
  try {
    await waitFor(async () => (await Promise.all(urls.map(ready))).every(Boolean), 'ready', 60_000);
    const acknowledged: { seq: number; position: number }[] = [];
    let loading = true;
    const load = (async () => {
      for (let seq = 1; loading; seq++) {
        const answer = await client.broadcast({ seq });
        assert.equal(answer.duplicate, false);
        acknowledged.push({ seq, position: answer.position as number });
      }
    })();
    await waitFor(() => acknowledged.length >= 10, 'load under way', 60_000);
    for (const at of [0, 1, 2]) {
      const before = acknowledged.length;
      nodes[at]!.child.kill('SIGTERM');
      assert.equal(await nodes[at]!.exited, 0, `n${at + 1} stops cleanly`);
      nodes[at] = spawnCli(args(at));
      await waitFor(() => ready(urls[at] as string), `n${at + 1} ready again`, 60_000);
      await waitFor(() => acknowledged.length >= before + 10, 'broadcasts go on', 60_000);
    }
    loading = false;
    await load;

    // Exactly once, at the position told, in the client's order.
    const positions = acknowledged.map((one) => one.position);
    assert.equal(new Set(positions).size, positions.length, 'no position told twice');
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
      'the client order is kept',
    );
    const last = positions[positions.length - 1] as number;
    await waitFor(
      async () => {
        const all = await Promise.all(
          urls.map(async (url) => (await (await fetch(`${url}/v1/status`)).json()).deliveredIndex),
        );
        return all.every((delivered) => delivered >= last);
      },
      'every node delivered everything',
      60_000,
    );
    const page = await (await fetch(`${urls[1]}/v1/messages?from=1&limit=1000`)).json();
    const mine = page.messages.filter(
      (message: { client: string }) => message.client === 'rolling-client',
    );
    assert.deepEqual(
      mine.map((message: { index: number; payload: { seq: number } }) => [
        message.payload.seq,
        message.index,
      ]),
      acknowledged.map((one) => [one.seq, one.position]),
      'each acknowledged message is delivered once, where it was told',
    );
    const verified = await runCli(['verify', '--nodes', urls.join(',')], 60_000);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    console.log(`# rolling restart: ${acknowledged.length} broadcasts acknowledged, 0 violations`);
  } finally {
    client.close();
    for (const node of nodes) await kill(node);
    await rm(root, { recursive: true, force: true });
  }
});

test('a data directory of a newer format is refused with one line naming both versions', {
  timeout: 60_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-format-'));
  const [peer, http] = await freePorts(2);
  const args = [
    'start',
    '--id',
    'n1',
    '--data',
    join(root, 'n1'),
    '--peers',
    `n1=127.0.0.1:${peer}`,
  ]
    .concat(['--listen', `127.0.0.1:${peer}`, '--http', `127.0.0.1:${http}`])
    .concat(['--segment-bytes', String(1 << 20)]);
  try {
    // Make the directory with this release, then stamp it as written by a newer one.
    const first = spawnCli(args);
    await waitFor(() => ready(`http://127.0.0.1:${http}`), 'n1 ready', 30_000);
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);
    const metaPath = join(root, 'n1', 'meta.json');
    const meta = JSON.parse(await readFile(metaPath, 'utf8'));
    // With the checksum a newer release would write, so that it reads as that release's
    // identity, not as a damaged file (which the open rebuilds).
    const newer = { ...meta, formatVersion: STORAGE_FORMAT_VERSION + 1 };
    await writeFile(metaPath, JSON.stringify({ ...newer, checksum: metadataChecksum(newer) }));
    const refused = await runCli(args, 30_000);
    assert.equal(refused.code, 1);
    const line = oneLine(refused.stderr);
    assert.match(line, new RegExp(`format ${STORAGE_FORMAT_VERSION + 1}`));
    assert.match(line, new RegExp(`reads up to ${STORAGE_FORMAT_VERSION}`));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
