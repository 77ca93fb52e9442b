// The write side of the HTTP API against three real nodes (TCP, disks, one HTTP server each):
// POST /v1/broadcast from the leader and from a follower, dense indexes, exactly-once
// retries, every 400/409/413 with the field named, status, metrics, leadership transfer,
// and 404/405 — each checked through Node's own fetch as a client would see it.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { waitFor } from '../support/ports.ts';
import { broadcast, call, type HttpCluster, metric, scrape, startHttpCluster } from './cluster.ts';

let cluster: HttpCluster;

before(async () => {
  cluster = await startHttpCluster();
});

after(async () => {
  await cluster.close();
});

test('any node accepts a broadcast: a follower forwards it, indexes are dense and shared', {
  timeout: 30_000,
}, async () => {
  const leader = await cluster.leader();
  const follower = await cluster.follower();
  const first = await broadcast(follower.url, { payload: { type: 'Order_Placed', id: 1 } });
  const second = await broadcast(leader.url, { payload: [1, 'two', null], topic: 'orders' });
  assert.equal(first.status, 200);
  assert.equal(second.status, 200);
  assert.equal(second.body.index, first.body.index + 1);
  assert.equal(first.body.duplicate, false);
  assert.equal(typeof first.body.term, 'number');
  assert.deepEqual(Object.keys(first.body).sort(), ['duplicate', 'index', 'term']);
  await waitFor(
    () => cluster.members.every((m) => m.node.status().lastPosition >= second.body.index),
    'every node delivered both',
  );
  for (const member of cluster.members) {
    const page = await call(`${member.url}/v1/messages?from=${first.body.index}&limit=2`);
    assert.deepEqual(
      page.body.messages.map((m: { payload: unknown }) => m.payload),
      [{ type: 'Order_Placed', id: 1 }, [1, 'two', null]],
    );
  }
});

test('a retried (client, seq) answers the original index with duplicate true, on any node', {
  timeout: 30_000,
}, async () => {
  const follower = await cluster.follower();
  const leader = await cluster.leader();
  const message = { payload: { n: 1 }, client: 'retry-client', seq: 1, topic: 't' };
  const original = await broadcast(follower.url, message);
  assert.equal(original.status, 200);
  assert.equal(original.body.duplicate, false);
  await waitFor(
    () => cluster.members.every((m) => m.node.status().lastPosition >= original.body.index),
    'every node applied the original',
  );
  for (const member of [follower, leader, ...cluster.members]) {
    const retry = await broadcast(member.url, message);
    assert.equal(retry.status, 200);
    assert.deepEqual(retry.body, {
      index: original.body.index,
      term: original.body.term,
      duplicate: true,
    });
  }
  const next = await broadcast(leader.url, { ...message, seq: 2 });
  assert.equal(next.body.duplicate, false);
  const page = await call(`${leader.url}/v1/messages?from=${original.body.index}&limit=10`);
  const mine = page.body.messages.filter((m: { client: string }) => m.client === 'retry-client');
  assert.deepEqual(
    mine.map((m: { seq: number; index: number }) => [m.seq, m.index]),
    [
      [1, original.body.index],
      [2, next.body.index],
    ],
  );
});

test('concurrent retries of one (client, seq) are delivered once', {
  timeout: 30_000,
}, async () => {
  const message = { payload: 'concurrent', client: 'racer', seq: 1 };
  const answers = await Promise.all(
    cluster.members.flatMap((m) => [broadcast(m.url, message), broadcast(m.url, message)]),
  );
  for (const answer of answers) assert.equal(answer.status, 200);
  const indexes = new Set(answers.map((answer) => answer.body.index));
  assert.equal(indexes.size, 1);
  const index = [...indexes][0];
  const leader = await cluster.leader();
  const page = await call(`${leader.url}/v1/messages?from=1&limit=1000`);
  assert.equal(
    page.body.messages.filter((m: { client: string }) => m.client === 'racer').length,
    1,
  );
  assert.equal(
    page.body.messages.find((m: { client: string }) => m.client === 'racer').index,
    index,
  );
});

test('400 names the field for every malformed body', { timeout: 30_000 }, async () => {
  const { url } = cluster.members[0]!;
  const cases: [string | object, string, RegExp][] = [
    ['{bad', 'body', /not valid JSON/],
    ['', 'body', /empty/],
    ['[1,2]', 'body', /JSON object/],
    ['"text"', 'body', /JSON object/],
    [{}, 'payload', /payload is required/],
    [{ payload: 1, client: 'c' }, 'seq', /seq is required with client/],
    [{ payload: 1, seq: 1 }, 'client', /client is required with seq/],
    [{ payload: 1, client: 'c', seq: 0 }, 'seq', /seq must be an integer >= 1/],
    [{ payload: 1, client: 'c', seq: 1.5 }, 'seq', /seq must be an integer/],
    [{ payload: 1, client: 'c', seq: '1' }, 'seq', /seq must be an integer/],
    [{ payload: 1, client: 'c', seq: 2 ** 60 }, 'seq', /seq must be an integer/],
    [{ payload: 1, client: '', seq: 1 }, 'client', /client must not be empty/],
    [{ payload: 1, client: 7, seq: 1 }, 'client', /client must be a string/],
    [{ payload: 1, client: 'é'.repeat(128), seq: 1 }, 'client', /at most 255 bytes/],
    [{ payload: 1, topic: 5 }, 'topic', /topic must be a string/],
    [{ payload: 1, topic: 'x'.repeat(256) }, 'topic', /at most 255 bytes/],
    [{ payload: 1, sequence: 3 }, 'sequence', /unknown field "sequence"/],
    // JSON.parse reads these as ±Infinity, which would be stored as null.
    ['{"payload":1e309}', 'payload', /beyond the range of a double/],
    ['{"payload":{"a":[1,-2E+400]}}', 'payload', /beyond the range of a double/],
    [`{"payload":${'9'.repeat(400)}}`, 'payload', /beyond the range of a double/],
    [`{"payload":${'9'.repeat(250)}e99}`, 'payload', /beyond the range of a double/],
  ];
  for (const [body, field, message] of cases) {
    const rawBody = typeof body === 'string' ? body : JSON.stringify(body);
    const answer = await call(`${url}/v1/broadcast`, { method: 'POST', rawBody });
    assert.equal(answer.status, 400, rawBody.slice(0, 60));
    assert.equal(answer.body.error, 'invalid_argument');
    assert.equal(answer.body.field, field, rawBody.slice(0, 60));
    assert.match(answer.body.message, message);
    assert.match(answer.headers.get('content-type') ?? '', /^application\/json/);
  }
  const invalidUtf8 = await call(`${url}/v1/broadcast`, {
    method: 'POST',
    rawBody: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d]),
  });
  assert.equal(invalidUtf8.status, 400);
  assert.match(invalidUtf8.body.message, /UTF-8/);
  // In range, or inside a string, such numbers are kept as sent.
  const kept = await call(`${url}/v1/broadcast`, {
    method: 'POST',
    rawBody: '{"payload":[1e308,"1e999",-1e-400]}',
  });
  assert.equal(kept.status, 200, JSON.stringify(kept.body));
  const page = await call(`${url}/v1/messages?from=${kept.body.index}&limit=1`);
  // An underflow is a zero, as JSON.parse reads it; -0 is written as 0.
  assert.deepEqual(page.body.messages[0].payload, [1e308, '1e999', 0]);
});

test('413 for a 2 MiB body, whether its length is declared or it streams in chunks', {
  timeout: 30_000,
}, async () => {
  const { url, node } = cluster.members[1]!;
  // The test before this one ends with a broadcast answered by another member; this one may
  // still be delivering it, and that would read as something this test let through.
  const delivered = Math.max(...cluster.members.map((m) => m.node.status().lastPosition));
  await waitFor(() => node.status().lastPosition >= delivered, 'the member has caught up');
  const before = node.status().lastPosition;
  const big = JSON.stringify({ payload: 'x'.repeat(2 << 20) });
  const declared = await call(`${url}/v1/broadcast`, { method: 'POST', rawBody: big });
  assert.equal(declared.status, 413);
  assert.equal(declared.body.error, 'payload_too_large');
  // Without Content-Length the limit is enforced while the body streams in.
  const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(`${url}/v1/broadcast`, {
      method: 'POST',
      headers: { 'transfer-encoding': 'chunked' },
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    const chunk = 'x'.repeat(64 << 10);
    req.write('{"payload":"');
    for (let sent = 0; sent < 2 << 20; sent += chunk.length) req.write(chunk);
    req.end('"}');
  });
  assert.equal(chunked.status, 413);
  assert.equal(JSON.parse(chunked.body).error, 'payload_too_large');
  // A payload just over 1 MiB as JSON text is refused even though the body fits.
  const justOver = await broadcast(url, { payload: 'y'.repeat((1 << 20) - 1) });
  assert.equal(justOver.status, 413);
  assert.match(justOver.body.message, /payload is 1048577 bytes/);
  // The connection stays usable and nothing was broadcast.
  const status = await call(`${url}/v1/status`);
  assert.equal(status.status, 200);
  assert.equal(node.status().lastPosition, before);
});

test('409 session_unknown with expectedSeq for a session that never started at seq 1', {
  timeout: 30_000,
}, async () => {
  const answer = await broadcast(cluster.members[2]!.url, {
    payload: 1,
    client: 'latecomer',
    seq: 5,
  });
  assert.equal(answer.status, 409);
  assert.equal(answer.body.error, 'session_unknown');
  assert.equal(answer.body.expectedSeq, 1);
});

test('GET /v1/status describes the node and its members with their addresses', {
  timeout: 30_000,
}, async () => {
  const leader = await cluster.leader();
  for (const member of cluster.members) {
    const { status, body } = await call(`${member.url}/v1/status`);
    assert.equal(status, 200);
    assert.equal(body.id, member.id);
    assert.equal(body.role, member.id === leader.id ? 'leader' : 'follower');
    assert.equal(body.leader, leader.id);
    assert.ok(body.term >= 1);
    assert.ok(body.commitIndex >= 1);
    assert.equal(body.deliveredIndex, member.node.status().lastPosition);
    assert.deepEqual(
      body.members,
      ['n1', 'n2', 'n3'].map((id) => ({ id, address: cluster.peers[id], voter: true })),
    );
  }
  const withQuery = await call(`${leader.url}/v1/status?verbose=1`);
  assert.equal(withQuery.status, 400);
  assert.equal(withQuery.body.field, 'verbose');
});

test('GET /metrics is Prometheus text with node and HTTP numbers', {
  timeout: 30_000,
}, async () => {
  const leader = await cluster.leader();
  const response = await fetch(`${leader.url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  assert.equal(metric(text, 'abcast_role{role="leader"}'), 1);
  assert.equal(metric(text, 'abcast_messages_delivered_total'), leader.node.status().lastPosition);
  assert.ok(metric(text, 'abcast_storage_fsyncs_total') > 0);
  assert.ok(metric(text, 'abcast_transport_sent_frames_total') > 0);
  assert.ok(metric(text, 'abcast_http_broadcast_duration_seconds_count{duplicate="false"}') > 0);
  assert.ok(
    metric(text, 'abcast_http_requests_total{route="/v1/broadcast",method="POST",status="200"}') >
      0,
  );
  // The process's memory, as this very process reports it (the nodes run in it).
  const rssBytes = metric(text, 'process_resident_memory_bytes');
  assert.ok(rssBytes > 1 << 20 && rssBytes < 64 * 2 ** 30, `RSS ${rssBytes}`);
  assert.ok(metric(text, 'nodejs_heap_size_used_bytes') > 0);
  assert.ok(
    metric(text, 'nodejs_heap_size_used_bytes') <= metric(text, 'nodejs_heap_size_total_bytes'),
  );
  assert.ok(
    metric(text, 'nodejs_array_buffers_bytes') <= metric(text, 'nodejs_external_memory_bytes'),
  );
  // Every sample line belongs to a family declared by # TYPE, and each family once.
  const families = text.split('\n').filter((line) => line.startsWith('# TYPE '));
  assert.equal(new Set(families).size, families.length);
  const declared = new Set(families.map((line) => line.split(' ')[2]));
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    assert.match(line, /^[a-z_:]+(\{[^}]*\})? [0-9.e+-]+$|^[a-z_:]+(\{[^}]*\})? (NaN|\+Inf)$/);
    const name = line.split(/[{ ]/)[0]!.replace(/_(bucket|sum|count)$/, '');
    assert.ok(declared.has(name) || declared.has(line.split(/[{ ]/)[0]!), line);
  }
  // docs/api.md lists exactly these families.
  const documented = new Set(
    [
      ...(await readFile(new URL('../../docs/api.md', import.meta.url), 'utf8')).matchAll(
        /^\| `((?:abcast|process|nodejs)_[a-z_]+)/gm,
      ),
    ].map((match) => match[1]!),
  );
  // Replication lag is a leader's family only; whether this node leads is up to the election.
  documented.delete('abcast_replication_lag_entries');
  declared.delete('abcast_replication_lag_entries');
  assert.deepEqual([...declared].sort(), [...documented].sort());
});

test('unknown routes answer 404 and wrong methods 405 with Allow, both as JSON', {
  timeout: 30_000,
}, async () => {
  const { url } = cluster.members[0]!;
  const missing = await call(`${url}/v1/nothing-here`);
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error, 'not_found');
  const wrong = await call(`${url}/v1/broadcast`);
  assert.equal(wrong.status, 405);
  assert.equal(wrong.body.error, 'method_not_allowed');
  assert.equal(wrong.headers.get('allow'), 'POST');
  const deleteStatus = await call(`${url}/v1/status`, { method: 'DELETE' });
  assert.equal(deleteStatus.status, 405);
  assert.equal(deleteStatus.headers.get('allow'), 'GET');
  const metricsText = await scrape(url);
  assert.ok(
    metric(
      metricsText,
      'abcast_http_requests_total{route="unmatched",method="GET",status="404"}',
    ) >= 1,
  );
});

test('POST /v1/leader/transfer: 409 on a follower, 400/409 on bad targets, 202 then the target leads', {
  timeout: 30_000,
}, async () => {
  const leader = await cluster.leader();
  const follower = await cluster.follower();
  const onFollower = await call(`${follower.url}/v1/leader/transfer`, { method: 'POST', body: {} });
  assert.equal(onFollower.status, 409);
  assert.equal(onFollower.body.error, 'not_leader');
  assert.equal(onFollower.body.leader, leader.id);
  assert.equal(onFollower.body.leaderAddress, cluster.peers[leader.id]);
  const unknown = await call(`${leader.url}/v1/leader/transfer`, {
    method: 'POST',
    body: { to: 'n9' },
  });
  assert.equal(unknown.status, 400);
  assert.equal(unknown.body.field, 'to');
  const self = await call(`${leader.url}/v1/leader/transfer`, {
    method: 'POST',
    body: { to: leader.id },
  });
  assert.equal(self.status, 409);
  assert.equal(self.body.error, 'transfer_refused');
  const message = { payload: 'before transfer', client: 'transfer-client', seq: 1 };
  const original = await broadcast(leader.url, message);
  const started = await call(`${leader.url}/v1/leader/transfer`, {
    method: 'POST',
    body: { to: follower.id },
  });
  assert.equal(started.status, 202);
  assert.deepEqual(started.body, { to: follower.id, from: leader.id, term: started.body.term });
  await waitFor(() => follower.node.status().role === 'leader', `${follower.id} leads`);
  // The dedup table is replicated: the retry is a duplicate under the new leader too.
  const retry = await broadcast(follower.url, message);
  assert.deepEqual(retry.body, {
    index: original.body.index,
    term: original.body.term,
    duplicate: true,
  });
  // Without `to`, the leader picks a follower itself (an empty body is fine).
  const newLeader = await cluster.leader();
  const picked = await call(`${newLeader.url}/v1/leader/transfer`, { method: 'POST' });
  assert.equal(picked.status, 202);
  assert.notEqual(picked.body.to, newLeader.id);
  await waitFor(
    () => cluster.member(picked.body.to).node.status().role === 'leader',
    'the picked node leads',
  );
  const after = await broadcast(newLeader.url, { payload: 'after transfers' });
  assert.equal(after.status, 200);
});

test('a page of another site cannot broadcast, even as a text/plain form a browser sends unasked', async () => {
  const leader = await cluster.leader();
  const before = leader.node.status().lastPosition;
  const forged = await call(`${leader.url}/v1/broadcast`, {
    rawBody: JSON.stringify({ payload: 'from a stranger' }),
    headers: { origin: 'http://evil.example', 'content-type': 'text/plain' },
  });
  assert.equal(forged.status, 403);
  assert.equal(forged.body.error, 'forbidden');
  const sandboxed = await call(`${leader.url}/v1/members`, {
    body: { id: 'n9', address: '127.0.0.1:7999' },
    headers: { origin: 'null' },
  });
  assert.equal(sandboxed.status, 403, 'an opaque origin (a sandboxed frame, a file) neither');
  // Reads stay open to any page (the browser keeps their answers from it), and the node's own
  // pages, like clients that are not browsers, change state as before.
  const status = await call(`${leader.url}/v1/status`, {
    headers: { origin: 'http://evil.example' },
  });
  assert.equal(status.status, 200);
  const own = await call(`${leader.url}/v1/broadcast`, {
    body: { payload: 'from the dashboard' },
    headers: { origin: leader.url },
  });
  assert.equal(own.status, 200);
  const plain = await broadcast(leader.url, { payload: 'from curl' });
  assert.equal(plain.status, 200);
  const page = await call(`${leader.url}/v1/messages?from=${before + 1}`);
  assert.deepEqual(
    page.body.messages.map((message: { payload: unknown }) => message.payload),
    ['from the dashboard', 'from curl'],
    'only the two allowed broadcasts were delivered',
  );
});
