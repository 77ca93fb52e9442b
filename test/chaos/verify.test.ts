// The chaos run's use of `abcast verify`, on hand-made nodes: three small HTTP servers answer
// /v1/status and /v1/digest over sequences given by hand; a message planted on one of them
// is found at its position and reported by the checker as a `verify` violation, agreeing
// nodes pass, and a node that cannot answer is reported rather than taken for agreement.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { checkHistory } from '../../src/chaos/checker.ts';
import { verifyNodes } from '../../src/chaos/verify.ts';

const servers: Server[] = [];
after(() => {
  for (const server of servers) server.close();
});

/** A fake node holding `sequence` (position 1 first), answering as a node does. */
async function fakeNode(sequence: readonly string[]): Promise<string> {
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://x');
    let body: unknown;
    if (url.pathname === '/v1/status') {
      body = { firstIndex: 1, deliveredIndex: sequence.length };
    } else if (url.pathname === '/v1/digest') {
      const from = Number(url.searchParams.get('from'));
      const held = sequence.slice(from - 1, from - 1 + Number(url.searchParams.get('count')));
      const digest = createHash('sha256')
        .update(JSON.stringify([from, held]))
        .digest('hex');
      body = { from, count: held.length, next: from + held.length, digest };
    } else {
      response.writeHead(404).end('{}');
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const sequence = Array.from({ length: 100 }, (_, at) => `m${at + 1}`);
const options = { chunkCount: 16, timeoutMs: 5_000 };
const checkOptions = {
  healedAtMs: null,
  recoveryBoundMs: 1_000,
  endMs: 100,
  violationsPerPropertyMax: 10,
};

test('a message planted on one node is found at its position and is a violation', async () => {
  const planted = [...sequence];
  planted[36] = 'planted';
  const nodes = [
    { id: 'n1', url: await fakeNode(sequence) },
    { id: 'n2', url: await fakeNode(planted) },
    { id: 'n3', url: await fakeNode(sequence) },
  ];
  const report = await verifyNodes(nodes, options);
  assert.deepEqual(report.outcome, { kind: 'differ', position: 37, first: 1 });
  const result = checkHistory([], [], { ...checkOptions, verify: report });
  assert.deepEqual(Object.keys(result.violationCounts), ['verify']);
  assert.match(result.violations[0]?.message ?? '', /n1, n2, n3 differ at position 37/);
});

test('agreeing nodes pass; a node that cannot answer is a violation, not agreement', async () => {
  const agreeing = [
    { id: 'n1', url: await fakeNode(sequence) },
    { id: 'n2', url: await fakeNode(sequence) },
  ];
  const report = await verifyNodes(agreeing, options);
  assert.deepEqual(report.outcome, { kind: 'agree', first: 1, last: 100 });
  assert.deepEqual(checkHistory([], [], { ...checkOptions, verify: report }).violations, []);
  const silent = createServer((_request, response) => response.writeHead(500).end('{}'));
  servers.push(silent);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const down = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const unreadable = await verifyNodes([...agreeing, { id: 'n3', url: down }], options);
  assert.equal(unreadable.outcome.kind, 'unreadable');
  const result = checkHistory([], [], { ...checkOptions, verify: unreadable });
  assert.deepEqual(Object.keys(result.violationCounts), ['verify']);
});
