// Drives `abcast mcp` over stdio with the SDK's own MCP Client against three real nodes: the
// tools carry exactly the names docs/mcp.md promises; every tool answers with structured
// content; the task board, locks and presence refuse stale tokens and lost memberships with
// typed codes (`fenced`, `lease_expired`, `not_member`, …) and a sentence to act on; a
// retried completion is answered `duplicate` rather than done twice.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { LocalCluster } from '../../examples/support/cluster.ts';
import { waitFor } from '../support/ports.ts';
import { call, callFailing, stdioClient } from './helpers.ts';

const toolNames = [
  'broadcast',
  'read_messages',
  'wait_for_messages',
  'cluster_status',
  'barrier',
  'post_task',
  'claim_task',
  'complete_task',
  'release_task',
  'list_tasks',
  'acquire_lock',
  'renew_lock',
  'release_lock',
  'join',
  'heartbeat',
  'leave',
  'members',
  'arrive_barrier',
];

let cluster: LocalCluster;
let client: Client;
let other: Client;

before(async () => {
  cluster = await LocalCluster.start({ nodeCount: 3 });
  client = (await stdioClient(cluster.endpoints)).client;
  other = (await stdioClient(cluster.endpoints)).client;
});

after(async () => {
  await client?.close();
  await other?.close();
  await cluster?.stop();
});

test('every tool of the issue is listed, each with an input schema', async () => {
  const listed = (await client.listTools()).tools;
  const names = listed.map((tool) => tool.name);
  for (const name of toolNames) assert.ok(names.includes(name), `${name} is listed`);
  for (const tool of listed) {
    assert.equal(tool.inputSchema.type, 'object');
    assert.ok((tool.description ?? '').length > 20, `${tool.name} is described`);
  }
});

test('broadcast, read_messages, wait_for_messages, barrier and cluster_status', async () => {
  const first = await call(client, 'broadcast', { payload: { n: 1 }, topic: 'stdio-news' });
  assert.equal(first.duplicate, false);
  assert.ok(Number.isSafeInteger(first.position));
  const second = await call(client, 'broadcast', { payload: 'two', topic: 'stdio-news' });
  assert.equal(second.position, (first.position as number) + 1);

  const page = await call(client, 'read_messages', { from: 1, topic: 'stdio-news' });
  const messages = page.messages as { position: number; payload: unknown; topic: string }[];
  assert.deepEqual(
    messages.map((message) => [message.position, message.payload]),
    [
      [first.position, { n: 1 }],
      [second.position, 'two'],
    ],
  );
  assert.equal(page.next, (second.position as number) + 1);

  // Something is there already: the wait returns it at once.
  const waited = await call(client, 'wait_for_messages', {
    from: first.position,
    topic: 'stdio-news',
  });
  assert.equal(waited.timedOut, false);
  assert.equal((waited.messages as unknown[]).length, 2);
  // Nothing there: the wait ends at its bound, and says where to read next.
  const empty = await call(client, 'wait_for_messages', {
    from: page.next,
    topic: 'stdio-news',
    timeoutMs: 200,
  });
  assert.equal(empty.timedOut, true);
  assert.deepEqual(empty.messages, []);

  const barrier = await call(client, 'barrier');
  assert.ok((barrier.position as number) >= (second.position as number));
  const status = await call(client, 'cluster_status');
  assert.equal((status.members as unknown[]).length, 3);
  assert.ok(typeof status.leader === 'string');
  assert.ok(
    ((status.positions as { delivered: number }).delivered as number) >=
      (second.position as number),
  );
});

test('invalid input is a tool error, not a crash', async () => {
  const missing = await callFailing(client, 'broadcast', { topic: 'x' });
  assert.equal(missing.error, 'invalid_argument');
  const reserved = await callFailing(client, 'broadcast', { payload: 1, topic: '$x' });
  assert.equal(reserved.error, 'invalid_argument');
  // Arguments the input schema refuses, answered by the SDK, carry the code too.
  const schema = await callFailing(client, 'claim_task', { board: 'b' });
  assert.equal(schema.error, 'invalid_argument');
  assert.match(schema.text, /agent/);
  const unknown = await callFailing(client, 'no_such_tool', {});
  assert.equal(unknown.error, 'unknown_tool');
});

test('the task board: post, claim, complete exactly once; stale tokens refused', async () => {
  const board = `board-${Date.now()}`;
  for (const id of ['a', 'b']) {
    assert.deepEqual(await call(client, 'post_task', { board, id, input: { id } }), { board, id });
  }
  // A second post of a known id changes nothing.
  await call(client, 'post_task', { board, id: 'a', input: { other: true } });

  const claimed = await call(client, 'claim_task', { board, agent: 'agent-1', leaseMs: 150 });
  const task = claimed.task as { id: string; input: unknown; token: number; attempt: number };
  assert.equal(task.id, 'a');
  assert.deepEqual(task.input, { id: 'a' });
  assert.equal(claimed.token, task.token);

  // The lease runs out in log time; another agent's claim takes the task with a newer token.
  let reclaimed: { id: string; token: number } | null = null;
  await waitFor(
    async () => {
      const next = await call(other, 'claim_task', { board, agent: 'agent-2', leaseMs: 60_000 });
      const got = next.task as { id: string; token: number } | null;
      if (got?.id === 'b') {
        // b was open: give it back, a is what this test waits for.
        await call(other, 'release_task', { board, id: 'b', token: got.token });
        return false;
      }
      reclaimed = got;
      return got !== null;
    },
    'task a to be claimable again',
    20_000,
  );
  const fresh = reclaimed as unknown as { id: string; token: number };
  assert.equal(fresh.id, 'a');
  assert.ok(fresh.token > task.token, 'tokens increase from claim to claim');

  const stale = await callFailing(client, 'complete_task', {
    board,
    id: 'a',
    token: task.token,
    result: 'late',
  });
  assert.equal(stale.error, 'fenced');
  assert.match(stale.text, /superseded.*claim_task/);
  assert.equal(stale.details.token, task.token);

  const done = await call(other, 'complete_task', {
    board,
    id: 'a',
    token: fresh.token,
    result: 1,
  });
  assert.deepEqual(done, { completed: true, duplicate: false });
  // The same completion retried (its answer lost, say) is not a second completion.
  const again = await call(other, 'complete_task', {
    board,
    id: 'a',
    token: fresh.token,
    result: 1,
  });
  assert.deepEqual(again, { completed: true, duplicate: true });
  const released = await callFailing(other, 'release_task', { board, id: 'a', token: fresh.token });
  assert.equal(released.error, 'already_done');
  const unknown = await callFailing(client, 'complete_task', { board, id: 'zz', token: 1 });
  assert.equal(unknown.error, 'unknown_task');

  const listed = await call(client, 'list_tasks', { board });
  assert.deepEqual(listed.counts, { open: 1, claimed: 0, done: 1 });
  const tasks = listed.tasks as { id: string; state: string; result: unknown; attempts: number }[];
  assert.deepEqual(
    tasks.map((item) => [item.id, item.state]),
    [
      ['a', 'done'],
      ['b', 'open'],
    ],
  );
  assert.equal(tasks[0]?.result, 1);
  assert.equal(tasks[0]?.attempts, 2);
  const open = await call(client, 'list_tasks', { board, state: 'open' });
  assert.deepEqual(
    (open.tasks as { id: string }[]).map((item) => item.id),
    ['b'],
  );
});

test('a claim whose lease ran out is refused lease_expired; renew and release', async () => {
  const board = `lease-${Date.now()}`;
  await call(client, 'post_task', { board, id: 'only', input: null });
  const claimed = await call(client, 'claim_task', { board, agent: 'agent-1', leaseMs: 60_000 });
  const token = claimed.token as number;
  const renewed = await call(client, 'renew_task', { board, id: 'only', token, leaseMs: 150 });
  assert.equal(renewed.token, token);
  // Any command decides due expiries: re-post a known id until the board shows it open.
  await waitFor(
    async () => {
      await call(client, 'post_task', { board, id: 'tick', input: null });
      const listed = await call(client, 'list_tasks', { board, state: 'open' });
      return (listed.tasks as { id: string }[]).some((item) => item.id === 'only');
    },
    'the lease to run out in log time',
    20_000,
  );
  const late = await callFailing(client, 'complete_task', { board, id: 'only', token });
  assert.equal(late.error, 'lease_expired');
  assert.match(late.text, /claim_task/);
  const lateRenew = await callFailing(client, 'renew_task', {
    board,
    id: 'only',
    token,
    leaseMs: 1_000,
  });
  assert.equal(lateRenew.error, 'lease_expired');
  // Claimed again and released: open once more.
  const second = await call(client, 'claim_task', { board, agent: 'agent-1', leaseMs: 60_000 });
  assert.equal((second.task as { id: string }).id, 'only');
  assert.deepEqual(
    await call(client, 'release_task', { board, id: 'only', token: second.token, reason: 'no' }),
    { released: true },
  );
  const none = await call(other, 'claim_task', { board, agent: 'agent-2', leaseMs: 1_000 });
  assert.equal((none.task as { id: string }).id, 'only');
});

test('claim_task with waitMs waits for a post', async () => {
  const board = `wait-${Date.now()}`;
  const empty = await call(client, 'claim_task', { board, agent: 'agent-1', leaseMs: 1_000 });
  assert.deepEqual(empty, { task: null, token: null });
  const waiting = call(client, 'claim_task', {
    board,
    agent: 'agent-1',
    leaseMs: 10_000,
    waitMs: 30_000,
  });
  await call(other, 'post_task', { board, id: 'late', input: 7 });
  const got = await waiting;
  assert.equal((got.task as { id: string }).id, 'late');
});

test('locks: busy, fenced after a newer grant, lease_expired after release', async () => {
  const name = `lock-${Date.now()}`;
  const first = await call(client, 'acquire_lock', { name, owner: 'agent-1', leaseMs: 200 });
  assert.equal(first.owner, 'agent-1');
  const busy = await callFailing(other, 'acquire_lock', { name, owner: 'agent-2', leaseMs: 1_000 });
  assert.equal(busy.error, 'lock_busy');
  assert.equal(busy.details.holder, 'agent-1');
  assert.match(busy.text, /waitMs/);
  // agent-2 waits in line; the lease runs out and the lock passes to it.
  const second = await call(other, 'acquire_lock', {
    name,
    owner: 'agent-2',
    leaseMs: 60_000,
    waitMs: 30_000,
  });
  assert.ok((second.token as number) > (first.token as number), 'fencing tokens increase');
  const renew = await callFailing(client, 'renew_lock', { name, token: first.token, leaseMs: 500 });
  assert.equal(renew.error, 'fenced');
  assert.equal(renew.details.holderToken, second.token);
  assert.match(renew.text, /Stop writing/);
  const release = await callFailing(client, 'release_lock', { name, token: first.token });
  assert.equal(release.error, 'fenced');

  const renewed = await call(other, 'renew_lock', { name, token: second.token, leaseMs: 60_000 });
  assert.equal(renewed.token, second.token);
  assert.deepEqual(await call(other, 'release_lock', { name, token: second.token }), {
    released: true,
  });
  const twice = await callFailing(other, 'release_lock', { name, token: second.token });
  assert.equal(twice.error, 'lease_expired');
});

test('presence: join, heartbeat, members, leave; refusals say what to do', async () => {
  const agent = `agent-${Date.now()}`;
  const joined = await call(client, 'join', { agent, ttlMs: 60_000, meta: { role: 'writer' } });
  assert.equal(joined.agent, agent);
  const twice = await callFailing(other, 'join', { agent, ttlMs: 60_000 });
  assert.equal(twice.error, 'already_member');
  assert.match(twice.text, /heartbeat/);
  const beat = await call(other, 'heartbeat', { agent });
  assert.equal(beat.incarnation, joined.incarnation);
  const members = (await call(other, 'members')).members as { agent: string; meta: unknown }[];
  assert.deepEqual(members.find((member) => member.agent === agent)?.meta, { role: 'writer' });
  assert.deepEqual(await call(client, 'leave', { agent, incarnation: joined.incarnation }), {
    left: true,
  });
  const gone = await callFailing(client, 'heartbeat', { agent });
  assert.equal(gone.error, 'not_member');
  assert.match(gone.text, /join again/);
  const stale = await callFailing(client, 'heartbeat', { agent, incarnation: joined.incarnation });
  assert.equal(stale.error, 'not_member');
});

test('arrive_barrier: two parties pass together; a lone one times out, withdrawn', async () => {
  const name = `meet-${Date.now()}`;
  const [a, b] = await Promise.all([
    call(client, 'arrive_barrier', { name, parties: 2, agent: 'agent-1', timeoutMs: 30_000 }),
    call(other, 'arrive_barrier', { name, parties: 2, agent: 'agent-2', timeoutMs: 30_000 }),
  ]);
  assert.equal(a.generation, b.generation);
  assert.deepEqual([...(a.arrived as string[])].sort(), ['agent-1', 'agent-2']);
  const alone = await callFailing(client, 'arrive_barrier', {
    name: `${name}-alone`,
    parties: 2,
    agent: 'agent-1',
    timeoutMs: 300,
  });
  assert.equal(alone.error, 'timeout');
  assert.match(alone.text, /withdrawn/);
});
