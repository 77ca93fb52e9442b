// The dashboard's server side over real HTTP (the page itself runs in test/dashboard): GET /
// and its files are served without credentials, with a content security policy and nothing
// from elsewhere; an unknown file is a 404. GET /v1/dashboard needs a read token on a server
// that checks them; it sends the history, then views every second with this node, every
// member (with their own positions when given their HTTP URLs: test/dashboard), leader
// changes, and samples that follow the broadcasts made meanwhile; the history names the
// identity and role the page is served as.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { newToken } from '../../src/cli/commands/auth-file.ts';
import { parseAuthFile, tokenSha256Hex } from '../../src/server/auth.ts';
import { broadcast, call, type HttpCluster, openEvents, startHttpCluster } from './cluster.ts';

const token = newToken();
let cluster: HttpCluster;

before(async () => {
  const identities = [{ name: 'viewer', role: 'read', tokenSha256: tokenSha256Hex(token) }];
  cluster = await startHttpCluster({
    auth: { table: parseAuthFile(JSON.stringify({ identities })) },
  });
});

after(async () => {
  await cluster.close();
});

test('the page and its files are public, local and under a content security policy', async () => {
  const url = cluster.members[0]!.url;
  const page = await fetch(`${url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  const html = await page.text();
  assert.doesNotMatch(html, /https?:\/\//, 'nothing from a CDN');
  for (const file of ['app.js', 'app.css', 'uplot.js', 'uplot.css']) {
    const answer = await fetch(`${url}/dashboard/${file}`);
    assert.equal(answer.status, 200, file);
    assert.ok((await answer.text()).length > 100, file);
  }
  assert.equal((await fetch(`${url}/dashboard/secret.json`)).status, 404);
  assert.equal((await fetch(`${url}/dashboard/..%2Fpackage.json`)).status, 404);
});

test('the live feed needs a read token, then sends history and views', {
  timeout: 60_000,
}, async () => {
  const leader = await cluster.leader();
  const url = cluster.members[1]!.url;
  assert.equal((await call(`${url}/v1/dashboard`)).status, 401);
  const events = await openEvents(`${url}/v1/dashboard`, { authorization: `Bearer ${token}` });
  try {
    assert.equal(events.status, 200);
    let event = await events.next();
    while (event.event !== 'history') event = await events.next();
    const history = JSON.parse(event.data ?? '{}');
    assert.ok(Array.isArray(history.samples));
    assert.deepEqual(history.viewer, { name: 'viewer', role: 'read' }, 'who the page is');
    const view = async () => {
      let next = await events.next();
      while (next.event !== 'view') next = await events.next();
      return JSON.parse(next.data ?? '{}');
    };
    let latest = await view();
    assert.equal(latest.node.id, cluster.members[1]!.id);
    assert.equal(latest.authRequired, true);
    assert.deepEqual(
      latest.members.map((member: { id: string }) => member.id),
      ['n1', 'n2', 'n3'],
    );
    assert.ok(
      latest.leaderChanges.some((change: { leader: string }) => change.leader === leader.id),
    );
    // Writes need a write token this server does not hand out: broadcast on the node itself.
    for (let n = 0; n < 5; n++) await leader.node.broadcast(new TextEncoder().encode(`"${n}"`));
    while (latest.sample.deliveredPosition < 5) latest = await view();
    assert.ok(latest.sample.deliveredPerSecond >= 0);
    assert.equal(latest.node.ready, true);
    const self = latest.members.find((member: { id: string }) => member.id === latest.node.id);
    assert.equal(self.health, 'ok');
    assert.equal(self.deliveredPosition, latest.node.deliveredPosition);
  } finally {
    events.close();
  }
  assert.equal((await broadcast(url, { payload: 'x' })).status, 401);
});
