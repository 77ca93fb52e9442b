// Browser clients on another origin, in real headless Chromium: a page served from one port
// uses `fetch` (a JSON broadcast, so with a preflight) and `EventSource` against nodes started
// with --cors-origins naming that page's origin. The stream runs through a TCP proxy that the
// test cuts: EventSource reconnects by itself, sends Last-Event-ID, and resumes after the last
// message it saw, with nothing repeated or lost. A page of an origin not listed is refused.
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createConnection, createServer, type Server as NetServer, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { parseCorsOrigins } from '../../src/server/cors.ts';
import { type HttpCluster, startHttpCluster } from '../server/cluster.ts';
import { waitFor } from '../support/ports.ts';
import { launchBrowser, skipReason } from './browser.ts';

/** What the test page's script puts on `window`. */
interface TestPage {
  events: { id: string; payload: unknown }[];
  reconnects: number;
  send(payload: unknown): Promise<{ status?: number; body?: { index: number }; failed?: string }>;
}

const skip = skipReason();
let cluster: HttpCluster;
let browser: Browser;
let pages: Server[] = [];
let proxy: NetServer;
const proxySockets = new Set<Socket>();
const proxyRequests: string[] = [];

function listen(server: Server | NetServer): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

/** A page whose script talks to `node` (fetch) and `stream` (EventSource), across origins. */
function pageServer(node: string, stream: string): Server {
  const html = `<!doctype html><html><body><script>
    window.events = []; window.reconnects = 0;
    window.source = new EventSource(${JSON.stringify(`${stream}/v1/stream?from=1`)});
    source.onmessage = (e) => events.push({ id: e.lastEventId, payload: JSON.parse(e.data).payload });
    source.onerror = () => { reconnects++; };
    window.send = async (payload) => {
      try {
        const r = await fetch(${JSON.stringify(`${node}/v1/broadcast`)}, {
          method: 'POST', headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ payload }) });
        return { status: r.status, body: await r.json() };
      } catch (error) { return { failed: String(error) }; }
    };
  </script></body></html>`;
  return createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(html);
  });
}

before(async () => {
  if (skip !== null) return;
  const allowed = pageServer('', '');
  const pagePort = await listen(allowed);
  allowed.close();
  cluster = await startHttpCluster({ cors: parseCorsOrigins(`http://127.0.0.1:${pagePort}`) });
  const target = new URL(cluster.members[0]!.url);
  proxy = createServer((client) => {
    const upstream = createConnection(Number(target.port), '127.0.0.1');
    proxySockets.add(client);
    client.once('data', (head: Buffer) => proxyRequests.push(head.toString('latin1')));
    client.pipe(upstream).pipe(client);
    const drop = () => {
      proxySockets.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', drop).on('error', drop);
    upstream.on('close', drop).on('error', drop);
  });
  const proxyUrl = `http://127.0.0.1:${await listen(proxy)}`;
  const listed = pageServer(cluster.members[1]!.url, proxyUrl);
  await new Promise<void>((resolve) => listed.listen(pagePort, '127.0.0.1', () => resolve()));
  const unlisted = pageServer(cluster.members[1]!.url, proxyUrl);
  await listen(unlisted);
  pages = [listed, unlisted];
  browser = await launchBrowser();
});

after(async () => {
  if (skip !== null) return;
  await browser.close();
  for (const socket of proxySockets) socket.destroy();
  proxy.close();
  for (const page of pages) page.close();
  await cluster.close();
});

function pageUrl(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

test('fetch and EventSource from a listed origin, with reconnection by Last-Event-ID', {
  skip: skip ?? false,
  timeout: 60_000,
}, async () => {
  await cluster.leader();
  const page = await browser.newPage();
  await page.goto(pageUrl(pages[0]!));
  const first = await page.evaluate(() => (window as unknown as TestPage).send({ n: 1 }));
  assert.equal(first.status, 200, JSON.stringify(first));
  assert.equal(first.body?.index, 1);
  await page.waitForFunction(() => (window as unknown as TestPage).events.length === 1);
  const streamRequests = proxyRequests.filter((head) => head.startsWith('GET /v1/stream'));
  assert.equal(streamRequests.length, 1);
  assert.match(streamRequests[0]!, /\r\norigin: http:\/\/127\.0\.0\.1:\d+\r\n/i);

  for (const socket of proxySockets) socket.destroy();
  await waitFor(
    () => proxyRequests.filter((head) => head.startsWith('GET /v1/stream')).length === 2,
    'EventSource reconnects',
    20_000,
  );
  const again = proxyRequests.filter((head) => head.startsWith('GET /v1/stream'))[1]!;
  assert.match(again, /\r\nlast-event-id: 1\r\n/i);
  const second = await page.evaluate(() => (window as unknown as TestPage).send({ n: 2 }));
  assert.equal(second.status, 200);
  await page.waitForFunction(() => (window as unknown as TestPage).events.length >= 2);
  const events = await page.evaluate(() => (window as unknown as TestPage).events);
  assert.deepEqual(events, [
    { id: '1', payload: { n: 1 } },
    { id: '2', payload: { n: 2 } },
  ]);
  assert.ok((await page.evaluate(() => (window as unknown as TestPage).reconnects)) >= 1);
  await page.close();
});

test('a page of an origin not listed cannot call the API', {
  skip: skip ?? false,
  timeout: 60_000,
}, async () => {
  const page = await browser.newPage();
  await page.goto(pageUrl(pages[1]!));
  const answer = await page.evaluate(() => (window as unknown as TestPage).send({ n: 3 }));
  assert.match(answer.failed ?? '', /Failed to fetch/);
  await page.close();
});
