// A node whose storage fails stops itself; its process must then end with code 1, so that a
// supervisor restarts it (a process left up with a stopped node is never restarted: systemd
// sees it running, and its liveness probe still answers). The disk is a small tmpfs filled
// while the node runs (root only; skipped otherwise); once space is back, the restarted node
// serves every acknowledged message.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isRoot, TmpfsMounts } from '../../src/chaos/tmpfs.ts';
import { freePorts, waitFor } from '../support/ports.ts';
import { type CliRun, kill, spawnCli } from './helpers.ts';

const skip = isRoot() ? false : 'mounting a tmpfs needs root';

async function post(url: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/** The node's status, or null while it does not answer. */
async function statusOf(url: string): Promise<{ role?: string; deliveredIndex?: number } | null> {
  return fetch(`${url}/v1/status`).then(
    (response) => response.json() as Promise<{ role?: string; deliveredIndex?: number }>,
    () => null,
  );
}

test('a node stopped by a full disk exits with code 1 and, restarted with space back, keeps what it acknowledged', {
  skip,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-stopped-'));
  const mounts = new TmpfsMounts(8 * 1024 * 1024);
  const [peerPort, httpPort] = await freePorts(2);
  const dir = join(root, 'disk');
  const url = `http://127.0.0.1:${httpPort}`;
  const args = ['start', '--id', 'n1', '--peers', `n1=127.0.0.1:${peerPort}`]
    .concat(['--listen', `127.0.0.1:${peerPort}`, '--http', `127.0.0.1:${httpPort}`])
    .concat(['--data', join(dir, 'n1'), '--segment-bytes', String(128 * 1024)]);
  let run: CliRun | null = null;
  try {
    await mounts.mount(dir);
    run = spawnCli(args);
    await waitFor(async () => (await statusOf(url))?.role === 'leader', 'a leader', 20_000);
    await mounts.fill(dir, 16 * 1024);
    const acknowledged: number[] = [];
    const payload = { filler: 'x'.repeat(4000) };
    for (let seq = 1; seq <= 400; seq++) {
      const answer = await post(`${url}/v1/broadcast`, { client: 'c', seq, payload }).catch(
        () => null,
      );
      if (answer === null || answer.status !== 200) break;
      acknowledged.push((answer.body as { index: number }).index);
    }
    assert.ok(acknowledged.length < 400, 'the disk filled before 400 broadcasts');
    const running = run;
    const code = await Promise.race([
      running.exited,
      new Promise<'alive'>((resolve) => setTimeout(() => resolve('alive'), 20_000)),
    ]);
    assert.equal(code, 1, `the process ended with code 1 (stderr: ${run.stderr()})`);
    assert.match(run.stderr(), /stopped itself \(storage_failed\)/);

    await mounts.free(dir);
    run = spawnCli(args);
    await waitFor(
      async () => {
        return ((await statusOf(url))?.deliveredIndex ?? 0) >= (acknowledged.at(-1) ?? 0);
      },
      'the restarted node to deliver what was acknowledged',
      20_000,
    );
    const page = (await fetch(`${url}/v1/messages?from=1&limit=1000`).then((r) => r.json())) as {
      messages: { index: number; seq: number }[];
    };
    for (const [at, position] of acknowledged.entries()) {
      const message = page.messages.find((m) => m.index === position);
      assert.equal(message?.seq, at + 1, `acknowledged seq ${at + 1} is at position ${position}`);
    }
  } finally {
    if (run !== null) await kill(run);
    await mounts.unmountAll();
    await rm(root, { recursive: true, force: true });
  }
});
