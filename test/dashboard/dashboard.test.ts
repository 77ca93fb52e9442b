// The dashboard in real headless Chromium against a real `abcast dev` cluster (three node
// processes). Opened on a follower, the page shows every member, the leader and the
// positions; a broadcast made by the test appears in its message list (the delay is printed);
// the topic filter keeps only that topic; the "lead" button, once its confirmation is
// accepted, moves leadership and the page shows the new leader and the change, all under a
// steady background load. A screenshot after the leader change is saved in
// test/dashboard/artifacts.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { type CliRun, freeRange, killGroup, spawnCli } from '../cli/helpers.ts';
import { waitFor } from '../support/ports.ts';
import { artifactPath, launchBrowser, skipReason } from './browser.ts';

const skip = skipReason();
let root = '';
let dev: CliRun | null = null;
let browser: Browser | null = null;
let urls: string[] = [];

interface Status {
  readonly id: string;
  readonly role: string;
  readonly leader: string | null;
  readonly deliveredIndex: number;
}

async function status(url: string): Promise<Status> {
  return (await (await fetch(`${url}/v1/status`)).json()) as Status;
}

async function leaderId(): Promise<string> {
  let leader: string | null = null;
  await waitFor(
    async () => {
      const all = await Promise.all(urls.map(status));
      leader = all[0]?.leader ?? null;
      return leader !== null && all.every((one) => one.leader === leader);
    },
    'a leader every node knows',
    30_000,
  );
  return leader as unknown as string;
}

before(async () => {
  if (skip !== null) return;
  root = await mkdtemp(join(tmpdir(), 'abcast-dashboard-'));
  const port = await freeRange(6);
  dev = spawnCli(
    ['dev', '--data', join(root, 'data'), '--port', String(port)].concat([
      '--http-port',
      String(port + 3),
      '--segment-bytes',
      String(1 << 20),
    ]),
    true,
  );
  await waitFor(() => dev!.stdout().includes('Ctrl-C stops'), 'dev cluster up', 60_000);
  urls = [0, 1, 2].map((at) => `http://127.0.0.1:${port + 3 + at}`);
  assert.match(dev.stdout(), new RegExp(`dashboard at ${urls[0]}/`));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (dev !== null) {
    dev.child.kill('SIGINT');
    const stopped = await Promise.race([dev.exited, new Promise((r) => setTimeout(r, 20_000))]);
    if (stopped === undefined) killGroup(dev);
  }
  if (root !== '') await rm(root, { recursive: true, force: true });
});

async function text(page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).textContent()) ?? '';
}

test('the dashboard shows the cluster live and moves leadership', {
  skip: skip ?? false,
  timeout: 120_000,
}, async () => {
  const leader = await leaderId();
  const followerUrl = urls.find((_, at) => `n${at + 1}` !== leader) as string;
  // Background traffic through the page's node, so the charts have something to draw.
  let loading = true;
  const load = (async () => {
    for (let sent = 0; loading; sent++) {
      await fetch(`${followerUrl}/v1/broadcast`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ payload: { load: sent }, topic: 'load' }),
      }).catch(() => undefined);
    }
  })();
  const page = await browser!.newPage({ viewport: { width: 1280, height: 1000 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await page.goto(`${followerUrl}/`);
  await page.locator('#leader', { hasText: leader }).waitFor();
  assert.equal(await text(page, '#connection'), 'live');
  assert.equal(await page.locator('#members tbody tr').count(), 3);
  await page.locator('#members tr[data-member] td.health-ok').nth(2).waitFor();
  assert.equal(await text(page, '#ready'), 'ready');

  // A broadcast by the test shows up on the page, at its position.
  const sentMs = Date.now();
  const answer = await fetch(`${urls[0]}/v1/broadcast`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ payload: { hello: 'dashboard' }, topic: 'greetings' }),
  });
  const { index } = (await answer.json()) as { index: number };
  assert.equal(answer.status, 200);
  await page.locator(`#messages tr[data-position="${index}"]`).waitFor({ timeout: 10_000 });
  console.log(
    `# broadcast ${index} appeared on the page ${Date.now() - sentMs} ms after it was sent`,
  );
  assert.match(await text(page, `#messages tr[data-position="${index}"]`), /dashboard/);
  await waitFor(async () => Number(await text(page, '#delivered')) >= index, 'delivered shown');
  const row = page.locator(`#members tr[data-member="${leader}"]`);
  assert.match((await row.textContent()) ?? '', new RegExp(`${leader}leader`));

  // The topic filter follows one topic only.
  await fetch(`${urls[1]}/v1/broadcast`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ payload: 'other', topic: 'noise' }),
  });
  await page.fill('#topic', 'greetings');
  await page.click('#topic-form button');
  await page.locator(`#messages tr[data-position="${index}"]`).waitFor();
  await waitFor(async () => {
    const topics = await page.locator('#messages tbody tr td:nth-child(2)').allTextContents();
    return topics.length === 1 && topics[0] === 'greetings';
  }, 'only the greetings topic');

  // Leadership moves through the page's button, after the confirmation.
  const target = ['n1', 'n2', 'n3'].find((id) => id !== leader) as string;
  page.once('dialog', (dialog) => void dialog.accept());
  await page.click(`#members tr[data-member="${target}"] button:has-text("lead")`);
  await waitFor(async () => !(await text(page, '#action-result')).endsWith('…'), 'an answer');
  assert.match(await text(page, '#action-result'), /done/);
  await page.locator('#leader', { hasText: target }).waitFor({ timeout: 30_000 });
  await page.locator('#leader-changes li', { hasText: `${target} (term` }).waitFor();
  await page.fill('#topic', '');
  await page.click('#topic-form button');
  await page.locator('#messages tbody tr').nth(9).waitFor();
  loading = false;
  await load;
  await page.screenshot({
    path: await artifactPath('dashboard-leader-change.png'),
    fullPage: true,
  });
  assert.deepEqual(pageErrors, []);
  await page.close();
});
