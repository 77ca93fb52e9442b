// The log as a durable stream, on real `abcast start` processes: a node whose message store
// was lost and that restarts from its snapshot, and a node added later (which starts from
// the leader's snapshot), both serve position 1 at once (forwarding to a peer) and then
// from their own backfilled store; every node answers the same retained range and the same
// digest of it; a durable consumer killed mid-stream resumes after its last ack on another
// node with nothing lost or repeated; and size and age retention delete the same prefix
// everywhere.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { type CliRun, freeRange, kill, runCli, spawnCli } from '../cli/helpers.ts';
import { hangBoundMs, waitFor } from '../support/ports.ts';

interface Member {
  readonly id: string;
  readonly listen: string;
  readonly url: string;
  run: CliRun | null;
}

const roots: string[] = [];
const runs: CliRun[] = [];

after(async () => {
  for (const run of runs) await kill(run);
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

// biome-ignore lint/suspicious/noExplicitAny: tests read answers field by field and assert them
type Body = any;

async function json(url: string, init: RequestInit = {}): Promise<{ status: number; body: Body }> {
  const response = await fetch(url, init);
  return { status: response.status, body: await response.json() };
}

async function startCluster(count: number, extra: readonly string[]) {
  const root = await mkdtemp(join(tmpdir(), 'abcast-stream-'));
  roots.push(root);
  const base = await freeRange(count * 2);
  const members: Member[] = Array.from({ length: count }, (_, at) => ({
    id: `n${at + 1}`,
    listen: `127.0.0.1:${base + at}`,
    url: `http://127.0.0.1:${base + count + at}`,
    run: null,
  }));
  const initial = members.slice(0, 3);
  const peers = initial.map((m) => `${m.id}=${m.listen}`).join(',');
  const start = (member: Member, join: boolean) => {
    const others = members.filter((m) => m !== member).map((m) => `${m.id}=${m.url}`);
    const run = spawnCli([
      'start',
      ...['--id', member.id, '--data', join ? `${root}/${member.id}` : `${root}/${member.id}`],
      ...['--listen', member.listen, '--http', member.url.slice('http://'.length)],
      ...['--peers', join ? `${peers},${member.id}=${member.listen}` : peers],
      ...['--http-peers', others.join(','), '--segment-bytes', '1048576'],
      ...(join ? ['--join'] : []),
      ...extra,
    ]);
    runs.push(run);
    member.run = run;
  };
  for (const member of initial) start(member, false);
  // A node that cannot be reached says why, if it has exited: a timed-out wait otherwise
  // shows only "fetch failed".
  const status = async (member: Member) => {
    try {
      return (await json(`${member.url}/v1/status`)).body;
    } catch (error) {
      const child = member.run?.child;
      const exited =
        child === undefined || (child.exitCode === null && child.signalCode === null)
          ? ''
          : ` (exited with ${child.exitCode ?? child.signalCode}: ${member.run?.stderr().slice(-800)})`;
      throw new Error(`${member.id}: ${(error as Error).message}${exited}`);
    }
  };
  const leader = async (): Promise<Member> => {
    let found: Member | undefined;
    await waitFor(
      async () => {
        for (const member of initial) {
          const seen = await status(member).catch(() => null);
          if (seen?.role === 'leader') found = member;
        }
        return found !== undefined;
      },
      'a leader',
      hangBoundMs,
    );
    return found as Member;
  };
  return { root, members, start, status, leader };
}

test('restarted and added nodes serve position 1; same range everywhere; consumers resume', {
  timeout: 360_000,
}, async () => {
  const cluster = await startCluster(4, [
    ...['--snapshot-interval-bytes', '65536', '--store-segment-bytes', '65536'],
  ]);
  const [n1, n2, n3, n4] = cluster.members as [Member, Member, Member, Member];
  await cluster.leader();
  const writer = connect({ endpoints: [n1.url, n2.url, n3.url] });
  const total = 4000;
  const sent: Promise<unknown>[] = [];
  for (let n = 1; n <= total; n++) sent.push(writer.broadcast({ n, pad: 'p'.repeat(100) }));
  await Promise.all(sent);

  // n3 loses its message store and restarts: it replays its WAL from its snapshot, so the
  // positions before the snapshot are a hole it must backfill.
  await kill(n3.run as CliRun);
  await rm(join(cluster.root, 'n3', 'messages'), { recursive: true, force: true });
  cluster.start(n3, false);
  // n4 joins later: the leader's log is compacted, so it starts from a snapshot too.
  cluster.start(n4, true);
  const leader = await cluster.leader();
  const added = await json(`${leader.url}/v1/members`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'n4', address: n4.listen, voter: true }),
  });
  assert.equal(added.status, 200, JSON.stringify(added.body));

  for (const member of [n3, n4]) {
    await waitFor(
      async () => {
        const seen = await cluster.status(member).catch(() => null);
        return seen !== null && seen.deliveredIndex >= total;
      },
      `${member.id} delivers everything`,
      60_000,
    );
    // Served at once: from the node's store, or forwarded to a peer while it backfills.
    const first = await json(`${member.url}/v1/messages?from=1&limit=5`);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(
      first.body.messages.map((m: { index: number }) => m.index),
      [1, 2, 3, 4, 5],
    );
    assert.equal(first.body.messages[0].payload.n, 1);
  }
  for (const member of [n3, n4]) {
    await waitFor(
      async () => {
        const seen = await cluster.status(member).catch(() => null);
        return seen !== null && seen.store.missing === 0;
      },
      `${member.id} backfilled`,
      60_000,
    );
  }
  // Every node: the same retained range, and the same messages in it.
  const everyone = [n1, n2, n3, n4];
  const statuses = await Promise.all(everyone.map(cluster.status));
  for (const seen of statuses) assert.equal(seen.retained.firstIndex, 1);
  const digests = await Promise.all(
    everyone.map(async (m) => (await json(`${m.url}/v1/digest?from=1&count=${total}`)).body),
  );
  for (const digest of digests) assert.deepEqual(digest, digests[0]);
  writer.close();

  // A durable consumer acks 1000 messages through n1, is killed mid-stream, and resumes
  // through n2 right after its last ack.
  const first = connect({ endpoints: [n1.url] });
  const killer = new AbortController();
  let lastAcked = 0;
  for await (const message of first.subscribe({ consumer: 'billing', signal: killer.signal })) {
    await message.ack?.();
    lastAcked = message.position;
    if (message.position === 1000) killer.abort();
  }
  first.close();
  assert.equal(lastAcked, 1000);
  await kill(n1.run as CliRun);
  const second = connect({ endpoints: [n2.url, n3.url] });
  const seen: number[] = [];
  const done = new AbortController();
  for await (const message of second.subscribe({ consumer: 'billing', signal: done.signal })) {
    seen.push(message.position);
    if (message.position === total) {
      await message.ack?.();
      done.abort();
    }
  }
  second.close();
  assert.deepEqual(
    seen,
    Array.from({ length: total - 1000 }, (_, at) => 1001 + at),
  );
  const consumers = await json(`${n2.url}/v1/consumers`);
  assert.deepEqual(
    consumers.body.consumers.map((c: { name: string; index: number; lag: number }) => [
      c.name,
      c.index,
      c.lag,
    ]),
    [['billing', total, 0]],
  );
  // The CLI shows the same: the consumer, and the retained range in status.
  const listed = await runCli(['consumers', '--node', n2.url, '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  assert.equal(JSON.parse(listed.stdout).consumers[0].index, total);
  const shown = await runCli(['status', '--node', n3.url]);
  assert.match(shown.stdout, new RegExp(`retained: 1…${total} \\(n3 stores`));
});

test('size retention deletes the same prefix on every node; below it is 410 everywhere', {
  timeout: 240_000,
}, async () => {
  const cluster = await startCluster(3, [
    ...['--retention-bytes', '200KiB', '--store-segment-bytes', '32KiB'],
  ]);
  await cluster.leader();
  const writer = connect({ endpoints: cluster.members.map((m) => m.url) });
  const sent: Promise<unknown>[] = [];
  for (let n = 1; n <= 3000; n++) sent.push(writer.broadcast({ n, pad: 'q'.repeat(200) }));
  await Promise.all(sent);
  writer.close();
  let firstIndex = 0;
  // Retention moves its floor in steps decided from the log (a step taken while the writes
  // still came leaves more to cut): wait for the step that brings every store under bound.
  // The leader cuts at its own segment boundaries down to the limit, so once its store is
  // within 200 KiB no further step is due and the floor stays put while it is read below.
  await waitFor(
    async () => {
      const statuses = await Promise.all(cluster.members.map((m) => cluster.status(m)));
      firstIndex = statuses[0]?.retained.firstIndex as number;
      return (
        firstIndex > 1 &&
        statuses.every((status) => status.retained.firstIndex === firstIndex) &&
        statuses.every((status) => status.store.bytes < 300 * 1024) &&
        statuses.some((status) => status.role === 'leader' && status.store.bytes <= 200 * 1024)
      );
    },
    'one retained range past 1 on every node, each store under the bound',
    60_000,
  );
  for (const member of cluster.members) {
    const below = await json(`${member.url}/v1/messages?from=1`);
    assert.equal(below.status, 410);
    assert.equal(below.body.error, 'compacted');
    const seen = await cluster.status(member);
    assert.ok(below.body.firstIndex >= firstIndex && below.body.firstIndex === seen.firstIndex);
    const kept = await json(`${member.url}/v1/messages?from=${seen.firstIndex}&limit=1`);
    assert.equal(kept.body.messages[0].index, seen.firstIndex);
    // Deleted by whole segments: well under the limit plus a segment, far under all of it.
    assert.ok(seen.store.bytes < 300 * 1024, `${member.id} stores ${seen.store.bytes} bytes`);
  }
});

test('age retention deletes the same prefix on every node, by log time', {
  timeout: 240_000,
}, async () => {
  const cluster = await startCluster(3, [
    ...['--retention-age', '2s', '--store-segment-bytes', '8KiB'],
  ]);
  await cluster.leader();
  const writer = connect({ endpoints: cluster.members.map((m) => m.url) });
  const early = (await writer.broadcast({ early: true, pad: 'e'.repeat(200) })).position as number;
  // Log time moves with the entries the leader stamps: keep writing until the early
  // message is older than 2 s in log time and retention let its segment go everywhere.
  let firstIndex = 0;
  await waitFor(
    async () => {
      for (let n = 0; n < 20; n++) await writer.broadcast({ n, pad: 'l'.repeat(200) });
      const firsts = await Promise.all(
        cluster.members.map(async (m) => (await cluster.status(m)).retained.firstIndex),
      );
      firstIndex = firsts[0] as number;
      return firstIndex > early && firsts.every((first) => first === firstIndex);
    },
    'one retained range past the early message on every node',
    60_000,
  );
  writer.close();
  for (const member of cluster.members) {
    const below = await json(`${member.url}/v1/messages?from=${early}`);
    assert.equal(below.status, 410);
    const kept = await json(`${member.url}/v1/messages?from=${below.body.firstIndex}&limit=1`);
    assert.equal(below.body.firstIndex, firstIndex);
    assert.equal(kept.body.messages[0].index, firstIndex);
  }
});
