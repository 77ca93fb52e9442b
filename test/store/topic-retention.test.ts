// Per-topic retention on real `abcast start` processes: with `--retention-topic orders=2s`
// (and everything else kept forever), once an early orders message is older than 2 s of log
// time, every node's status names the same first orders position, a read of the topic from
// below it answers 410 with that position on every node, the read from there serves it, and
// a read by position still serves the early message (its segment is kept: deletion goes by
// whole segments, and the other topics are kept forever).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { connect } from '../../src/client/index.ts';
import { type CliRun, freeRange, kill, spawnCli } from '../cli/helpers.ts';
import { waitFor } from '../support/ports.ts';

const runs: CliRun[] = [];
const roots: string[] = [];

after(async () => {
  for (const run of runs) await kill(run);
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

// biome-ignore lint/suspicious/noExplicitAny: tests read answers field by field and assert them
type Body = any;

async function json(url: string): Promise<{ status: number; body: Body }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.json() };
}

test('a topic kept 2 s answers 410 below its own floor, the same on every node', {
  timeout: 120_000,
}, async () => {
  const root = await mkdtemp(join(tmpdir(), 'abcast-topic-retention-'));
  roots.push(root);
  const base = await freeRange(6);
  const ids = ['n1', 'n2', 'n3'];
  const urls = ids.map((_, at) => `http://127.0.0.1:${base + 3 + at}`);
  const peers = ids.map((id, at) => `${id}=127.0.0.1:${base + at}`).join(',');
  for (const [at, id] of ids.entries()) {
    const run = spawnCli([
      'start',
      ...['--id', id, '--data', join(root, id), '--listen', `127.0.0.1:${base + at}`],
      ...['--http', (urls[at] as string).slice('http://'.length), '--peers', peers],
      ...['--retention-topic', 'orders=2s', '--store-segment-bytes', '8KiB'],
    ]);
    runs.push(run);
  }
  const status = async (url: string) => (await json(`${url}/v1/status`)).body;
  const writer = connect({ endpoints: urls });
  const early = (await writer.broadcast({ early: true }, { topic: 'orders' })).position as number;
  // Log time moves with the entries the leader stamps: keep writing until the early orders
  // message is older than 2 s of log time on every node.
  await waitFor(
    async () => {
      for (let n = 0; n < 10; n++) {
        await writer.broadcast({ n }, { topic: n % 2 === 0 ? 'orders' : 'prices' });
      }
      const floors = await Promise.all(
        urls.map(async (url) => (await status(url)).retained.topics[0]?.firstIndex ?? 0),
      );
      return floors.every((floor) => floor > early);
    },
    'the orders floor past the early message on every node',
    60_000,
  );
  writer.close();
  // Settled: every node has applied the same last position, so the same floor.
  let last = 0;
  await waitFor(async () => {
    const seen = await Promise.all(urls.map(async (url) => (await status(url)).deliveredIndex));
    last = seen[0] as number;
    return seen.every((index) => index === last);
  }, 'every node at the same position');
  const floors = new Set<number>();
  for (const url of urls) {
    const topics = (await status(url)).retained.topics;
    assert.equal(topics.length, 1);
    assert.equal(topics[0].topic, 'orders');
    assert.equal(topics[0].ageMs, 2_000);
    const below = await json(`${url}/v1/messages?topic=orders&from=${early}`);
    assert.equal(below.status, 410, JSON.stringify(below.body));
    assert.equal(below.body.firstIndex, topics[0].firstIndex);
    floors.add(below.body.firstIndex);
    // A stream of the topic is refused below its floor alike, before it starts.
    const stream = await fetch(`${url}/v1/stream?topic=orders&from=${early}`);
    assert.equal(stream.status, 410);
    assert.equal(
      ((await stream.json()) as { firstIndex: number }).firstIndex,
      topics[0].firstIndex,
    );
    const kept = await json(`${url}/v1/messages?topic=orders&from=${below.body.firstIndex}`);
    assert.equal(kept.status, 200);
    assert.equal(kept.body.messages[0].index, below.body.firstIndex);
    assert.equal(kept.body.messages[0].topic, 'orders');
    const byPosition = await json(`${url}/v1/messages?from=${early}&limit=1`);
    assert.equal(byPosition.status, 200, 'the segment is kept: other topics stay forever');
    assert.equal(byPosition.body.messages[0].index, early);
  }
  assert.equal(floors.size, 1, 'one orders floor on every node');
});
