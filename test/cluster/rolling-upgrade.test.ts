// A rolling upgrade between two real builds: three `abcast start` processes of the previous
// release (its sources taken from this repository's history, builds.ts) take load from two
// SDK clients; one node at a time gets SIGTERM and comes back as this build on the same data
// directory with the same flags, and is ready (GET /readyz) before the next goes. Leadership
// is handed to the first upgraded node while the other two are still old, so both mixes run:
// an old leader replicating to a new follower, and a new leader to old ones. Afterwards every
// acknowledged broadcast is delivered exactly once, at the position it was told, in its
// client's order; the three nodes hold the same sequence at dense positions.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { type CliRun, kill, spawnCli } from '../cli/helpers.ts';
import { freePorts, waitFor } from '../support/ports.ts';
import { type Build, buildUnavailable, checkoutBuild, previousRelease } from './builds.ts';

const skip = await buildUnavailable(previousRelease);
let previous: Build | null = null;

before(async () => {
  if (skip === null) previous = await checkoutBuild(previousRelease);
});

after(async () => {
  await previous?.remove();
});

interface Delivered {
  readonly index: number;
  readonly payload: unknown;
}

/** GET /readyz answers 200; before releases had probes, /v1/status names a leader. */
async function ready(url: string): Promise<boolean> {
  try {
    const answer = await fetch(`${url}/readyz`);
    if (answer.status !== 404) return answer.status === 200;
    return (await status(url)).leader !== null;
  } catch {
    return false;
  }
}

async function status(url: string): Promise<{ leader: string | null; deliveredIndex: number }> {
  return (await fetch(`${url}/v1/status`)).json();
}

/**
 * Asks the leader to hand over to `to` until `to` leads: a transfer can lapse (the target
 * not caught up in time), and is then asked again, at most once per wait.
 */
async function moveLeadership(urls: readonly string[], ids: readonly string[], to: string) {
  const leaderOf = async () => (await status(urls[ids.indexOf(to)] as string)).leader;
  for (let attempt = 0; attempt < 10; attempt++) {
    const current = await leaderOf();
    if (current === to) return;
    const leaderAt = ids.indexOf(current ?? '');
    if (leaderAt >= 0) {
      await fetch(`${urls[leaderAt]}/v1/leader/transfer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ to }),
      });
    }
    const led = await waitFor(async () => (await leaderOf()) === to, `${to} leads`, 10_000).then(
      () => true,
      () => false,
    );
    if (led) return;
  }
  assert.fail(`leadership never reached ${to}`);
}

/** Every message `url` delivered, in order, page by page. */
async function deliveredOrder(url: string): Promise<Delivered[]> {
  const order: Delivered[] = [];
  for (;;) {
    const from = (order[order.length - 1]?.index ?? 0) + 1;
    const page = await (await fetch(`${url}/v1/messages?from=${from}&limit=1000`)).json();
    if (page.messages.length === 0) return order;
    order.push(...(page.messages as Delivered[]));
  }
}

test('a rolling upgrade from the previous release under load: 0 violations', {
  skip: skip ?? false,
  timeout: 180_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-upgrade-'));
  const ports = await freePorts(6);
  const ids = ['n1', 'n2', 'n3'];
  const peers = ids.map((id, at) => `${id}=127.0.0.1:${ports[at]}`).join(',');
  const urls = ids.map((_, at) => `http://127.0.0.1:${ports[at + 3]}`);
  // Flags both releases take: an upgrade keeps the command line.
  const args = (at: number) =>
    ['start', '--id', ids[at] as string, '--data', join(root, ids[at] as string)]
      .concat(['--listen', `127.0.0.1:${ports[at]}`, '--http', `127.0.0.1:${ports[at + 3]}`])
      .concat(['--peers', peers, '--segment-bytes', String(1 << 20)]);
  const oldEntry = (previous as Build).entry;
  const nodes: CliRun[] = ids.map((_, at) => spawnCli(args(at), false, oldEntry));
  // Client ids of the SDK's own choosing: with one given, it also sends a session nonce,
  // which releases before 6 December 00:48 refuse as an unknown field.
  const clients = [0, 1].map(() => connect({ endpoints: urls }));
  const acknowledged = new Map<string, { seq: number; position: number }[]>();
  let loading = true;
  const load = Promise.all(
    clients.map(async (client, at) => {
      const mine: { seq: number; position: number }[] = [];
      acknowledged.set(client.baseClientId, mine);
      await waitFor(() => ready(urls[at] as string), 'a ready node', 60_000);
      for (let seq = 1; loading; seq++) {
        const answer = await client.broadcast({ client: client.baseClientId, seq });
        assert.equal(answer.duplicate, false, `${client.baseClientId} seq ${seq} is new`);
        mine.push({ seq, position: answer.position as number });
      }
    }),
  );
  // Awaited once the upgrade is done; a failure before then fails the test there.
  load.catch(() => undefined);
  const acknowledgedCount = () =>
    [...acknowledged.values()].reduce((sum, mine) => sum + mine.length, 0);
  const goesOn = async (what: string) => {
    const before = acknowledgedCount();
    await waitFor(() => acknowledgedCount() >= before + 20, `broadcasts go on ${what}`, 60_000);
  };
  const upgrade = async (at: number) => {
    nodes[at]!.child.kill('SIGTERM');
    assert.equal(await nodes[at]!.exited, 0, `${ids[at]} (previous release) stops cleanly`);
    nodes[at] = spawnCli(args(at));
    await waitFor(() => ready(urls[at] as string), `${ids[at]} ready on this build`, 60_000);
    await goesOn(`after ${ids[at]} is upgraded`);
  };
  try {
    await waitFor(async () => (await Promise.all(urls.map(ready))).every(Boolean), 'ready', 60_000);
    await goesOn('on the previous release');
    const leader = (await status(urls[0] as string)).leader as string;
    const order = ids
      .map((_, at) => at)
      .sort((a, b) => (ids[a] === leader ? 1 : 0) - (ids[b] === leader ? 1 : 0));
    const [first, second, last] = order as [number, number, number];

    // An old leader replicates to a new follower.
    await upgrade(first);
    // A new leader replicates to two old followers.
    await moveLeadership(urls, ids, ids[first] as string);
    await goesOn('under a new leader with old followers');
    await upgrade(second);
    await upgrade(last);
    loading = false;
    await load;

    for (const [clientId, mine] of acknowledged) {
      const positions = mine.map((one) => one.position);
      assert.deepEqual(
        positions,
        [...positions].sort((a, b) => a - b),
        `${clientId}: acknowledged in order`,
      );
    }
    const lastPosition = Math.max(
      ...[...acknowledged.values()].map((mine) => mine[mine.length - 1]?.position ?? 0),
    );
    await waitFor(
      async () =>
        (await Promise.all(urls.map(status))).every((one) => one.deliveredIndex >= lastPosition),
      'every node delivered everything acknowledged',
      60_000,
    );
    const orders = await Promise.all(urls.map(deliveredOrder));
    const reference = orders[0] as Delivered[];
    reference.forEach((message, offset) => {
      assert.equal(message.index, offset + 1, 'positions are dense from 1');
    });
    for (const [at, other] of orders.entries()) {
      assert.deepEqual(other, reference, `${ids[at]} delivered the same sequence as n1`);
    }
    // The payload names the client and seq: a session the SDK moved on from would show
    // another client id in the order, but never the same payload twice.
    const payloads = reference.map((message) => JSON.stringify(message.payload));
    assert.equal(new Set(payloads).size, payloads.length, 'nothing is delivered twice');
    for (const [clientId, mine] of acknowledged) {
      for (const { seq, position } of mine) {
        assert.deepEqual(
          reference[position - 1]?.payload,
          { client: clientId, seq },
          `${clientId} seq ${seq} is delivered at ${position}, where it was told`,
        );
      }
    }
    assert.equal(reference.length, acknowledgedCount(), 'nothing unacknowledged was delivered');
    console.log(
      `# rolling upgrade from ${previousRelease.slice(0, 12)}: ${acknowledgedCount()} broadcasts acknowledged, ${reference.length} delivered, 0 violations`,
    );
  } finally {
    loading = false;
    for (const client of clients) client.close();
    for (const node of nodes) await kill(node);
    await rm(root, { recursive: true, force: true });
  }
});
