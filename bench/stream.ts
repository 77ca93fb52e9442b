// The log as a durable stream, at scale: three `abcast start` processes on 127.0.0.1, N
// messages written through the SDK (2 million by default), then
//   - replay from position 1 through HTTP/SSE (GET /v1/stream?from=1) and through the SDK
//     (client.subscribe), in messages/s, with the serving node's RSS before, during (max)
//     and after each replay;
//   - a node whose message store is lost restarts from its snapshot, and a fourth node is
//     added: how long until each serves position 1, and until each has backfilled it all.
// Results go to bench/results/stream.json.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '../src/client/index.ts';
import { flagsOrExit, positiveInteger } from './args.ts';

const { total, payloadBytes, window } = flagsOrExit({
  usage: `npm run bench:stream -- [flags]
The log as a durable stream on 3 nodes: replay from position 1, a restore, an added node.
  --messages N        messages written first through the SDK (default 2000000)
  --payload-bytes N   bytes per message (default 100)
  --window N          broadcasts the writer keeps in flight (default 20000)`,
  options: {
    messages: { type: 'string', default: '2000000' },
    'payload-bytes': { type: 'string', default: '100' },
    window: { type: 'string', default: '20000' },
  },
  read: (values) => ({
    total: positiveInteger('messages', values.messages),
    payloadBytes: positiveInteger('payload-bytes', values['payload-bytes']),
    window: positiveInteger('window', values.window),
  }),
});
const entry = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

interface Member {
  readonly id: string;
  readonly listen: string;
  readonly url: string;
  child: ChildProcess | null;
}

function rssMiB(child: ChildProcess | null): number {
  const text = readFileSync(`/proc/${child?.pid}/status`, 'utf8');
  const kib = Number(/VmRSS:\s+(\d+)/.exec(text)?.[1] ?? Number.NaN);
  return Math.round((kib / 1024) * 10) / 10;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 600_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`bench/stream: timed out waiting for ${what}`);
}

// biome-ignore lint/suspicious/noExplicitAny: the status answer is read field by field
async function status(member: Member): Promise<any> {
  return (await fetch(`${member.url}/v1/status`)).json();
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'abcast-bench-stream-'));
  const members: Member[] = [];
  for (const id of ['n1', 'n2', 'n3', 'n4']) {
    const listen = `127.0.0.1:${await freePort()}`;
    members.push({ id, listen, url: `http://127.0.0.1:${await freePort()}`, child: null });
  }
  const initial = members.slice(0, 3);
  const peers = initial.map((m) => `${m.id}=${m.listen}`).join(',');
  const start = (member: Member, joining: boolean) => {
    const others = members.filter((m) => m !== member).map((m) => `${m.id}=${m.url}`);
    member.child = spawn(
      process.execPath,
      [
        ...['--import', 'tsx', entry, 'start', '--id', member.id, '--data', join(root, member.id)],
        ...['--listen', member.listen, '--http', member.url.slice('http://'.length)],
        ...['--peers', joining ? `${peers},${member.id}=${member.listen}` : peers],
        ...['--http-peers', others.join(','), '--store-segment-bytes', '16MiB'],
        ...(joining ? ['--join'] : []),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
  };
  const results: Record<string, unknown> = { messages: total, payloadBytes };
  try {
    for (const member of initial) start(member, false);
    let leader: Member | undefined;
    await until('a leader', async () => {
      for (const member of initial) if ((await status(member)).role === 'leader') leader = member;
      return leader !== undefined;
    });
    const [, reader, restarted, added] = members as [Member, Member, Member, Member];

    // Write.
    const writer = connect({ endpoints: initial.map((m) => m.url), requestTimeoutMs: 60_000 });
    const pad = 'x'.repeat(Math.max(0, payloadBytes - 20));
    const writeStartedMs = Date.now();
    let next = 1;
    const lane = async () => {
      while (next <= total) {
        const n = next++;
        await writer.broadcast({ n, pad });
      }
    };
    await Promise.all(Array.from({ length: window }, lane));
    writer.close();
    const writeSeconds = (Date.now() - writeStartedMs) / 1000;
    results.write = { seconds: writeSeconds, messagesPerSecond: Math.round(total / writeSeconds) };
    console.log('write', results.write);
    await until(
      'delivered on the reader',
      async () => (await status(reader)).deliveredIndex >= total,
    );
    results.readerStore = (await status(reader)).store;

    // Replay through HTTP/SSE.
    const replay = async (name: string, run: () => Promise<number>) => {
      const rssBeforeMiB = rssMiB(reader.child);
      let rssMaxMiB = rssBeforeMiB;
      const sampler = setInterval(() => {
        rssMaxMiB = Math.max(rssMaxMiB, rssMiB(reader.child));
      }, 250);
      const startedMs = Date.now();
      const count = await run();
      const seconds = (Date.now() - startedMs) / 1000;
      clearInterval(sampler);
      const report = {
        count,
        seconds,
        messagesPerSecond: Math.round(count / seconds),
        rssBeforeMiB,
        rssMaxMiB,
        rssAfterMiB: rssMiB(reader.child),
      };
      results[name] = report;
      console.log(name, report);
    };
    await replay('replayHttpSse', async () => {
      const controller = new AbortController();
      const response = await fetch(`${reader.url}/v1/stream?from=1`, {
        signal: controller.signal,
      });
      const decoder = new TextDecoder();
      let count = 0;
      let expected = 1;
      let buffer = '';
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let at = buffer.indexOf('\n\n');
        while (at >= 0) {
          const event = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          const id = /^id: (\d+)$/m.exec(event);
          if (id !== null) {
            if (Number(id[1]) !== expected) throw new Error(`position ${id[1]}, not ${expected}`);
            expected++;
            count++;
          }
          at = buffer.indexOf('\n\n');
        }
        if (count >= total) break;
      }
      controller.abort();
      return count;
    });
    await replay('replaySdk', async () => {
      const client = connect({ endpoints: [reader.url], protocol: 'http' });
      let count = 0;
      for await (const message of client.subscribe({ from: 1 })) {
        if (message.position !== count + 1) throw new Error(`position ${message.position}`);
        count++;
        if (count >= total) break;
      }
      client.close();
      return count;
    });

    // A node that lost its store restarts from its snapshot; a fourth node is added.
    restarted.child?.kill('SIGKILL');
    await new Promise((resolve) => restarted.child?.once('exit', resolve));
    await rm(join(root, restarted.id, 'messages'), { recursive: true, force: true });
    const restartMs = Date.now();
    start(restarted, false);
    start(added, true);
    const leaderUrl = (leader as Member).url;
    const addMs = Date.now();
    await until('the added member', async () => {
      const response = await fetch(`${leaderUrl}/v1/members`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: added.id, address: added.listen, voter: false }),
      });
      return response.status === 200;
    });
    const measure = async (member: Member, sinceMs: number) => {
      await until(`${member.id} serves position 1`, async () => {
        const response = await fetch(`${member.url}/v1/messages?from=1&limit=1`);
        return response.status === 200 && (await response.json()).messages[0]?.index === 1;
      });
      const servesPositionOneSeconds = (Date.now() - sinceMs) / 1000;
      await until(`${member.id} backfilled`, async () => {
        const seen = await status(member);
        return seen.deliveredIndex >= total && seen.store.missing === 0;
      });
      const backfilledSeconds = (Date.now() - sinceMs) / 1000;
      const seen = await status(member);
      results[`${member === restarted ? 'restarted' : 'added'}Node`] = {
        servesPositionOneSeconds,
        backfilledSeconds,
        retained: seen.retained,
        store: { bytes: seen.store.bytes, segments: seen.store.segments },
      };
      console.log(member.id, results[`${member === restarted ? 'restarted' : 'added'}Node`]);
    };
    await Promise.all([measure(restarted, restartMs), measure(added, addMs)]);
    const ranges = await Promise.all(members.map(async (m) => (await status(m)).retained));
    results.retainedOnEveryNode = ranges;
    await mkdir(new URL('./results/', import.meta.url), { recursive: true });
    await writeFile(
      new URL('./results/stream.json', import.meta.url),
      `${JSON.stringify({ ...results, date: new Date().toISOString() }, null, 2)}\n`,
    );
  } finally {
    for (const member of members) member.child?.kill('SIGKILL');
    await sleep(500);
    await rm(root, { recursive: true, force: true });
  }
}

await main();
