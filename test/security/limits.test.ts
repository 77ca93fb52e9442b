// The bounds on what one client or one flood makes a node hold, set by flags on three real
// processes: each answers with its typed code once passed, and the node serves on.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { startAttackCluster } from './cluster.ts';

test('sessions, streams and message pages are bounded, each refusal typed', {
  timeout: 60_000,
}, async () => {
  const cluster = await startAttackCluster([
    ...['--sessions-max', '3', '--streams-max', '1', '--messages-page-bytes-max', '1000'],
  ]);
  try {
    const { at: leaderAt } = await cluster.agreedLeader();
    const send = (client: string, seq: number, payload = 'x') =>
      cluster.post(leaderAt, '/v1/broadcast', { payload, client, seq });
    // The node's own session (membership records) may hold one of the three.
    const answers = [];
    for (const client of ['a', 'b', 'c', 'd']) answers.push(await send(client, 1));
    const refused = answers.find((answer) => answer.status !== 200);
    assert.ok(refused !== undefined, JSON.stringify(answers));
    assert.equal(refused.status, 503);
    assert.equal((refused.body as { error: string }).error, 'overloaded');
    assert.match(JSON.stringify(refused.body), /sessionsMax/);
    assert.equal((await send('a', 2)).status, 200, 'a known session goes on');

    // One event stream at a time on this node.
    const url = new URL(`${cluster.httpUrl(leaderAt)}/v1/stream?from=1`);
    const first = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      request(url, resolve).on('error', reject).end();
    });
    assert.equal(first.statusCode, 200);
    const second = await fetch(url);
    assert.equal(second.status, 503);
    assert.equal(((await second.json()) as { error: string }).error, 'overloaded');
    first.destroy();

    // A page stops at 1000 payload bytes, one message at least, and next resumes there.
    for (let seq = 3; seq <= 5; seq++) {
      assert.equal((await send('a', seq, 'y'.repeat(600))).status, 200);
    }
    const pages: { messages: unknown[]; next: number }[] = [];
    let from = 1;
    for (let round = 0; round < 10; round++) {
      const page = (await (
        await fetch(`${cluster.httpUrl(leaderAt)}/v1/messages?from=${from}`)
      ).json()) as { messages: unknown[]; next: number };
      if (page.messages.length === 0) break;
      pages.push(page);
      from = page.next;
    }
    const total = pages.reduce((sum, page) => sum + page.messages.length, 0);
    assert.ok(pages.length >= 3, `${pages.length} pages for ${total} messages`);
    for (const page of pages) assert.ok(JSON.stringify(page.messages).length < 2000);
  } finally {
    await cluster.close();
  }
});
