// Proves `broadcast` with a key is delivered once across restarts of the MCP server, with
// nothing kept in the server process: the key names a session of the cluster's replicated
// session table. Over stdio with the SDK's MCP Client against three real nodes:
// - sent, the server SIGKILLed, a new server started: the same key answers the original
//   position as a duplicate;
// - the server SIGKILLed while the call is in flight (its outcome unknown to the agent), the
//   call retried through a new server: each key's message is in the log exactly once;
// - the same key with another payload is refused `key_reused`, nothing sent;
// - the key's session is the same function of the key in every process.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { LocalCluster } from '../../examples/support/cluster.ts';
import { keySession } from '../../src/mcp/index.ts';
import { call, callFailing, stdioClient } from './helpers.ts';

let cluster: LocalCluster;

before(async () => {
  cluster = await LocalCluster.start({ nodeCount: 3 });
});

after(async () => {
  await cluster?.stop();
});

/** SIGKILLs the `abcast mcp` process behind a stdio client: a crash, not a clean close. */
async function crash(connection: { client: Client; transport: StdioClientTransport }) {
  const pid = connection.transport.pid;
  if (pid !== null) process.kill(pid, 'SIGKILL');
  await connection.client.close().catch(() => undefined);
}

test('a key delivered once survives a crash of the MCP server', async () => {
  const topic = `once-${Date.now()}`;
  const first = await stdioClient(cluster.endpoints);
  const sent = await call(first.client, 'broadcast', { payload: { n: 1 }, topic, key: 'order-1' });
  assert.equal(sent.duplicate, false);
  await crash(first);

  const second = await stdioClient(cluster.endpoints);
  try {
    const again = await call(second.client, 'broadcast', {
      payload: { n: 1 },
      topic,
      key: 'order-1',
    });
    assert.deepEqual(again, { position: sent.position, duplicate: true });
    const reused = await callFailing(second.client, 'broadcast', {
      payload: { n: 2 },
      topic,
      key: 'order-1',
    });
    assert.equal(reused.error, 'key_reused');
    assert.equal(reused.details.position, sent.position);
    assert.match(reused.text, /new key/);
    // Object keys in another order are the same payload.
    const reordered = await call(second.client, 'broadcast', {
      payload: { b: 2, a: 1 },
      topic,
      key: 'order-2',
    });
    const sameAgain = await call(second.client, 'broadcast', {
      payload: { a: 1, b: 2 },
      topic,
      key: 'order-2',
    });
    assert.deepEqual(sameAgain, { position: reordered.position, duplicate: true });
    const page = await call(second.client, 'read_messages', { from: 1, topic, limit: 1000 });
    const messages = page.messages as { payload: unknown; client: string; seq: number }[];
    assert.deepEqual(
      messages.map((message) => message.payload),
      [{ n: 1 }, { b: 2, a: 1 }],
    );
    assert.equal(messages[0]?.client, keySession('order-1'));
    assert.equal(messages[0]?.seq, 1);
  } finally {
    await second.client.close();
  }
});

test('calls cut by a crash mid-flight and retried through a new server land once', async () => {
  const topic = `cut-${Date.now()}`;
  const keys = Array.from({ length: 6 }, (_, at) => `cut-${at}`);
  for (const key of keys) {
    const doomed = await stdioClient(cluster.endpoints);
    // The call leaves, and the server dies before (or after) it reaches the cluster.
    const lost = call(doomed.client, 'broadcast', { payload: key, topic, key }).catch(() => null);
    await crash(doomed);
    await lost;
    const retry = await stdioClient(cluster.endpoints);
    try {
      const answer = await call(retry.client, 'broadcast', { payload: key, topic, key });
      assert.ok(Number.isSafeInteger(answer.position));
    } finally {
      await retry.client.close();
    }
  }
  const reader = await stdioClient(cluster.endpoints);
  try {
    const page = await call(reader.client, 'read_messages', { from: 1, topic, limit: 1000 });
    const payloads = (page.messages as { payload: string }[]).map((message) => message.payload);
    assert.deepEqual([...payloads].sort(), [...keys].sort(), 'each key delivered exactly once');
  } finally {
    await reader.client.close();
  }
});

test('a key names the same session in every process, and different keys differ', () => {
  assert.equal(keySession('k'), keySession('k'));
  assert.notEqual(keySession('k'), keySession('k '));
  assert.match(keySession('any key at all'), /^mcp-key\.[A-Za-z0-9_-]{43}$/);
});
