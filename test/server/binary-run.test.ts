// The binary protocol's broadcastRun frame against a real `abcast start --auth --binary`
// process: a run is taken in order and exactly once (its retry, whole or one seq as a JSON
// request, answers duplicate at the same positions) and reads back as sent; it is refused
// whole, with the batch route's status and error and no gap left in its session, for a
// payload that is not JSON text or is over the limit, a bad client, seq, nonce, topic or
// key, a topic the identity may not publish, or no token; the session rules give their
// errors per message; a malformed run closes its connection with a goAway; and the SDK
// sends its broadcasts in these frames (the node counts them).
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { newToken } from '../../src/cli/commands/auth-file.ts';
import { connect } from '../../src/client/index.ts';
import { tokenSha256Hex } from '../../src/server/auth.ts';
import type { RunResult } from '../../src/transport/client-frames.ts';
import { type BinaryNode, startBinaryNode } from '../support/binary-node.ts';
import { waitFor } from '../support/ports.ts';
import { RawConnection, type RawRunAnswer } from './binary-connection.ts';

const tokens = { writer: newToken(), bob: newToken(), orders: newToken(), ops: newToken() };
const payloadBytesMax = 1024;
let node: BinaryNode;
let httpUrl = '';
let binaryPort = 0;
let binaryUrl = '';

before(async () => {
  const identities = [
    { name: 'writer', role: 'write', tokenSha256: tokenSha256Hex(tokens.writer) },
    { name: 'bob', role: 'write', tokenSha256: tokenSha256Hex(tokens.bob) },
    {
      name: 'orders',
      role: 'write',
      tokenSha256: tokenSha256Hex(tokens.orders),
      publish: ['orders.*'],
    },
    { name: 'ops', role: 'admin', tokenSha256: tokenSha256Hex(tokens.ops) },
  ];
  node = await startBinaryNode({
    name: 'binary-run',
    writeAuth: (authPath) => writeFile(authPath, JSON.stringify({ identities })),
    flags: ['--segment-bytes', String(1 << 20), '--payload-bytes-max', String(payloadBytesMax)],
  });
  ({ httpUrl, binaryPort, binaryUrl } = node);
  await waitFor(async () => {
    const status = await fetch(`${httpUrl}/v1/status`, {
      headers: { authorization: `Bearer ${tokens.writer}` },
    });
    return ((await status.json()) as { role?: string }).role === 'leader';
  }, 'the node leading');
});

after(() => node.stop());

let nextRequestId = 1;

async function runOn(
  connection: RawConnection,
  run: Parameters<RawConnection['run']>[1],
): Promise<RawRunAnswer> {
  const requestId = nextRequestId++;
  connection.run(requestId, run);
  return connection.runAnswer(requestId);
}

function resultsOf(answer: RawRunAnswer): readonly RunResult[] {
  assert.ok('results' in answer, `a run taken, not ${JSON.stringify(answer)}`);
  return answer.results;
}

function positionsOf(answer: RawRunAnswer, duplicate: boolean): number[] {
  return resultsOf(answer).map((result) => {
    assert.equal(result.kind, 'ok', JSON.stringify(result));
    assert.equal(result.kind === 'ok' && result.duplicate, duplicate);
    return result.kind === 'ok' ? (result.position as number) : 0;
  });
}

function refusalOf(answer: RawRunAnswer): { status: number; body: Record<string, unknown> } {
  assert.ok('body' in answer, `a run refused whole, not ${JSON.stringify(answer)}`);
  return answer;
}

async function connected(token: string): Promise<RawConnection> {
  const connection = new RawConnection(binaryPort);
  await connection.hello(token);
  return connection;
}

describe('broadcastRun frames', () => {
  test('a run is taken in order and exactly once, and reads back as sent', async () => {
    const connection = await connected(tokens.writer);
    const run = {
      clientId: 'run-a',
      firstSeq: 1,
      messages: [
        { payload: '{"n":1}' },
        { payload: ' [1, 2,\t3] ' },
        { payload: '"text é"', topic: 'orders.eu', key: 'k1' },
      ],
    };
    const positions = positionsOf(await runOn(connection, run), false);
    assert.deepEqual(positions, [positions[0]!, positions[0]! + 1, positions[0]! + 2]);
    // The same run again, and one of its seqs as a JSON request: duplicates, same positions.
    assert.deepEqual(positionsOf(await runOn(connection, run), true), positions);
    connection.post(nextRequestId, '/v1/broadcast', {
      payload: [1, 2, 3],
      client: 'run-a',
      seq: 2,
    });
    const single = await connection.answer(nextRequestId++);
    assert.equal(single.status, 200);
    assert.deepEqual([single.body.index, single.body.duplicate], [positions[1], true]);
    // A run that begins inside the first and goes past it: the old seqs are duplicates.
    const overlap = resultsOf(
      await runOn(connection, {
        clientId: 'run-a',
        firstSeq: 3,
        messages: [{ payload: '"text é"', topic: 'orders.eu', key: 'k1' }, { payload: 'null' }],
      }),
    );
    assert.deepEqual(
      overlap.map((result) => result.kind === 'ok' && [result.position, result.duplicate]),
      [
        [positions[2], true],
        [positions[2]! + 1, false],
      ],
    );
    connection.get(nextRequestId, `/v1/messages?from=${positions[0]}&limit=4`);
    const page = await connection.answer(nextRequestId++);
    const messages = page.body.messages as Record<string, unknown>[];
    assert.deepEqual(
      messages.map((message) => [message.payload, message.client, message.seq, message.topic]),
      [
        [{ n: 1 }, 'run-a', 1, null],
        [[1, 2, 3], 'run-a', 2, null],
        ['text é', 'run-a', 3, 'orders.eu'],
        [null, 'run-a', 4, null],
      ],
    );
    assert.equal(messages[2]?.key, 'k1');
    assert.equal(messages[3]?.payloadBase64, undefined, 'null is JSON');
    connection.close();
  });

  test('a run is refused whole, as the batch route would, and leaves no gap', async () => {
    const connection = await connected(tokens.writer);
    const good = { payload: '{"ok":true}' };
    const cases: [Parameters<RawConnection['run']>[1], number, string, string][] = [
      [
        { clientId: 'run-b', firstSeq: 1, messages: [good, { payload: '{"a":' }] },
        400,
        'invalid_argument',
        'messages[1].payload',
      ],
      [
        { clientId: 'run-b', firstSeq: 1, messages: [{ payload: '"a\u0001b"' }] },
        400,
        'invalid_argument',
        'messages[0].payload',
      ],
      [
        { clientId: 'run-b', firstSeq: 1, messages: [{ payload: '' }] },
        400,
        'invalid_argument',
        'messages[0].payload',
      ],
      [
        {
          clientId: 'run-b',
          firstSeq: 1,
          messages: [{ payload: Buffer.from([0x22, 0xff, 0x22]) }],
        },
        400,
        'invalid_argument',
        'messages[0].payload',
      ],
      [
        {
          clientId: 'run-b',
          firstSeq: 1,
          messages: [{ payload: `"${'x'.repeat(payloadBytesMax)}"` }],
        },
        413,
        'payload_too_large',
        '',
      ],
      [
        { clientId: 'run-b', firstSeq: 1, messages: [good, { ...good, topic: '$sys' }] },
        400,
        'invalid_argument',
        'messages[1].topic',
      ],
      [
        { clientId: 'run-b', firstSeq: 1, messages: [{ ...good, topic: 'a\u0007' }] },
        400,
        'invalid_argument',
        'messages[0].topic',
      ],
      [
        { clientId: 'run-b', firstSeq: 1, messages: [{ ...good, key: 'k\n' }] },
        400,
        'invalid_argument',
        'messages[0].key',
      ],
      [
        { clientId: 'run-b', firstSeq: 1, messages: [{ ...good, key: 'k'.repeat(256) }] },
        400,
        'invalid_argument',
        'messages[0].key',
      ],
      [{ clientId: '', firstSeq: 1, messages: [good] }, 400, 'invalid_argument', 'client'],
      [{ clientId: 'run-b', firstSeq: 0, messages: [good] }, 400, 'invalid_argument', 'seq'],
      [
        { clientId: 'run-b', firstSeq: 1, nonce: 'no spaces', messages: [good] },
        400,
        'invalid_argument',
        'nonce',
      ],
      [{ clientId: 'run-b', firstSeq: 1, messages: [] }, 400, 'invalid_argument', 'messages'],
    ];
    for (const [run, status, code, field] of cases) {
      const refused = refusalOf(await runOn(connection, run));
      assert.equal(refused.status, status, JSON.stringify([run, refused.body]));
      assert.equal(refused.body.error, code);
      if (field !== '') assert.equal(refused.body.field, field);
    }
    // Nothing of run-b was taken: its seq 1 is still free.
    const taken = positionsOf(
      await runOn(connection, { clientId: 'run-b', firstSeq: 1, messages: [good] }),
      false,
    );
    assert.equal(taken.length, 1);
    connection.close();
  });

  test('line breaks between tokens are taken (re-encoded); a payload at the limit is taken', async () => {
    const connection = await connected(tokens.writer);
    const atLimit = `"${'y'.repeat(payloadBytesMax - 2)}"`;
    const positions = positionsOf(
      await runOn(connection, {
        clientId: 'run-c',
        firstSeq: 1,
        messages: [{ payload: '{\r\n  "a": [1,\n 2]\n}\n' }, { payload: atLimit }],
      }),
      false,
    );
    connection.get(nextRequestId, `/v1/messages?from=${positions[0]}&limit=2`);
    const page = await connection.answer(nextRequestId++);
    const payloads = (page.body.messages as { payload: unknown }[]).map((m) => m.payload);
    assert.deepEqual(payloads, [{ a: [1, 2] }, 'y'.repeat(payloadBytesMax - 2)]);
    connection.close();
  });

  test("a run needs the right to publish on every topic, and a token: the run's header may give it", async () => {
    const orders = await connected(tokens.orders);
    const mixed = {
      clientId: 'run-d',
      firstSeq: 1,
      messages: [
        { payload: '1', topic: 'orders.a' },
        { payload: '2', topic: 'prices' },
      ],
    };
    const forbidden = refusalOf(await runOn(orders, mixed));
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.error, 'forbidden');
    assert.equal(forbidden.body.field, 'messages[1].topic');
    const untopical = refusalOf(
      await runOn(orders, { clientId: 'run-d', firstSeq: 1, messages: [{ payload: '1' }] }),
    );
    assert.equal(untopical.status, 403);
    const allowed = {
      ...mixed,
      messages: [mixed.messages[0]!, { payload: '2', topic: 'orders.b' }],
    };
    assert.equal(positionsOf(await runOn(orders, allowed), false).length, 2);
    const anonymous = await connected('');
    const unauthorized = refusalOf(await runOn(anonymous, { ...allowed, clientId: 'run-e' }));
    assert.equal(unauthorized.status, 401);
    assert.equal(unauthorized.body.error, 'unauthorized');
    const withHeader = await runOn(anonymous, {
      ...allowed,
      clientId: 'run-e',
      headers: { authorization: `Bearer ${tokens.orders}` },
    });
    assert.equal(positionsOf(withHeader, false).length, 2);
    for (const connection of [orders, anonymous]) connection.close();
  });

  test('session rules answer per message: another nonce session_conflict, another identity session_forbidden', async () => {
    const writer = await connected(tokens.writer);
    const bob = await connected(tokens.bob);
    const message = { payload: '"mine"' };
    positionsOf(
      await runOn(writer, { clientId: 'run-f', firstSeq: 1, nonce: 'aaaa', messages: [message] }),
      false,
    );
    const conflict = resultsOf(
      await runOn(writer, { clientId: 'run-f', firstSeq: 2, nonce: 'bbbb', messages: [message] }),
    );
    assert.deepEqual(
      conflict.map((result) => result.kind === 'error' && [result.status, result.code]),
      [[409, 'session_conflict']],
    );
    const forbidden = resultsOf(
      await runOn(bob, { clientId: 'run-f', firstSeq: 2, messages: [message] }),
    );
    assert.deepEqual(
      forbidden.map((result) => result.kind === 'error' && [result.status, result.code]),
      [[403, 'session_forbidden']],
    );
    for (const connection of [writer, bob]) connection.close();
  });

  test('a malformed run closes its connection with a goAway; others go on', async () => {
    const bystander = await connected(tokens.writer);
    const forged = await connected(tokens.writer);
    // Version 1, broadcastRun, id 9, no headers, client "c", seq 1, no nonce, 2 messages, 1 byte.
    const body = Buffer.from([1, 10, 0, 0, 0, 9, 0, 0, 0, 1, 0x63, 0, 0, 0, 0, 0, 0, 0, 1]);
    const fields = Buffer.concat([body, Buffer.from([0, 0, 0, 2, 0])]);
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(fields.length);
    forged.send(Buffer.concat([prefix, fields]));
    const goAway = await forged.frame((frame) => frame.type === 'goAway');
    assert.equal(goAway.type === 'goAway' && goAway.code, 'frame_malformed');
    await waitFor(() => forged.closed, 'the forged connection closed');
    const still = await runOn(bystander, {
      clientId: 'run-g',
      firstSeq: 1,
      messages: [{ payload: '"still here"' }],
    });
    assert.equal(positionsOf(still, false).length, 1);
    bystander.close();
  });

  test('the SDK sends its broadcasts in broadcastRun frames, in order, exactly once', async () => {
    const runsTaken = async () => {
      const response = await fetch(`${httpUrl}/metrics`, {
        headers: { authorization: `Bearer ${tokens.ops}` },
      });
      return Number(/^abcast_binary_runs_total (\d+)$/m.exec(await response.text())?.[1]);
    };
    const before = await runsTaken();
    const client = connect({ endpoints: [binaryUrl], token: tokens.writer, clientId: 'sdk-run' });
    try {
      const answers = await Promise.all(
        Array.from({ length: 40 }, (_, at) => client.broadcast({ at }, { topic: 'sdk' })),
      );
      const positions = answers.map((answer) => answer.position as number);
      for (let at = 1; at < positions.length; at++) {
        assert.ok(positions[at]! > positions[at - 1]!, 'issue order');
      }
      assert.ok(answers.every((answer) => !answer.duplicate));
      const single = await client.broadcast('alone');
      assert.ok(single.position! > positions.at(-1)!);
    } finally {
      client.close();
    }
    assert.ok((await runsTaken()) >= before + 2, 'the runs went in broadcastRun frames');
  });
});
