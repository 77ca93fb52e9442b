// Drives `abcast mcp --http` (Streamable HTTP) with the SDK's own MCP Client against three
// real nodes: two HTTP sessions on one server process; every tool answers (a stale claim
// token refused `fenced`); a `wait_for_messages` of one session,
// waiting with nothing to return, is woken by a `broadcast` from another session over HTTP;
// a subscription to `abcast://messages/{topic}` is notified of a delivery and the resource
// then holds the message; `abcast://status` reads the cluster; a keyed broadcast retried
// after the HTTP server process was SIGKILLed and started again is answered as a duplicate;
// a request naming a host other than the loopback one is refused (DNS rebinding).
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { LocalCluster } from '../../examples/support/cluster.ts';
import { waitFor } from '../support/ports.ts';
import { call, callFailing, httpClient, httpServer } from './helpers.ts';

let cluster: LocalCluster;
let server: Awaited<ReturnType<typeof httpServer>>;
let waiter: Client;
let sender: Client;

before(async () => {
  cluster = await LocalCluster.start({ nodeCount: 3 });
  server = await httpServer(cluster.endpoints);
  waiter = await httpClient(server.url);
  sender = await httpClient(server.url);
});

after(async () => {
  await waiter?.close().catch(() => undefined);
  await sender?.close().catch(() => undefined);
  await server?.stop();
  await cluster?.stop();
});

test('every tool answers over HTTP', async () => {
  const stamp = Date.now();
  const board = `http-board-${stamp}`;
  const sent = await call(sender, 'broadcast', { payload: 1, topic: `http-${stamp}` });
  const read = await call(waiter, 'read_messages', { from: sent.position, limit: 1 });
  assert.equal((read.messages as { position: number }[])[0]?.position, sent.position);
  const waited = await call(waiter, 'wait_for_messages', { from: sent.position, timeoutMs: 1 });
  assert.equal(waited.timedOut, false);
  assert.ok(((await call(waiter, 'barrier')).position as number) >= (sent.position as number));
  assert.equal(((await call(waiter, 'cluster_status')).nodes as unknown[]).length, 3);
  await call(sender, 'post_task', { board, id: 't', input: 'x' });
  const claim = await call(waiter, 'claim_task', { board, agent: 'w', leaseMs: 60_000 });
  await call(waiter, 'renew_task', { board, id: 't', token: claim.token, leaseMs: 60_000 });
  await call(waiter, 'release_task', { board, id: 't', token: claim.token });
  const again = await call(sender, 'claim_task', { board, agent: 's', leaseMs: 60_000 });
  assert.ok((again.token as number) > (claim.token as number));
  const stale = await callFailing(waiter, 'complete_task', { board, id: 't', token: claim.token });
  assert.equal(stale.error, 'fenced');
  await call(sender, 'complete_task', { board, id: 't', token: again.token, result: 'ok' });
  const listed = await call(waiter, 'list_tasks', { board, state: 'done' });
  assert.deepEqual(listed.counts, { open: 0, claimed: 0, done: 1 });
  const lease = await call(sender, 'acquire_lock', {
    name: `l-${stamp}`,
    owner: 's',
    leaseMs: 60_000,
  });
  await call(sender, 'renew_lock', { name: `l-${stamp}`, token: lease.token, leaseMs: 60_000 });
  await call(sender, 'release_lock', { name: `l-${stamp}`, token: lease.token });
  const member = await call(sender, 'join', { agent: `s-${stamp}`, ttlMs: 60_000 });
  await call(sender, 'heartbeat', { agent: `s-${stamp}`, incarnation: member.incarnation });
  const members = (await call(waiter, 'members')).members as { agent: string }[];
  assert.ok(members.some((one) => one.agent === `s-${stamp}`));
  await call(sender, 'leave', { agent: `s-${stamp}` });
  const passed = await call(waiter, 'arrive_barrier', {
    name: `b-${stamp}`,
    parties: 1,
    agent: 'w',
    timeoutMs: 10_000,
  });
  assert.deepEqual(passed.arrived, ['w']);
});

test('wait_for_messages is woken by a broadcast from another HTTP session', async () => {
  const topic = `wake-${Date.now()}`;
  const start = await call(sender, 'barrier');
  let settled = false;
  const waiting = call(waiter, 'wait_for_messages', {
    from: (start.position as number) + 1,
    topic,
    timeoutMs: 60_000,
  }).finally(() => {
    settled = true;
  });
  // Nothing of the topic exists: the wait can only end with the broadcast below (or its
  // 60 s bound, which the assertions refuse).
  await call(sender, 'read_messages', { from: 1, topic });
  assert.equal(settled, false, 'the wait is still waiting before the broadcast');
  const sent = await call(sender, 'broadcast', { payload: { hello: 'agents' }, topic });
  const woken = await waiting;
  assert.equal(woken.timedOut, false);
  const messages = woken.messages as { position: number; payload: unknown; topic: string }[];
  assert.equal(messages[0]?.position, sent.position);
  assert.deepEqual(messages[0]?.payload, { hello: 'agents' });
  assert.equal(messages[0]?.topic, topic);
  assert.equal(woken.next, (sent.position as number) + 1);
});

test('a subscribed topic resource is notified of a delivery and then holds it', async () => {
  const topic = `feed/${Date.now()}`;
  const uri = `abcast://messages/${topic}`;
  const updated: string[] = [];
  waiter.setNotificationHandler(ResourceUpdatedNotificationSchema, (notification) => {
    updated.push(notification.params.uri);
  });
  await waiter.subscribeResource({ uri });
  // The watch starts from the cluster's end: broadcast until it has seen one (the first may
  // race the watch's start).
  const sent: number[] = [];
  await waitFor(
    async () => {
      if (updated.includes(uri)) return true;
      sent.push(
        (await call(sender, 'broadcast', { payload: sent.length, topic })).position as number,
      );
      return false;
    },
    'a resource update notification',
    20_000,
  );
  const read = await waiter.readResource({ uri });
  const content = read.contents[0] as { text: string; mimeType: string };
  assert.equal(content.mimeType, 'application/json');
  const body = JSON.parse(content.text) as { topic: string; messages: { position: number }[] };
  assert.equal(body.topic, topic);
  assert.deepEqual(
    body.messages.map((message) => message.position),
    sent,
  );
  await waiter.unsubscribeResource({ uri });

  const status = await waiter.readResource({ uri: 'abcast://status' });
  const parsed = JSON.parse((status.contents[0] as { text: string }).text) as {
    members: unknown[];
    leader: string | null;
  };
  assert.equal(parsed.members.length, 3);
  assert.ok(parsed.leader !== null);
});

test('a keyed broadcast retried through a restarted HTTP server is delivered once', async () => {
  const key = `http-key-${Date.now()}`;
  const topic = `keyed-${Date.now()}`;
  const first = await call(sender, 'broadcast', { payload: { step: 1 }, topic, key });
  assert.equal(first.duplicate, false);
  server.child.kill('SIGKILL');
  await server.stop();
  await waiter.close().catch(() => undefined);
  await sender.close().catch(() => undefined);
  server = await httpServer(cluster.endpoints);
  sender = await httpClient(server.url);
  waiter = await httpClient(server.url);
  const again = await call(sender, 'broadcast', { payload: { step: 1 }, topic, key });
  assert.deepEqual(again, { position: first.position, duplicate: true });
  const page = await call(waiter, 'read_messages', { from: 1, topic, limit: 1000 });
  assert.equal((page.messages as unknown[]).length, 1);
});

test('a loopback server refuses a request naming another host (DNS rebinding)', async () => {
  const status = (headers: Record<string, string>) =>
    new Promise<number>((resolve, reject) => {
      const request = httpRequest(
        server.url,
        { method: 'POST', headers: { 'content-type': 'application/json', ...headers } },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      );
      request.once('error', reject);
      request.end('{}');
    });
  assert.equal(await status({ host: 'attacker.example' }), 403);
  assert.equal(await status({ origin: 'http://attacker.example' }), 403);
  // A loopback caller gets past the check (and is then told to initialize first).
  assert.equal(await status({}), 400);
});
