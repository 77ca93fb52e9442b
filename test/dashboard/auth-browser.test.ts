// The dashboard's admin buttons under --auth, in real headless Chromium against three real
// `abcast start` processes sharing an auth file (an admin and a read-only identity). Without
// a token the page gets nothing and shows no admin control, and the API refuses a transfer
// from the page with 401; with the read token it is live but still shows none, and the API
// answers 403. With the admin token, typed into the token field (kept in the tab's
// sessionStorage, so it survives a reload), the buttons show; a dismissed confirmation sends
// nothing, an accepted one moves leadership, asked of the leader from a follower's page.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { newToken } from '../../src/cli/commands/auth-file.ts';
import { tokenSha256Hex } from '../../src/server/auth.ts';
import { type CliRun, kill, spawnCli } from '../cli/helpers.ts';
import { openEvents } from '../server/cluster.ts';
import { freePorts, waitFor } from '../support/ports.ts';
import { artifactPath, launchBrowser, skipReason } from './browser.ts';

const skip = skipReason();
const ids = ['n1', 'n2', 'n3'];
const adminToken = newToken();
const readToken = newToken();
let root = '';
let urls: string[] = [];
let nodes: CliRun[] = [];
let browser: Browser | null = null;

before(async () => {
  if (skip !== null) return;
  root = await mkdtemp(join(tmpdir(), 'abcast-dashboard-auth-'));
  const authPath = join(root, 'auth.json');
  const identities = [
    { name: 'ops', role: 'admin', tokenSha256: tokenSha256Hex(adminToken) },
    { name: 'viewer', role: 'read', tokenSha256: tokenSha256Hex(readToken) },
  ];
  await writeFile(authPath, JSON.stringify({ identities }), { mode: 0o600 });
  const ports = await freePorts(6);
  urls = ids.map((_, at) => `http://127.0.0.1:${ports[at + 3]}`);
  const peers = ids.map((id, at) => `${id}=127.0.0.1:${ports[at]}`).join(',');
  const httpPeers = ids.map((id, at) => `${id}=${urls[at]}`).join(',');
  nodes = ids.map((id, at) =>
    spawnCli(
      ['start', '--id', id, '--data', join(root, id), '--peers', peers, '--auth', authPath]
        .concat(['--listen', `127.0.0.1:${ports[at]}`, '--http', `127.0.0.1:${ports[at + 3]}`])
        // A follower's page asks the leader for a transfer: the other nodes' origins may call.
        .concat(['--http-peers', httpPeers, '--cors-origins', urls.join(',')])
        .concat(['--segment-bytes', String(1 << 20)])
        // The token the node calls its peers with (backfill, the dashboard's member view).
        .concat(['--backfill-token', readToken]),
    ),
  );
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const node of nodes) await kill(node);
  if (root !== '') await rm(root, { recursive: true, force: true });
});

async function leaderOf(url: string): Promise<string | null> {
  const answer = await fetch(`${url}/v1/status`, {
    headers: { authorization: `Bearer ${readToken}` },
  }).catch(() => null);
  return answer?.ok ? (await answer.json()).leader : null;
}

async function agreedLeader(): Promise<string> {
  let leader: string | null = null;
  await waitFor(
    async () => {
      const all = await Promise.all(urls.map(leaderOf));
      leader = all[0] ?? null;
      return leader !== null && all.every((one) => one === leader);
    },
    'a leader every node knows',
    60_000,
  );
  return leader as unknown as string;
}

/** A transfer asked from inside the page, as its own script (or a hostile one) could. */
async function transferFromPage(page: Page, leaderUrl: string, to: string, token: string | null) {
  return page.evaluate(
    async ({ url, to, token }) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (token !== null) headers.authorization = `Bearer ${token}`;
      const answer = await fetch(`${url}/v1/leader/transfer`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ to }),
      });
      return { status: answer.status, error: (await answer.json()).error as string };
    },
    { url: leaderUrl, to, token },
  );
}

async function useToken(page: Page, token: string): Promise<void> {
  await page.fill('#token', token);
  await page.click('#token-form button');
}

test('under --auth only an admin token gets the admin buttons, and they move leadership', {
  skip: skip ?? false,
  timeout: 120_000,
}, async () => {
  const leader = await agreedLeader();
  const leaderUrl = urls[ids.indexOf(leader)] as string;
  const followerUrl = urls.find((_, at) => ids[at] !== leader) as string;
  const target = ids.find((id) => id !== leader) as string;
  const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  const visibleAdminControls = () =>
    page.locator('#members button:visible, #add-member:visible').count();

  // No token: the feed is refused, nothing to act on, and the API refuses the page.
  await page.goto(`${followerUrl}/`);
  await page.locator('#connection', { hasText: '401' }).waitFor();
  assert.equal(await visibleAdminControls(), 0);
  assert.deepEqual(await transferFromPage(page, leaderUrl, target, null), {
    status: 401,
    error: 'unauthorized',
  });

  // A read token: live, but still no admin control; the API answers 403.
  await useToken(page, readToken);
  await page
    .locator('#viewer', { hasText: 'viewer (read): admin actions need an admin token' })
    .waitFor();
  await page.locator('#leader', { hasText: leader }).waitFor();
  assert.equal(await page.locator('#connection').textContent(), 'live');
  assert.equal(await page.locator('#members tbody tr').count(), 3);
  assert.equal(await visibleAdminControls(), 0);
  assert.deepEqual(await transferFromPage(page, leaderUrl, target, readToken), {
    status: 403,
    error: 'forbidden',
  });

  // The admin token: the buttons show, and it is kept for this tab.
  await useToken(page, adminToken);
  await page.locator('#viewer', { hasText: 'ops (admin)' }).waitFor();
  const lead = page.locator(`#members tr[data-member="${target}"] button:has-text("lead")`);
  await lead.waitFor({ state: 'visible' });
  assert.ok((await visibleAdminControls()) > 0);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('abcast-token')), adminToken);
  await page.reload();
  await page.locator('#viewer', { hasText: 'ops (admin)' }).waitFor();
  await lead.waitFor({ state: 'visible' });

  // A dismissed confirmation sends nothing (the page says nothing was asked).
  const questions: string[] = [];
  page.once('dialog', (dialog) => {
    questions.push(dialog.message());
    void dialog.dismiss();
  });
  await lead.click();
  assert.deepEqual(questions, [`Transfer leadership to ${target}?`]);
  assert.equal(await page.locator('#action-result').textContent(), '');
  assert.equal(await leaderOf(leaderUrl), leader);

  // Accepted: the follower's page asks the leader, and leadership moves.
  page.once('dialog', (dialog) => void dialog.accept());
  await lead.click();
  const result = page.locator('#action-result');
  await waitFor(async () => !((await result.textContent()) ?? '…').endsWith('…'), 'an answer');
  assert.equal(await result.textContent(), `transfer leadership to ${target}: done`);
  await page.locator('#leader', { hasText: target }).waitFor({ timeout: 30_000 });
  await page.locator('#leader-changes li', { hasText: `${target} (term` }).waitFor();
  assert.equal(await agreedLeader(), target);
  await page.screenshot({ path: await artifactPath('dashboard-auth-admin.png') });
  assert.deepEqual(pageErrors, []);
  await page.close();
});

test('with the peer token each node shows every member as it is, not unknown', {
  skip: skip ?? false,
  timeout: 60_000,
}, async () => {
  await agreedLeader();
  const events = await openEvents(`${urls[1]}/v1/dashboard`, {
    authorization: `Bearer ${readToken}`,
  });
  try {
    let health: string[] = [];
    await waitFor(
      async () => {
        let next = await events.next();
        while (next.event !== 'view') next = await events.next();
        const view = JSON.parse(next.data ?? '{}') as { members: { health: string }[] };
        health = view.members.map((member) => member.health);
        return health.length === 3 && health.every((one) => one === 'ok');
      },
      'every member ok in the view',
      30_000,
    );
    assert.deepEqual(health, ['ok', 'ok', 'ok']);
  } finally {
    events.close();
  }
});
